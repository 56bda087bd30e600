package httpapi

import (
	"context"
	"errors"
	"math"
	"net/http"
	"time"

	"github.com/parleychat/parley/runtime/chat"
	"github.com/parleychat/parley/runtime/users"
)

func (s *Server) apiRoutes() []Route {
	return []Route{
		{"POST", "/api/v1/auth/register", false, s.register},
		{"POST", "/api/v1/auth/login", false, s.login},
		{"POST", "/api/v1/auth/refresh", false, s.refresh},
		{"POST", "/api/v1/auth/logout", false, s.logout},
		{"POST", "/api/v1/invites", true, s.createInvite},
		{"GET", "/api/v1/me", true, s.me},
		{"PATCH", "/api/v1/me", true, s.updateMe},
		{"GET", "/api/v1/users", true, s.searchUsers},
		{"GET", "/api/v1/users/{userID}", true, s.user},
		{"GET", "/api/v1/blocks", true, s.listBlocks},
		{"PUT", "/api/v1/blocks/{userID}", true, s.block},
		{"DELETE", "/api/v1/blocks/{userID}", true, s.unblock},
		{"GET", "/api/v1/rooms", true, s.listRooms},
		{"POST", "/api/v1/rooms", true, s.createGroup},
		{"POST", "/api/v1/rooms/direct", true, s.openDirect},
		{"GET", "/api/v1/rooms/{roomID}", true, s.room},
		{"PATCH", "/api/v1/rooms/{roomID}", true, s.updateRoom},
		{"GET", "/api/v1/rooms/{roomID}/members", true, s.members},
		{"POST", "/api/v1/rooms/{roomID}/members", true, s.addMember},
		{"DELETE", "/api/v1/rooms/{roomID}/members/{userID}", true, s.removeMember},
		{"PUT", "/api/v1/rooms/{roomID}/owner", true, s.transfer},
		{"GET", "/api/v1/rooms/{roomID}/messages", true, s.history},
		{"POST", "/api/v1/rooms/{roomID}/messages", true, s.sendMessage},
		{"GET", "/api/v1/rooms/{roomID}/messages/{messageID}", true, s.message},
		{"PATCH", "/api/v1/rooms/{roomID}/messages/{messageID}", true, s.editMessage},
		{"DELETE", "/api/v1/rooms/{roomID}/messages/{messageID}", true, s.deleteMessage},
		{"GET", "/api/v1/rooms/{roomID}/events", true, s.roomEvents},
		{"POST", "/api/v1/rooms/{roomID}/messages/{messageID}/reactions", true, s.react},
		{"PUT", "/api/v1/rooms/{roomID}/notifications", true, s.setNotifications},
		{"GET", "/api/v1/search", true, s.search},
		{"GET", "/api/v1/rooms/{roomID}/receipts", true, s.receipts},
		{"POST", "/api/v1/rooms/{roomID}/receipts", true, s.advanceReceipt},
		{"GET", "/api/v1/push/vapid-public-key", true, s.pushKey},
		{"PUT", "/api/v1/push/subscriptions", true, s.pushSubscribe},
		{"DELETE", "/api/v1/push/subscriptions", true, s.pushUnsubscribe},
	}
}

type registerRequest struct {
	Username    string `json:"username"`
	Password    string `json:"password"`
	DisplayName string `json:"display_name"`
	InviteCode  string `json:"invite_code"`
}

type authResponse struct {
	User users.User `json:"user"`
	users.Tokens
}

func (s *Server) register(r *http.Request, _ string) (int, any, error) {
	var req registerRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	if wantsCookie(r) && !sameOrigin(r) {
		return 0, nil, errForeignOrigin
	}
	u, t, err := s.cfg.Users.Register(r.Context(), users.Registration{Username: req.Username, Password: req.Password,
		DisplayName: req.DisplayName, InviteCode: req.InviteCode, Addr: s.clientAddr(r)})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, s.authReply(r, u, t), nil
}

type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

func (s *Server) login(r *http.Request, _ string) (int, any, error) {
	var req loginRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	if wantsCookie(r) && !sameOrigin(r) {
		return 0, nil, errForeignOrigin
	}
	u, t, err := s.cfg.Users.Login(r.Context(), req.Username, req.Password, s.clientAddr(r))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, s.authReply(r, u, t), nil
}

type cookieAuthResponse struct {
	User users.User `json:"user"`
	cookieTokens
}

// authReply is the JSON form, or in cookie mode the cookie plus a body without the
// refresh token (a script must not be able to read it from the response either).
func (s *Server) authReply(r *http.Request, u users.User, t users.Tokens) any {
	if !wantsCookie(r) {
		return authResponse{User: u, Tokens: t}
	}
	return withCookies{body: cookieAuthResponse{User: u, cookieTokens: withoutRefresh(t)}, cookies: []*http.Cookie{s.refreshCookie(r, t.RefreshToken)}}
}

type refreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

// refresh rotates the token from the body or, when the body has none, from the cookie;
// the new one goes back the same way (or as a cookie when the header asks for it).
func (s *Server) refresh(r *http.Request, _ string) (int, any, error) {
	var req refreshRequest
	if err := decodeOptional(r, &req); err != nil {
		return 0, nil, err
	}
	token, fromCookie, err := refreshToken(r, req.RefreshToken)
	if err != nil {
		return 0, nil, err
	}
	// A failure leaves the cookie alone: another tab may just have rotated it.
	t, err := s.cfg.Users.Refresh(r.Context(), token)
	if err != nil {
		return 0, nil, err
	}
	if fromCookie || wantsCookie(r) {
		return http.StatusOK, withCookies{body: withoutRefresh(t), cookies: []*http.Cookie{s.refreshCookie(r, t.RefreshToken)}}, nil
	}
	return http.StatusOK, t, nil
}

// logout revokes the token from the body or the cookie and clears the cookie either way.
func (s *Server) logout(r *http.Request, _ string) (int, any, error) {
	var req refreshRequest
	if err := decodeOptional(r, &req); err != nil {
		return 0, nil, err
	}
	token, _, err := refreshToken(r, req.RefreshToken)
	if err != nil {
		return 0, nil, err
	}
	cleared := []*http.Cookie{s.refreshCookie(r, "")}
	if err := s.cfg.Users.Logout(r.Context(), token); err != nil {
		if errors.Is(err, users.ErrInvalidToken) {
			// An unknown token is as good as logged out: do not leave it in the browser.
			return 0, nil, &cookieError{err: err, cookies: cleared}
		}
		// Anything else: keep the cookie so that the client can retry the revocation.
		return 0, nil, err
	}
	return http.StatusNoContent, withCookies{cookies: cleared}, nil
}

func (s *Server) createInvite(r *http.Request, me string) (int, any, error) {
	code, err := s.cfg.Users.CreateInvite(r.Context(), me)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, map[string]string{"code": code}, nil
}

func (s *Server) me(r *http.Request, me string) (int, any, error) {
	u, err := s.cfg.Users.User(r.Context(), me)
	return http.StatusOK, u, err
}

func (s *Server) updateMe(r *http.Request, me string) (int, any, error) {
	var req users.ProfileUpdate
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	u, err := s.cfg.Users.UpdateProfile(r.Context(), me, req)
	return http.StatusOK, u, err
}

type usersResponse struct {
	Users []users.User `json:"users"`
}

func (s *Server) searchUsers(r *http.Request, _ string) (int, any, error) {
	limit, err := queryInt(r, "limit", 20, 1, users.MaxSearchResults)
	if err != nil {
		return 0, nil, err
	}
	found, err := s.cfg.Users.Search(r.Context(), r.URL.Query().Get("prefix"), int(limit))
	return http.StatusOK, usersResponse{Users: found}, err
}

func (s *Server) user(r *http.Request, _ string) (int, any, error) {
	u, err := s.cfg.Users.User(r.Context(), r.PathValue("userID"))
	return http.StatusOK, u, err
}

func (s *Server) listBlocks(r *http.Request, me string) (int, any, error) {
	list, err := s.cfg.Users.Blocked(r.Context(), me)
	return http.StatusOK, usersResponse{Users: list}, err
}

func (s *Server) block(r *http.Request, me string) (int, any, error) {
	return http.StatusNoContent, nil, s.cfg.Users.Block(r.Context(), me, r.PathValue("userID"))
}

func (s *Server) unblock(r *http.Request, me string) (int, any, error) {
	return http.StatusNoContent, nil, s.cfg.Users.Unblock(r.Context(), me, r.PathValue("userID"))
}

type roomsResponse struct {
	Rooms []chat.RoomSummary `json:"rooms"`
}

func (s *Server) listRooms(r *http.Request, me string) (int, any, error) {
	list, err := s.cfg.Chat.Rooms(r.Context(), me)
	return http.StatusOK, roomsResponse{Rooms: list}, err
}

type createGroupRequest struct {
	Name      string   `json:"name"`
	Topic     string   `json:"topic"`
	MemberIDs []string `json:"member_ids"`
}

func (s *Server) createGroup(r *http.Request, me string) (int, any, error) {
	var req createGroupRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	room, err := s.cfg.Chat.CreateGroup(r.Context(), me, req.Name, req.Topic, req.MemberIDs)
	return http.StatusCreated, room, err
}

type userRef struct {
	UserID string `json:"user_id"`
}

