package webpush

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// ErrQueueFull is returned by Pool.Enqueue when the queue holds QueueSize jobs already:
// the notification is dropped (and counted), never waited for.
var ErrQueueFull = errors.New("webpush: push queue full")

// batchSubscriptions is what a store also implements when it can list the subscriptions
// of many users in one query.
type batchSubscriptions interface {
	ListByUsers(ctx context.Context, userIDs []string) (map[string][]Subscription, error)
}

// Pool sends notifications off the caller's path: Enqueue only queues, Config.Workers
// goroutines send. A job is one message for any number of users: its subscriptions are
// loaded in one query and sent Config.Concurrency at a time.
type Pool struct {
	sender *Sender
	queue  chan poolJob
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// idle is signalled (not blocking) each time a worker finishes a job, for Drained.
	mu      sync.Mutex
	pending int
	idle    *sync.Cond
}

type poolJob struct {
	users   []string
	payload Payload
}

// NewPool starts the sender's workers (Config.Workers, Config.QueueSize); Close stops them.
func NewPool(s *Sender) *Pool {
	ctx, cancel := context.WithCancel(context.Background())
	p := &Pool{sender: s, queue: make(chan poolJob, s.cfg.QueueSize), cancel: cancel}
	p.idle = sync.NewCond(&p.mu)
	for range s.cfg.Workers {
		p.wg.Go(func() { p.work(ctx) })
	}
	return p
}

// Enqueue queues payload for userIDs and returns at once; a full queue drops it with
// ErrQueueFull.
func (p *Pool) Enqueue(userIDs []string, payload Payload) error {
	if len(userIDs) == 0 {
		return nil
	}
	p.mu.Lock()
	p.pending++
	p.mu.Unlock()
	select {
	case p.queue <- poolJob{users: append([]string(nil), userIDs...), payload: payload}:
		p.sender.metrics.queue.Inc()
		return nil
	default:
		p.done()
		p.sender.metrics.dropped.Add(float64(len(userIDs)))
		return fmt.Errorf("%w: %d notifications dropped", ErrQueueFull, len(userIDs))
	}
}

// Drained waits until no job is queued or being sent, or ctx ends (tests, shutdown).
func (p *Pool) Drained(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		p.mu.Lock()
		p.idle.Broadcast()
		p.mu.Unlock()
	})
	defer stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.pending > 0 && ctx.Err() == nil {
		p.idle.Wait()
	}
	return ctx.Err()
}

// Close stops the workers once their current sends end; queued jobs are dropped.
func (p *Pool) Close() {
	p.cancel()
	p.wg.Wait()
}

func (p *Pool) done() {
	p.mu.Lock()
	p.pending--
	if p.pending == 0 {
		p.idle.Broadcast()
	}
	p.mu.Unlock()
}

func (p *Pool) work(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-p.queue:
			p.sender.metrics.queue.Dec()
			p.sender.notifyMany(ctx, j.users, j.payload)
			p.done()
		}
	}
}

// notifyMany sends payload to every subscription of users. Failures are counted in the
// metrics (and expired subscriptions deleted) by send; nobody waits for the outcome.
func (s *Sender) notifyMany(ctx context.Context, users []string, payload Payload) {
	subs, err := s.listByUsers(ctx, users)
	if err != nil {
		s.metrics.failed.WithLabelValues(FailStore).Inc()
		return
	}
	body, err := payload.Encode(MaxPlaintext)
	if err != nil {
		s.metrics.failed.WithLabelValues(FailRejected).Inc()
		return
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, s.cfg.Concurrency)
	for _, u := range users {
		for _, sub := range subs[u] {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				wg.Wait()
				return
			}
			wg.Go(func() {
				defer func() { <-sem }()
				_, _ = s.send(ctx, sub, body)
			})
		}
	}
	wg.Wait()
}

// listByUsers loads every user's subscriptions, in one query when the store can.
func (s *Sender) listByUsers(ctx context.Context, users []string) (map[string][]Subscription, error) {
	if b, ok := s.subs.(batchSubscriptions); ok {
		return b.ListByUsers(ctx, users)
	}
	out := make(map[string][]Subscription, len(users))
	for _, u := range users {
		subs, err := s.subs.ListByUser(ctx, u)
		if err != nil {
			return nil, fmt.Errorf("webpush: list subscriptions of %s: %w", u, err)
		}
		out[u] = subs
	}
	return out, nil
}
