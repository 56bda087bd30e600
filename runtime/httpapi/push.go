package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/parleychat/parley/runtime/webpush"
)

// PushSubscriptions keeps users' Web Push subscriptions.
type PushSubscriptions interface {
	// PublicKey is the VAPID public key browsers subscribe with.
	PublicKey() string
	// Subscribe validates and stores sub for userID (idempotent on the endpoint).
	Subscribe(ctx context.Context, userID string, sub webpush.Subscription) error
	// Unsubscribe removes one of userID's own subscriptions; another user's endpoint, or
	// an unknown one, is webpush.ErrSubscriptionNotFound.
	Unsubscribe(ctx context.Context, userID, endpoint string) error
}

// SetPush enables the push subscription endpoints; without it they answer push_disabled.
func (s *Server) SetPush(p PushSubscriptions) { s.cfg.Push = p }

var errPushDisabled = &apiError{http.StatusNotFound, "push_disabled", "Web Push is not configured on this server"}

func (s *Server) pushKey(r *http.Request, _ string) (int, any, error) {
	if s.cfg.Push == nil {
		return 0, nil, errPushDisabled
	}
	return http.StatusOK, map[string]string{"public_key": s.cfg.Push.PublicKey()}, nil
}

func (s *Server) pushSubscribe(r *http.Request, me string) (int, any, error) {
	if s.cfg.Push == nil {
		return 0, nil, errPushDisabled
	}
	var sub webpush.Subscription
	if err := decode(r, &sub); err != nil {
		return 0, nil, err
	}
	if err := s.cfg.Push.Subscribe(r.Context(), me, sub); err != nil {
		var bad *webpush.InvalidSubscriptionError
		if errors.As(err, &bad) {
			return 0, nil, &apiError{http.StatusBadRequest, "invalid_subscription", err.Error()}
		}
		if errors.Is(err, webpush.ErrTooManySubscriptions) {
			return 0, nil, &apiError{http.StatusConflict, "too_many_subscriptions",
				fmt.Sprintf("at most %d push subscriptions per user; remove one first", webpush.MaxSubscriptionsPerUser)}
		}
		return 0, nil, err
	}
	return http.StatusCreated, map[string]string{"endpoint": sub.Endpoint}, nil
}

func (s *Server) pushUnsubscribe(r *http.Request, me string) (int, any, error) {
	if s.cfg.Push == nil {
		return 0, nil, errPushDisabled
	}
	endpoint := r.URL.Query().Get("endpoint")
	if endpoint == "" {
		return 0, nil, badRequest("invalid_argument", "the endpoint query parameter is required")
	}
	if err := s.cfg.Push.Unsubscribe(r.Context(), me, endpoint); err != nil {
		if errors.Is(err, webpush.ErrSubscriptionNotFound) {
			return 0, nil, &apiError{http.StatusNotFound, "not_found", "no such subscription of yours"}
		}
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}
