// Package filespg is the PostgreSQL implementation of files.MetaStore.
package filespg

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/parleychat/parley/runtime/files"
)

// Store keeps file metadata in the files table.
type Store struct {
	pool *pgxpool.Pool
}

// New returns a store on pool; the table comes from the project's migrations (parley migrate).
func New(pool *pgxpool.Pool) *Store {
	return &Store{pool: pool}
}

const columns = `id, uploader_id, size, sha256, content_type, claimed_type, name, created_at, status, thumbnail_id`

func scan(row pgx.Row) (files.File, error) {
	var f files.File
	var status string
	err := row.Scan(&f.ID, &f.UploaderID, &f.Size, &f.SHA256, &f.ContentType, &f.ClaimedType,
		&f.Name, &f.CreatedAt, &status, &f.ThumbnailID)
	f.Status = files.Status(status)
	f.CreatedAt = f.CreatedAt.UTC()
	return f, err
}

// Create inserts f.
func (s *Store) Create(ctx context.Context, f files.File) error {
	return create(ctx, s.pool, f)
}

func create(ctx context.Context, db interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}, f files.File) error {
	_, err := db.Exec(ctx, `INSERT INTO files (`+columns+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)`,
		f.ID, f.UploaderID, f.Size, f.SHA256, f.ContentType, f.ClaimedType, f.Name, f.CreatedAt, string(f.Status), f.ThumbnailID)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" { // unique_violation
		return fmt.Errorf("file %s: %w", f.ID, files.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("filespg: create %s: %w", f.ID, err)
	}
	return nil
}

// Get returns one file.
func (s *Store) Get(ctx context.Context, id string) (files.File, error) {
	f, err := scan(s.pool.QueryRow(ctx, `SELECT `+columns+` FROM files WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return files.File{}, fmt.Errorf("file %s: %w", id, files.ErrNotFound)
	}
	if err != nil {
		return files.File{}, fmt.Errorf("filespg: get %s: %w", id, err)
	}
	return f, nil
}

// MarkRemoved flips the status in one statement; the row lock it takes orders it against
// concurrent removals, so exactly one caller sees the record as it was.
func (s *Store) MarkRemoved(ctx context.Context, id string) (files.File, error) {
	f, err := scan(s.pool.QueryRow(ctx, `
		UPDATE files AS n SET status = 'removed', thumbnail_id = ''
		FROM (SELECT `+columns+` FROM files WHERE id = $1 FOR UPDATE) AS o
		WHERE n.id = o.id AND o.status = 'uploaded'
		RETURNING o.id, o.uploader_id, o.size, o.sha256, o.content_type, o.claimed_type, o.name, o.created_at, o.status, o.thumbnail_id`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		cur, gerr := s.Get(ctx, id)
		if gerr != nil {
			return files.File{}, gerr
		}
		return cur, fmt.Errorf("file %s: %w", id, files.ErrRemoved)
	}
	if err != nil {
		return files.File{}, fmt.Errorf("filespg: remove %s: %w", id, err)
	}
	return f, nil
}

// SetThumbnail records the thumbnail of a file that is still uploaded.
func (s *Store) SetThumbnail(ctx context.Context, id, thumbnailID string) error {
	tag, err := s.pool.Exec(ctx, `UPDATE files SET thumbnail_id = $2 WHERE id = $1 AND status = 'uploaded'`, id, thumbnailID)
	if err != nil {
		return fmt.Errorf("filespg: set thumbnail of %s: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		if _, err := s.Get(ctx, id); err != nil {
			return err
		}
		return fmt.Errorf("file %s: %w", id, files.ErrRemoved)
	}
	return nil
}

// UsedBytes sums the user's live files.
func (s *Store) UsedBytes(ctx context.Context, uploaderID string) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx,
		`SELECT COALESCE(SUM(size), 0)::bigint FROM files WHERE uploader_id = $1 AND status = 'uploaded'`, uploaderID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("filespg: used bytes of %s: %w", uploaderID, err)
	}
	return n, nil
}

// UploadedBefore pages through old live files by id.
func (s *Store) UploadedBefore(ctx context.Context, t time.Time, afterID string, limit int) ([]files.File, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+columns+` FROM files
		WHERE status = 'uploaded' AND created_at < $1 AND id > $2 ORDER BY id LIMIT $3`, t, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("filespg: list before %s: %w", t, err)
	}
	defer rows.Close()
	var out []files.File
	for rows.Next() {
		f, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("filespg: scan: %w", err)
		}
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("filespg: list before %s: %w", t, err)
	}
	return out, nil
}

// quotaLockClass is the first key of the transaction-scoped advisory lock that orders
// the quota holds of one uploader (the second is hashtext of the uploader id); two-key
// advisory locks do not collide with one-key ones.
const quotaLockClass = 0x7061726c // "parl"

// Reserve grows a hold under a per-uploader advisory lock: every Reserve of the uploader
// waits for the one before it to commit, and reads the files and holds it committed.
func (s *Store) Reserve(ctx context.Context, h files.Hold, want, quota int64, now time.Time) (held int64, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, quotaLockClass, h.UploaderID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM file_quota_holds WHERE uploader_id = $1 AND id <> $2 AND expires_at <= $3`,
			h.UploaderID, h.ID, now); err != nil {
			return err
		}
		var used, others, cur int64
		if err := tx.QueryRow(ctx, `SELECT
			(SELECT COALESCE(SUM(size), 0)::bigint FROM files WHERE uploader_id = $1 AND status = 'uploaded'),
			(SELECT COALESCE(SUM(bytes), 0)::bigint FROM file_quota_holds WHERE uploader_id = $1 AND id <> $2),
			(SELECT COALESCE(MAX(bytes), 0)::bigint FROM file_quota_holds WHERE id = $2)`,
			h.UploaderID, h.ID).Scan(&used, &others, &cur); err != nil {
			return err
		}
		held = max(cur, min(want, quota-used-others), 0)
		_, err := tx.Exec(ctx, `INSERT INTO file_quota_holds (id, uploader_id, bytes, expires_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (id) DO UPDATE SET bytes = EXCLUDED.bytes, expires_at = EXCLUDED.expires_at`,
			h.ID, h.UploaderID, held, h.Expires)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("filespg: reserve for %s: %w", h.UploaderID, err)
	}
	return held, nil
}

// Release deletes a hold.
func (s *Store) Release(ctx context.Context, holdID string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM file_quota_holds WHERE id = $1`, holdID); err != nil {
		return fmt.Errorf("filespg: release hold %s: %w", holdID, err)
	}
	return nil
}

// CreateHeld inserts f and deletes its hold in one transaction: a concurrent Reserve's
// single statement sees either both or neither.
func (s *Store) CreateHeld(ctx context.Context, f files.File, holdID string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := create(ctx, tx, f); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM file_quota_holds WHERE id = $1`, holdID); err != nil {
			return fmt.Errorf("filespg: settle hold %s: %w", holdID, err)
		}
		return nil
	})
}
