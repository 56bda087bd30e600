package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Local keeps blobs as files under a directory, sharded by the first two characters of
// the id so that no directory grows to millions of entries.
type Local struct {
	dir string
}

// tempPrefix marks files still being written; they are never visible under an id.
const tempPrefix = ".upload-"

// NewLocal returns a store rooted at dir, creating it if needed.
func NewLocal(dir string) (*Local, error) {
	if dir == "" {
		return nil, errors.New("blob: local directory is empty")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("blob: local directory %q: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return nil, fmt.Errorf("blob: create %q: %w", abs, err)
	}
	return &Local{dir: abs}, nil
}

func (l *Local) path(id string) string {
	return filepath.Join(l.dir, id[:2], id)
}

// Put writes to a temporary file in the blob's own directory, fsyncs it and renames it
// into place, so a crash leaves either the whole blob or no blob, never a torn one.
func (l *Local) Put(ctx context.Context, r io.Reader, limit int64) (info Info, err error) {
	id := NewID()
	final := l.path(id)
	shard := filepath.Dir(final)
	if err := os.MkdirAll(shard, 0o750); err != nil {
		return Info{}, fmt.Errorf("blob: create %q: %w", shard, err)
	}
	tmp, err := os.CreateTemp(shard, tempPrefix+id+"-*")
	if err != nil {
		return Info{}, fmt.Errorf("blob: create temp file: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	n, err := io.Copy(tmp, ctxReader{ctx: ctx, r: LimitReader(r, limit)})
	if err != nil {
		return Info{}, fmt.Errorf("blob: write %s: %w", id, err)
	}
	if err := tmp.Sync(); err != nil {
		return Info{}, fmt.Errorf("blob: sync %s: %w", id, err)
	}
	if err := tmp.Close(); err != nil {
		return Info{}, fmt.Errorf("blob: close %s: %w", id, err)
	}
	if err := ctx.Err(); err != nil {
		return Info{}, fmt.Errorf("blob: put %s: %w", id, err)
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return Info{}, fmt.Errorf("blob: rename %s: %w", id, err)
	}
	// The rename is durable only once the directory entry is.
	if err := syncDir(shard); err != nil {
		_ = os.Remove(final)
		return Info{}, fmt.Errorf("blob: sync directory of %s: %w", id, err)
	}
	return Info{ID: id, Size: n}, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Open returns the file itself: it seeks and reads at offsets natively.
func (l *Local) Open(_ context.Context, id string) (io.ReadSeekCloser, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	f, err := os.Open(l.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("blob: open %s: %w", id, err)
	}
	return f, nil
}

// Stat returns the blob's size.
func (l *Local) Stat(_ context.Context, id string) (Info, error) {
	if err := checkID(id); err != nil {
		return Info{}, err
	}
	fi, err := os.Stat(l.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return Info{}, fmt.Errorf("blob %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return Info{}, fmt.Errorf("blob: stat %s: %w", id, err)
	}
	return Info{ID: id, Size: fi.Size()}, nil
}

// Delete removes the blob; a missing blob is already deleted.
func (l *Local) Delete(_ context.Context, id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	if err := os.Remove(l.path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob: delete %s: %w", id, err)
	}
	return nil
}

// RemoveStaleTemp deletes temporary files older than age, left behind by a process that
// died in the middle of a Put. It returns how many it removed.
func (l *Local) RemoveStaleTemp(age time.Duration, now time.Time) (int, error) {
	removed := 0
	err := filepath.WalkDir(l.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !strings.HasPrefix(d.Name(), tempPrefix) {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // finished or removed while we walked
			}
			return err
		}
		if now.Sub(fi.ModTime()) < age {
			return nil
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		removed++
		return nil
	})
	if err != nil {
		return removed, fmt.Errorf("blob: remove stale temp files: %w", err)
	}
	return removed, nil
}

// ctxReader stops a long copy once the context is done (the client went away).
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
