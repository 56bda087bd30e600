// Package files is Parley's file transfer: streaming uploads into a blob store, metadata,
// per-request authorization of downloads, thumbnails, quotas and orphan cleanup.
//
// The package talks to the rest of Parley only through the small interfaces declared
// here (Authenticator, Sharing, References, MetaStore); the HTTP edge is in fileshttp,
// the PostgreSQL metadata store in filespg and the blob stores in blob.
package files

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Status is the life cycle of a file.
type Status string

const (
	// StatusUploaded files can be downloaded by whoever may read them.
	StatusUploaded Status = "uploaded"
	// StatusRemoved files keep their metadata (messages still show "removed") but no bytes.
	StatusRemoved Status = "removed"
)

// File is the metadata of one upload.
type File struct {
	ID          string
	UploaderID  string
	Size        int64
	SHA256      string // lowercase hex
	ContentType string // sniffed from the bytes; the only type ever served
	ClaimedType string // what the client said; kept for display and audits only
	Name        string // sanitized, see SanitizeName
	CreatedAt   time.Time
	Status      Status
	ThumbnailID string // blob id of the thumbnail; empty when there is none
}

// Authenticator turns a bearer token into a user id (the users package implements it).
type Authenticator interface {
	UserID(ctx context.Context, bearerToken string) (string, error)
}

// Sharing tells whether a user may read a file through a room: a member of a room in
// which a message references the file, and no block between the reader and the uploader.
// The uploader's own access is decided here, not by Sharing.
type Sharing interface {
	CanRead(ctx context.Context, userID string, f File) (bool, error)
}

// References tells whether any message references a file (the chat package implements
// it); orphan cleanup deletes only files nobody references.
type References interface {
	Referenced(ctx context.Context, fileID string) (bool, error)
}

// MetaStore keeps File records. The memory and PostgreSQL implementations share the
// contract suite in filestest.
type MetaStore interface {
	// Create stores a new file; an existing id is ErrExists.
	Create(ctx context.Context, f File) error
	// Get returns the file or ErrNotFound.
	Get(ctx context.Context, id string) (File, error)
	// MarkRemoved sets the status to removed and clears the thumbnail, returning the
	// file as it was before; a file already removed is returned unchanged with ErrRemoved.
	MarkRemoved(ctx context.Context, id string) (File, error)
	// SetThumbnail records the thumbnail blob of an uploaded file.
	SetThumbnail(ctx context.Context, id, thumbnailID string) error
	// UsedBytes sums the sizes of the user's files that are not removed.
	UsedBytes(ctx context.Context, uploaderID string) (int64, error)
	// UploadedBefore lists up to limit files still uploaded and created before t,
	// ordered by ID, with IDs greater than afterID (empty: from the start).
	UploadedBefore(ctx context.Context, t time.Time, afterID string, limit int) ([]File, error)

	// Reserve grows hold h (creating it when absent) toward want bytes and returns what
	// it holds afterwards: never less than it held, never more than want unless it
	// already held more, and never more than quota minus the uploader's files that are
	// not removed and the uploader's other holds that have not expired at now. It is
	// decided atomically against every other Reserve of the same uploader (on every
	// process sharing the store), so concurrent uploads can never together pass the
	// quota. It sets h's expiry to h.Expires and forgets the uploader's holds that
	// expired before now. want = what h holds just renews it.
	Reserve(ctx context.Context, h Hold, want, quota int64, now time.Time) (int64, error)
	// Release forgets a hold; an unknown id is not an error.
	Release(ctx context.Context, holdID string) error
	// CreateHeld is Create that forgets hold holdID in the same step, so the file's
	// bytes are never counted twice (as a file and as a hold) nor not at all.
	CreateHeld(ctx context.Context, f File, holdID string) error
}

// Hold is a quota reservation of an upload in progress: the bytes it holds count
// against the uploader's quota until the upload is recorded (CreateHeld) or refused
// (Release). A hold left by a crashed process stops counting when it expires.
type Hold struct {
	ID         string
	UploaderID string
	Expires    time.Time
}

// Domain errors; the HTTP edge maps them to codes.
var (
	ErrNotFound     = errors.New("file not found")
	ErrExists       = errors.New("file already exists")
	ErrRemoved      = errors.New("file removed")
	ErrNoThumbnail  = errors.New("file has no thumbnail")
	ErrForbidden    = errors.New("only the uploader may do this")
	ErrEmptyUserID  = errors.New("empty user id")
	ErrUnauthorized = errors.New("unauthorized")
	// ErrUploadAborted: the upload body ended in an error (client gone, broken multipart).
	ErrUploadAborted = errors.New("upload body broke off")
)

// LimitError reports an upload refused for its size: over the per-file limit or over the
// uploader's quota. Reason says which.
type LimitError struct {
	Reason RejectReason
	Limit  int64 // the limit that was hit, in bytes
}

func (e *LimitError) Error() string {
	switch e.Reason {
	case RejectQuota:
		return fmt.Sprintf("upload exceeds the remaining quota of %d bytes", e.Limit)
	default:
		return fmt.Sprintf("upload exceeds the limit of %d bytes per file", e.Limit)
	}
}

// Is lets errors.Is(err, ErrTooLarge) and errors.Is(err, ErrQuotaExceeded) work.
func (e *LimitError) Is(target error) bool {
	return (target == ErrTooLarge && e.Reason == RejectTooLarge) ||
		(target == ErrQuotaExceeded && e.Reason == RejectQuota)
}

// Sentinels matched by *LimitError.
var (
	ErrTooLarge      = errors.New("file too large")
	ErrQuotaExceeded = errors.New("quota exceeded")
)

// RejectReason labels refused uploads in errors and metrics.
type RejectReason string

const (
	RejectTooLarge     RejectReason = "file_too_large"
	RejectQuota        RejectReason = "quota_exceeded"
	RejectUnauthorized RejectReason = "unauthorized"
	RejectBadRequest   RejectReason = "bad_request"
	RejectAborted      RejectReason = "aborted"
	RejectInternal     RejectReason = "internal"
)
