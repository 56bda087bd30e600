package webpush_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/parleychat/parley/runtime/webpush"
	"github.com/parleychat/parley/runtime/webpush/webpushtest"
)

func TestSubscriptionValidate(t *testing.T) {
	b, err := webpushtest.NewBrowser()
	if err != nil {
		t.Fatal(err)
	}
	good := b.Subscription("https://fcm.googleapis.example/wp/abc")
	point := b.Key.PublicKey().Bytes()
	notOnCurve := append([]byte{4}, make([]byte, 64)...)
	notOnCurve[64] = 1
	compressed := append([]byte{2}, point[1:33]...)
	b64 := base64.RawURLEncoding.EncodeToString
	padded := base64.URLEncoding.EncodeToString

	with := func(change func(*webpush.Subscription)) webpush.Subscription {
		s := good
		change(&s)
		return s
	}
	tests := []struct {
		name          string
		sub           webpush.Subscription
		allowInsecure bool
		wantField     string
		wantReason    webpush.InvalidReason // "" = valid
	}{
		{"browser subscription", good, false, "", ""},
		{"padded base64url keys", with(func(s *webpush.Subscription) {
			s.Keys = webpush.Keys{P256dh: padded(point), Auth: padded(b.Auth)}
		}), false, "", ""},
		{"http allowed for local push services", with(func(s *webpush.Subscription) { s.Endpoint = "http://127.0.0.1:9999/push" }), true, "", ""},
		{"no endpoint", with(func(s *webpush.Subscription) { s.Endpoint = "" }), false, "endpoint", webpush.ReasonEndpointMissing},
		{"http endpoint", with(func(s *webpush.Subscription) { s.Endpoint = "http://push.example/x" }), false, "endpoint", webpush.ReasonEndpointInsecure},
		{"ftp endpoint even when insecure allowed", with(func(s *webpush.Subscription) { s.Endpoint = "ftp://push.example/x" }), true, "endpoint", webpush.ReasonEndpointInsecure},
		{"relative endpoint", with(func(s *webpush.Subscription) { s.Endpoint = "/push/x" }), false, "endpoint", webpush.ReasonEndpointInvalid},
		{"endpoint with credentials", with(func(s *webpush.Subscription) { s.Endpoint = "https://user:pw@push.example/x" }), false, "endpoint", webpush.ReasonEndpointInvalid},
		{"unparseable endpoint", with(func(s *webpush.Subscription) { s.Endpoint = "https://push.example/%zz" }), false, "endpoint", webpush.ReasonEndpointInvalid},
		{"huge endpoint", with(func(s *webpush.Subscription) { s.Endpoint = "https://push.example/" + strings.Repeat("a", 3000) }), false, "endpoint", webpush.ReasonEndpointTooLong},
		{"no p256dh", with(func(s *webpush.Subscription) { s.Keys.P256dh = "" }), false, "keys.p256dh", webpush.ReasonP256dhMissing},
		{"p256dh in standard base64", with(func(s *webpush.Subscription) { s.Keys.P256dh = "ab+/" + s.Keys.P256dh[4:] }), false, "keys.p256dh", webpush.ReasonP256dhEncoding},
		{"p256dh too short", with(func(s *webpush.Subscription) { s.Keys.P256dh = b64(point[:64]) }), false, "keys.p256dh", webpush.ReasonP256dhLength},
		{"p256dh compressed point", with(func(s *webpush.Subscription) { s.Keys.P256dh = b64(compressed) }), false, "keys.p256dh", webpush.ReasonP256dhLength},
		{"p256dh not on the curve", with(func(s *webpush.Subscription) { s.Keys.P256dh = b64(notOnCurve) }), false, "keys.p256dh", webpush.ReasonP256dhNotOnCurve},
		{"no auth", with(func(s *webpush.Subscription) { s.Keys.Auth = "" }), false, "keys.auth", webpush.ReasonAuthMissing},
		{"auth not base64", with(func(s *webpush.Subscription) { s.Keys.Auth = "not base64!" }), false, "keys.auth", webpush.ReasonAuthEncoding},
		{"auth 15 bytes", with(func(s *webpush.Subscription) { s.Keys.Auth = b64(b.Auth[:15]) }), false, "keys.auth", webpush.ReasonAuthLength},
		{"auth 32 bytes", with(func(s *webpush.Subscription) { s.Keys.Auth = b64(append(b.Auth, b.Auth...)) }), false, "keys.auth", webpush.ReasonAuthLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.sub.Validate(tt.allowInsecure)
			if tt.wantReason == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want valid", err)
				}
				return
			}
			var ie *webpush.InvalidSubscriptionError
			if !errors.As(err, &ie) {
				t.Fatalf("Validate = %v, want *InvalidSubscriptionError", err)
			}
			if ie.Field != tt.wantField || ie.Reason != tt.wantReason {
				t.Fatalf("got %s/%s (%v), want %s/%s", ie.Field, ie.Reason, err, tt.wantField, tt.wantReason)
			}
			if !errors.Is(err, webpush.ErrInvalidSubscription) {
				t.Fatalf("%v does not match ErrInvalidSubscription", err)
			}
		})
	}
}

// TestSubscriptionFromBrowserJSON decodes what PushSubscription.toJSON() produces,
// expirationTime included, which the store does not keep.
func TestSubscriptionFromBrowserJSON(t *testing.T) {
	b, err := webpushtest.NewBrowser()
	if err != nil {
		t.Fatal(err)
	}
	want := b.Subscription("https://updates.push.services.mozilla.example/wpush/v2/gAAAAABn")
	raw := `{"endpoint":"` + want.Endpoint + `","expirationTime":null,"keys":{"auth":"` + want.Keys.Auth + `","p256dh":"` + want.Keys.P256dh + `"}}`
	var got webpush.Subscription
	if err := json.Unmarshal([]byte(raw), &got); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("decoded %+v, want %+v", got, want)
	}
	if err := got.Validate(false); err != nil {
		t.Fatalf("Validate: %v", err)
	}
}
