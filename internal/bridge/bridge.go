// Package bridge adapts the domain services (users, chat) to the interfaces the event
// edges declare (pipeline, gateway, notification), and the bus to the gateway's
// publisher. Each adapter is thin: translation of types and of domain errors to reason
// codes, nothing else.
package bridge

import (
	"context"
	"errors"
	"fmt"

	"github.com/parleychat/parley/runtime/bus"
	"github.com/parleychat/parley/runtime/chat"
	"github.com/parleychat/parley/runtime/files"
	"github.com/parleychat/parley/runtime/files/blob"
	"github.com/parleychat/parley/runtime/gateway"
	"github.com/parleychat/parley/runtime/pipeline"
	"github.com/parleychat/parley/runtime/protocol"
	"github.com/parleychat/parley/runtime/users"
	"github.com/parleychat/parley/runtime/webpush"
)

// Reason maps a chat domain error to the reason code clients see.
func Reason(err error) protocol.Reason {
	switch {
	case errors.Is(err, chat.ErrNotMember):
		return protocol.ReasonNotMember
	case errors.Is(err, chat.ErrBlocked):
		return protocol.ReasonBlocked
	case errors.Is(err, chat.ErrMessageTooLarge):
		return protocol.ReasonMessageTooLarge
	case errors.Is(err, chat.ErrEmptyMessage):
		return protocol.ReasonEmptyMessage
	case errors.Is(err, chat.ErrRateLimited):
		return protocol.ReasonRateLimited
	case errors.Is(err, chat.ErrRoomNotFound):
		return protocol.ReasonRoomNotFound
	default:
		return protocol.ReasonInvalid
	}
}

// Chat adapts *chat.Service to the pipeline, the gateway's history and notification's
// room lookups.
type Chat struct {
	Service *chat.Service
}

var (
	_ pipeline.MessageAcceptor = Chat{}
	_ pipeline.ReceiptAdvancer = Chat{}
	_ gateway.History          = Chat{}
)

// AcceptMessages persists the batch through SendBatch (one transaction). Rate is not
// judged here: the gateway did when each message was sent (gateway.Config's
// MessagesPerSecond), and a batch may be a backlog processed long after.
func (c Chat) AcceptMessages(ctx context.Context, in []protocol.MessageSent) ([]pipeline.Outcome, error) {
	reqs := make([]chat.SendRequest, len(in))
	for i, m := range in {
		// The gateway judged the sender's rate when the message arrived (Admitted): a
		// backlog processed late is never refused for rate.
		reqs[i] = chat.SendRequest{RoomID: m.RoomID, SenderID: m.SenderID, ClientID: m.ClientID, Body: m.Body,
			Attachments: m.Attachments, ReplyTo: m.ReplyTo, Admitted: true}
	}
	results, err := c.Service.SendBatch(ctx, reqs)
	if err != nil {
		return nil, fmt.Errorf("send batch: %w", err)
	}
	if len(results) != len(in) {
		return nil, fmt.Errorf("send batch answered %d of %d messages", len(results), len(in))
	}
	out := make([]pipeline.Outcome, len(in))
	for i, r := range results {
		if r.Err != nil {
			out[i].Rejected = &protocol.MessageRejected{RoomID: in[i].RoomID, SenderID: in[i].SenderID,
				ClientID: in[i].ClientID, Reason: Reason(r.Err), Detail: r.Err.Error()}
			continue
		}
		m := r.Message
		out[i].Delivered = &protocol.MessageDelivered{RoomID: m.RoomID, SenderID: m.SenderID, ClientID: m.ClientID,
			ServerID: m.ID, Seq: m.Seq, Body: m.Body, Attachments: m.Attachments, ReplyTo: m.ReplyTo, Mentions: m.Mentions, SentAt: in[i].SentAt, CreatedAt: m.CreatedAt}
		out[i].Announced = r.Announced
	}
	return out, nil
}

