package users

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Password hashes run a bounded number at a time: a register or login that finds every
// slot taken waits, and gives up when its request ends.
func TestPasswordHashingIsBounded(t *testing.T) {
	auth, err := NewAuth([]byte("0123456789abcdef0123456789abcdef"), time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Password = PasswordParams{Time: 1, Memory: 64, Threads: 1}
	cfg.MaxConcurrentHashes = 1
	svc, err := NewService(nopStore{}, auth, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	release, err := svc.hashTurn(context.Background()) // the only slot
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, _, err = svc.Register(ctx, Registration{Username: "waiter", Password: "correct horse"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("register with every hashing slot taken: %v, want the request's deadline", err)
	}
	release()
	if _, err := svc.hashPassword(context.Background(), "correct horse"); err != nil {
		t.Fatalf("after the slot is free: %v", err)
	}
}

// nopStore is a Store that must not be reached past hashing.
type nopStore struct{ Store }
