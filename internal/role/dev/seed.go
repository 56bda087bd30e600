package dev

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/parleychat/parley/runtime/chat"
	"github.com/parleychat/parley/runtime/users"
)

// SeedPath is the benchmark fixture endpoint; it exists only under --dev-seeding.
const SeedPath = "/dev/seed"

// MaxSeedUsers bounds one seeding call.
const MaxSeedUsers = 20000

// SeedRequest asks for Users accounts named Prefix_0…, all with Password, and Rooms
// group rooms (owned by the first user) that every one of them is a member of.
type SeedRequest struct {
	Prefix   string `json:"prefix"`
	Users    int    `json:"users"`
	Rooms    int    `json:"rooms"`
	Password string `json:"password"`
}

// SeededUser is one created account with an access token, so that a load driver can
// connect without a login (an argon2id verification) per user.
type SeededUser struct {
	ID       string `json:"id"`
	Username string `json:"username"`
	Token    string `json:"token"`
}

// SeedResponse is what one seeding call created.
type SeedResponse struct {
	Users []SeededUser `json:"users"`
	Rooms []string     `json:"rooms"`
}

var errSeed = errors.New("invalid seed request")

// seeder writes fixtures straight into the stores: one argon2id hash shared by every
// account (what made registering 1 050 users take 7.5 minutes) and rooms created with
// all their members at once (POST /rooms names at most chat.MaxGroupInitial). The
// room size limit (--max-room-members) still applies.
type seeder struct {
	users users.Accounts
	rooms interface {
		CreateGroupRoom(context.Context, chat.Room, []string) error
	}
	tokens   *users.Auth
	maxRoom  int
	hashOnce func(password string) (string, error)
}

func (s seeder) seed(ctx context.Context, req SeedRequest) (SeedResponse, error) {
	switch {
	case req.Users < 1 || req.Users > MaxSeedUsers:
		return SeedResponse{}, fmt.Errorf("%w: users must be between 1 and %d", errSeed, MaxSeedUsers)
	case req.Rooms < 0 || req.Rooms > 100:
		return SeedResponse{}, fmt.Errorf("%w: rooms must be between 0 and 100", errSeed)
	case req.Rooms > 0 && req.Users > s.maxRoom:
		return SeedResponse{}, fmt.Errorf("%w: %d members exceed --max-room-members %d", errSeed, req.Users, s.maxRoom)
	}
	if err := users.CheckUsername(fmt.Sprintf("%s_%d", req.Prefix, req.Users-1)); err != nil {
		return SeedResponse{}, fmt.Errorf("%w: prefix: %w", errSeed, err)
	}
	if err := users.CheckPassword(req.Password); err != nil {
		return SeedResponse{}, fmt.Errorf("%w: %w", errSeed, err)
	}
	hash, err := s.hashOnce(req.Password)
	if err != nil {
		return SeedResponse{}, fmt.Errorf("hash: %w", err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	out := SeedResponse{Users: make([]SeededUser, req.Users)}
	ids := make([]string, req.Users)
	for i := range out.Users {
		name := fmt.Sprintf("%s_%d", req.Prefix, i)
		a := users.Account{User: users.User{ID: users.NewID(), Username: name, DisplayName: name, CreatedAt: now}, PasswordHash: hash}
		if err := s.users.CreateAccount(ctx, a); err != nil {
			if errors.Is(err, users.ErrConflict) {
				return SeedResponse{}, fmt.Errorf("%w: username %s taken", errSeed, name)
			}
			return SeedResponse{}, fmt.Errorf("create account %s: %w", name, err)
		}
		tok, _, err := s.tokens.IssueAccessToken(a.ID)
		if err != nil {
			return SeedResponse{}, fmt.Errorf("token: %w", err)
		}
		out.Users[i] = SeededUser{ID: a.ID, Username: name, Token: tok}
		ids[i] = a.ID
	}
	for i := range req.Rooms {
		r := chat.Room{ID: users.NewID(), Kind: chat.KindGroup, Name: fmt.Sprintf("%s %d", req.Prefix, i), OwnerID: ids[0], CreatedAt: now}
		if err := s.rooms.CreateGroupRoom(ctx, r, ids); err != nil {
			return SeedResponse{}, fmt.Errorf("create room: %w", err)
		}
		out.Rooms = append(out.Rooms, r.ID)
	}
	return out, nil
}

// ServeHTTP answers POST /dev/seed from loopback peers only.
func (s seeder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		http.Error(w, `{"error":{"code":"forbidden","message":"seeding is for loopback clients only"}}`, http.StatusForbidden)
		return
	}
	var req SeedRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096)).Decode(&req); err != nil {
		http.Error(w, `{"error":{"code":"invalid_request","message":"bad JSON"}}`, http.StatusBadRequest)
		return
	}
	res, err := s.seed(r.Context(), req)
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		status, code := http.StatusInternalServerError, "internal"
		if errors.Is(err, errSeed) {
			status, code = http.StatusBadRequest, "invalid_request"
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": err.Error()}})
		return
	}
	_ = json.NewEncoder(w).Encode(res)
}

// checkSeedingListener refuses --dev-seeding on anything but a loopback listener: the
// endpoint hands out tokens for accounts it creates, unauthenticated.
func checkSeedingListener(ln net.Listener) error {
	a, ok := ln.Addr().(*net.TCPAddr)
	if !ok || !a.IP.IsLoopback() {
		return fmt.Errorf("--dev-seeding needs a loopback --listen address, not %s", ln.Addr())
	}
	return nil
}
