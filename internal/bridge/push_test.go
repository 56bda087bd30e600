package bridge

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/parleychat/parley/runtime/webpush"
	"github.com/parleychat/parley/runtime/webpush/webpushtest"
)

func TestPushSubscriptionsAreCappedAndOwned(t *testing.T) {
	ctx := context.Background()
	p := Push{Store: webpush.NewMemoryStore(), Config: webpush.Config{VAPIDPublicKey: "k"}}
	b, err := webpushtest.NewBrowser()
	if err != nil {
		t.Fatal(err)
	}
	endpoint := func(i int) string { return fmt.Sprintf("https://push.example/%d", i) }
	for i := range webpush.MaxSubscriptionsPerUser {
		if err := p.Subscribe(ctx, "ann", b.Subscription(endpoint(i))); err != nil {
			t.Fatalf("subscription %d: %v", i, err)
		}
	}
	if err := p.Subscribe(ctx, "ann", b.Subscription(endpoint(99))); !errors.Is(err, webpush.ErrTooManySubscriptions) {
		t.Fatalf("one more subscription: %v, want ErrTooManySubscriptions", err)
	}
	if err := p.Subscribe(ctx, "ann", b.Subscription(endpoint(3))); err != nil {
		t.Fatalf("re-subscribing a known endpoint: %v", err)
	}
	if err := p.Unsubscribe(ctx, "bob", endpoint(3)); !errors.Is(err, webpush.ErrSubscriptionNotFound) {
		t.Fatalf("bob removed ann's subscription: %v", err)
	}
	if err := p.Unsubscribe(ctx, "ann", endpoint(3)); err != nil {
		t.Fatal(err)
	}
	if err := p.Subscribe(ctx, "ann", webpush.Subscription{Endpoint: "http://insecure.example/1", Keys: b.Subscription("x").Keys}); !errors.Is(err, webpush.ErrInvalidSubscription) {
		t.Fatalf("http endpoint: %v, want ErrInvalidSubscription", err)
	}
}
