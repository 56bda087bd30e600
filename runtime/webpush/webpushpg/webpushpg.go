// Package webpushpg is the PostgreSQL implementation of webpush.Store.
package webpushpg

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/runtime/webpush"
)

// Store keeps subscriptions in the webpush_subscriptions table.
type Store struct {
	pool *pgxpool.Pool
}

// New returns a store on pool; the table comes from the project's migrations (parley migrate).
func New(pool *pgxpool.Pool) *Store {
	return &Store{pool: pool}
}

// Add implements webpush.Store: one statement, so concurrent adds of the same endpoint
// leave exactly one row, owned by the last writer.
func (s *Store) Add(ctx context.Context, userID string, sub webpush.Subscription) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO webpush_subscriptions (endpoint, user_id, p256dh, auth)
		VALUES ($1, $2, $3, $4)
		ON CONFLICT (endpoint) DO UPDATE
		SET user_id = EXCLUDED.user_id, p256dh = EXCLUDED.p256dh, auth = EXCLUDED.auth, updated_at = now()`,
		sub.Endpoint, userID, sub.Keys.P256dh, sub.Keys.Auth)
	if err != nil {
		return fmt.Errorf("webpushpg: add subscription for %s: %w", userID, err)
	}
	return nil
}

// ListByUser implements webpush.Store. COLLATE "C" orders by bytes, as the memory store does.
func (s *Store) ListByUser(ctx context.Context, userID string) ([]webpush.Subscription, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT endpoint, p256dh, auth FROM webpush_subscriptions
		WHERE user_id = $1 ORDER BY endpoint COLLATE "C"`, userID)
	if err != nil {
		return nil, fmt.Errorf("webpushpg: list subscriptions of %s: %w", userID, err)
	}
	subs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (webpush.Subscription, error) {
		var sub webpush.Subscription
		err := row.Scan(&sub.Endpoint, &sub.Keys.P256dh, &sub.Keys.Auth)
		return sub, err
	})
	if err != nil {
		return nil, fmt.Errorf("webpushpg: list subscriptions of %s: %w", userID, err)
	}
	return subs, nil
}

// ListByUsers returns the subscriptions of each of userIDs that has any, in one query,
// each list ordered by endpoint.
func (s *Store) ListByUsers(ctx context.Context, userIDs []string) (map[string][]webpush.Subscription, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT user_id, endpoint, p256dh, auth FROM webpush_subscriptions
		WHERE user_id = ANY($1::text[]) ORDER BY user_id, endpoint COLLATE "C"`, userIDs)
	if err != nil {
		return nil, fmt.Errorf("webpushpg: list subscriptions of %d users: %w", len(userIDs), err)
	}
	out := map[string][]webpush.Subscription{}
	var user string
	var sub webpush.Subscription
	_, err = pgx.ForEachRow(rows, []any{&user, &sub.Endpoint, &sub.Keys.P256dh, &sub.Keys.Auth}, func() error {
		out[user] = append(out[user], sub)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("webpushpg: list subscriptions of %d users: %w", len(userIDs), err)
	}
	return out, nil
}

// Delete implements webpush.Store.
func (s *Store) Delete(ctx context.Context, endpoint string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM webpush_subscriptions WHERE endpoint = $1`, endpoint)
	if err != nil {
		return fmt.Errorf("webpushpg: delete subscription: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return webpush.ErrSubscriptionNotFound
	}
	return nil
}
