package protocol

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

var at = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// samples is one valid payload of every type; the golden files pin their wire form.
func samples() map[string]Payload {
	return map[string]Payload{
		"message_sent": &MessageSent{RoomID: "room-1", SenderID: "user-a", ClientID: "c-1",
			Body: "hello", Attachments: []string{"file-1"}, SentAt: at},
		"message_delivered": &MessageDelivered{RoomID: "room-1", SenderID: "user-a", ClientID: "c-1",
			ServerID: "m-1", Seq: 7, Body: "hello", SentAt: at, CreatedAt: at.Add(time.Millisecond)},
		"message_rejected": &MessageRejected{RoomID: "room-1", SenderID: "user-a", ClientID: "c-1",
			Reason: ReasonBlocked, Detail: "the recipient blocked you"},
		"receipt":         &Receipt{RoomID: "room-1", UserID: "user-b", Kind: ReceiptRead, Seq: 7},
		"receipt_updated": &ReceiptUpdated{RoomID: "room-1", UserID: "user-b", DeliveredSeq: 9, ReadSeq: 7, UpdatedAt: at},
		"message_updated": &MessageUpdated{RoomID: "room-1", MessageID: "m-1", Seq: 7, SenderID: "user-a", ActorID: "user-a",
			EventSeq: 2, Kind: UpdateEdit, Body: "hello, edited", EditedAt: &at, At: at},
	}
}

