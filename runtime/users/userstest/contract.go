// Package userstest is the contract suite every users.Store must pass; the memory and
// PostgreSQL stores both run it.
package userstest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parleychat/parley/runtime/users"
)

// CheapPasswords keeps argon2id fast in tests; the format and code path are unchanged.
var CheapPasswords = users.PasswordParams{Time: 1, Memory: 64, Threads: 1}

// TestKey is a 32-byte HS256 key for tests.
var TestKey = []byte("0123456789abcdef0123456789abcdef")

// Clock is a settable clock for tests.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts at a fixed instant.
func NewClock() *Clock { return &Clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// NewService builds a service on store with test settings and the given registration mode.
func NewService(t testing.TB, store users.Store, registration string, clock *Clock) *users.Service {
	t.Helper()
	auth, err := users.NewAuth(TestKey, 15*time.Minute, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	cfg := users.DefaultConfig()
	cfg.Registration = registration
	cfg.Password = CheapPasswords
	cfg.MaxFailuresPerAccountAddress = 3
	cfg.MaxFailuresPerAccount = 6
	cfg.MaxFailuresPerAddress = 5
	svc, err := users.NewService(store, auth, cfg, clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// Register registers name with a valid password or fails the test.
func Register(t testing.TB, svc *users.Service, name string) (users.User, users.Tokens) {
	t.Helper()
	u, tok, err := svc.Register(context.Background(), users.Registration{Username: name, Password: "correct horse"})
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	return u, tok
}

// Run runs the contract suite; newStore returns an empty store for each subtest.
func Run(t *testing.T, newStore func(t *testing.T) users.Store) {
	ctx := context.Background()
	t.Run("register and login", func(t *testing.T) {
		clock := NewClock()
		svc := NewService(t, newStore(t), users.RegistrationOpen, clock)
		u, tok := Register(t, svc, "Alice")
		if u.Username != "Alice" || u.DisplayName != "Alice" || u.ID == "" {
			t.Fatalf("registered user = %+v", u)
		}
		c, err := svc.Auth().VerifyAccessToken(tok.AccessToken)
		if err != nil || c.UserID != u.ID {
			t.Fatalf("verify access token: %+v, %v", c, err)
		}
		got, _, err := svc.Login(ctx, "aLiCe", "correct horse", "10.0.0.1")
		if err != nil || got.ID != u.ID {
			t.Fatalf("login case-insensitively: %+v, %v", got, err)
		}
		if _, _, err := svc.Register(ctx, users.Registration{Username: "ALICE", Password: "correct horse"}); !errors.Is(err, users.ErrUsernameTaken) {
			t.Fatalf("register ALICE after Alice: %v, want ErrUsernameTaken", err)
		}
		if _, _, err := svc.Login(ctx, "alice", "wrong horse", "10.0.0.1"); !errors.Is(err, users.ErrInvalidCredentials) {
			t.Fatalf("wrong password: %v", err)
		}
		if _, _, err := svc.Login(ctx, "nobody", "correct horse", "10.0.0.1"); !errors.Is(err, users.ErrInvalidCredentials) {
			t.Fatalf("unknown user: %v", err)
		}
	})

	t.Run("ids by username, case-insensitively, in one look-up", func(t *testing.T) {
		svc := NewService(t, newStore(t), users.RegistrationOpen, NewClock())
		a, _ := Register(t, svc, "Alice")
		b, _ := Register(t, svc, "bob.smith")
		got, err := svc.IDsByUsername(ctx, []string{"ALICE", "Bob.Smith", "nobody", "x", "bad name!"})
		if err != nil || len(got) != 2 || got["alice"] != a.ID || got["bob.smith"] != b.ID {
			t.Fatalf("IDsByUsername = %v, %v; want alice and bob.smith only", got, err)
		}
		if got, err := svc.IDsByUsername(ctx, nil); err != nil || len(got) != 0 {
			t.Fatalf("IDsByUsername(nil) = %v, %v", got, err)
		}
	})

	t.Run("username and password rules", func(t *testing.T) {
		svc := NewService(t, newStore(t), users.RegistrationOpen, NewClock())
		tests := []struct {
			name, user, pass string
			want             error
		}{
			{"too short", "ab", "correct horse", users.ErrInvalidUsername},
			{"too long", "a23456789012345678901234567890123", "correct horse", users.ErrInvalidUsername},
			{"sql metacharacters", "bob'; DROP TABLE users;--", "correct horse", users.ErrInvalidUsername},
			{"leading dot", ".bob", "correct horse", users.ErrInvalidUsername},
			{"non-ascii look-alike", "bоb", "correct horse", users.ErrInvalidUsername},
			{"space", "bob smith", "correct horse", users.ErrInvalidUsername},
			{"short password", "bob", "short", users.ErrWeakPassword},
			{"blank password", "bob", "          ", users.ErrWeakPassword},
			{"huge password", "bob", string(make([]byte, 300)), users.ErrWeakPassword},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				_, _, err := svc.Register(ctx, users.Registration{Username: tc.user, Password: tc.pass})
				if !errors.Is(err, tc.want) {
					t.Fatalf("Register(%q, %q) = %v, want %v", tc.user, tc.pass, err, tc.want)
				}
			})
		}
		if got, err := svc.Search(ctx, "b", 10); err != nil || len(got) != 0 {
			t.Fatalf("rejected registrations left users behind: %+v, %v", got, err)
		}
		Register(t, svc, "bob_smith-2.0")
	})

	t.Run("registration modes", func(t *testing.T) {
		store := newStore(t)
		clock := NewClock()
		closed := NewService(t, store, users.RegistrationClosed, clock)
		if _, _, err := closed.Register(ctx, users.Registration{Username: "carol", Password: "correct horse"}); !errors.Is(err, users.ErrRegistrationClosed) {
			t.Fatalf("closed: %v", err)
		}
		open := NewService(t, store, users.RegistrationOpen, clock)
		inviter, _ := Register(t, open, "inviter")
		invite := NewService(t, store, users.RegistrationInvite, clock)
		if _, _, err := invite.Register(ctx, users.Registration{Username: "carol", Password: "correct horse"}); !errors.Is(err, users.ErrInviteRequired) {
			t.Fatalf("invite mode without code: %v", err)
		}
		if _, _, err := invite.Register(ctx, users.Registration{Username: "carol", Password: "correct horse", InviteCode: "made-up"}); !errors.Is(err, users.ErrInviteRequired) {
			t.Fatalf("invite mode with unknown code: %v", err)
		}
		code, err := invite.CreateInvite(ctx, inviter.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := invite.Register(ctx, users.Registration{Username: "INVITER", Password: "correct horse", InviteCode: code}); !errors.Is(err, users.ErrUsernameTaken) {
			t.Fatalf("invite mode with a taken name: %v", err)
		}
		if _, _, err := invite.Register(ctx, users.Registration{Username: "carol", Password: "correct horse", InviteCode: code}); err != nil {
			t.Fatalf("invite mode with code: %v", err)
		}
		if _, _, err := invite.Register(ctx, users.Registration{Username: "dave", Password: "correct horse", InviteCode: code}); !errors.Is(err, users.ErrInviteRequired) {
			t.Fatalf("invite code reused: %v", err)
		}
	})

	t.Run("refresh rotates and logout revokes", func(t *testing.T) {
		clock := NewClock()
		svc := NewService(t, newStore(t), users.RegistrationOpen, clock)
		u, tok := Register(t, svc, "erin")
		next, err := svc.Refresh(ctx, tok.RefreshToken)
		if err != nil {
			t.Fatalf("refresh: %v", err)
		}
		if c, err := svc.Auth().VerifyAccessToken(next.AccessToken); err != nil || c.UserID != u.ID {
			t.Fatalf("refreshed access token: %+v %v", c, err)
		}
		if _, err := svc.Refresh(ctx, tok.RefreshToken); !errors.Is(err, users.ErrInvalidToken) {
			t.Fatalf("old refresh token reused: %v", err)
		}
		if err := svc.Logout(ctx, next.RefreshToken); err != nil {
			t.Fatalf("logout: %v", err)
		}
		if err := svc.Logout(ctx, next.RefreshToken); err != nil {
			t.Fatalf("second logout: %v", err)
		}
		if _, err := svc.Refresh(ctx, next.RefreshToken); !errors.Is(err, users.ErrInvalidToken) {
			t.Fatalf("refresh after logout: %v", err)
		}
		if _, err := svc.Refresh(ctx, "garbage"); !errors.Is(err, users.ErrInvalidToken) {
			t.Fatalf("garbage refresh: %v", err)
		}
		_, tok2, err := svc.Login(ctx, "erin", "correct horse", "a")
		if err != nil {
			t.Fatal(err)
		}
		clock.Advance(31 * 24 * time.Hour)
		if _, err := svc.Refresh(ctx, tok2.RefreshToken); !errors.Is(err, users.ErrInvalidToken) {
			t.Fatalf("expired refresh: %v", err)
		}
	})

	t.Run("reuse of a rotated refresh token revokes its family", func(t *testing.T) {
		clock := NewClock()
		svc := NewService(t, newStore(t), users.RegistrationOpen, clock)
		_, first := Register(t, svc, "ivan")
		second, err := svc.Refresh(ctx, first.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		third, err := svc.Refresh(ctx, second.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		_, other, err := svc.Login(ctx, "ivan", "correct horse", "a") // another login: another family
		if err != nil {
			t.Fatal(err)
		}
		// Within the grace (two tabs refreshing at once) a reuse is refused, nothing more.
		if _, err := svc.Refresh(ctx, second.RefreshToken); !errors.Is(err, users.ErrInvalidToken) {
			t.Fatalf("reuse within the grace: %v", err)
		}
		fourth, err := svc.Refresh(ctx, third.RefreshToken)
		if err != nil {
			t.Fatalf("the live token after a reuse within the grace: %v", err)
		}
		clock.Advance(time.Minute)
		if _, err := svc.Refresh(ctx, first.RefreshToken); !errors.Is(err, users.ErrInvalidToken) {
			t.Fatalf("reuse of the first token: %v", err)
		}
		if _, err := svc.Refresh(ctx, fourth.RefreshToken); !errors.Is(err, users.ErrInvalidToken) {
			t.Fatalf("the family's live token after a reuse: %v, want it revoked", err)
		}
		if _, err := svc.Refresh(ctx, other.RefreshToken); err != nil {
			t.Fatalf("another login's token: %v, want it untouched", err)
		}
	})

	t.Run("concurrent refreshes of one token: exactly one wins", func(t *testing.T) {
		svc := NewService(t, newStore(t), users.RegistrationOpen, NewClock())
		_, tok := Register(t, svc, "frank")
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for range 8 {
			wg.Go(func() {
				if _, err := svc.Refresh(ctx, tok.RefreshToken); err == nil {
					mu.Lock()
					wins++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("%d concurrent refreshes succeeded, want 1", wins)
		}
	})

	t.Run("login throttled per account and address, and per address", func(t *testing.T) {
		clock := NewClock()
		svc := NewService(t, newStore(t), users.RegistrationOpen, clock)
		Register(t, svc, "gina")
		for i := range 3 {
			if _, _, err := svc.Login(ctx, "gina", "wrong password", "10.0.0.1"); !errors.Is(err, users.ErrInvalidCredentials) {
				t.Fatalf("attempt %d: %v", i, err)
			}
		}
		if _, _, err := svc.Login(ctx, "GINA", "correct horse", "10.0.0.1"); !errors.Is(err, users.ErrThrottled) {
			t.Fatalf("4th attempt from one address with the right password: %v, want ErrThrottled", err)
		}
		if _, _, err := svc.Login(ctx, "gina", "correct horse", "10.9.9.9"); err != nil {
			t.Fatalf("another address: %v", err)
		}
		clock.Advance(16 * time.Minute)
		if _, _, err := svc.Login(ctx, "gina", "correct horse", "10.0.0.1"); err != nil {
			t.Fatalf("after the window: %v", err)
		}
		Register(t, svc, "hank")
		for i := range 5 {
			_, _, _ = svc.Login(ctx, fmt.Sprintf("ghost%d", i), "wrong password", "192.0.2.1")
		}
		if _, _, err := svc.Login(ctx, "hank", "correct horse", "192.0.2.1"); !errors.Is(err, users.ErrThrottled) {
			t.Fatalf("address over its limit: %v, want ErrThrottled", err)
		}
		if _, _, err := svc.Login(ctx, "hank", "correct horse", "192.0.2.2"); err != nil {
			t.Fatalf("other address: %v", err)
		}
	})

	t.Run("a stranger's wrong passwords do not lock the owner out", func(t *testing.T) {
		clock := NewClock()
		svc := NewService(t, newStore(t), users.RegistrationOpen, clock)
		Register(t, svc, "olga")
		if _, _, err := svc.Login(ctx, "olga", "correct horse", "10.1.1.1"); err != nil {
			t.Fatalf("owner's login: %v", err)
		}
		// The stranger guesses until throttled: only the stranger's address is.
		for i := range 10 {
			_, _, err := svc.Login(ctx, "olga", "wrong password", "203.0.113.9")
			if want := users.ErrInvalidCredentials; i >= 3 {
				if !errors.Is(err, users.ErrThrottled) {
					t.Fatalf("stranger's attempt %d: %v, want ErrThrottled", i, err)
				}
			} else if !errors.Is(err, want) {
				t.Fatalf("stranger's attempt %d: %v, want %v", i, err, want)
			}
		}
		if _, _, err := svc.Login(ctx, "olga", "correct horse", "10.1.1.1"); err != nil {
			t.Fatalf("owner's login after a stranger's guesses: %v", err)
		}
		if _, _, err := svc.Login(ctx, "olga", "correct horse", "10.1.1.2"); err != nil {
			t.Fatalf("owner's login from a new address after one stranger's guesses: %v", err)
		}
		// An IPv6 stranger cannot get a fresh budget by changing address within its /64.
		for i := range 3 {
			_, _, _ = svc.Login(ctx, "olga", "wrong password", fmt.Sprintf("2001:db8:0:7::%x", i+1))
		}
		if _, _, err := svc.Login(ctx, "olga", "correct horse", "2001:db8:0:7::99"); !errors.Is(err, users.ErrThrottled) {
			t.Fatalf("same /64 after 3 failures: %v, want ErrThrottled", err)
		}
	})

	t.Run("a distributed guess throttles the account for unknown addresses only", func(t *testing.T) {
		clock := NewClock()
		svc := NewService(t, newStore(t), users.RegistrationOpen, clock)
		// The address that registered is known.
		if _, _, err := svc.Register(ctx, users.Registration{Username: "petra", Password: "correct horse", Addr: "10.2.2.2"}); err != nil {
			t.Fatal(err)
		}
		// One guess from each of many addresses: the account-wide budget (6 in the test
		// settings) runs out for addresses the account never logged in from.
		for i := range 6 {
			if _, _, err := svc.Login(ctx, "petra", "wrong password", fmt.Sprintf("198.18.0.%d", i+1)); !errors.Is(err, users.ErrInvalidCredentials) {
				t.Fatalf("guess %d: %v", i, err)
			}
		}
		if _, _, err := svc.Login(ctx, "petra", "correct horse", "198.18.1.1"); !errors.Is(err, users.ErrThrottled) {
			t.Fatalf("unknown address after the account's budget: %v, want ErrThrottled", err)
		}
		if _, _, err := svc.Login(ctx, "petra", "correct horse", "10.2.2.2"); err != nil {
			t.Fatalf("owner's known address during a distributed guess: %v", err)
		}
		// An address becomes known by a successful login (which, from an address not
		// known yet, spends one attempt of the account's budget like any other).
		Register(t, svc, "quinn")
		if _, _, err := svc.Login(ctx, "quinn", "correct horse", "10.3.3.3"); err != nil {
			t.Fatalf("owner's login: %v", err)
		}
		for i := range 5 {
			_, _, _ = svc.Login(ctx, "quinn", "wrong password", fmt.Sprintf("198.18.2.%d", i+1))
		}
		if _, _, err := svc.Login(ctx, "quinn", "correct horse", "198.18.9.9"); !errors.Is(err, users.ErrThrottled) {
			t.Fatalf("unknown address after the account's budget: %v, want ErrThrottled", err)
		}
		if _, _, err := svc.Login(ctx, "quinn", "correct horse", "10.3.3.3"); err != nil {
			t.Fatalf("known address during a distributed guess: %v", err)
		}
		// A known address is forgotten after KnownAddressTTL without a login from it.
		clock.Advance(users.DefaultConfig().KnownAddressTTL + time.Minute)
		for i := range 6 {
			_, _, _ = svc.Login(ctx, "petra", "wrong password", fmt.Sprintf("198.18.3.%d", i+1))
		}
		if _, _, err := svc.Login(ctx, "petra", "correct horse", "10.2.2.2"); !errors.Is(err, users.ErrThrottled) {
			t.Fatalf("address unused for longer than KnownAddressTTL: %v, want ErrThrottled", err)
		}
	})

	t.Run("registration throttled per address", func(t *testing.T) {
		clock := NewClock()
		auth, err := users.NewAuth(TestKey, 15*time.Minute, clock.Now)
		if err != nil {
			t.Fatal(err)
		}
		cfg := users.DefaultConfig()
		cfg.Password = CheapPasswords
		cfg.MaxRegistrationsPerAddress = 3
		svc, err := users.NewService(newStore(t), auth, cfg, clock.Now)
		if err != nil {
			t.Fatal(err)
		}
		reg := func(name, addr string) error {
			_, _, err := svc.Register(ctx, users.Registration{Username: name, Password: "correct horse", Addr: addr})
			return err
		}
		for i := range 3 {
			if err := reg(fmt.Sprintf("reg%d", i), "198.51.100.7"); err != nil {
				t.Fatalf("registration %d: %v", i, err)
			}
		}
		if err := reg("reg3", "198.51.100.7"); !errors.Is(err, users.ErrThrottled) {
			t.Fatalf("4th registration from one address: %v, want ErrThrottled", err)
		}
		if err := reg("reg3", "198.51.100.8"); err != nil {
			t.Fatalf("another address: %v", err)
		}
		clock.Advance(16 * time.Minute)
		if err := reg("reg4", "198.51.100.7"); err != nil {
			t.Fatalf("after the window: %v", err)
		}
	})

	t.Run("profile and search", func(t *testing.T) {
		svc := NewService(t, newStore(t), users.RegistrationOpen, NewClock())
		u, _ := Register(t, svc, "ivan")
		Register(t, svc, "Ivy")
		Register(t, svc, "i_x")
		Register(t, svc, "ixa")
		name, status, avatar := "Ivan the Great", "out for lunch 🍜 ' OR 1=1 --", "file_123"
		got, err := svc.UpdateProfile(ctx, u.ID, users.ProfileUpdate{DisplayName: &name, StatusText: &status, AvatarFileID: &avatar})
		if err != nil {
			t.Fatal(err)
		}
		if got.DisplayName != name || got.StatusText != status || got.AvatarFileID != avatar {
			t.Fatalf("profile = %+v", got)
		}
		again, err := svc.User(ctx, u.ID)
		if err != nil || again != got {
			t.Fatalf("reload = %+v, %v; want %+v", again, err, got)
		}
		bad := "line\nbreak"
		if _, err := svc.UpdateProfile(ctx, u.ID, users.ProfileUpdate{DisplayName: &bad}); !errors.Is(err, users.ErrInvalidProfile) {
			t.Fatalf("control characters: %v", err)
		}
		found, err := svc.Search(ctx, "IV", 10)
		if err != nil || len(found) != 2 || found[0].Username != "ivan" || found[1].Username != "Ivy" {
			t.Fatalf("search iv = %+v, %v", found, err)
		}
		// '_' is a LIKE wildcard: it must match only itself.
		found, err = svc.Search(ctx, "i_", 10)
		if err != nil || len(found) != 1 || found[0].Username != "i_x" {
			t.Fatalf("search i_ = %+v, %v", found, err)
		}
		for _, wild := range []string{"%", `\`, "i%", "'"} {
			if found, err = svc.Search(ctx, wild, 10); err != nil || len(found) != 0 {
				t.Fatalf("search %q = %+v, %v; want nothing (metacharacters are literal)", wild, found, err)
			}
		}
		if found, err = svc.Search(ctx, "i", 1); err != nil || len(found) != 1 {
			t.Fatalf("search limit 1 = %+v, %v", found, err)
		}
		if _, err := svc.User(ctx, "missing"); !errors.Is(err, users.ErrUserNotFound) {
			t.Fatalf("missing user: %v", err)
		}
	})

	t.Run("blocks", func(t *testing.T) {
		svc := NewService(t, newStore(t), users.RegistrationOpen, NewClock())
		a, _ := Register(t, svc, "jane")
		b, _ := Register(t, svc, "kyle")
		c, _ := Register(t, svc, "lena")
		if err := svc.Block(ctx, a.ID, a.ID); !errors.Is(err, users.ErrBlockSelf) {
			t.Fatalf("self block: %v", err)
		}
		if err := svc.Block(ctx, a.ID, "missing"); !errors.Is(err, users.ErrUserNotFound) {
			t.Fatalf("block missing: %v", err)
		}
		for range 2 {
			if err := svc.Block(ctx, a.ID, b.ID); err != nil {
				t.Fatalf("block (idempotent): %v", err)
			}
		}
		if err := svc.Block(ctx, c.ID, b.ID); err != nil {
			t.Fatal(err)
		}
		list, err := svc.Blocked(ctx, a.ID)
		if err != nil || len(list) != 1 || list[0].ID != b.ID {
			t.Fatalf("blocked by jane = %+v, %v", list, err)
		}
		blockers, err := svc.BlockerIDs(ctx, b.ID)
		if err != nil || len(blockers) != 2 {
			t.Fatalf("blockers of kyle = %v, %v", blockers, err)
		}
		if err := svc.Unblock(ctx, a.ID, b.ID); err != nil {
			t.Fatal(err)
		}
		if err := svc.Unblock(ctx, a.ID, b.ID); err != nil {
			t.Fatalf("unblock twice: %v", err)
		}
		if ids, err := svc.BlockedIDs(ctx, a.ID); err != nil || len(ids) != 0 {
			t.Fatalf("after unblock = %v, %v", ids, err)
		}
	})

	t.Run("store: revoke is single-use and conflicts are typed", func(t *testing.T) {
		s := newStore(t)
		now := NewClock().Now()
		a := users.Account{User: users.User{ID: users.NewID(), Username: "Mona", CreatedAt: now}, PasswordHash: "x"}
		if err := s.CreateAccount(ctx, a); err != nil {
			t.Fatal(err)
		}
		a2 := a
		a2.ID, a2.Username = users.NewID(), "mona"
		if err := s.CreateAccount(ctx, a2); !errors.Is(err, users.ErrConflict) {
			t.Fatalf("case-insensitive duplicate: %v", err)
		}
		sess := users.Session{ID: users.NewID(), UserID: a.ID, TokenHash: []byte("hash"), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := s.CreateSession(ctx, sess); err != nil {
			t.Fatal(err)
		}
		got, err := s.SessionByTokenHash(ctx, []byte("hash"))
		if err != nil || got.ID != sess.ID || !got.RevokedAt.IsZero() || !got.ExpiresAt.Equal(sess.ExpiresAt) {
			t.Fatalf("session = %+v, %v", got, err)
		}
		if err := s.RevokeSession(ctx, sess.ID, now); err != nil {
			t.Fatal(err)
		}
		if err := s.RevokeSession(ctx, sess.ID, now); !errors.Is(err, users.ErrNotFound) {
			t.Fatalf("second revoke: %v", err)
		}
		if _, err := s.AccountByUsername(ctx, "nobody"); !errors.Is(err, users.ErrNotFound) {
			t.Fatalf("missing account: %v", err)
		}
		if n, err := s.RecordFailure(ctx, "k", now, time.Minute); err != nil || n != 1 {
			t.Fatalf("first failure = %d, %v", n, err)
		}
		if n, err := s.RecordFailure(ctx, "k", now.Add(30*time.Second), time.Minute); err != nil || n != 2 {
			t.Fatalf("second failure = %d, %v", n, err)
		}
		if n, err := s.Failures(ctx, "k", now.Add(59*time.Second), time.Minute); err != nil || n != 2 {
			t.Fatalf("failures in window = %d, %v", n, err)
		}
		if n, err := s.Failures(ctx, "k", now.Add(time.Minute), time.Minute); err != nil || n != 0 {
			t.Fatalf("failures after window = %d, %v", n, err)
		}
		if n, err := s.RecordFailure(ctx, "k", now.Add(2*time.Minute), time.Minute); err != nil || n != 1 {
			t.Fatalf("failure in a new window = %d, %v", n, err)
		}
	})
}
