package users

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"runtime"
	"strings"
	"time"
	"unicode/utf8"
)

// Registration modes.
const (
	RegistrationOpen   = "open"
	RegistrationClosed = "closed"
	RegistrationInvite = "invite"
)

// Config tunes the service.
type Config struct {
	Registration string        // open, closed or invite
	RefreshTTL   time.Duration // refresh-token lifetime
	Password     PasswordParams
	// Login throttling (OWASP's "slow down online guessing"), per ThrottleWindow:
	// MaxFailuresPerAccountAddress failed logins per (account, client address), so one
	// address cannot guess on; MaxFailuresPerAddress per client address across accounts;
	// and MaxFailuresPerAccount per account across the addresses it has not logged in
	// from within KnownAddressTTL, so a guess spread over many addresses stops too while
	// the owner, from an address it logged in from before, is never locked out by it.
	// IPv6 addresses count by their /64.
	MaxFailuresPerAccountAddress int
	MaxFailuresPerAccount        int
	MaxFailuresPerAddress        int
	ThrottleWindow               time.Duration
	// KnownAddressTTL is how long an address stays known to an account after its last
	// successful login (or registration) from it.
	KnownAddressTTL time.Duration
	// MaxRegistrationsPerAddress bounds registration attempts (that pass the cheap checks,
	// so cost a password hash) per client address per ThrottleWindow.
	MaxRegistrationsPerAddress int
	// MaxConcurrentHashes bounds the argon2id hashes (each ~19 MiB) computed at once by
	// register and login; more wait their turn, as long as their request lives.
	MaxConcurrentHashes int
	// RefreshReuseGrace: a rotated refresh token presented again within this time of its
	// rotation is refused but revokes nothing (two tabs refreshing with one cookie at
	// once); later, it is taken as stolen and revokes its whole family.
	RefreshReuseGrace time.Duration
}

// DefaultConfig is a safe starting point.
func DefaultConfig() Config {
	return Config{
		Registration:                 RegistrationOpen,
		RefreshTTL:                   30 * 24 * time.Hour,
		Password:                     DefaultPasswordParams,
		MaxFailuresPerAccountAddress: 10,
		MaxFailuresPerAccount:        100,
		MaxFailuresPerAddress:        50,
		ThrottleWindow:               15 * time.Minute,
		KnownAddressTTL:              30 * 24 * time.Hour,

		MaxRegistrationsPerAddress: 50,
		MaxConcurrentHashes:        max(2, runtime.GOMAXPROCS(0)),
		RefreshReuseGrace:          5 * time.Second,
	}
}

// ParseRegistration validates a registration mode.
func ParseRegistration(s string) (string, error) {
	switch s {
	case RegistrationOpen, RegistrationClosed, RegistrationInvite:
		return s, nil
	}
	return "", fmt.Errorf("registration %q: want open, closed or invite", s)
}

// Service is the users domain.
type Service struct {
	store Store
	auth  *Auth
	cfg   Config
	now   func() time.Time
	// dummyHash is verified against when the username is unknown.
	dummyHash string
	// hashing is a semaphore bounding the password hashes computed at once.
	hashing chan struct{}
}

// NewService builds the service. now may be nil (time.Now).
func NewService(store Store, auth *Auth, cfg Config, now func() time.Time) (*Service, error) {
	if _, err := ParseRegistration(cfg.Registration); err != nil {
		return nil, err
	}
	if cfg.RefreshTTL <= 0 || cfg.ThrottleWindow <= 0 || cfg.MaxFailuresPerAccount <= 0 || cfg.MaxFailuresPerAddress <= 0 ||
		cfg.MaxFailuresPerAccountAddress <= 0 || cfg.KnownAddressTTL <= 0 ||
		cfg.MaxRegistrationsPerAddress <= 0 || cfg.MaxConcurrentHashes <= 0 || cfg.RefreshReuseGrace < 0 {
		return nil, fmt.Errorf("users config: refresh ttl, throttle window, failure and registration limits and concurrent hashes must be positive")
	}
	if now == nil {
		now = time.Now
	}
	dummy, err := HashPassword("parley-dummy-password", cfg.Password)
	if err != nil {
		return nil, err
	}
	return &Service{store: store, auth: auth, cfg: cfg, now: now, dummyHash: dummy,
		hashing: make(chan struct{}, cfg.MaxConcurrentHashes)}, nil
}

