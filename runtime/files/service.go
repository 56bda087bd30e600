package files

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/gabriel-vasile/mimetype"

	"github.com/parleychat/parley/runtime/files/blob"
)

// Config tunes the service; zero values take the defaults below.
type Config struct {
	// MaxUploadBytes bounds one file (ChatCluster files.maxUploadBytes).
	MaxUploadBytes int64
	// QuotaBytes bounds the sum of a user's stored files; 0 means no quota.
	QuotaBytes int64
	// ThumbnailSide is the long side of thumbnails in pixels.
	ThumbnailSide int
	// MaxImagePixels refuses thumbnails of images whose header claims more pixels.
	MaxImagePixels int64
	// OrphanGrace is how long an upload may wait for a message to reference it.
	OrphanGrace time.Duration
	Now         func() time.Time
	Logger      *slog.Logger
	Metrics     *Metrics
}

// Defaults.
const (
	DefaultMaxUploadBytes = 25 << 20 // ChatCluster's default, 26214400
	DefaultOrphanGrace    = 24 * time.Hour
	// sniffBytes is how much of the head mimetype inspects (its default read limit).
	sniffBytes = 3072
)

func (c Config) withDefaults() Config {
	if c.MaxUploadBytes <= 0 {
		c.MaxUploadBytes = DefaultMaxUploadBytes
	}
	if c.ThumbnailSide <= 0 {
		c.ThumbnailSide = DefaultThumbnailSide
	}
	if c.MaxImagePixels <= 0 {
		c.MaxImagePixels = DefaultMaxImagePixels
	}
	if c.OrphanGrace <= 0 {
		c.OrphanGrace = DefaultOrphanGrace
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Service is file transfer's domain logic: it streams uploads into the blob store,
// records metadata, decides who may read what and cleans up.
type Service struct {
	blobs   blob.Store
	meta    MetaStore
	sharing Sharing
	refs    References
	cfg     Config
	// decoding holds a slot per thumbnail being made: a decode may take up to
	// 4 bytes × MaxImagePixels, so concurrent image uploads must not multiply that.
	decoding chan struct{}
}

// thumbnailSlots is how many thumbnails are decoded at once per process.
const thumbnailSlots = 2

// NewService wires the service. refs may be nil when orphan cleanup is not used.
func NewService(blobs blob.Store, meta MetaStore, sharing Sharing, refs References, cfg Config) *Service {
	return &Service{blobs: blobs, meta: meta, sharing: sharing, refs: refs, cfg: cfg.withDefaults(),
		decoding: make(chan struct{}, thumbnailSlots)}
}

// Config returns the effective configuration.
func (s *Service) Config() Config { return s.cfg }

// Upload is one incoming file.
type Upload struct {
	Body        io.Reader
	Name        string // as the client sent it; sanitized before storing
	ClaimedType string // the client's Content-Type; metadata only
	// Length is the declared body length, or -1 when unknown (chunked, multipart). A
	// declared length over the limit or the remaining quota is refused before reading a
	// byte.
	Length int64
	// AtMost bounds the body when Length is unknown (for multipart, the request's
	// Content-Length); 0 or less when nothing bounds it. It sizes the quota hold.
	AtMost int64
}

// Upload streams in.Body into a new blob under a server-generated id. The SHA-256 and
// the content type are computed from the bytes as they pass; nothing holds more than the
// first few KiB in memory. Limits are enforced while streaming: an upload over the file
// size limit or the remaining quota fails with *LimitError and leaves nothing behind.
func (s *Service) Upload(ctx context.Context, uploaderID string, in Upload) (File, error) {
	if uploaderID == "" {
		return File{}, ErrEmptyUserID
	}
	if in.Length > s.cfg.MaxUploadBytes {
		s.cfg.Metrics.Rejected(RejectTooLarge)
		return File{}, &LimitError{Reason: RejectTooLarge, Limit: s.cfg.MaxUploadBytes}
	}

	counted := &countingReader{r: in.Body}
	var body io.Reader = counted
	var hold *quotaHold
	if s.cfg.QuotaBytes > 0 {
		var err error
		if hold, err = s.reserve(ctx, uploaderID, in); err != nil {
			return File{}, err
		}
		// Whatever happens below, a hold not settled by CreateHeld is given back.
		defer hold.release(ctx)
		body = hold.limit(counted)
	}

	hash := sha256.New()
	head := &headBuffer{max: sniffBytes}
	info, err := s.blobs.Put(ctx, io.TeeReader(body, io.MultiWriter(hash, head)), s.cfg.MaxUploadBytes)
	s.cfg.Metrics.AddBytesIn(counted.n)
	if err != nil {
		if hold != nil && hold.exceeded {
			s.cfg.Metrics.Rejected(RejectQuota)
			return File{}, &LimitError{Reason: RejectQuota, Limit: hold.held}
		}
		if hold != nil && hold.err != nil {
			s.cfg.Metrics.Rejected(RejectInternal)
			return File{}, fmt.Errorf("files: quota of %s: %w", uploaderID, hold.err)
		}
		if errors.Is(err, blob.ErrTooLarge) {
			s.cfg.Metrics.Rejected(RejectTooLarge)
			return File{}, &LimitError{Reason: RejectTooLarge, Limit: s.cfg.MaxUploadBytes}
		}
		if ctx.Err() != nil || counted.err != nil {
			// The client went away or its body broke off: not our failure.
			s.cfg.Metrics.Rejected(RejectAborted)
			return File{}, fmt.Errorf("%w: %w", ErrUploadAborted, errors.Join(ctx.Err(), counted.err))
		}
		s.cfg.Metrics.Rejected(RejectInternal)
		return File{}, fmt.Errorf("files: store upload: %w", err)
	}

	f := File{
		ID:          info.ID,
		UploaderID:  uploaderID,
		Size:        info.Size,
		SHA256:      hex.EncodeToString(hash.Sum(nil)),
		ContentType: mimetype.Detect(head.Bytes()).String(),
		ClaimedType: truncateUTF8(in.ClaimedType, 255),
		Name:        SanitizeName(in.Name),
		CreatedAt:   s.cfg.Now().UTC().Truncate(time.Microsecond), // PostgreSQL's precision
		Status:      StatusUploaded,
	}
	if hold != nil {
		// The file's bytes move from the hold to the quota's used bytes in one step.
		err = s.meta.CreateHeld(ctx, f, hold.h.ID)
		if err == nil {
			hold.settled = true
		}
	} else {
		err = s.meta.Create(ctx, f)
	}
	if err != nil {
		s.deleteBlobs(ctx, f.ID)
		s.cfg.Metrics.Rejected(RejectInternal)
		return File{}, fmt.Errorf("files: record upload: %w", err)
	}
	s.cfg.Metrics.uploaded()

	if Thumbnailable(f.ContentType) {
		// Generated once: a client hanging up now must not leave the file without one.
		if id, err := s.thumbnail(context.WithoutCancel(ctx), f); err != nil {
			// No thumbnail is a normal outcome (bombs, broken images); the file stays.
			s.cfg.Logger.InfoContext(ctx, "no thumbnail", "file", f.ID, "type", f.ContentType, "err", err)
		} else {
			f.ThumbnailID = id
		}
	}
	return f, nil
}

// holdTTL is how long a hold outlives its last renewal; an upload renews its hold while
// bytes keep coming, so only a hold whose process died (or whose client has sent nothing
// for this long) lapses.
const holdTTL = 10 * time.Minute

// reserve takes a hold on the uploader's quota for this upload before a byte is read:
// the declared length when there is one (an upload that cannot have it all is refused
// at once), otherwise as much as the upload may grow to (its upper bound, the per-file
// limit), which limit() extends later if the quota had less to give at first.
func (s *Service) reserve(ctx context.Context, uploaderID string, in Upload) (*quotaHold, error) {
	want := s.cfg.MaxUploadBytes
	if in.Length >= 0 {
		want = in.Length
	} else if in.AtMost > 0 {
		want = min(want, in.AtMost)
	}
	q := &quotaHold{s: s, ctx: ctx, h: Hold{ID: blob.NewID(), UploaderID: uploaderID}}
	if err := q.grow(want); err != nil {
		q.release(ctx) // in case the store kept it after all; it would lapse anyway
		s.cfg.Metrics.Rejected(RejectInternal)
		return nil, fmt.Errorf("files: quota of %s: %w", uploaderID, err)
	}
	if in.Length >= 0 && q.held < in.Length {
		q.release(ctx)
		s.cfg.Metrics.Rejected(RejectQuota)
		return nil, &LimitError{Reason: RejectQuota, Limit: q.held}
	}
	return q, nil
}

// quotaHold is one upload's hold on its uploader's quota.
type quotaHold struct {
	s       *Service
	ctx     context.Context
	h       Hold
	held    int64     // bytes the store holds for this upload
	renewAt time.Time // when the hold's expiry is next pushed back
	settled bool      // recorded by CreateHeld: nothing to release

	r        io.Reader
	n        int64 // bytes passed through limit's reader
	exceeded bool  // the body went past what the quota could give
	err      error // the store failed while growing or renewing
}

// grow asks the store to let the hold hold want bytes, and renews its expiry.
func (q *quotaHold) grow(want int64) error {
	now := q.s.cfg.Now()
	q.h.Expires = now.Add(holdTTL)
	held, err := q.s.meta.Reserve(q.ctx, q.h, want, q.s.cfg.QuotaBytes, now)
	if err != nil {
		return err
	}
	q.held, q.renewAt = held, now.Add(holdTTL/4)
	return nil
}

// release gives the hold back unless the upload was recorded.
func (q *quotaHold) release(ctx context.Context) {
	if q.settled {
		return
	}
	if err := q.s.meta.Release(context.WithoutCancel(ctx), q.h.ID); err != nil {
		// The hold lapses by itself at its expiry.
		q.s.cfg.Logger.WarnContext(ctx, "quota hold not released", "hold", q.h.ID, "err", err)
	}
	q.settled = true
}

// limit returns r bounded by the hold: past what it holds, the hold asks the store for
// more (up to the per-file limit: concurrent uploads may have finished and left their
// unused bytes), and the read fails when the quota has none left.
func (q *quotaHold) limit(r io.Reader) io.Reader {
	q.r = r
	return q
}

func (q *quotaHold) Read(p []byte) (int, error) {
	if q.exceeded || q.err != nil {
		return 0, errQuotaHold
	}
	// Read at most one byte past the hold: that byte proves the upload needs more.
	if room := q.held - q.n + 1; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := q.r.Read(p)
	q.n += int64(n)
	if q.n > q.held && q.held >= q.s.cfg.MaxUploadBytes {
		return n, err // past the per-file limit: the blob store refuses it as too large
	}
	if q.n > q.held || (n > 0 && !q.s.cfg.Now().Before(q.renewAt)) {
		want := q.held // renew only
		if q.n > q.held {
			want = q.s.cfg.MaxUploadBytes
		}
		if gerr := q.grow(want); gerr != nil {
			q.err = gerr
			return 0, errQuotaHold
		}
		if q.n > q.held {
			q.exceeded = true
			return 0, errQuotaHold
		}
	}
	return n, err
}

// errQuotaHold fails the blob store's read when the hold ran out or could not be kept;
// Upload reports the reason from the hold itself.
var errQuotaHold = errors.New("files: upload stopped by its quota hold")

// thumbnail generates the thumbnail once, from the stored bytes, and records it.
func (s *Service) thumbnail(ctx context.Context, f File) (string, error) {
	s.decoding <- struct{}{}
	defer func() { <-s.decoding }()
	rc, err := s.blobs.Open(ctx, f.ID)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	thumb, err := MakeThumbnail(rc, f.ContentType, s.cfg.ThumbnailSide, s.cfg.MaxImagePixels)
	if err != nil {
		return "", err
	}
	info, err := s.blobs.Put(ctx, bytes.NewReader(thumb), int64(len(thumb)))
	if err != nil {
		return "", fmt.Errorf("store thumbnail: %w", err)
	}
	if err := s.meta.SetThumbnail(ctx, f.ID, info.ID); err != nil {
		_ = s.blobs.Delete(context.WithoutCancel(ctx), info.ID)
		return "", fmt.Errorf("record thumbnail: %w", err)
	}
	return info.ID, nil
}

// Authorize returns the file if userID may read it: its uploader, or whoever Sharing
// allows. Everyone else gets ErrNotFound, exactly as for a missing file, so that ids
// cannot be probed.
func (s *Service) Authorize(ctx context.Context, userID, id string) (File, error) {
	if userID == "" {
		return File{}, ErrUnauthorized
	}
	if !blob.ValidID(id) {
		return File{}, fmt.Errorf("file %q: %w", truncateUTF8(id, 64), ErrNotFound)
	}
	f, err := s.meta.Get(ctx, id)
	if err != nil {
		return File{}, err
	}
	if f.UploaderID == userID {
		return f, nil
	}
	ok, err := s.sharing.CanRead(ctx, userID, f)
	if err != nil {
		return File{}, fmt.Errorf("files: may %s read %s: %w", userID, id, err)
	}
	if !ok {
		return File{}, fmt.Errorf("file %s: %w", id, ErrNotFound)
	}
	return f, nil
}

// Meta returns the metadata of a file the user may read, removed or not.
func (s *Service) Meta(ctx context.Context, userID, id string) (File, error) {
	return s.Authorize(ctx, userID, id)
}

// Open returns a readable file's metadata and bytes; the caller closes the reader.
func (s *Service) Open(ctx context.Context, userID, id string) (File, io.ReadSeekCloser, error) {
	f, err := s.Authorize(ctx, userID, id)
	if err != nil {
		return File{}, nil, err
	}
	if f.Status != StatusUploaded {
		return f, nil, fmt.Errorf("file %s: %w", id, ErrRemoved)
	}
	rc, err := s.blobs.Open(ctx, f.ID)
	if err != nil {
		return File{}, nil, fmt.Errorf("files: open %s: %w", id, err)
	}
	return f, rc, nil
}

// OpenThumbnail is Open for the thumbnail.
func (s *Service) OpenThumbnail(ctx context.Context, userID, id string) (File, io.ReadSeekCloser, error) {
	f, err := s.Authorize(ctx, userID, id)
	if err != nil {
		return File{}, nil, err
	}
	if f.Status != StatusUploaded {
		return f, nil, fmt.Errorf("file %s: %w", id, ErrRemoved)
	}
	if f.ThumbnailID == "" {
		return f, nil, fmt.Errorf("file %s: %w", id, ErrNoThumbnail)
	}
	rc, err := s.blobs.Open(ctx, f.ThumbnailID)
	if err != nil {
		return File{}, nil, fmt.Errorf("files: open thumbnail of %s: %w", id, err)
	}
	return f, rc, nil
}

// Attachable checks that senderID may attach the file to a message: the file exists, is
// not removed, and the sender may read it (their own upload, or one shared with them,
// for forwarding). The chat package calls it before accepting an attachment.
func (s *Service) Attachable(ctx context.Context, senderID, id string) (File, error) {
	f, err := s.Authorize(ctx, senderID, id)
	if err != nil {
		return File{}, err
	}
	if f.Status != StatusUploaded {
		return File{}, fmt.Errorf("file %s: %w", id, ErrRemoved)
	}
	return f, nil
}

// Delete lets the uploader remove a file: its status becomes removed (messages that
// reference it show it as removed) and its bytes and thumbnail are deleted. Others get
// ErrForbidden if they may read the file and ErrNotFound otherwise.
func (s *Service) Delete(ctx context.Context, userID, id string) (File, error) {
	f, err := s.Authorize(ctx, userID, id)
	if err != nil {
		return File{}, err
	}
	if f.UploaderID != userID {
		return File{}, fmt.Errorf("delete %s: %w", id, ErrForbidden)
	}
	return s.remove(ctx, id)
}

// remove marks the file removed first, so no reader can start on it, then deletes blobs.
func (s *Service) remove(ctx context.Context, id string) (File, error) {
	before, err := s.meta.MarkRemoved(ctx, id)
	if err != nil {
		return File{}, err
	}
	var errs []error
	for _, b := range []string{before.ID, before.ThumbnailID} {
		if b == "" {
			continue
		}
		if err := s.blobs.Delete(context.WithoutCancel(ctx), b); err != nil {
			errs = append(errs, err)
		}
	}
	after := before
	after.Status, after.ThumbnailID = StatusRemoved, ""
	if err := errors.Join(errs...); err != nil {
		return after, fmt.Errorf("files: delete bytes of %s: %w", id, err)
	}
	return after, nil
}

func (s *Service) deleteBlobs(ctx context.Context, ids ...string) {
	for _, id := range ids {
		if err := s.blobs.Delete(context.WithoutCancel(ctx), id); err != nil {
			s.cfg.Logger.WarnContext(ctx, "orphan blob left behind", "blob", id, "err", err)
		}
	}
}

// orphanPage is how many candidates CleanOrphans reads per query.
const orphanPage = 100

// CleanOrphans removes uploads older than the grace period that no message references:
// the client uploaded and never sent. It returns how many files it removed.
func (s *Service) CleanOrphans(ctx context.Context) (int, error) {
	if s.refs == nil {
		return 0, errors.New("files: orphan cleanup needs References")
	}
	cutoff := s.cfg.Now().Add(-s.cfg.OrphanGrace)
	removed, after := 0, ""
	for {
		page, err := s.meta.UploadedBefore(ctx, cutoff, after, orphanPage)
		if err != nil {
			return removed, fmt.Errorf("files: list orphan candidates: %w", err)
		}
		for _, f := range page {
			ref, err := s.refs.Referenced(ctx, f.ID)
			if err != nil {
				return removed, fmt.Errorf("files: is %s referenced: %w", f.ID, err)
			}
			if ref {
				continue
			}
			if _, err := s.remove(ctx, f.ID); err != nil && !errors.Is(err, ErrRemoved) {
				return removed, fmt.Errorf("files: remove orphan %s: %w", f.ID, err)
			}
			removed++
		}
		if len(page) < orphanPage {
			return removed, nil
		}
		after = page[len(page)-1].ID
	}
}

// headBuffer keeps the first max bytes written to it, for sniffing.
type headBuffer struct {
	buf []byte
	max int
}

func (h *headBuffer) Write(p []byte) (int, error) {
	if room := h.max - len(h.buf); room > 0 {
		h.buf = append(h.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (h *headBuffer) Bytes() []byte { return h.buf }

// countingReader counts what the client sent and remembers how its body failed.
type countingReader struct {
	r   io.Reader
	n   int64
	err error // the body's own error other than EOF
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}
