package webpushtest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/parleychat/parley/runtime/webpush"
)

func sampleSubscription(t *testing.T, endpoint string) webpush.Subscription {
	t.Helper()
	b, err := NewBrowser()
	if err != nil {
		t.Fatal(err)
	}
	return b.Subscription(endpoint)
}

func list(t *testing.T, s webpush.Store, user string) []webpush.Subscription {
	t.Helper()
	subs, err := s.ListByUser(context.Background(), user)
	if err != nil {
		t.Fatalf("list %s: %v", user, err)
	}
	return subs
}

func add(t *testing.T, s webpush.Store, user string, sub webpush.Subscription) {
	t.Helper()
	if err := s.Add(context.Background(), user, sub); err != nil {
		t.Fatalf("add %s for %s: %v", sub.Endpoint, user, err)
	}
}

func equal(a, b []webpush.Subscription) bool {
	if len(a) == 0 && len(b) == 0 {
		return true // nil and empty are both "none"
	}
	return reflect.DeepEqual(a, b)
}

// StoreContract runs the contract against stores made by newStore, one per subtest.
func StoreContract(t *testing.T, newStore func(t *testing.T) webpush.Store) {
	ctx := context.Background()

	t.Run("add then list returns every field", func(t *testing.T) {
		s := newStore(t)
		sub := sampleSubscription(t, "https://push.example/send/a")
		add(t, s, "alice", sub)
		if got := list(t, s, "alice"); !equal(got, []webpush.Subscription{sub}) {
			t.Fatalf("list = %+v, want [%+v]", got, sub)
		}
	})

	t.Run("unknown user has none and no error", func(t *testing.T) {
		s := newStore(t)
		add(t, s, "alice", sampleSubscription(t, "https://push.example/send/a"))
		if got := list(t, s, "bob"); len(got) != 0 {
			t.Fatalf("bob has %+v, want none", got)
		}
	})

	t.Run("list is one user's subscriptions ordered by endpoint bytes", func(t *testing.T) {
		s := newStore(t)
		// Byte order puts "Z" before "a"; a linguistic collation would not.
		a := sampleSubscription(t, "https://push.example/send/a")
		z := sampleSubscription(t, "https://push.example/send/Z")
		m := sampleSubscription(t, "https://other.example/ü")
		add(t, s, "alice", a)
		add(t, s, "bob", sampleSubscription(t, "https://push.example/send/b"))
		add(t, s, "alice", z)
		add(t, s, "alice", m)
		want := []webpush.Subscription{m, z, a}
		if got := list(t, s, "alice"); !equal(got, want) {
			t.Fatalf("list = %+v\nwant   %+v", got, want)
		}
	})

	t.Run("batch list returns each user's subscriptions in one call", func(t *testing.T) {
		s := newStore(t)
		batch, ok := s.(interface {
			ListByUsers(ctx context.Context, userIDs []string) (map[string][]webpush.Subscription, error)
		})
		if !ok {
			t.Fatalf("%T does not list many users at once (ListByUsers)", s)
		}
		a := sampleSubscription(t, "https://push.example/send/a")
		z := sampleSubscription(t, "https://push.example/send/Z")
		b := sampleSubscription(t, "https://push.example/send/b")
		add(t, s, "alice", a)
		add(t, s, "alice", z)
		add(t, s, "bob", b)
		add(t, s, "carol", sampleSubscription(t, "https://push.example/send/c"))
		got, err := batch.ListByUsers(ctx, []string{"alice", "bob", "dave"})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || !equal(got["alice"], []webpush.Subscription{z, a}) || !equal(got["bob"], []webpush.Subscription{b}) {
			t.Fatalf("ListByUsers = %+v, want alice's two (byte order) and bob's, not carol's", got)
		}
	})

	t.Run("add is idempotent on endpoint and keeps the latest keys", func(t *testing.T) {
		s := newStore(t)
		first := sampleSubscription(t, "https://push.example/send/a")
		add(t, s, "alice", first)
		add(t, s, "alice", first)
		if got := list(t, s, "alice"); !equal(got, []webpush.Subscription{first}) {
			t.Fatalf("after adding twice: %+v", got)
		}
		renewed := sampleSubscription(t, first.Endpoint)
		add(t, s, "alice", renewed)
		if got := list(t, s, "alice"); !equal(got, []webpush.Subscription{renewed}) {
			t.Fatalf("after renewing keys: %+v, want %+v", got, renewed)
		}
	})

	t.Run("an endpoint added by another user moves to that user", func(t *testing.T) {
		s := newStore(t)
		sub := sampleSubscription(t, "https://push.example/send/shared-browser")
		add(t, s, "alice", sub)
		add(t, s, "bob", sub)
		if got := list(t, s, "alice"); len(got) != 0 {
			t.Fatalf("alice still has %+v", got)
		}
		if got := list(t, s, "bob"); !equal(got, []webpush.Subscription{sub}) {
			t.Fatalf("bob has %+v, want %+v", got, sub)
		}
	})

	t.Run("delete removes only that endpoint", func(t *testing.T) {
		s := newStore(t)
		a := sampleSubscription(t, "https://push.example/send/a")
		b := sampleSubscription(t, "https://push.example/send/b")
		add(t, s, "alice", a)
		add(t, s, "alice", b)
		if err := s.Delete(ctx, a.Endpoint); err != nil {
			t.Fatalf("delete: %v", err)
		}
		if got := list(t, s, "alice"); !equal(got, []webpush.Subscription{b}) {
			t.Fatalf("after delete: %+v, want [%+v]", got, b)
		}
	})

	t.Run("delete of a missing endpoint is ErrSubscriptionNotFound", func(t *testing.T) {
		s := newStore(t)
		a := sampleSubscription(t, "https://push.example/send/a")
		add(t, s, "alice", a)
		if err := s.Delete(ctx, a.Endpoint); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, a.Endpoint); !errors.Is(err, webpush.ErrSubscriptionNotFound) {
			t.Fatalf("second delete = %v, want ErrSubscriptionNotFound", err)
		}
		if err := s.Delete(ctx, "https://push.example/never"); !errors.Is(err, webpush.ErrSubscriptionNotFound) {
			t.Fatalf("delete of unknown = %v, want ErrSubscriptionNotFound", err)
		}
	})

	t.Run("concurrent adds of one endpoint leave one subscription", func(t *testing.T) {
		s := newStore(t)
		const endpoint = "https://push.example/send/race"
		subs := make([]webpush.Subscription, 8)
		for i := range subs {
			subs[i] = sampleSubscription(t, endpoint)
		}
		var wg sync.WaitGroup
		errs := make(chan error, len(subs))
		for _, sub := range subs {
			wg.Go(func() {
				if err := s.Add(ctx, "alice", sub); err != nil {
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("concurrent add: %v", err)
		}
		got := list(t, s, "alice")
		if len(got) != 1 {
			t.Fatalf("got %d subscriptions, want 1: %+v", len(got), got)
		}
		found := false
		for _, sub := range subs {
			found = found || reflect.DeepEqual(sub, got[0])
		}
		if !found {
			t.Fatalf("stored %+v is none of the added subscriptions", got[0])
		}
	})

	t.Run("many users with many subscriptions", func(t *testing.T) {
		s := newStore(t)
		want := map[string]int{}
		for u := range 5 {
			user := fmt.Sprintf("user-%d", u)
			for i := range u + 1 {
				add(t, s, user, sampleSubscription(t, fmt.Sprintf("https://push.example/%s/%d", user, i)))
				want[user]++
			}
		}
		for user, n := range want {
			if got := list(t, s, user); len(got) != n {
				t.Errorf("%s has %d subscriptions, want %d", user, len(got), n)
			}
		}
	})
}
