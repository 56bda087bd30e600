// Package filestest holds the contract every files.MetaStore implementation must meet;
// the memory store and the PostgreSQL store both run it.
package filestest

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/runtime/files"
	"github.com/parleychat/parley/runtime/files/blob"
)

// sample returns a complete file record; times are at microsecond precision and in UTC,
// what PostgreSQL keeps.
func sample(uploader string, size int64, created time.Time) files.File {
	return files.File{
		ID:          blob.NewID(),
		UploaderID:  uploader,
		Size:        size,
		SHA256:      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		ContentType: "image/png",
		ClaimedType: "application/pdf",
		Name:        "résumé ✓.png",
		CreatedAt:   created.UTC().Truncate(time.Microsecond),
		Status:      files.StatusUploaded,
	}
}

// MetaStoreContract runs the contract against stores made by newStore, one per subtest.
func MetaStoreContract(t *testing.T, newStore func(t *testing.T) files.MetaStore) {
	ctx := context.Background()
	base := time.Date(2026, 11, 25, 12, 0, 0, 123456000, time.UTC)

	t.Run("create then get returns every field", func(t *testing.T) {
		s := newStore(t)
		f := sample("alice", 1234, base)
		if err := s.Create(ctx, f); err != nil {
			t.Fatalf("create: %v", err)
		}
		got, err := s.Get(ctx, f.ID)
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		if !reflect.DeepEqual(got, f) {
			t.Fatalf("get = %+v\nwant  %+v", got, f)
		}
	})

	t.Run("create twice is ErrExists", func(t *testing.T) {
		s := newStore(t)
		f := sample("alice", 1, base)
		if err := s.Create(ctx, f); err != nil {
			t.Fatal(err)
		}
		if err := s.Create(ctx, f); !errors.Is(err, files.ErrExists) {
			t.Fatalf("second create = %v, want ErrExists", err)
		}
	})

	t.Run("unknown id is ErrNotFound everywhere", func(t *testing.T) {
		s := newStore(t)
		id := blob.NewID()
		if _, err := s.Get(ctx, id); !errors.Is(err, files.ErrNotFound) {
			t.Errorf("get = %v", err)
		}
		if _, err := s.MarkRemoved(ctx, id); !errors.Is(err, files.ErrNotFound) {
			t.Errorf("mark removed = %v", err)
		}
		if err := s.SetThumbnail(ctx, id, blob.NewID()); !errors.Is(err, files.ErrNotFound) {
			t.Errorf("set thumbnail = %v", err)
		}
	})

	t.Run("thumbnail then removal", func(t *testing.T) {
		s := newStore(t)
		f := sample("alice", 10, base)
		if err := s.Create(ctx, f); err != nil {
			t.Fatal(err)
		}
		thumb := blob.NewID()
		if err := s.SetThumbnail(ctx, f.ID, thumb); err != nil {
			t.Fatalf("set thumbnail: %v", err)
		}
		got, err := s.Get(ctx, f.ID)
		if err != nil || got.ThumbnailID != thumb {
			t.Fatalf("thumbnail = %q, %v; want %q", got.ThumbnailID, err, thumb)
		}
		before, err := s.MarkRemoved(ctx, f.ID)
		if err != nil {
			t.Fatalf("mark removed: %v", err)
		}
		if before.Status != files.StatusUploaded || before.ThumbnailID != thumb {
			t.Fatalf("mark removed returned %+v; want the record as it was", before)
		}
		got, err = s.Get(ctx, f.ID)
		if err != nil || got.Status != files.StatusRemoved || got.ThumbnailID != "" {
			t.Fatalf("after removal = %+v, %v", got, err)
		}
		if got.Name != f.Name || got.SHA256 != f.SHA256 {
			t.Fatalf("removal lost metadata: %+v", got)
		}
		if _, err := s.MarkRemoved(ctx, f.ID); !errors.Is(err, files.ErrRemoved) {
			t.Fatalf("second removal = %v, want ErrRemoved", err)
		}
		if err := s.SetThumbnail(ctx, f.ID, blob.NewID()); !errors.Is(err, files.ErrRemoved) {
			t.Fatalf("thumbnail on removed = %v, want ErrRemoved", err)
		}
	})

	t.Run("concurrent removals: exactly one wins", func(t *testing.T) {
		s := newStore(t)
		f := sample("alice", 10, base)
		if err := s.Create(ctx, f); err != nil {
			t.Fatal(err)
		}
		const n = 8
		results := make(chan error, n)
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := s.MarkRemoved(ctx, f.ID)
				results <- err
			}()
		}
		wg.Wait()
		close(results)
		won := 0
		for err := range results {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, files.ErrRemoved):
				t.Errorf("removal failed: %v", err)
			}
		}
		if won != 1 {
			t.Fatalf("%d removals succeeded, want exactly 1 (the one that deletes the blobs)", won)
		}
	})

	t.Run("used bytes counts only the user's files that are not removed", func(t *testing.T) {
		s := newStore(t)
		a1, a2, b1 := sample("alice", 100, base), sample("alice", 50, base), sample("bob", 7, base)
		for _, f := range []files.File{a1, a2, b1} {
			if err := s.Create(ctx, f); err != nil {
				t.Fatal(err)
			}
		}
		check := func(user string, want int64) {
			t.Helper()
			got, err := s.UsedBytes(ctx, user)
			if err != nil || got != want {
				t.Fatalf("used(%s) = %d, %v; want %d", user, got, err, want)
			}
		}
		check("alice", 150)
		check("bob", 7)
		check("carol", 0)
		if _, err := s.MarkRemoved(ctx, a1.ID); err != nil {
			t.Fatal(err)
		}
		check("alice", 50)
	})

	t.Run("uploaded before pages by id and skips new and removed files", func(t *testing.T) {
		s := newStore(t)
		var old []files.File
		for i := range 5 {
			f := sample("alice", 1, base.Add(-time.Duration(i+1)*time.Hour))
			old = append(old, f)
			if err := s.Create(ctx, f); err != nil {
				t.Fatal(err)
			}
		}
		young := sample("alice", 1, base.Add(time.Minute))
		if err := s.Create(ctx, young); err != nil {
			t.Fatal(err)
		}
		if _, err := s.MarkRemoved(ctx, old[0].ID); err != nil {
			t.Fatal(err)
		}
		want := map[string]bool{}
		for _, f := range old[1:] {
			want[f.ID] = true
		}
		seen := map[string]bool{}
		after := ""
		for range 10 {
			page, err := s.UploadedBefore(ctx, base, after, 2)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > 2 {
				t.Fatalf("page of %d, limit 2", len(page))
			}
			for i, f := range page {
				if f.ID <= after || (i > 0 && f.ID <= page[i-1].ID) {
					t.Fatalf("page not ordered by id after %q: %v", after, page)
				}
				if seen[f.ID] {
					t.Fatalf("%s listed twice", f.ID)
				}
				seen[f.ID] = true
			}
			if len(page) < 2 {
				break
			}
			after = page[len(page)-1].ID
		}
		if !reflect.DeepEqual(seen, want) {
			t.Fatalf("listed %v, want %v", seen, want)
		}
	})
	t.Run("holds: concurrent reserves never grant past the quota and grant all it has", func(t *testing.T) {
		s := newStore(t)
		if err := s.Create(ctx, sample("alice", 30, base)); err != nil {
			t.Fatal(err)
		}
		const n, want, quota = 40, 7, 100
		var wg sync.WaitGroup
		grants := make(chan int64, n)
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := s.Reserve(ctx, files.Hold{ID: blob.NewID(), UploaderID: "alice", Expires: base.Add(time.Hour)}, want, quota, base)
				if err != nil {
					t.Errorf("reserve: %v", err)
				}
				grants <- got
			}()
		}
		wg.Wait()
		close(grants)
		var sum int64
		for g := range grants {
			if g < 0 || g > want {
				t.Errorf("a hold of %d bytes, asked %d", g, want)
			}
			sum += g
		}
		if sum != quota-30 {
			t.Fatalf("holds sum to %d bytes with 30 used under a quota of %d, want exactly %d", sum, quota, quota-30)
		}
		// Bob's quota is his own.
		if got, err := s.Reserve(ctx, files.Hold{ID: blob.NewID(), UploaderID: "bob", Expires: base.Add(time.Hour)}, 50, quota, base); err != nil || got != 50 {
			t.Fatalf("bob's reserve = %d, %v; want 50", got, err)
		}
	})

	t.Run("holds: grow, settle, release and expire", func(t *testing.T) {
		s := newStore(t)
		hold := func(id string) files.Hold {
			return files.Hold{ID: id, UploaderID: "alice", Expires: base.Add(time.Minute)}
		}
		reserve := func(h files.Hold, want, wantHeld int64, now time.Time) {
			t.Helper()
			got, err := s.Reserve(ctx, h, want, 100, now)
			if err != nil || got != wantHeld {
				t.Fatalf("reserve %s for %d = %d, %v; want %d", h.ID, want, got, err, wantHeld)
			}
		}
		a, b := hold(blob.NewID()), hold(blob.NewID())
		reserve(a, 60, 60, base)
		reserve(b, 60, 40, base) // partial: 40 left
		reserve(a, 10, 60, base) // never shrinks
		reserve(b, 60, 40, base) // nothing more to give
		f := sample("alice", 25, base)
		if err := s.CreateHeld(ctx, f, a.ID); err != nil {
			t.Fatalf("create held: %v", err)
		}
		if got, err := s.Get(ctx, f.ID); err != nil || got.Size != 25 {
			t.Fatalf("get after create held = %+v, %v", got, err)
		}
		reserve(b, 80, 75, base) // a's 60 became a 25-byte file
		if err := s.Release(ctx, b.ID); err != nil {
			t.Fatal(err)
		}
		if err := s.Release(ctx, b.ID); err != nil {
			t.Fatalf("second release = %v, want nil", err)
		}
		c := hold(blob.NewID())
		reserve(c, 100, 75, base)
		// Past its expiry a hold no longer counts for others.
		d := hold(blob.NewID())
		d.Expires = base.Add(2 * time.Minute)
		reserve(d, 100, 75, base.Add(90*time.Second))
		if err := s.CreateHeld(ctx, f, d.ID); !errors.Is(err, files.ErrExists) {
			t.Fatalf("create held of an existing id = %v, want ErrExists", err)
		}
	})
}
