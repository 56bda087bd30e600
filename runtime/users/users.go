// Package users holds accounts, passwords, tokens, sessions, profiles and blocks. It
// imports no SQL driver and no transport: the stores it needs are the small interfaces
// declared here, implemented in runtime/store/memory and runtime/store/postgres.
package users

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"time"
)

// Domain errors; the HTTP edge translates them to codes.
var (
	ErrInvalidUsername    = errors.New("invalid username")
	ErrWeakPassword       = errors.New("password does not meet the policy")
	ErrUsernameTaken      = errors.New("username taken")
	ErrInvalidCredentials = errors.New("invalid username or password")
	ErrRegistrationClosed = errors.New("registration is closed")
	ErrInviteRequired     = errors.New("a valid invite code is required")
	ErrThrottled          = errors.New("too many failed attempts, try later")
	ErrUserNotFound       = errors.New("user not found")
	ErrInvalidToken       = errors.New("invalid or expired token")
	ErrInvalidProfile     = errors.New("invalid profile field")
	ErrBlockSelf          = errors.New("cannot block yourself")
	ErrNotFound           = errors.New("not found") // store-level: no such row
	ErrConflict           = errors.New("conflict")  // store-level: unique key taken
)

// User is an account's public face.
type User struct {
	ID           string    `json:"id"`
	Username     string    `json:"username"`
	DisplayName  string    `json:"display_name"`
	AvatarFileID string    `json:"avatar_file_id"`
	StatusText   string    `json:"status_text"`
	CreatedAt    time.Time `json:"created_at"`
}

// Account is a user plus the secret the store keeps for it.
type Account struct {
	User
	PasswordHash string
}

// Session is one refresh token's server-side state. Only the token's hash is stored.
type Session struct {
	ID        string
	UserID    string
	TokenHash []byte
	CreatedAt time.Time
	ExpiresAt time.Time
	RevokedAt time.Time // zero while valid
	// FamilyID is shared by every session rotated from one login (the first session's
	// id); empty is read as the session's own id.
	FamilyID string
}

// ProfileUpdate changes the fields that are non-nil.
type ProfileUpdate struct {
	DisplayName  *string `json:"display_name"`
	AvatarFileID *string `json:"avatar_file_id"`
	StatusText   *string `json:"status_text"`
}

// Accounts stores users. CreateAccount returns ErrConflict when the lower-cased username
// is taken; lookups return ErrNotFound.
type Accounts interface {
	CreateAccount(ctx context.Context, a Account) error
	AccountByUsername(ctx context.Context, username string) (Account, error)
	UserByID(ctx context.Context, id string) (User, error)
	UpdateProfile(ctx context.Context, id string, p ProfileUpdate) (User, error)
	// SearchUsers lists users whose lower-cased username starts with prefix, by username.
	SearchUsers(ctx context.Context, prefix string, limit int) ([]User, error)
	// IDsByUsernameKeys maps those of keys (lower-cased usernames) that exist to user ids,
	// in one look-up.
	IDsByUsernameKeys(ctx context.Context, keys []string) (map[string]string, error)
}

// Sessions stores refresh-token sessions.
type Sessions interface {
	CreateSession(ctx context.Context, s Session) error
	SessionByTokenHash(ctx context.Context, hash []byte) (Session, error)
	// RevokeSession marks the session revoked; it returns ErrNotFound when it was not
	// live, so that two concurrent refreshes of one token cannot both succeed.
	RevokeSession(ctx context.Context, id string, at time.Time) error
	// RevokeFamily revokes every live session of the family (a session whose FamilyID,
	// or id when it has none, is familyID) and returns how many it revoked.
	RevokeFamily(ctx context.Context, familyID string, at time.Time) (int, error)
}

// Invites stores single-use invite codes (by hash).
type Invites interface {
	CreateInvite(ctx context.Context, codeHash []byte, createdBy string, at time.Time) error
	// UseInvite consumes the code; ErrNotFound when unknown or already used.
	UseInvite(ctx context.Context, codeHash []byte, usedBy string, at time.Time) error
}

// Blocks stores who blocked whom.
type Blocks interface {
	Block(ctx context.Context, blockerID, blockedID string, at time.Time) error
	Unblock(ctx context.Context, blockerID, blockedID string) error
	// BlockedIDs lists the users blockerID has blocked.
	BlockedIDs(ctx context.Context, blockerID string) ([]string, error)
	// BlockerIDs lists the users who have blocked blockedID.
	BlockerIDs(ctx context.Context, blockedID string) ([]string, error)
}

// Throttle counts failures per key in fixed windows.
type Throttle interface {
	// RecordFailure adds one failure to key's window (starting a new window when the
	// current one is older than window) and returns the count in the window.
	RecordFailure(ctx context.Context, key string, now time.Time, window time.Duration) (int, error)
	// Failures returns the count in key's current window (0 when it has expired).
	Failures(ctx context.Context, key string, now time.Time, window time.Duration) (int, error)
	ResetFailures(ctx context.Context, key string) error
}

// Store is everything the users service needs from persistence.
type Store interface {
	Accounts
	Sessions
	Invites
	Blocks
	Throttle
}

// NewID returns a random, URL-safe identifier. The leading time component keeps ids
// roughly ordered by creation, which keeps B-tree inserts local.
func NewID() string {
	var b [16]byte
	ms := uint64(time.Now().UnixMilli())
	for i := 5; i >= 0; i-- {
		b[i] = byte(ms)
		ms >>= 8
	}
	_, _ = rand.Read(b[6:])
	return hex.EncodeToString(b[:])
}
