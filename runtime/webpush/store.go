package webpush

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
)

// MaxSubscriptionsPerUser bounds one user's browsers: each notification fans out to all
// of them, so an unbounded list would let one user slow every delivery down.
const MaxSubscriptionsPerUser = 10

// ErrTooManySubscriptions refuses an endpoint beyond MaxSubscriptionsPerUser.
var ErrTooManySubscriptions = errors.New("webpush: too many subscriptions for this user")

// ErrSubscriptionNotFound is returned when deleting an endpoint that is not stored.
var ErrSubscriptionNotFound = errors.New("webpush: subscription not found")

// Store keeps the push subscriptions of users. The endpoint identifies a subscription:
// a browser profile has one endpoint per application server key.
type Store interface {
	// Add stores sub for userID. Adding an endpoint again replaces its keys and owner
	// (the same browser may re-subscribe, or another account may log in on it), so Add
	// is idempotent.
	Add(ctx context.Context, userID string, sub Subscription) error
	// ListByUser returns userID's subscriptions ordered by endpoint; none is not an error.
	ListByUser(ctx context.Context, userID string) ([]Subscription, error)
	// Delete removes the subscription of endpoint, or returns ErrSubscriptionNotFound.
	Delete(ctx context.Context, endpoint string) error
}

// MemoryStore is the Store of `parley dev` and of tests; it is safe for concurrent use.
type MemoryStore struct {
	mu         sync.Mutex
	byEndpoint map[string]memoryEntry
}

type memoryEntry struct {
	userID string
	sub    Subscription
}

// NewMemoryStore returns an empty store.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{byEndpoint: make(map[string]memoryEntry)}
}

// Add implements Store.
func (m *MemoryStore) Add(ctx context.Context, userID string, sub Subscription) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("webpush: add subscription: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.byEndpoint[sub.Endpoint] = memoryEntry{userID: userID, sub: sub}
	return nil
}

// ListByUser implements Store.
func (m *MemoryStore) ListByUser(ctx context.Context, userID string) ([]Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("webpush: list subscriptions: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var subs []Subscription
	for _, e := range m.byEndpoint {
		if e.userID == userID {
			subs = append(subs, e.sub)
		}
	}
	slices.SortFunc(subs, func(a, b Subscription) int { return strings.Compare(a.Endpoint, b.Endpoint) })
	return subs, nil
}

// ListByUsers returns the subscriptions of each of userIDs that has any, each list
// ordered by endpoint.
func (m *MemoryStore) ListByUsers(ctx context.Context, userIDs []string) (map[string][]Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("webpush: list subscriptions: %w", err)
	}
	want := make(map[string]bool, len(userIDs))
	for _, u := range userIDs {
		want[u] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string][]Subscription{}
	for _, e := range m.byEndpoint {
		if want[e.userID] {
			out[e.userID] = append(out[e.userID], e.sub)
		}
	}
	for _, subs := range out {
		slices.SortFunc(subs, func(a, b Subscription) int { return strings.Compare(a.Endpoint, b.Endpoint) })
	}
	return out, nil
}

// Delete implements Store.
func (m *MemoryStore) Delete(ctx context.Context, endpoint string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("webpush: delete subscription: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.byEndpoint[endpoint]; !ok {
		return ErrSubscriptionNotFound
	}
	delete(m.byEndpoint, endpoint)
	return nil
}
