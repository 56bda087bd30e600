package chat

import (
	"context"
	"errors"
	"fmt"
	"slices"
)

// SendRequest is one message to send.
type SendRequest struct {
	RoomID, SenderID, ClientID, Body string
	Attachments                      []string // file ids; may be empty
	// ReplyTo is the server id of a message of the same room this one answers; "" for
	// none. Another room's message, or none at all, is ErrInvalidReply.
	ReplyTo string
	// Admitted says the sender's rate was already judged when the message was admitted
	// (the gateway, at the time the user sent it): it is not charged again here, so a
	// backlog processed late, in one burst, is never refused for rate.
	Admitted bool
}

// SendResult answers one SendRequest.
type SendResult struct {
	Message   Message // the stored message
	Duplicate bool    // (SenderID, ClientID) was stored before: Message is the original
	// Announced: a duplicate whose original was already announced on the bus; the
	// caller answers it itself. Any other stored message is announced by the outbox
	// relay (Service.RelayAnnouncements), never by the caller.
	Announced bool
	Err       error // a domain error for this one request
}

// SendBatch validates every request (membership, blocks, size, per-user rate), assigns
// each accepted message its room's next sequence number (per-room, gap-free, starting at
// 1) and persists the whole batch in ONE database transaction, idempotent on (sender,
// client id), including duplicates inside the same batch. A non-nil returned error means
// nothing was committed (the caller retries the batch). results[i] answers reqs[i].
//
// The look-ups cost a fixed number of store round trips whatever the batch size
// (rooms, mentioned usernames, memberships), plus one block look-up per distinct sender
// writing to a direct room and one member listing per room whose owner mentions "@room".
// Stored duplicates are not looked up first: the store's insert finds them (a retry is
// rare, a look-up of every key costs as much as the insert). A request refused here is
// looked up afterwards, so a redelivered message that was accepted once is answered
// with its original and never refused (for example because the sender left the room
// since); a token charged for a request that turns out a duplicate is given back.
func (s *Service) SendBatch(ctx context.Context, reqs []SendRequest) ([]SendResult, error) {
	results := make([]SendResult, len(reqs))
	if len(reqs) == 0 {
		return results, nil
	}
	now := s.clock()

	// 1. Shape checks, and in-batch duplicates pointing at their first occurrence.
	first := make(map[ClientKey]int, len(reqs))
	dupOf := make([]int, len(reqs))
	var roomIDs []string
	var replyIDs []string
	seenRoom := map[string]bool{}
	for i, r := range reqs {
		dupOf[i] = -1
		if err := s.checkContent(r); err != nil {
			results[i].Err = err
			continue
		}
		if !validID(r.RoomID) {
			results[i].Err = ErrRoomNotFound
			continue
		}
		if !validID(r.SenderID) {
			results[i].Err = ErrNotMember
			continue
		}
		if r.ReplyTo != "" && !validID(r.ReplyTo) {
			results[i].Err = ErrInvalidReply
			continue
		}
		k := ClientKey{r.SenderID, r.ClientID}
		if j, ok := first[k]; ok {
			dupOf[i] = j
			continue
		}
		first[k] = i
		if !seenRoom[r.RoomID] {
			seenRoom[r.RoomID] = true
			roomIDs = append(roomIDs, r.RoomID)
		}
		if r.ReplyTo != "" {
			replyIDs = append(replyIDs, r.ReplyTo)
		}
	}

	// 2. Rooms, replied messages and mentions.
	rooms, err := s.store.RoomsByID(ctx, roomIDs)
	if err != nil {
		return nil, fmt.Errorf("rooms: %w", err)
	}
	var replied map[string]Message
	if len(replyIDs) > 0 {
		if replied, err = s.store.MessagesByID(ctx, replyIDs); err != nil {
			return nil, fmt.Errorf("replied messages: %w", err)
		}
	}

	// Mentions: one user look-up for every name the batch's new messages mention.
	var bodies []string
	for i, r := range reqs {
		if results[i].Err == nil && dupOf[i] < 0 {
			bodies = append(bodies, r.Body)
		}
	}
	mentions, err := s.newMentionResolver(ctx, bodies)
	if err != nil {
		return nil, err
	}

	// 3. Blocks in direct rooms: the sender is refused when a member of the room blocked
	// them, which one membership look-up answers together with the senders' own (and
	// whether the people mentioned are members).
	blockersOf := map[string][]string{}
	var pairs []Membership
	seenPair := map[Membership]bool{}
	addPair := func(p Membership) {
		if !seenPair[p] {
			seenPair[p] = true
			pairs = append(pairs, p)
		}
	}
	for i, r := range reqs {
		if results[i].Err != nil || dupOf[i] >= 0 {
			continue
		}
		room, ok := rooms[r.RoomID]
		if !ok {
			continue
		}
		addPair(Membership{r.RoomID, r.SenderID})
		for _, id := range mentions.candidates(r.Body, r.SenderID) {
			addPair(Membership{r.RoomID, id})
		}
		if room.Kind != KindDirect {
			continue
		}
		blockers, ok := blockersOf[r.SenderID]
		if !ok {
			if blockers, err = s.people.BlockerIDs(ctx, r.SenderID); err != nil {
				return nil, fmt.Errorf("blocks: %w", err)
			}
			blockersOf[r.SenderID] = blockers
		}
		for _, b := range blockers {
			addPair(Membership{r.RoomID, b})
		}
	}
	member, err := s.store.Memberships(ctx, pairs)
	if err != nil {
		return nil, fmt.Errorf("memberships: %w", err)
	}

	// 4. Decide each request.
	roomMembers := map[string][]string{} // for "@room", read once per room
	var toAppend []Message
	var appendIdx []int
	var charged []string // senders charged a token in this batch, to refund if nothing is stored
	chargedAt := map[int]bool{}
	for i, r := range reqs {
		if results[i].Err != nil || dupOf[i] >= 0 {
			continue
		}
		room, ok := rooms[r.RoomID]
		if !ok {
			results[i].Err = ErrRoomNotFound
			continue
		}
		if !member[Membership{r.RoomID, r.SenderID}] {
			results[i].Err = ErrNotMember
			continue
		}
		if room.Kind == KindDirect && slices.ContainsFunc(blockersOf[r.SenderID], func(b string) bool {
			return member[Membership{r.RoomID, b}]
		}) {
			results[i].Err = ErrBlocked
			continue
		}
		if r.ReplyTo != "" {
			// A reply to a message stored earlier in this same batch is not seen here:
			// the client only learns a server id from an ack, so it cannot name one.
			if orig, ok := replied[r.ReplyTo]; !ok || orig.RoomID != r.RoomID {
				results[i].Err = ErrInvalidReply
				continue
			}
		}
		if err := s.checkAttachments(ctx, r); err != nil {
			if !errors.Is(err, ErrInvalidAttachment) {
				// Nothing is stored: give back the tokens this batch took, so its retry
				// is not refused by its own first attempt.
				for _, sender := range charged {
					s.refundToken(sender)
				}
				return nil, err
			}
			results[i].Err = err
			continue
		}
		if !r.Admitted {
			if !s.takeToken(r.SenderID, now) {
				results[i].Err = ErrRateLimited
				continue
			}
			charged = append(charged, r.SenderID)
			chargedAt[i] = true
		}
		atts := r.Attachments
		if atts == nil {
			atts = []string{}
		}
		var everyone []string
		if roomMentioned(r.Body, r.SenderID, room) {
			if everyone, ok = roomMembers[r.RoomID]; !ok {
				if everyone, err = s.memberIDs(ctx, r.RoomID); err != nil {
					for _, sender := range charged {
						s.refundToken(sender)
					}
					return nil, err
				}
				roomMembers[r.RoomID] = everyone
			}
		}
		toAppend = append(toAppend, Message{
			ID: newID(), RoomID: r.RoomID, SenderID: r.SenderID, ClientID: r.ClientID,
			Body: r.Body, Attachments: atts, CreatedAt: now, ReplyTo: r.ReplyTo,
			Mentions: mentions.resolve(r.Body, r.SenderID, room, func(id string) bool {
				return member[Membership{r.RoomID, id}]
			}, everyone),
		})
		appendIdx = append(appendIdx, i)
	}

	// 5. A refused request may be a retry of one accepted before: answer it with the
	// original (one look-up, only when something was refused).
	if err := s.answerRefusedRetries(ctx, reqs, results, dupOf, rooms); err != nil {
		for _, sender := range charged {
			s.refundToken(sender)
		}
		return nil, err
	}

	// 6. One transaction for the batch.
	if len(toAppend) > 0 {
		out, err := s.store.AppendMessages(ctx, toAppend)
		if err != nil {
			for _, sender := range charged {
				s.refundToken(sender)
			}
			return nil, fmt.Errorf("append messages: %w", err)
		}
		stored := false
		for j, a := range out {
			i := appendIdx[j]
			results[i] = SendResult{Message: a.Message, Duplicate: a.Duplicate, Announced: a.Announced}
			stored = stored || !a.Duplicate
			if a.Duplicate && chargedAt[i] {
				s.refundToken(reqs[i].SenderID) // a retry of a stored message costs nothing
			}
		}
		if stored && s.onStored != nil {
			s.onStored()
		}
	}
	persisted, dups, rejected := 0, 0, 0
	for i := range reqs {
		if j := dupOf[i]; j >= 0 {
			results[i] = results[j]
			if results[i].Err == nil {
				results[i].Duplicate = true
			}
		}
		switch {
		case results[i].Err != nil:
			rejected++
		case results[i].Duplicate:
			dups++
		default:
			persisted++
		}
	}
	if s.observer != nil {
		s.observer.BatchCommitted(len(reqs), persisted, dups, rejected)
	}
	return results, nil
}

