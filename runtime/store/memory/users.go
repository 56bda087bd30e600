// Package memory holds in-process stores for parley dev and tests. They satisfy the
// same contract suites as the PostgreSQL stores.
package memory

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/parleychat/parley/runtime/users"
)

// Users is an in-memory users.Store.
type Users struct {
	mu       sync.Mutex
	accounts map[string]users.Account // by id
	byName   map[string]string        // lower(username) -> id
	sessions map[string]users.Session // by id
	invites  map[string]bool          // hex(hash) -> used
	blocks   map[[2]string]time.Time  // {blocker, blocked}
	throttle map[string]window
}

type window struct {
	start time.Time
	hits  int
}

// NewUsers returns an empty store.
func NewUsers() *Users {
	return &Users{
		accounts: map[string]users.Account{}, byName: map[string]string{},
		sessions: map[string]users.Session{}, invites: map[string]bool{},
		blocks: map[[2]string]time.Time{}, throttle: map[string]window{},
	}
}

var _ users.Store = (*Users)(nil)

// CreateAccount implements users.Accounts.
func (s *Users) CreateAccount(_ context.Context, a users.Account) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := strings.ToLower(a.Username)
	if _, ok := s.byName[key]; ok {
		return users.ErrConflict
	}
	if _, ok := s.accounts[a.ID]; ok {
		return users.ErrConflict
	}
	s.accounts[a.ID] = a
	s.byName[key] = a.ID
	return nil
}

// AccountByUsername implements users.Accounts.
func (s *Users) AccountByUsername(_ context.Context, username string) (users.Account, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.byName[strings.ToLower(username)]
	if !ok {
		return users.Account{}, users.ErrNotFound
	}
	return s.accounts[id], nil
}

// UserByID implements users.Accounts.
func (s *Users) UserByID(_ context.Context, id string) (users.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[id]
	if !ok {
		return users.User{}, users.ErrNotFound
	}
	return a.User, nil
}

// UpdateProfile implements users.Accounts.
func (s *Users) UpdateProfile(_ context.Context, id string, p users.ProfileUpdate) (users.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	a, ok := s.accounts[id]
	if !ok {
		return users.User{}, users.ErrNotFound
	}
	if p.DisplayName != nil {
		a.DisplayName = *p.DisplayName
	}
	if p.AvatarFileID != nil {
		a.AvatarFileID = *p.AvatarFileID
	}
	if p.StatusText != nil {
		a.StatusText = *p.StatusText
	}
	s.accounts[id] = a
	return a.User, nil
}

// IDsByUsernameKeys implements users.Accounts.
func (s *Users) IDsByUsernameKeys(_ context.Context, keys []string) (map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]string{}
	for _, k := range keys {
		if id, ok := s.byName[k]; ok {
			out[k] = id
		}
	}
	return out, nil
}

// SearchUsers implements users.Accounts.
func (s *Users) SearchUsers(_ context.Context, prefix string, limit int) ([]users.User, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for k := range s.byName {
		if strings.HasPrefix(k, strings.ToLower(prefix)) {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	out := []users.User{}
	for _, n := range names {
		if len(out) == limit {
			break
		}
		out = append(out, s.accounts[s.byName[n]].User)
	}
	return out, nil
}

// CreateSession implements users.Sessions.
func (s *Users) CreateSession(_ context.Context, sess users.Session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sessions[sess.ID]; ok {
		return users.ErrConflict
	}
	sess.TokenHash = bytes.Clone(sess.TokenHash)
	s.sessions[sess.ID] = sess
	return nil
}

// SessionByTokenHash implements users.Sessions.
func (s *Users) SessionByTokenHash(_ context.Context, hash []byte) (users.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sess := range s.sessions {
		if bytes.Equal(sess.TokenHash, hash) {
			return sess, nil
		}
	}
	return users.Session{}, users.ErrNotFound
}

// RevokeSession implements users.Sessions.
func (s *Users) RevokeSession(_ context.Context, id string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[id]
	if !ok || !sess.RevokedAt.IsZero() {
		return users.ErrNotFound
	}
	sess.RevokedAt = at
	s.sessions[id] = sess
	return nil
}

// RevokeFamily implements users.Sessions.
func (s *Users) RevokeFamily(_ context.Context, familyID string, at time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id, sess := range s.sessions {
		fam := sess.FamilyID
		if fam == "" {
			fam = sess.ID
		}
		if fam == familyID && sess.RevokedAt.IsZero() {
			sess.RevokedAt = at
			s.sessions[id] = sess
			n++
		}
	}
	return n, nil
}

// CreateInvite implements users.Invites.
func (s *Users) CreateInvite(_ context.Context, codeHash []byte, _ string, _ time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.invites[string(codeHash)] = false
	return nil
}

// UseInvite implements users.Invites.
func (s *Users) UseInvite(_ context.Context, codeHash []byte, _ string, _ time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	used, ok := s.invites[string(codeHash)]
	if !ok || used {
		return users.ErrNotFound
	}
	s.invites[string(codeHash)] = true
	return nil
}

// Block implements users.Blocks.
func (s *Users) Block(_ context.Context, blocker, blocked string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.blocks[[2]string{blocker, blocked}]; !ok {
		s.blocks[[2]string{blocker, blocked}] = at
	}
	return nil
}

// Unblock implements users.Blocks.
func (s *Users) Unblock(_ context.Context, blocker, blocked string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.blocks, [2]string{blocker, blocked})
	return nil
}

// BlockedIDs implements users.Blocks.
func (s *Users) BlockedIDs(_ context.Context, blocker string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []string{}
	for k := range s.blocks {
		if k[0] == blocker {
			out = append(out, k[1])
		}
	}
	slices.Sort(out)
	return out, nil
}

// BlockerIDs implements users.Blocks.
func (s *Users) BlockerIDs(_ context.Context, blocked string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []string{}
	for k := range s.blocks {
		if k[1] == blocked {
			out = append(out, k[0])
		}
	}
	slices.Sort(out)
	return out, nil
}

// RecordFailure implements users.Throttle.
func (s *Users) RecordFailure(_ context.Context, key string, now time.Time, win time.Duration) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.throttle[key]
	if w.hits == 0 || !now.Before(w.start.Add(win)) {
		w = window{start: now}
	}
	w.hits++
	s.throttle[key] = w
	return w.hits, nil
}

// Failures implements users.Throttle.
func (s *Users) Failures(_ context.Context, key string, now time.Time, win time.Duration) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.throttle[key]
	if !ok || !now.Before(w.start.Add(win)) {
		return 0, nil
	}
	return w.hits, nil
}

// ResetFailures implements users.Throttle.
func (s *Users) ResetFailures(_ context.Context, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.throttle, key)
	return nil
}
