package httpapi

import (
	"net/http"

	"github.com/parleychat/parley/runtime/chat"
)

// search answers GET /api/v1/search: messages of the caller's rooms, best match first.
func (s *Server) search(r *http.Request, me string) (int, any, error) {
	q := r.URL.Query()
	limit, err := queryInt(r, "limit", chat.DefaultSearchPageSize, 1, chat.MaxSearchPageSize)
	if err != nil {
		return 0, nil, err
	}
	page, err := s.cfg.Chat.Search(r.Context(), me, chat.SearchQuery{Text: q.Get("q"), RoomID: q.Get("room"),
		SenderID: q.Get("sender"), Limit: int(limit), Cursor: q.Get("cursor")})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, page, nil
}

type notificationsBody struct {
	Level chat.NotifyLevel `json:"level"`
}

// setNotifications answers PUT /api/v1/rooms/{roomID}/notifications.
func (s *Server) setNotifications(r *http.Request, me string) (int, any, error) {
	var req notificationsBody
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	if err := s.cfg.Chat.SetNotifyLevel(r.Context(), me, r.PathValue("roomID"), req.Level); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, req, nil
}

// roomView is a room with the caller's own setting for it.
type roomView struct {
	chat.Room
	NotificationLevel chat.NotifyLevel `json:"notification_level"`
}
