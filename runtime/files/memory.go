package files

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Memory is a MetaStore in a map, for `parley dev` and tests of other packages.
type Memory struct {
	mu    sync.Mutex
	files map[string]File
	holds map[string]memoryHold
}

type memoryHold struct {
	uploader string
	bytes    int64
	expires  time.Time
}

// NewMemory returns an empty store.
func NewMemory() *Memory {
	return &Memory{files: make(map[string]File), holds: make(map[string]memoryHold)}
}

// Create stores f.
func (m *Memory) Create(_ context.Context, f File) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.createLocked(f)
}

func (m *Memory) createLocked(f File) error {
	if _, ok := m.files[f.ID]; ok {
		return fmt.Errorf("file %s: %w", f.ID, ErrExists)
	}
	m.files[f.ID] = f
	return nil
}

// CreateHeld stores f and forgets the hold, under one lock.
func (m *Memory) CreateHeld(_ context.Context, f File, holdID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.createLocked(f); err != nil {
		return err
	}
	delete(m.holds, holdID)
	return nil
}

// Reserve grows a hold within what the quota leaves, under the store's lock.
func (m *Memory) Reserve(_ context.Context, h Hold, want, quota int64, now time.Time) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var others int64
	for id, o := range m.holds {
		switch {
		case o.uploader != h.UploaderID || id == h.ID:
		case !o.expires.After(now):
			delete(m.holds, id)
		default:
			others += o.bytes
		}
	}
	var used int64
	for _, f := range m.files {
		if f.UploaderID == h.UploaderID && f.Status == StatusUploaded {
			used += f.Size
		}
	}
	cur := m.holds[h.ID] // an expired hold of its own still holds: it is being renewed
	held := grant(cur.bytes, want, quota-used-others)
	m.holds[h.ID] = memoryHold{uploader: h.UploaderID, bytes: held, expires: h.Expires}
	return held, nil
}

// grant is Reserve's rule: what a hold holding cur bytes holds after asking for want
// when free bytes of the quota are left (free may be negative: over quota).
func grant(cur, want, free int64) int64 {
	return max(cur, min(want, free), 0)
}

// Release forgets a hold.
func (m *Memory) Release(_ context.Context, holdID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.holds, holdID)
	return nil
}

// Get returns the file.
func (m *Memory) Get(_ context.Context, id string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.files[id]
	if !ok {
		return File{}, fmt.Errorf("file %s: %w", id, ErrNotFound)
	}
	return f, nil
}

// MarkRemoved sets the status to removed.
func (m *Memory) MarkRemoved(_ context.Context, id string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.files[id]
	if !ok {
		return File{}, fmt.Errorf("file %s: %w", id, ErrNotFound)
	}
	if f.Status == StatusRemoved {
		return f, fmt.Errorf("file %s: %w", id, ErrRemoved)
	}
	after := f
	after.Status, after.ThumbnailID = StatusRemoved, ""
	m.files[id] = after
	return f, nil
}

// SetThumbnail records the thumbnail of an uploaded file.
func (m *Memory) SetThumbnail(_ context.Context, id, thumbnailID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	f, ok := m.files[id]
	if !ok {
		return fmt.Errorf("file %s: %w", id, ErrNotFound)
	}
	if f.Status != StatusUploaded {
		return fmt.Errorf("file %s: %w", id, ErrRemoved)
	}
	f.ThumbnailID = thumbnailID
	m.files[id] = f
	return nil
}

// UsedBytes sums the user's files that are not removed.
func (m *Memory) UsedBytes(_ context.Context, uploaderID string) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n int64
	for _, f := range m.files {
		if f.UploaderID == uploaderID && f.Status == StatusUploaded {
			n += f.Size
		}
	}
	return n, nil
}

// UploadedBefore lists uploaded files created before t, by id, after afterID.
func (m *Memory) UploadedBefore(_ context.Context, t time.Time, afterID string, limit int) ([]File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []File
	for _, f := range m.files {
		if f.Status == StatusUploaded && f.CreatedAt.Before(t) && f.ID > afterID {
			out = append(out, f)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}