func (s *Server) openDirect(r *http.Request, me string) (int, any, error) {
	var req userRef
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	room, created, err := s.cfg.Chat.OpenDirect(r.Context(), me, req.UserID)
	if created {
		return http.StatusCreated, room, err
	}
	return http.StatusOK, room, err
}

func (s *Server) room(r *http.Request, me string) (int, any, error) {
	room, err := s.cfg.Chat.Room(r.Context(), me, r.PathValue("roomID"))
	if err != nil {
		return 0, nil, err
	}
	level, err := s.cfg.Chat.NotifyLevel(r.Context(), me, room.ID)
	return http.StatusOK, roomView{Room: room, NotificationLevel: level}, err
}

type updateRoomRequest struct {
	Name  *string `json:"name"`
	Topic *string `json:"topic"`
}

func (s *Server) updateRoom(r *http.Request, me string) (int, any, error) {
	var req updateRoomRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	room, err := s.cfg.Chat.UpdateRoom(r.Context(), me, r.PathValue("roomID"), req.Name, req.Topic)
	return http.StatusOK, room, err
}

type membersResponse struct {
	Members []chat.Member `json:"members"`
}

func (s *Server) members(r *http.Request, me string) (int, any, error) {
	list, err := s.cfg.Chat.Members(r.Context(), me, r.PathValue("roomID"))
	return http.StatusOK, membersResponse{Members: list}, err
}

func (s *Server) addMember(r *http.Request, me string) (int, any, error) {
	var req userRef
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, s.cfg.Chat.AddMember(r.Context(), me, r.PathValue("roomID"), req.UserID)
}

func (s *Server) removeMember(r *http.Request, me string) (int, any, error) {
	return http.StatusNoContent, nil, s.cfg.Chat.RemoveMember(r.Context(), me, r.PathValue("roomID"), r.PathValue("userID"))
}

func (s *Server) transfer(r *http.Request, me string) (int, any, error) {
	var req userRef
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, s.cfg.Chat.TransferOwnership(r.Context(), me, r.PathValue("roomID"), req.UserID)
}

type historyResponse struct {
	chat.Page
	// NextBefore pages further back (present when has_more going backwards).
	NextBefore int64 `json:"next_before,omitempty"`
	// NextAfter resumes forwards from the last message returned.
	NextAfter int64 `json:"next_after,omitempty"`
}

func (s *Server) history(r *http.Request, me string) (int, any, error) {
	q := r.URL.Query()
	if q.Has("before") && q.Has("after") {
		return 0, nil, badRequest("invalid_argument", "use either before or after, not both")
	}
	before, err := queryInt(r, "before", 0, 1, math.MaxInt64)
	if err != nil {
		return 0, nil, err
	}
	after, err := queryInt(r, "after", 0, 0, math.MaxInt64)
	if err != nil {
		return 0, nil, err
	}
	limit, err := queryInt(r, "limit", chat.DefaultPageSize, 1, chat.MaxPageSize)
	if err != nil {
		return 0, nil, err
	}
	hq := chat.HistoryQuery{Forward: q.Has("after"), After: after, Before: before, Limit: int(limit)}
	p, err := s.cfg.Chat.History(r.Context(), me, r.PathValue("roomID"), hq)
	if err != nil {
		return 0, nil, err
	}
	resp := historyResponse{Page: p}
	if n := len(p.Messages); n > 0 {
		resp.NextAfter = p.Messages[n-1].Seq
		if !hq.Forward && p.HasMore {
			resp.NextBefore = p.Messages[0].Seq
		}
	} else if hq.Forward {
		resp.NextAfter = after
	}
	return http.StatusOK, resp, nil
}

type sendRequest struct {
	ClientID    string   `json:"client_id"`
	Body        string   `json:"body"`
	Attachments []string `json:"attachments"`
	ReplyTo     string   `json:"reply_to"`
}

type sendResponse struct {
	Message   chat.Message `json:"message"`
	Duplicate bool         `json:"duplicate"`
}

func (s *Server) sendMessage(r *http.Request, me string) (int, any, error) {
	var req sendRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	m, dup, err := s.cfg.Chat.Send(r.Context(), chat.SendRequest{
		RoomID: r.PathValue("roomID"), SenderID: me, ClientID: req.ClientID, Body: req.Body, Attachments: req.Attachments,
		ReplyTo: req.ReplyTo,
	})
	if err != nil {
		return 0, nil, err
	}
	if dup {
		return http.StatusOK, sendResponse{Message: m, Duplicate: true}, nil
	}
	// No announcement here: the message was committed with its place in the outbox, and
	// the relay announces it in its room's order (chat.Store.RelayAnnouncements).
	return http.StatusCreated, sendResponse{Message: m}, nil
}