func TestEncodeGolden(t *testing.T) {
	for name, p := range samples() {
		t.Run(name, func(t *testing.T) {
			got, err := EncodeWith(p, "evt-1", at)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", name+".golden.json")
			if *update {
				if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, bytes.TrimSpace(want)) {
				t.Fatalf("wire form changed:\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	for name, p := range samples() {
		t.Run(name, func(t *testing.T) {
			raw, err := EncodeWith(p, "evt-1", at)
			if err != nil {
				t.Fatal(err)
			}
			ev, err := Decode(raw)
			if err != nil {
				t.Fatal(err)
			}
			if ev.ID != "evt-1" || !ev.At.Equal(at) {
				t.Fatalf("envelope = %q %v", ev.ID, ev.At)
			}
			if !reflect.DeepEqual(ev.Payload, p) {
				t.Fatalf("payload = %#v, want %#v", ev.Payload, p)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	const okData = `{"room_id":"r","sender_id":"s","client_id":"c","body":"x"}`
	tests := []struct {
		name string
		raw  string
		want error
	}{
		{"not json", `hello`, ErrMalformed},
		{"trailing garbage", `{"v":1,"type":"message_sent","id":"e","at":"2026-01-02T03:04:05Z","data":` + okData + `} x`, ErrMalformed},
		{"empty", ``, ErrMalformed},
		{"array", `[]`, ErrMalformed},
		{"missing version", `{"type":"message_sent","id":"e","at":"2026-01-02T03:04:05Z","data":` + okData + `}`, ErrMalformed},
		{"version as string", `{"v":"1","type":"message_sent","id":"e","at":"2026-01-02T03:04:05Z","data":` + okData + `}`, ErrMalformed},
		{"future major", `{"v":2,"type":"message_sent","id":"e","at":"2026-01-02T03:04:05Z","data":` + okData + `}`, ErrUnsupportedVersion},
		{"negative version", `{"v":-1,"type":"message_sent","id":"e","at":"2026-01-02T03:04:05Z","data":` + okData + `}`, ErrUnsupportedVersion},
		{"unknown type", `{"v":1,"type":"message_edited","id":"e","at":"2026-01-02T03:04:05Z","data":` + okData + `}`, ErrUnknownType},
		{"missing type", `{"v":1,"id":"e","at":"2026-01-02T03:04:05Z","data":` + okData + `}`, ErrUnknownType},
		{"missing id", `{"v":1,"type":"message_sent","at":"2026-01-02T03:04:05Z","data":` + okData + `}`, ErrMalformed},
		{"missing at", `{"v":1,"type":"message_sent","id":"e","data":` + okData + `}`, ErrMalformed},
		{"bad at", `{"v":1,"type":"message_sent","id":"e","at":"yesterday","data":` + okData + `}`, ErrMalformed},
		{"data null", `{"v":1,"type":"message_sent","id":"e","at":"2026-01-02T03:04:05Z","data":null}`, ErrMalformed},
		{"data string", `{"v":1,"type":"message_sent","id":"e","at":"2026-01-02T03:04:05Z","data":"x"}`, ErrMalformed},
		{"body wrong type", `{"v":1,"type":"message_sent","id":"e","at":"2026-01-02T03:04:05Z","data":{"room_id":"r","sender_id":"s","client_id":"c","body":3}}`, ErrMalformed},
		{"missing room", `{"v":1,"type":"message_sent","id":"e","at":"2026-01-02T03:04:05Z","data":{"sender_id":"s","client_id":"c","body":"x"}}`, ErrInvalid},
		{"long client id", `{"v":1,"type":"message_sent","id":"e","at":"2026-01-02T03:04:05Z","data":{"room_id":"r","sender_id":"s","client_id":"` + strings.Repeat("c", MaxIDLength+1) + `","body":"x"}}`, ErrInvalid},
		{"empty attachment id", `{"v":1,"type":"message_sent","id":"e","at":"2026-01-02T03:04:05Z","data":{"room_id":"r","sender_id":"s","client_id":"c","attachments":[""]}}`, ErrInvalid},
		{"receipt bad kind", `{"v":1,"type":"receipt","id":"e","at":"2026-01-02T03:04:05Z","data":{"room_id":"r","user_id":"u","kind":"seen","seq":3}}`, ErrInvalid},
		{"receipt zero seq", `{"v":1,"type":"receipt","id":"e","at":"2026-01-02T03:04:05Z","data":{"room_id":"r","user_id":"u","kind":"read","seq":0}}`, ErrInvalid},
		{"rejected unknown reason", `{"v":1,"type":"message_rejected","id":"e","at":"2026-01-02T03:04:05Z","data":{"sender_id":"s","client_id":"c","reason":"nope"}}`, ErrInvalid},
		{"read ahead of delivered", `{"v":1,"type":"receipt_updated","id":"e","at":"2026-01-02T03:04:05Z","data":{"room_id":"r","user_id":"u","delivered_seq":1,"read_seq":2}}`, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode([]byte(tt.raw))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decode error = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestDecodeTypedErrors(t *testing.T) {
	_, err := Decode([]byte(`{"v":3,"type":"message_sent","id":"e","at":"2026-01-02T03:04:05Z","data":{}}`))
	var ver *UnsupportedVersionError
	if !errors.As(err, &ver) || ver.Version != 3 {
		t.Fatalf("err = %v, want UnsupportedVersionError{3}", err)
	}
	_, err = Decode([]byte(`{"v":1,"type":"typing","id":"e","at":"2026-01-02T03:04:05Z","data":{}}`))
	var typ *UnknownTypeError
	if !errors.As(err, &typ) || typ.Type != "typing" {
		t.Fatalf("err = %v, want UnknownTypeError{typing}", err)
	}
	_, err = Decode([]byte(`{"v":1,"type":"message_sent","id":"e","at":"2026-01-02T03:04:05Z","data":{"room_id":"r","client_id":"c"}}`))
	var field *FieldError
	if !errors.As(err, &field) || field.Field != "sender_id" {
		t.Fatalf("err = %v, want FieldError{sender_id}", err)
	}
}

// Fields added within a major version must not break older readers.
func TestDecodeIgnoresUnknownFieldsWithinVersion(t *testing.T) {
	raw := `{"v":1,"type":"message_sent","id":"e","at":"2026-01-02T03:04:05Z","trace":"x",` +
		`"data":{"room_id":"r","sender_id":"s","client_id":"c","body":"hi","reply_to":"m-0"}}`
	ev, err := Decode([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if m := ev.Payload.(*MessageSent); m.Body != "hi" || m.RoomID != "r" {
		t.Fatalf("payload = %#v", m)
	}
}

func TestEncodeRefusesInvalidPayload(t *testing.T) {
	_, err := Encode(&MessageRejected{SenderID: "s", ClientID: "c", Reason: "later"})
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("err = %v, want ErrInvalid", err)
	}
}

func TestSalvageMessageRef(t *testing.T) {
	tests := []struct {
		name   string
		raw    string
		want   MessageRef
		wantOK bool
	}{
		{"unknown version keeps ids", `{"v":9,"data":{"room_id":"r","sender_id":"s","client_id":"c"}}`, MessageRef{"r", "s", "c"}, true},
		{"wrong-typed body", `{"v":1,"type":"message_sent","data":{"sender_id":"s","client_id":"c","body":1}}`, MessageRef{"", "s", "c"}, true},
		{"no client id", `{"v":1,"data":{"sender_id":"s"}}`, MessageRef{}, false},
		{"not json", `\x00\x01`, MessageRef{}, false},
		{"data not object", `{"data":[1,2]}`, MessageRef{}, false},
		{"sender not string", `{"data":{"sender_id":5,"client_id":"c"}}`, MessageRef{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := SalvageMessageRef([]byte(tt.raw))
			if ok != tt.wantOK || (ok && got != tt.want) {
				t.Fatalf("SalvageMessageRef = %+v, %v; want %+v, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestReasonsAreDistinctAndValid(t *testing.T) {
	seen := map[Reason]bool{}
	for _, r := range Reasons() {
		if !r.Valid() || seen[r] {
			t.Fatalf("reason %q invalid or duplicated", r)
		}
		seen[r] = true
	}
	if Reason("nope").Valid() {
		t.Fatal("unknown reason reported valid")
	}
}

func FuzzDecode(f *testing.F) {
	for _, p := range samples() {
		raw, err := EncodeWith(p, "evt-1", at)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte(`{"v":2,"type":"message_sent","id":"e","at":"2026-01-02T03:04:05Z","data":{}}`))
	f.Add([]byte(`{"v":1,"type":"message_sent","id":"e","at":"2026-01-02T03:04:05Z","data":{"room_id":"r","sender_id":"s","client_id":"c","body":"\ud800"}}`))
	f.Add([]byte(`{"v":1,"type":"receipt","id":"e","at":"2026-01-02T03:04:05Z","data":{"room_id":"r","user_id":"u","kind":"read","seq":9223372036854775807}}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		ev, err := Decode(raw)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrUnsupportedVersion) &&
				!errors.Is(err, ErrUnknownType) && !errors.Is(err, ErrInvalid) {
				t.Fatalf("untyped decode error: %v", err)
			}
			return
		}
		// Whatever decodes must re-encode and decode to the same payload.
		again, err := EncodeWith(ev.Payload, ev.ID, ev.At)
		if err != nil {
			t.Fatalf("re-encode of a decoded event: %v", err)
		}
		ev2, err := Decode(again)
		if err != nil {
			t.Fatalf("decode of a re-encoded event: %v", err)
		}
		if !reflect.DeepEqual(ev.Payload, ev2.Payload) {
			t.Fatalf("round trip changed the payload: %#v vs %#v", ev.Payload, ev2.Payload)
		}
	})
}