// AdvanceReceipts moves the cursors in one transaction; one that did not move (an older
// sequence, or a refused receipt such as a non-member's) yields nil.
func (c Chat) AdvanceReceipts(ctx context.Context, in []protocol.Receipt) ([]*protocol.ReceiptUpdated, error) {
	reqs := make([]chat.ReceiptRequest, len(in))
	for i, r := range in {
		reqs[i] = chat.ReceiptRequest{UserID: r.UserID, RoomID: r.RoomID, Kind: chat.ReceiptKind(r.Kind), Seq: r.Seq}
	}
	results, err := c.Service.AdvanceReceipts(ctx, reqs)
	if err != nil {
		return nil, fmt.Errorf("advance receipts: %w", err)
	}
	out := make([]*protocol.ReceiptUpdated, len(in))
	for i, r := range results {
		if r.Err != nil || !r.Moved {
			continue
		}
		out[i] = &protocol.ReceiptUpdated{RoomID: r.Receipt.RoomID, UserID: r.Receipt.UserID,
			DeliveredSeq: r.Receipt.DeliveredSeq, ReadSeq: r.Receipt.ReadSeq, UpdatedAt: r.Receipt.UpdatedAt}
	}
	return out, nil
}

// MessagesAfter replays history for a reconnecting client. Messages of senders the viewer
// blocked come with an empty body (chat hides them), so sequence numbers stay gap-free.
func (c Chat) MessagesAfter(ctx context.Context, userID, roomID string, after int64, limit int) ([]protocol.ServerFrame, error) {
	page, err := c.Service.History(ctx, userID, roomID, chat.HistoryQuery{Forward: true, After: after, Limit: limit})
	if err != nil {
		if errors.Is(err, chat.ErrNotMember) || errors.Is(err, chat.ErrRoomNotFound) {
			return nil, fmt.Errorf("%w: %w", gateway.ErrForbidden, err)
		}
		return nil, err
	}
	out := make([]protocol.ServerFrame, 0, len(page.Messages))
	for _, m := range page.Messages {
		f := protocol.MessageFrame(&protocol.MessageDelivered{RoomID: m.RoomID, SenderID: m.SenderID, ClientID: m.ClientID,
			ServerID: m.ID, Seq: m.Seq, Body: m.Body, Attachments: m.Attachments, ReplyTo: m.ReplyTo, Mentions: m.Mentions, CreatedAt: m.CreatedAt})
		f.Hidden = m.Hidden
		out = append(out, f)
	}
	return out, nil
}

// EventsAfter replays a room's events (edits, deletions) for a reconnecting client, each
// with its message as it is now; changes the viewer must not see come hidden, so the
// client's events cursor still moves on.
func (c Chat) EventsAfter(ctx context.Context, userID, roomID string, after int64, limit int) ([]protocol.ServerFrame, error) {
	evs, err := c.Service.EventsAfter(ctx, userID, roomID, after, limit)
	if err != nil {
		if errors.Is(err, chat.ErrNotMember) || errors.Is(err, chat.ErrRoomNotFound) {
			return nil, fmt.Errorf("%w: %w", gateway.ErrForbidden, err)
		}
		return nil, err
	}
	out := make([]protocol.ServerFrame, 0, len(evs))
	for _, ev := range evs {
		f := protocol.MessageUpdatedFrame(UpdatedEvent(ev))
		if ev.Message.Hidden {
			f = protocol.ServerFrame{Type: f.Type, Room: f.Room, MessageID: f.MessageID, Seq: f.Seq, Sender: f.Sender,
				User: f.User, EventSeq: f.EventSeq, Hidden: true}
		}
		out = append(out, f)
	}
	return out, nil
}

// UpdatedEvent is the bus payload of a recorded room event.
func UpdatedEvent(ev chat.RoomEvent) *protocol.MessageUpdated {
	m := ev.Message
	kind := protocol.UpdateEdit
	switch ev.Kind {
	case chat.EventDelete:
		kind = protocol.UpdateDelete
	case chat.EventReact:
		kind = protocol.UpdateReact
	}
	var rs []protocol.Reaction
	for _, r := range m.Reactions {
		rs = append(rs, protocol.Reaction{Emoji: r.Emoji, Count: r.Count, Users: r.Users})
	}
	return &protocol.MessageUpdated{RoomID: ev.RoomID, MessageID: ev.MessageID, Seq: m.Seq, SenderID: m.SenderID,
		ActorID: ev.ActorID, EventSeq: ev.EventSeq, Kind: kind, Body: m.Body, Attachments: m.Attachments,
		EditedAt: m.EditedAt, Deleted: m.Deleted, Reactions: rs, Mentions: m.Mentions, At: ev.CreatedAt}
}

