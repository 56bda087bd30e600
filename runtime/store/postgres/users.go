package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/runtime/users"
)

// Users is the PostgreSQL users.Store.
type Users struct{ pool *pgxpool.Pool }

// NewUsers returns a store on pool; the schema must be migrated.
func NewUsers(pool *pgxpool.Pool) *Users { return &Users{pool: pool} }

var _ users.Store = (*Users)(nil)

func isUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

const userCols = `id, username, display_name, avatar_file_id, status_text, created_at`

func scanUser(row pgx.Row, extra ...any) (users.User, error) {
	var u users.User
	err := row.Scan(append([]any{&u.ID, &u.Username, &u.DisplayName, &u.AvatarFileID, &u.StatusText, &u.CreatedAt}, extra...)...)
	return u, err
}

// CreateAccount implements users.Accounts.
func (s *Users) CreateAccount(ctx context.Context, a users.Account) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO users (id, username, username_key, password_hash, display_name, avatar_file_id, status_text, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		a.ID, a.Username, strings.ToLower(a.Username), a.PasswordHash, a.DisplayName, a.AvatarFileID, a.StatusText, a.CreatedAt)
	if isUniqueViolation(err) {
		return users.ErrConflict
	}
	if err != nil {
		return fmt.Errorf("insert user: %w", err)
	}
	return nil
}

// AccountByUsername implements users.Accounts.
func (s *Users) AccountByUsername(ctx context.Context, username string) (users.Account, error) {
	var a users.Account
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userCols+`, password_hash FROM users WHERE username_key = $1`, strings.ToLower(username)), &a.PasswordHash)
	if errors.Is(err, pgx.ErrNoRows) {
		return users.Account{}, users.ErrNotFound
	}
	if err != nil {
		return users.Account{}, fmt.Errorf("select user: %w", err)
	}
	a.User = u
	return a, nil
}

// UserByID implements users.Accounts.
func (s *Users) UserByID(ctx context.Context, id string) (users.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return users.User{}, users.ErrNotFound
	}
	if err != nil {
		return users.User{}, fmt.Errorf("select user: %w", err)
	}
	return u, nil
}

// UpdateProfile implements users.Accounts.
func (s *Users) UpdateProfile(ctx context.Context, id string, p users.ProfileUpdate) (users.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `UPDATE users SET
		display_name = coalesce($2, display_name),
		avatar_file_id = coalesce($3, avatar_file_id),
		status_text = coalesce($4, status_text)
		WHERE id = $1 RETURNING `+userCols, id, p.DisplayName, p.AvatarFileID, p.StatusText))
	if errors.Is(err, pgx.ErrNoRows) {
		return users.User{}, users.ErrNotFound
	}
	if err != nil {
		return users.User{}, fmt.Errorf("update profile: %w", err)
	}
	return u, nil
}

// likeEscaper makes a user's prefix literal inside LIKE.
var likeEscaper = strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)

// IDsByUsernameKeys implements users.Accounts.
func (s *Users) IDsByUsernameKeys(ctx context.Context, keys []string) (map[string]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT username_key, id FROM users WHERE username_key = ANY($1)`, keys)
	if err != nil {
		return nil, fmt.Errorf("select users by username: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, id string
		if err := rows.Scan(&k, &id); err != nil {
			return nil, err
		}
		out[k] = id
	}
	return out, rows.Err()
}

// SearchUsers implements users.Accounts.
func (s *Users) SearchUsers(ctx context.Context, prefix string, limit int) ([]users.User, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+userCols+` FROM users WHERE username_key LIKE $1 ORDER BY username_key LIMIT $2`,
		likeEscaper.Replace(strings.ToLower(prefix))+"%", limit)
	if err != nil {
		return nil, fmt.Errorf("search users: %w", err)
	}
	defer rows.Close()
	out := []users.User{}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("scan user: %w", err)
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

// CreateSession implements users.Sessions.
func (s *Users) CreateSession(ctx context.Context, sess users.Session) error {
	family := sess.FamilyID
	if family == "" {
		family = sess.ID
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO sessions (id, user_id, token_hash, created_at, expires_at, family_id) VALUES ($1, $2, $3, $4, $5, $6)`,
		sess.ID, sess.UserID, sess.TokenHash, sess.CreatedAt, sess.ExpiresAt, family)
	if isUniqueViolation(err) {
		return users.ErrConflict
	}
	if err != nil {
		return fmt.Errorf("insert session: %w", err)
	}
	return nil
}