func (s *Server) message(r *http.Request, me string) (int, any, error) {
	m, err := s.cfg.Chat.Message(r.Context(), me, r.PathValue("roomID"), r.PathValue("messageID"))
	return http.StatusOK, m, err
}

type editRequest struct {
	ClientID string `json:"client_id"`
	Body     string `json:"body"`
}

func (s *Server) editMessage(r *http.Request, me string) (int, any, error) {
	var req editRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	ch, err := s.cfg.Chat.EditMessage(r.Context(), chat.EditRequest{RoomID: r.PathValue("roomID"),
		MessageID: r.PathValue("messageID"), UserID: me, ClientID: req.ClientID, Body: req.Body})
	if err != nil {
		return 0, nil, err
	}
	s.announceChange(r, ch)
	return http.StatusOK, ch.Message, nil
}

func (s *Server) deleteMessage(r *http.Request, me string) (int, any, error) {
	ch, err := s.cfg.Chat.DeleteMessage(r.Context(), chat.DeleteRequest{RoomID: r.PathValue("roomID"),
		MessageID: r.PathValue("messageID"), UserID: me})
	if err != nil {
		return 0, nil, err
	}
	s.announceChange(r, ch)
	return http.StatusOK, ch.Message, nil
}

// announceChange tells the room about a recorded event, even if the client hangs up now
// (a retried or idempotent request recorded none and announces nothing).
func (s *Server) announceChange(r *http.Request, ch chat.Change) {
	if ch.Event == nil || s.cfg.Events == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
	defer cancel()
	if err := s.cfg.Events.MessageChanged(ctx, *ch.Event); err != nil {
		s.cfg.Logger.Warn("announcing a message change failed", "room", ch.Event.RoomID, "err", err)
	}
}

type reactRequest struct {
	ClientID string `json:"client_id"`
	Emoji    string `json:"emoji"`
}

func (s *Server) react(r *http.Request, me string) (int, any, error) {
	var req reactRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	ch, err := s.cfg.Chat.React(r.Context(), chat.ReactRequest{RoomID: r.PathValue("roomID"),
		MessageID: r.PathValue("messageID"), UserID: me, ClientID: req.ClientID, Emoji: req.Emoji})
	if err != nil {
		return 0, nil, err
	}
	s.announceChange(r, ch)
	return http.StatusOK, ch.Message, nil
}

type eventsResponse struct {
	Events    []chat.RoomEvent `json:"events"`
	NextAfter int64            `json:"next_after"`
}

func (s *Server) roomEvents(r *http.Request, me string) (int, any, error) {
	after, err := queryInt(r, "after", 0, 0, math.MaxInt64)
	if err != nil {
		return 0, nil, err
	}
	limit, err := queryInt(r, "limit", chat.DefaultEventPage, 1, chat.DefaultEventPage)
	if err != nil {
		return 0, nil, err
	}
	evs, err := s.cfg.Chat.EventsAfter(r.Context(), me, r.PathValue("roomID"), after, int(limit))
	if err != nil {
		return 0, nil, err
	}
	resp := eventsResponse{Events: evs, NextAfter: after}
	if n := len(evs); n > 0 {
		resp.NextAfter = evs[n-1].EventSeq
	}
	return http.StatusOK, resp, nil
}

type receiptsResponse struct {
	Receipts []chat.Receipt `json:"receipts"`
}

func (s *Server) receipts(r *http.Request, me string) (int, any, error) {
	list, err := s.cfg.Chat.Receipts(r.Context(), me, r.PathValue("roomID"))
	return http.StatusOK, receiptsResponse{Receipts: list}, err
}

type receiptRequest struct {
	Kind chat.ReceiptKind `json:"kind"`
	Seq  int64            `json:"seq"`
}

func (s *Server) advanceReceipt(r *http.Request, me string) (int, any, error) {
	var req receiptRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	// The batch form says whether a cursor moved: only a move is announced to members.
	res, err := s.cfg.Chat.AdvanceReceipts(r.Context(), []chat.ReceiptRequest{{RoomID: r.PathValue("roomID"), UserID: me, Kind: req.Kind, Seq: req.Seq}})
	if err != nil {
		return 0, nil, err
	}
	if res[0].Err != nil {
		return 0, nil, res[0].Err
	}
	if res[0].Moved && s.cfg.Events != nil {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 10*time.Second)
		defer cancel()
		if err := s.cfg.Events.ReceiptMoved(ctx, res[0].Receipt); err != nil {
			s.cfg.Logger.Warn("announcing a REST receipt failed", "room", res[0].Receipt.RoomID, "err", err)
		}
	}
	return http.StatusOK, res[0].Receipt, nil
}