// CheckMember answers the gateway's membership check before a room-scoped frame (typing,
// mark) goes on: a non-member, or an unknown room, is gateway.ErrForbidden.
func (c Chat) CheckMember(ctx context.Context, userID, roomID string) error {
	_, err := c.Service.Room(ctx, userID, roomID)
	if errors.Is(err, chat.ErrNotMember) || errors.Is(err, chat.ErrRoomNotFound) {
		return fmt.Errorf("%w: %w", gateway.ErrForbidden, err)
	}
	return err
}

// Recipients are the members who did not block the actor.
func (c Chat) Recipients(ctx context.Context, roomID, actorID string) ([]string, error) {
	return c.Service.Recipients(ctx, roomID, actorID)
}

// PushTargets are the members whose notification level asks for a push.
func (c Chat) PushTargets(ctx context.Context, roomID string, userIDs []string) ([]string, error) {
	return c.Service.PushTargets(ctx, roomID, userIDs)
}

// People is what Contacts needs of the users service.
type People interface {
	BlockerIDs(ctx context.Context, blockedID string) ([]string, error)
}

// Rooms adds contacts (for presence) to Chat.
type Rooms struct {
	Chat
	People People
	// LargeGroup: groups with more members do not make their members contacts for
	// presence (gateway.Config.PresenceLargeGroup); 0 means its default.
	LargeGroup int
}

// Contacts are everyone sharing a direct chat, or a group of at most LargeGroup members,
// with userID, minus those who blocked userID: whom userID's presence is announced to.
func (r Rooms) Contacts(ctx context.Context, userID string) ([]string, error) {
	blockers, err := r.People.BlockerIDs(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("blockers of %s: %w", userID, err)
	}
	largeGroup := r.LargeGroup
	if largeGroup <= 0 {
		largeGroup = gateway.DefaultPresenceLargeGroup
	}
	return r.Service.Contacts(ctx, userID, blockers, largeGroup)
}

// Tokens adapts *users.Auth to the gateway's Authenticator.
type Tokens struct {
	Auth *users.Auth
}

// Authenticate verifies an access token.
func (t Tokens) Authenticate(_ context.Context, token string) (string, error) {
	c, err := t.Auth.VerifyAccessToken(token)
	if err != nil {
		return "", err
	}
	return c.UserID, nil
}

// Publisher puts what the gateway hears onto the bus.
type Publisher struct {
	Bus interface {
		Publish(ctx context.Context, topic string, recs ...bus.Record) error
	}
	// Ephemeral receives typing and presence; they skip the durable bus.
	Ephemeral interface {
		Typing(ctx context.Context, roomID, userID string) error
		Presence(ctx context.Context, userID string, online bool) error
		OnlineContacts(ctx context.Context, userID string) ([]string, error)
	}
}

// PublishMessage produces chat.message_sent keyed by room, so a room keeps its order.
func (p Publisher) PublishMessage(ctx context.Context, m protocol.MessageSent) error {
	return p.publish(ctx, protocol.TopicMessageSent, m.RoomID, &m)
}

// PublishReceipt produces chat.receipt keyed by room.
func (p Publisher) PublishReceipt(ctx context.Context, r protocol.Receipt) error {
	return p.publish(ctx, protocol.TopicReceipt, r.RoomID, &r)
}

// PublishTyping hands typing straight to notification: ephemeral, at most once.
func (p Publisher) PublishTyping(ctx context.Context, roomID, userID string) error {
	return p.Ephemeral.Typing(ctx, roomID, userID)
}

// PublishPresence hands presence straight to notification.
func (p Publisher) PublishPresence(ctx context.Context, userID string, online bool) error {
	return p.Ephemeral.Presence(ctx, userID, online)
}

// OnlineContacts asks notification which of userID's contacts are online.
func (p Publisher) OnlineContacts(ctx context.Context, userID string) ([]string, error) {
	return p.Ephemeral.OnlineContacts(ctx, userID)
}

func (p Publisher) publish(ctx context.Context, topic, key string, payload protocol.Payload) error {
	raw, err := protocol.Encode(payload)
	if err != nil {
		return err
	}
	if err := p.Bus.Publish(ctx, topic, bus.Record{Key: []byte(key), Value: raw}); err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	return nil
}

