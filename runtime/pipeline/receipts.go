package pipeline

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/parleychat/parley/runtime/bus"
	"github.com/parleychat/parley/runtime/protocol"
)

type receiptBatch struct {
	advancer ReceiptAdvancer
	metrics  *metrics
	in       []protocol.Receipt
}

// prepareReceipts decodes a batch. A receipt has nobody waiting for an answer, so an
// undecodable one is logged, counted and skipped.
func prepareReceipts(msgs []bus.Message, advancer ReceiptAdvancer, log *slog.Logger, m *metrics) batch {
	b := &receiptBatch{advancer: advancer, metrics: m}
	for _, msg := range msgs {
		ev, err := protocol.Decode(msg.Value)
		if err == nil {
			if r, ok := ev.Payload.(*protocol.Receipt); ok {
				b.in = append(b.in, *r)
				continue
			}
			err = fmt.Errorf("%w: %s on %s", protocol.ErrUnknownType, ev.Payload.EventType(), protocol.TopicReceipt)
		}
		m.undecodable.WithLabelValues("receipts").Inc()
		log.Warn("dropping an undecodable receipt", "err", err, "partition", msg.Partition, "offset", msg.Offset)
	}
	return b
}

func (b *receiptBatch) apply(ctx context.Context) ([]published, error) {
	if len(b.in) == 0 {
		return nil, nil
	}
	updates, err := b.advancer.AdvanceReceipts(ctx, b.in)
	if err != nil {
		return nil, fmt.Errorf("advance %d receipts: %w", len(b.in), err)
	}
	if len(updates) != len(b.in) {
		return nil, fmt.Errorf("advancer answered %d receipts with %d results", len(b.in), len(updates))
	}
	var out []published
	for _, u := range updates {
		if u == nil {
			continue
		}
		raw, err := protocol.Encode(u)
		if err != nil {
			return nil, fmt.Errorf("answer to receipt of %s in %s: %w", u.UserID, u.RoomID, err)
		}
		out = append(out, published{topic: protocol.TopicReceiptUpdated, rec: bus.Record{Key: []byte(u.RoomID), Value: raw}})
	}
	b.metrics.receipts.WithLabelValues("moved").Add(float64(len(out)))
	b.metrics.receipts.WithLabelValues("unchanged").Add(float64(len(b.in) - len(out)))
	return out, nil
}