// answerRefusedRetries replaces the refusal of a request whose (sender, client id) is
// stored with the stored original, as a duplicate.
func (s *Service) answerRefusedRetries(ctx context.Context, reqs []SendRequest, results []SendResult, dupOf []int, rooms map[string]Room) error {
	var keys []ClientKey
	for i, r := range reqs {
		if results[i].Err != nil && dupOf[i] < 0 && r.SenderID != "" && r.ClientID != "" {
			keys = append(keys, ClientKey{r.SenderID, r.ClientID})
		}
	}
	if len(keys) == 0 {
		return nil
	}
	stored, err := s.store.MessagesByClientKey(ctx, keys)
	if err != nil {
		return fmt.Errorf("idempotency lookup: %w", err)
	}
	for i, r := range reqs {
		if m, ok := stored[ClientKey{r.SenderID, r.ClientID}]; ok && results[i].Err != nil && dupOf[i] < 0 {
			// The rooms were read after the retry was sent: an original announced by
			// then shows here, and one announced later reaches the sender anyway.
			room, ok := rooms[m.RoomID]
			results[i] = SendResult{Message: m, Duplicate: true, Announced: ok && m.Seq <= room.AnnouncedSeq}
		}
	}
	return nil
}

// Send sends one message (the REST path); the result's Err is returned as the error.
func (s *Service) Send(ctx context.Context, r SendRequest) (Message, bool, error) {
	res, err := s.SendBatch(ctx, []SendRequest{r})
	if err != nil {
		return Message{}, false, err
	}
	return res[0].Message, res[0].Duplicate, res[0].Err
}