// Announcer tells the bus about edits, deletions and receipts made over the REST API, so
// notification fans them out as if they had come through the pipeline. (New messages are
// announced by the pipeline's outbox relay, whichever edge stored them.)
type Announcer struct {
	Bus interface {
		Publish(ctx context.Context, topic string, recs ...bus.Record) error
	}
}

// MessageChanged publishes chat.message_updated for an edit or a deletion made over REST.
func (a Announcer) MessageChanged(ctx context.Context, ev chat.RoomEvent) error {
	p := Publisher{Bus: a.Bus}
	return p.publish(ctx, protocol.TopicMessageUpdated, ev.RoomID, UpdatedEvent(ev))
}

// ReceiptMoved publishes chat.receipt_updated for a receipt moved over REST.
func (a Announcer) ReceiptMoved(ctx context.Context, r chat.Receipt) error {
	p := Publisher{Bus: a.Bus}
	return p.publish(ctx, protocol.TopicReceiptUpdated, r.RoomID, &protocol.ReceiptUpdated{
		RoomID: r.RoomID, UserID: r.UserID, DeliveredSeq: r.DeliveredSeq, ReadSeq: r.ReadSeq, UpdatedAt: r.UpdatedAt})
}

// Files adapts chat and users to what the files service asks: who may read a file, and
// whether any message references it.
type Files struct {
	Chat *chat.Service
	Auth *users.Auth
}

// CanRead implements files.Sharing.
func (f Files) CanRead(ctx context.Context, userID string, file files.File) (bool, error) {
	return f.Chat.CanReadFile(ctx, userID, file.UploaderID, file.ID)
}

// Referenced implements files.References.
func (f Files) Referenced(ctx context.Context, fileID string) (bool, error) {
	return f.Chat.FileReferenced(ctx, fileID)
}

// UserID implements files.Authenticator.
func (f Files) UserID(_ context.Context, token string) (string, error) {
	c, err := f.Auth.VerifyAccessToken(token)
	if err != nil {
		return "", fmt.Errorf("%w: %w", files.ErrUnauthorized, err)
	}
	return c.UserID, nil
}

// Attachments lets chat check attachment ids against the files service.
type Attachments struct {
	Files *files.Service
}

// Attachable implements chat.FileChecker: a missing, removed or unreadable file is not
// attachable; anything else is an infrastructure error.
func (a Attachments) Attachable(ctx context.Context, senderID, fileID string) error {
	_, err := a.Files.Attachable(ctx, senderID, fileID)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, files.ErrNotFound), errors.Is(err, files.ErrRemoved), errors.Is(err, files.ErrForbidden),
		errors.Is(err, blob.ErrInvalidID), errors.Is(err, files.ErrEmptyUserID):
		return fmt.Errorf("%w: %w", chat.ErrFileNotAttachable, err)
	default:
		return err
	}
}

// Push keeps Web Push subscriptions for the REST API.
type Push struct {
	Store  webpush.Store
	Config webpush.Config
}

// PublicKey is the VAPID public key.
func (p Push) PublicKey() string { return p.Config.VAPIDPublicKey }

// Subscribe validates sub and stores it for userID.
func (p Push) Subscribe(ctx context.Context, userID string, sub webpush.Subscription) error {
	if err := sub.Validate(p.Config.AllowInsecureEndpoints); err != nil {
		return err
	}
	subs, err := p.Store.ListByUser(ctx, userID)
	if err != nil {
		return err
	}
	known := false
	for _, s := range subs {
		known = known || s.Endpoint == sub.Endpoint
	}
	if !known && len(subs) >= webpush.MaxSubscriptionsPerUser {
		return webpush.ErrTooManySubscriptions
	}
	return p.Store.Add(ctx, userID, sub)
}

// Unsubscribe removes one of userID's own subscriptions.
func (p Push) Unsubscribe(ctx context.Context, userID, endpoint string) error {
	subs, err := p.Store.ListByUser(ctx, userID)
	if err != nil {
		return err
	}
	for _, s := range subs {
		if s.Endpoint == endpoint {
			return p.Store.Delete(ctx, endpoint)
		}
	}
	return webpush.ErrSubscriptionNotFound
}