// hashTurn waits for a free hashing slot (or ctx's end) and returns its release.
func (s *Service) hashTurn(ctx context.Context) (func(), error) {
	select {
	case s.hashing <- struct{}{}:
		return func() { <-s.hashing }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting to hash a password: %w", ctx.Err())
	}
}

// hashPassword hashes under the semaphore.
func (s *Service) hashPassword(ctx context.Context, password string) (string, error) {
	release, err := s.hashTurn(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	return HashPassword(password, s.cfg.Password)
}

// verifyPassword verifies under the semaphore.
func (s *Service) verifyPassword(ctx context.Context, password, hash string) (bool, error) {
	release, err := s.hashTurn(ctx)
	if err != nil {
		return false, err
	}
	defer release()
	return VerifyPassword(password, hash)
}

// Auth is the token issuer/verifier the service uses.
func (s *Service) Auth() *Auth { return s.auth }

// RefreshTTL is how long refresh tokens live (the HTTP edge sizes cookies by it).
func (s *Service) RefreshTTL() time.Duration { return s.cfg.RefreshTTL }

// Username rules: 3–32 characters, ASCII letters, digits, '_', '.', '-', starting with a
// letter or digit. ASCII only so that look-alike names cannot impersonate each other.
var usernameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{2,31}$`)

// CheckUsername enforces the username rules.
func CheckUsername(name string) error {
	if !usernameRE.MatchString(name) {
		return fmt.Errorf("%w: 3-32 characters of letters, digits, '_', '.', '-', starting with a letter or digit", ErrInvalidUsername)
	}
	return nil
}

// Profile field bounds.
const (
	MaxDisplayName = 64
	MaxStatusText  = 140
	MaxFileID      = 64
)

func checkText(field, v string, max int) error {
	if !utf8.ValidString(v) {
		return fmt.Errorf("%w: %s is not valid UTF-8", ErrInvalidProfile, field)
	}
	if utf8.RuneCountInString(v) > max {
		return fmt.Errorf("%w: %s longer than %d characters", ErrInvalidProfile, field, max)
	}
	if strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("%w: %s contains control characters", ErrInvalidProfile, field)
	}
	return nil
}

// Registration is a register request.
type Registration struct {
	Username    string
	Password    string
	DisplayName string
	InviteCode  string
	// Addr is the client's address, for per-address throttling; empty (a caller inside
	// the process) is not throttled.
	Addr string
}

// Tokens is what a successful login or refresh hands out.
type Tokens struct {
	AccessToken     string    `json:"access_token"`
	AccessExpiresAt time.Time `json:"access_expires_at"`
	RefreshToken    string    `json:"refresh_token"`
	RefreshExpires  time.Time `json:"refresh_expires_at"`
	TokenType       string    `json:"token_type"`
}

// Register creates an account and logs it in.
func (s *Service) Register(ctx context.Context, r Registration) (User, Tokens, error) {
	switch s.cfg.Registration {
	case RegistrationClosed:
		return User{}, Tokens{}, ErrRegistrationClosed
	case RegistrationInvite:
		if r.InviteCode == "" {
			return User{}, Tokens{}, ErrInviteRequired
		}
	}
	if err := CheckUsername(r.Username); err != nil {
		return User{}, Tokens{}, err
	}
	if err := CheckPassword(r.Password); err != nil {
		return User{}, Tokens{}, err
	}
	if err := checkText("display_name", r.DisplayName, MaxDisplayName); err != nil {
		return User{}, Tokens{}, err
	}
	if r.Addr != "" {
		// Every attempt that would cost a hash counts, successful or not.
		n, err := s.store.RecordFailure(ctx, "register:addr:"+throttleAddr(r.Addr), s.now(), s.cfg.ThrottleWindow)
		if err != nil {
			return User{}, Tokens{}, fmt.Errorf("throttle: %w", err)
		}
		if n > s.cfg.MaxRegistrationsPerAddress {
			return User{}, Tokens{}, ErrThrottled
		}
	}
	hash, err := s.hashPassword(ctx, r.Password)
	if err != nil {
		return User{}, Tokens{}, err
	}
	now := s.clock()
	a := Account{User: User{ID: NewID(), Username: r.Username, DisplayName: r.DisplayName, CreatedAt: now}, PasswordHash: hash}
	if a.DisplayName == "" {
		a.DisplayName = r.Username
	}
	if s.cfg.Registration == RegistrationInvite {
		// A taken name is refused before the code is spent, so a typo does not burn an
		// invite. The code is consumed before the account exists: if creation still fails
		// (a concurrent registration took the name) the code is lost, the safe direction
		// for a single-use secret.
		if _, err := s.store.AccountByUsername(ctx, r.Username); err == nil {
			return User{}, Tokens{}, ErrUsernameTaken
		} else if !errors.Is(err, ErrNotFound) {
			return User{}, Tokens{}, fmt.Errorf("load account: %w", err)
		}
		if err := s.store.UseInvite(ctx, hashSecret(r.InviteCode), a.ID, now); err != nil {
			if errors.Is(err, ErrNotFound) {
				return User{}, Tokens{}, ErrInviteRequired
			}
			return User{}, Tokens{}, fmt.Errorf("use invite: %w", err)
		}
	}
	if err := s.store.CreateAccount(ctx, a); err != nil {
		if errors.Is(err, ErrConflict) {
			return User{}, Tokens{}, ErrUsernameTaken
		}
		return User{}, Tokens{}, fmt.Errorf("create account: %w", err)
	}
	// Whoever chose the password is the owner: the address that registered is known.
	if err := s.rememberAddress(ctx, strings.ToLower(a.Username), throttleAddr(r.Addr), s.now()); err != nil {
		return User{}, Tokens{}, fmt.Errorf("throttle: %w", err)
	}
	t, err := s.startSession(ctx, a.ID, "")
	if err != nil {
		return User{}, Tokens{}, err
	}
	return a.User, t, nil
}

// CreateInvite returns a new single-use invite code made by userID.
func (s *Service) CreateInvite(ctx context.Context, userID string) (string, error) {
	code, err := randomSecret()
	if err != nil {
		return "", err
	}
	if err := s.store.CreateInvite(ctx, hashSecret(code), userID, s.clock()); err != nil {
		return "", fmt.Errorf("create invite: %w", err)
	}
	return code, nil
}

// Login checks the password and starts a session. addr is the client's address, for
// throttling (see Config): failures count per (account, address), per address, and per
// account from addresses it has not logged in from lately; an unknown username counts
// like a known one, so the throttle does not reveal which names exist.
func (s *Service) Login(ctx context.Context, username, password, addr string) (User, Tokens, error) {
	now := s.now()
	addr = throttleAddr(addr)
	// Keys are bounded: a 60 KB "username" must not become a 60 KB primary key.
	account := strings.ToLower(truncate(username, 64))
	accountKey := "login:account:" + account
	pairKey := "login:account-addr:" + account + "|" + addr
	addrKey := "login:addr:" + addr
	n, err := s.store.Failures(ctx, addrKey, now, s.cfg.ThrottleWindow)
	if err != nil {
		return User{}, Tokens{}, fmt.Errorf("throttle: %w", err)
	}
	if n >= s.cfg.MaxFailuresPerAddress {
		return User{}, Tokens{}, ErrThrottled
	}
	fail := func() (User, Tokens, error) {
		if _, err := s.store.RecordFailure(ctx, addrKey, now, s.cfg.ThrottleWindow); err != nil {
			return User{}, Tokens{}, fmt.Errorf("throttle: %w", err)
		}
		return User{}, Tokens{}, ErrInvalidCredentials
	}
	if len(password) > MaxPasswordLen || CheckUsername(username) != nil {
		// No account can match: the address pays, and no per-account row is created for
		// a name that cannot exist.
		return fail()
	}
	// Attempts are counted before the password is checked, each in one atomic step, so
	// that concurrent guesses cannot all pass a read-then-write check; a successful
	// login resets the (account, address) count.
	if n, err := s.store.RecordFailure(ctx, pairKey, now, s.cfg.ThrottleWindow); err != nil {
		return User{}, Tokens{}, fmt.Errorf("throttle: %w", err)
	} else if n > s.cfg.MaxFailuresPerAccountAddress {
		return User{}, Tokens{}, ErrThrottled
	}
	known, err := s.knownAddress(ctx, account, addr, now)
	if err != nil {
		return User{}, Tokens{}, fmt.Errorf("throttle: %w", err)
	}
	if !known {
		// Only strangers spend the account's budget, so they cannot exhaust it for the
		// owner's own addresses; a success does not refill it (the owner's address
		// becomes known instead).
		if n, err := s.store.RecordFailure(ctx, accountKey, now, s.cfg.ThrottleWindow); err != nil {
			return User{}, Tokens{}, fmt.Errorf("throttle: %w", err)
		} else if n > s.cfg.MaxFailuresPerAccount {
			return User{}, Tokens{}, ErrThrottled
		}
	}
	a, err := s.store.AccountByUsername(ctx, username)
	if errors.Is(err, ErrNotFound) {
		// Hash anyway so that response time does not reveal which names exist.
		if _, err := s.verifyPassword(ctx, password, s.dummyHash); err != nil && ctx.Err() != nil {
			return User{}, Tokens{}, err
		}
		return fail()
	}
	if err != nil {
		return User{}, Tokens{}, fmt.Errorf("load account: %w", err)
	}
	ok, err := s.verifyPassword(ctx, password, a.PasswordHash)
	if err != nil {
		return User{}, Tokens{}, fmt.Errorf("verify password: %w", err)
	}
	if !ok {
		return fail()
	}
	if err := s.store.ResetFailures(ctx, pairKey); err != nil {
		return User{}, Tokens{}, fmt.Errorf("throttle: %w", err)
	}
	if err := s.rememberAddress(ctx, account, addr, now); err != nil {
		return User{}, Tokens{}, fmt.Errorf("throttle: %w", err)
	}
	t, err := s.startSession(ctx, a.ID, "")
	if err != nil {
		return User{}, Tokens{}, err
	}
	return a.User, t, nil
}

// Known addresses live in the throttle store as a counter whose window is
// KnownAddressTTL and restarts at every successful login from the address: present
// means the account logged in from there within the TTL. Only a correct password (or
// the registration) writes it, so a stranger cannot make an address known.
func knownKey(account, addr string) string { return "login:known:" + account + "|" + addr }

func (s *Service) knownAddress(ctx context.Context, account, addr string, now time.Time) (bool, error) {
	if addr == "" {
		return false, nil
	}
	n, err := s.store.Failures(ctx, knownKey(account, addr), now, s.cfg.KnownAddressTTL)
	return n > 0, err
}

func (s *Service) rememberAddress(ctx context.Context, account, addr string, now time.Time) error {
	if addr == "" {
		return nil
	}
	key := knownKey(account, addr)
	if err := s.store.ResetFailures(ctx, key); err != nil {
		return err
	}
	_, err := s.store.RecordFailure(ctx, key, now, s.cfg.KnownAddressTTL)
	return err
}

// throttleAddr is the address throttles count by: an IPv6 address by its /64 (one host
// usually holds a whole /64, so single addresses would give it endless budgets),
// anything else as it is, at most 64 bytes.
func throttleAddr(addr string) string {
	if ip, err := netip.ParseAddr(addr); err == nil {
		ip = ip.Unmap()
		if ip.Is6() {
			return netip.PrefixFrom(ip, 64).Masked().String()
		}
		return ip.String()
	}
	return truncate(addr, 64)
}

// Refresh rotates a refresh token: the old one is revoked, a new pair is issued in the
// same family. A revoked token presented again (after RefreshReuseGrace) means it was
// copied: every session of its family, the live successor included, is revoked.
func (s *Service) Refresh(ctx context.Context, refreshToken string) (Tokens, error) {
	sess, err := s.liveSession(ctx, refreshToken)
	var reused *revokedSessionError
	if errors.As(err, &reused) {
		if s.now().Sub(reused.sess.RevokedAt) > s.cfg.RefreshReuseGrace {
			if _, rerr := s.store.RevokeFamily(ctx, familyOf(reused.sess), s.clock()); rerr != nil {
				return Tokens{}, fmt.Errorf("revoke session family: %w", rerr)
			}
		}
		return Tokens{}, ErrInvalidToken
	}
	if err != nil {
		return Tokens{}, err
	}
	if err := s.store.RevokeSession(ctx, sess.ID, s.clock()); err != nil {
		if errors.Is(err, ErrNotFound) {
			return Tokens{}, ErrInvalidToken // lost a race with a concurrent refresh or logout
		}
		return Tokens{}, fmt.Errorf("revoke session: %w", err)
	}
	return s.startSession(ctx, sess.UserID, familyOf(sess))
}

// familyOf is the session's family id (its own id when it has none).
func familyOf(sess Session) string {
	if sess.FamilyID != "" {
		return sess.FamilyID
	}
	return sess.ID
}

// revokedSessionError is liveSession's answer for a revoked session (it is also
// ErrInvalidToken).
type revokedSessionError struct{ sess Session }

func (e *revokedSessionError) Error() string { return ErrInvalidToken.Error() }
func (e *revokedSessionError) Unwrap() error { return ErrInvalidToken }

// Logout revokes the refresh token. Logging out twice is not an error.
func (s *Service) Logout(ctx context.Context, refreshToken string) error {
	sess, err := s.store.SessionByTokenHash(ctx, hashSecret(refreshToken))
	if errors.Is(err, ErrNotFound) {
		return ErrInvalidToken
	}
	if err != nil {
		return fmt.Errorf("load session: %w", err)
	}
	if !sess.RevokedAt.IsZero() {
		return nil
	}
	if err := s.store.RevokeSession(ctx, sess.ID, s.clock()); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("revoke session: %w", err)
	}
	return nil
}

func (s *Service) liveSession(ctx context.Context, refreshToken string) (Session, error) {
	if refreshToken == "" {
		return Session{}, ErrInvalidToken
	}
	sess, err := s.store.SessionByTokenHash(ctx, hashSecret(refreshToken))
	if errors.Is(err, ErrNotFound) {
		return Session{}, ErrInvalidToken
	}
	if err != nil {
		return Session{}, fmt.Errorf("load session: %w", err)
	}
	if !sess.RevokedAt.IsZero() {
		return Session{}, &revokedSessionError{sess: sess}
	}
	if !s.now().Before(sess.ExpiresAt) {
		return Session{}, ErrInvalidToken
	}
	return sess, nil
}

// startSession issues a session in family (a new family when empty).
func (s *Service) startSession(ctx context.Context, userID, family string) (Tokens, error) {
	refresh, err := randomSecret()
	if err != nil {
		return Tokens{}, err
	}
	now := s.clock()
	sess := Session{ID: NewID(), UserID: userID, TokenHash: hashSecret(refresh), CreatedAt: now, ExpiresAt: now.Add(s.cfg.RefreshTTL), FamilyID: family}
	if sess.FamilyID == "" {
		sess.FamilyID = sess.ID
	}
	if err := s.store.CreateSession(ctx, sess); err != nil {
		return Tokens{}, fmt.Errorf("create session: %w", err)
	}
	access, exp, err := s.auth.IssueAccessToken(userID)
	if err != nil {
		return Tokens{}, err
	}
	return Tokens{AccessToken: access, AccessExpiresAt: exp, RefreshToken: refresh, RefreshExpires: sess.ExpiresAt, TokenType: "Bearer"}, nil
}

// MaxIDLength bounds user ids accepted from callers.
const MaxIDLength = 128

// validID screens ids before they reach the store: PostgreSQL refuses NUL and invalid
// UTF-8 in text with an error, which must be a precise "not found" instead.
func validID(id string) bool {
	return id != "" && len(id) <= MaxIDLength && utf8.ValidString(id) && !strings.ContainsRune(id, 0)
}

// User returns a user's profile.
func (s *Service) User(ctx context.Context, id string) (User, error) {
	if !validID(id) {
		return User{}, ErrUserNotFound
	}
	u, err := s.store.UserByID(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return User{}, ErrUserNotFound
	}
	return u, err
}

// UpdateProfile changes the caller's profile.
func (s *Service) UpdateProfile(ctx context.Context, userID string, p ProfileUpdate) (User, error) {
	if p.DisplayName != nil {
		if err := checkText("display_name", *p.DisplayName, MaxDisplayName); err != nil {
			return User{}, err
		}
		if strings.TrimSpace(*p.DisplayName) == "" {
			return User{}, fmt.Errorf("%w: display_name is blank", ErrInvalidProfile)
		}
	}
	if p.StatusText != nil {
		if err := checkText("status_text", *p.StatusText, MaxStatusText); err != nil {
			return User{}, err
		}
	}
	if p.AvatarFileID != nil {
		if err := CheckFileID(*p.AvatarFileID); err != nil && *p.AvatarFileID != "" {
			return User{}, fmt.Errorf("%w: avatar_file_id: %w", ErrInvalidProfile, err)
		}
	}
	u, err := s.store.UpdateProfile(ctx, userID, p)
	if errors.Is(err, ErrNotFound) {
		return User{}, ErrUserNotFound
	}
	return u, err
}

var fileIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// CheckFileID accepts the shape of ids the files service will hand out.
func CheckFileID(id string) error {
	if !fileIDRE.MatchString(id) {
		return fmt.Errorf("file id %q: 1-64 characters of letters, digits, '_' or '-'", id)
	}
	return nil
}

// MaxSearchResults bounds a prefix search.
const MaxSearchResults = 50

// Search finds users by username prefix (case-insensitive).
func (s *Service) Search(ctx context.Context, prefix string, limit int) ([]User, error) {
	if limit <= 0 || limit > MaxSearchResults {
		limit = MaxSearchResults
	}
	prefix = strings.ToLower(prefix)
	if prefix == "" || len(prefix) > 32 || !utf8.ValidString(prefix) || strings.ContainsFunc(prefix, func(r rune) bool { return r < 0x20 }) {
		return nil, fmt.Errorf("%w: prefix must be 1-32 characters", ErrInvalidUsername)
	}
	return s.store.SearchUsers(ctx, prefix, limit)
}

// Block makes blockerID block blockedID. Blocking twice is not an error.
func (s *Service) Block(ctx context.Context, blockerID, blockedID string) error {
	if blockerID == blockedID {
		return ErrBlockSelf
	}
	if _, err := s.User(ctx, blockedID); err != nil {
		return err
	}
	return s.store.Block(ctx, blockerID, blockedID, s.clock())
}

// Unblock lifts a block. Unblocking someone not blocked is not an error.
func (s *Service) Unblock(ctx context.Context, blockerID, blockedID string) error {
	if !validID(blockedID) {
		return nil // nobody with that id can be blocked
	}
	return s.store.Unblock(ctx, blockerID, blockedID)
}

// Blocked lists the users blockerID has blocked.
func (s *Service) Blocked(ctx context.Context, blockerID string) ([]User, error) {
	ids, err := s.store.BlockedIDs(ctx, blockerID)
	if err != nil {
		return nil, err
	}
	out := make([]User, 0, len(ids))
	for _, id := range ids {
		u, err := s.store.UserByID(ctx, id)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, nil
}

// The methods below let the chat service ask about people without importing this
// package's store.

// Exists reports whether a user exists.
func (s *Service) Exists(ctx context.Context, id string) (bool, error) {
	if !validID(id) {
		return false, nil
	}
	_, err := s.store.UserByID(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// IDsByUsername maps those of usernames that exist (matched case-insensitively; the
// keys of the result are lower-cased) to user ids, in one look-up.
func (s *Service) IDsByUsername(ctx context.Context, usernames []string) (map[string]string, error) {
	keys := make([]string, 0, len(usernames))
	for _, u := range usernames {
		if usernameRE.MatchString(u) {
			keys = append(keys, strings.ToLower(u))
		}
	}
	if len(keys) == 0 {
		return map[string]string{}, nil
	}
	return s.store.IDsByUsernameKeys(ctx, keys)
}

// BlockedIDs lists whom blockerID blocked.
func (s *Service) BlockedIDs(ctx context.Context, blockerID string) ([]string, error) {
	if !validID(blockerID) {
		return []string{}, nil
	}
	return s.store.BlockedIDs(ctx, blockerID)
}

// BlockerIDs lists who blocked blockedID.
func (s *Service) BlockerIDs(ctx context.Context, blockedID string) ([]string, error) {
	if !validID(blockedID) {
		return []string{}, nil
	}
	return s.store.BlockerIDs(ctx, blockedID)
}

func randomSecret() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// hashSecret: refresh tokens and invite codes are 256-bit random, so a plain SHA-256 is
// enough to make a stolen table useless.
func hashSecret(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// clock is now at the database's microsecond precision.
func (s *Service) clock() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

func truncate(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "?"), "\x00", "?")
}