// SessionByTokenHash implements users.Sessions.
func (s *Users) SessionByTokenHash(ctx context.Context, hash []byte) (users.Session, error) {
	var sess users.Session
	var revoked *time.Time
	err := s.pool.QueryRow(ctx, `SELECT id, user_id, token_hash, created_at, expires_at, revoked_at, COALESCE(family_id, id) FROM sessions WHERE token_hash = $1`, hash).
		Scan(&sess.ID, &sess.UserID, &sess.TokenHash, &sess.CreatedAt, &sess.ExpiresAt, &revoked, &sess.FamilyID)
	if errors.Is(err, pgx.ErrNoRows) {
		return users.Session{}, users.ErrNotFound
	}
	if err != nil {
		return users.Session{}, fmt.Errorf("select session: %w", err)
	}
	if revoked != nil {
		sess.RevokedAt = *revoked
	}
	return sess, nil
}

// RevokeSession implements users.Sessions.
func (s *Users) RevokeSession(ctx context.Context, id string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL`, id, at)
	if err != nil {
		return fmt.Errorf("revoke session: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return users.ErrNotFound
	}
	return nil
}

// RevokeFamily implements users.Sessions. A session without a family_id (inserted by a
// previous version) is its own family.
func (s *Users) RevokeFamily(ctx context.Context, familyID string, at time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE sessions SET revoked_at = $2
		WHERE (family_id = $1 OR (family_id IS NULL AND id = $1)) AND revoked_at IS NULL`, familyID, at)
	if err != nil {
		return 0, fmt.Errorf("revoke session family: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// CreateInvite implements users.Invites.
func (s *Users) CreateInvite(ctx context.Context, codeHash []byte, createdBy string, at time.Time) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO invites (code_hash, created_by, created_at) VALUES ($1, $2, $3)`, codeHash, createdBy, at)
	if err != nil {
		return fmt.Errorf("insert invite: %w", err)
	}
	return nil
}

// UseInvite implements users.Invites.
func (s *Users) UseInvite(ctx context.Context, codeHash []byte, usedBy string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE invites SET used_by = $2, used_at = $3 WHERE code_hash = $1 AND used_by IS NULL`, codeHash, usedBy, at)
	if err != nil {
		return fmt.Errorf("use invite: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return users.ErrNotFound
	}
	return nil
}

// Block implements users.Blocks.
func (s *Users) Block(ctx context.Context, blocker, blocked string, at time.Time) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO blocks (blocker_id, blocked_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, blocker, blocked, at)
	if err != nil {
		return fmt.Errorf("insert block: %w", err)
	}
	return nil
}

// Unblock implements users.Blocks.
func (s *Users) Unblock(ctx context.Context, blocker, blocked string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2`, blocker, blocked); err != nil {
		return fmt.Errorf("delete block: %w", err)
	}
	return nil
}

func (s *Users) ids(ctx context.Context, q string, arg string) ([]string, error) {
	rows, err := s.pool.Query(ctx, q, arg)
	if err != nil {
		return nil, fmt.Errorf("select blocks: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("scan blocks: %w", err)
	}
	if out == nil {
		out = []string{}
	}
	return out, nil
}

// BlockedIDs implements users.Blocks.
func (s *Users) BlockedIDs(ctx context.Context, blocker string) ([]string, error) {
	return s.ids(ctx, `SELECT blocked_id FROM blocks WHERE blocker_id = $1 ORDER BY blocked_id`, blocker)
}

// BlockerIDs implements users.Blocks.
func (s *Users) BlockerIDs(ctx context.Context, blocked string) ([]string, error) {
	return s.ids(ctx, `SELECT blocker_id FROM blocks WHERE blocked_id = $1 ORDER BY blocker_id`, blocked)
}

// RecordFailure implements users.Throttle.
func (s *Users) RecordFailure(ctx context.Context, key string, now time.Time, window time.Duration) (int, error) {
	var hits int
	err := s.pool.QueryRow(ctx, `INSERT INTO throttle AS t (key, window_start, hits) VALUES ($1, $2, 1)
		ON CONFLICT (key) DO UPDATE SET
			window_start = CASE WHEN t.window_start + $3 <= $2 THEN $2 ELSE t.window_start END,
			hits = CASE WHEN t.window_start + $3 <= $2 THEN 1 ELSE t.hits + 1 END
		RETURNING hits`, key, now, window).Scan(&hits)
	if err != nil {
		return 0, fmt.Errorf("record failure: %w", err)
	}
	return hits, nil
}

// Failures implements users.Throttle.
func (s *Users) Failures(ctx context.Context, key string, now time.Time, window time.Duration) (int, error) {
	var hits int
	err := s.pool.QueryRow(ctx, `SELECT hits FROM throttle WHERE key = $1 AND window_start + $3 > $2`, key, now, window).Scan(&hits)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read failures: %w", err)
	}
	return hits, nil
}

// ResetFailures implements users.Throttle.
func (s *Users) ResetFailures(ctx context.Context, key string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM throttle WHERE key = $1`, key); err != nil {
		return fmt.Errorf("reset failures: %w", err)
	}
	return nil
}
