package pipeline

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/parleychat/parley/runtime/bus"
	"github.com/parleychat/parley/runtime/protocol"
)

type messageBatch struct {
	acceptor MessageAcceptor
	relayed  bool // an outbox relay announces stored messages
	metrics  *metrics
	in       []protocol.MessageSent
	// slots keeps the bus order: each is an index into in, or -1 with an answer made at
	// decoding time (a rejection of an undecodable event).
	slots []int
	early map[int]published
}

// prepareMessages decodes a batch. Undecodable events never stop the batch: the sender,
// when it can be found, gets a rejection with reason invalid; otherwise the event is
// logged, counted and skipped, and its offset is committed with the rest.
func prepareMessages(msgs []bus.Message, acceptor MessageAcceptor, relayed bool, log *slog.Logger, m *metrics) batch {
	b := &messageBatch{acceptor: acceptor, relayed: relayed, metrics: m, early: map[int]published{}}
	for _, msg := range msgs {
		sent, err := decodeMessageSent(msg.Value)
		if err == nil {
			b.slots = append(b.slots, len(b.in))
			b.in = append(b.in, *sent)
			continue
		}
		ref, ok := protocol.SalvageMessageRef(msg.Value)
		if !ok {
			m.undecodable.WithLabelValues("messages").Inc()
			log.Warn("dropping an undecodable message that names no sender",
				"err", err, "partition", msg.Partition, "offset", msg.Offset)
			continue
		}
		// The decoder's error names Go types and fields: log it, tell the client less.
		log.Warn("refusing an undecodable message", "err", err, "partition", msg.Partition, "offset", msg.Offset)
		rej := &protocol.MessageRejected{RoomID: ref.RoomID, SenderID: ref.SenderID, ClientID: ref.ClientID,
			Reason: protocol.ReasonInvalid, Detail: "malformed message"}
		p, encErr := rejectedRecord(rej)
		if encErr != nil {
			m.undecodable.WithLabelValues("messages").Inc()
			log.Warn("dropping an undecodable message", "err", err, "answer_err", encErr,
				"partition", msg.Partition, "offset", msg.Offset)
			continue
		}
		log.Info("rejecting an undecodable message", "err", err, "sender", ref.SenderID,
			"client_id", ref.ClientID, "partition", msg.Partition, "offset", msg.Offset)
		b.early[len(b.slots)] = p
		b.slots = append(b.slots, -1)
	}
	return b
}

func decodeMessageSent(raw []byte) (*protocol.MessageSent, error) {
	ev, err := protocol.Decode(raw)
	if err != nil {
		return nil, err
	}
	sent, ok := ev.Payload.(*protocol.MessageSent)
	if !ok {
		return nil, fmt.Errorf("%w: %s on %s", protocol.ErrUnknownType, ev.Payload.EventType(), protocol.TopicMessageSent)
	}
	return sent, nil
}

func (b *messageBatch) apply(ctx context.Context) ([]published, error) {
	var outcomes []Outcome
	if len(b.in) > 0 {
		var err error
		outcomes, err = b.acceptor.AcceptMessages(ctx, b.in)
		if err != nil {
			return nil, fmt.Errorf("accept %d messages: %w", len(b.in), err)
		}
		if len(outcomes) != len(b.in) {
			return nil, fmt.Errorf("acceptor answered %d messages with %d outcomes", len(b.in), len(outcomes))
		}
	}
	out := make([]published, 0, len(b.slots))
	var accepted int
	rejected := map[protocol.Reason]int{}
	for slot, i := range b.slots {
		if i < 0 {
			out = append(out, b.early[slot])
			rejected[protocol.ReasonInvalid]++
			continue
		}
		in, o := &b.in[i], outcomes[i]
		var (
			p   published
			err error
		)
		switch {
		case o.Delivered != nil && o.Rejected == nil && b.relayed && !o.Announced:
			accepted++ // the relay announces it, in its room's order
			continue
		case o.Delivered != nil && o.Rejected == nil:
			p, err = deliveredRecord(o.Delivered, in)
			accepted++
		case o.Rejected != nil && o.Delivered == nil:
			p, err = rejectedRecord(fillRejected(o.Rejected, in))
			rejected[o.Rejected.Reason]++
		default:
			err = fmt.Errorf("outcome must hold exactly one of delivered and rejected")
		}
		if err != nil {
			return nil, fmt.Errorf("answer to message %s/%s: %w", in.SenderID, in.ClientID, err)
		}
		out = append(out, p)
	}
	b.metrics.accepted.Add(float64(accepted))
	for r, n := range rejected {
		b.metrics.rejected.WithLabelValues(string(r)).Add(float64(n))
	}
	return out, nil
}

func deliveredRecord(d *protocol.MessageDelivered, in *protocol.MessageSent) (published, error) {
	// The acceptor may leave the request's own fields empty; they are known here.
	if d.RoomID == "" {
		d.RoomID = in.RoomID
	}
	if d.SenderID == "" {
		d.SenderID = in.SenderID
	}
	if d.ClientID == "" {
		d.ClientID = in.ClientID
	}
	raw, err := protocol.Encode(d)
	if err != nil {
		return published{}, err
	}
	return published{topic: protocol.TopicMessageDelivered, rec: bus.Record{Key: []byte(d.RoomID), Value: raw}}, nil
}

func fillRejected(r *protocol.MessageRejected, in *protocol.MessageSent) *protocol.MessageRejected {
	if r.RoomID == "" {
		r.RoomID = in.RoomID
	}
	if r.SenderID == "" {
		r.SenderID = in.SenderID
	}
	if r.ClientID == "" {
		r.ClientID = in.ClientID
	}
	return r
}

func rejectedRecord(r *protocol.MessageRejected) (published, error) {
	raw, err := protocol.Encode(r)
	if err != nil {
		return published{}, err
	}
	key := r.RoomID
	if key == "" {
		key = r.SenderID
	}
	return published{topic: protocol.TopicMessageRejected, rec: bus.Record{Key: []byte(key), Value: raw}}, nil
}
