package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/parleychat/parley/internal/chatclient"
)

// seedPath is `parley dev --dev-seeding`'s fixture endpoint (internal/role/dev/seed.go).
const seedPath = "/dev/seed"

// Seeded is what one seeding call created: users with access tokens and rooms of all
// of them.
type Seeded struct {
	Users []chatclient.User
	Rooms []string
}

// Seed creates n users named prefix_0… sharing password, and rooms group rooms with
// all of them, in one call to a `parley dev --dev-seeding` on target. Any other server
// answers with an error: the endpoint does not exist there.
func Seed(ctx context.Context, target, prefix, password string, n, rooms int) (Seeded, error) {
	body, _ := json.Marshal(map[string]any{"prefix": prefix, "users": n, "rooms": rooms, "password": password})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(target, "/")+seedPath, bytes.NewReader(body))
	if err != nil {
		return Seeded{}, fmt.Errorf("seed: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Seeded{}, fmt.Errorf("seed: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return Seeded{}, fmt.Errorf("seed: %s from %s (is the target `parley dev --dev-seeding`?): %s", resp.Status, seedPath, bytes.TrimSpace(msg))
	}
	var out struct {
		Users []struct {
			ID       string `json:"id"`
			Username string `json:"username"`
			Token    string `json:"token"`
		} `json:"users"`
		Rooms []string `json:"rooms"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return Seeded{}, fmt.Errorf("seed: decode: %w", err)
	}
	if len(out.Users) != n || len(out.Rooms) != rooms {
		return Seeded{}, fmt.Errorf("seed: asked %d users and %d rooms, got %d and %d", n, rooms, len(out.Users), len(out.Rooms))
	}
	s := Seeded{Rooms: out.Rooms, Users: make([]chatclient.User, n)}
	for i, u := range out.Users {
		s.Users[i] = chatclient.User{ID: u.ID, Username: u.Username, Token: u.Token}
	}
	return s, nil
}

// WriteFixtures keeps seeded users (with their tokens) and rooms in path, readable by
// its owner only: the tokens are live credentials until they expire (--token-ttl).
func WriteFixtures(path string, s Seeded) error {
	b, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("fixtures: %w", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("fixtures: %w", err)
	}
	return nil
}

// ReadFixtures reads what WriteFixtures wrote.
func ReadFixtures(path string) (Seeded, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Seeded{}, fmt.Errorf("fixtures: %w", err)
	}
	var s Seeded
	if err := json.Unmarshal(b, &s); err != nil {
		return Seeded{}, fmt.Errorf("fixtures %s: %w", path, err)
	}
	return s, nil
}
