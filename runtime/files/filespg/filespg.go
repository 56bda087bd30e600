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
	_, err := s.pool.Exec(ctx, `INSERT INTO files (`+columns+`) VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)`,
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
