package protocol

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// clientFrameCase is a raw client frame and the decoder's verdict on it.
type clientFrameCase struct {
	name string
	raw  string
	want ErrorCode // "" means accepted
}

// clientFrameCases are shared with schema_test.go, which checks that the JSON Schema
// agrees with the decoder on them.
func clientFrameCases() []clientFrameCase {
	long := strings.Repeat("x", MaxIDLength+1)
	return []clientFrameCase{
		{"send", `{"type":"send","id":"c1","room":"r1","body":"hi"}`, ""},
		{"send with attachments", `{"type":"send","id":"c1","room":"r1","attachments":["f1"]}`, ""},
		{"typing", `{"type":"typing","room":"r1"}`, ""},
		{"mark read", `{"type":"mark","room":"r1","kind":"read","seq":4}`, ""},
		{"resume", `{"type":"resume","rooms":{"r1":3,"r2":0}}`, ""},
		{"ping", `{"type":"ping","id":"p"}`, ""},
		{"watch", `{"type":"watch","users":["u1","u2"]}`, ""},
		{"watch nobody", `{"type":"watch","users":[]}`, ""},
		{"watch empty user", `{"type":"watch","users":[""]}`, CodeInvalid},
		{"not json", `hello`, CodeBadFrame},
		{"array", `[1,2]`, CodeBadFrame},
		{"unknown field", `{"type":"ping","extra":1}`, CodeBadFrame},
		{"trailing data", `{"type":"ping"}{"type":"ping"}`, CodeBadFrame},
		{"wrong field type", `{"type":"mark","room":"r","kind":"read","seq":"4"}`, CodeBadFrame},
		{"no type", `{"room":"r1"}`, CodeUnknownType},
		{"server frame type", `{"type":"ack"}`, CodeUnknownType},
		{"send without id", `{"type":"send","room":"r1","body":"hi"}`, CodeInvalid},
		{"send without room", `{"type":"send","id":"c1","body":"hi"}`, CodeInvalid},
		{"send long id", `{"type":"send","id":"` + long + `","room":"r1"}`, CodeInvalid},
		{"send bad utf8", "{\"type\":\"send\",\"id\":\"c\",\"room\":\"r\",\"body\":\"\xff\"}", CodeBadFrame},
		{"mark bad kind", `{"type":"mark","room":"r1","kind":"seen","seq":1}`, CodeInvalid},
		{"mark zero seq", `{"type":"mark","room":"r1","kind":"read","seq":0}`, CodeInvalid},
		{"resume negative", `{"type":"resume","rooms":{"r1":-1}}`, CodeInvalid},
		{"typing no room", `{"type":"typing"}`, CodeInvalid},
	}
}

func TestDecodeClientFrame(t *testing.T) {
	for _, tt := range clientFrameCases() {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeClientFrame([]byte(tt.raw))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var fe *BadFrameError
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want *BadFrameError with %s", err, tt.want)
			}
			if fe.Code != tt.want {
				t.Fatalf("code = %s, want %s (%s)", fe.Code, tt.want, fe.Message)
			}
		})
	}
}

func TestErrorCodesAreDistinct(t *testing.T) {
	seen := map[ErrorCode]bool{}
	for _, c := range ErrorCodes() {
		if seen[c] {
			t.Fatalf("code %q listed twice", c)
		}
		seen[c] = true
	}
	for _, r := range Reasons() {
		if !seen[ErrorCode(r)] {
			t.Fatalf("reason %q is not a WebSocket error code", r)
		}
	}
}

func TestServerFrameOmitsEmptyFields(t *testing.T) {
	b, err := json.Marshal(ErrorFrame(CodeRateLimited, "slow down", FrameSend, "c1"))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"error","id":"c1","ref":"send","code":"rate_limited","message":"slow down"}`
	if string(b) != want {
		t.Fatalf("got %s\nwant %s", b, want)
	}
}

// clientFrameSeeds seed FuzzDecodeClientFrame; schema_test.go checks the schema on them too.
var clientFrameSeeds = []string{
	`{"type":"send","id":"c1","room":"r1","body":"hi","attachments":["a"]}`,
	`{"type":"mark","room":"r1","kind":"delivered","seq":9}`,
	`{"type":"resume","rooms":{"r":1}}`,
	`{"type":"typing","room":"r"}`,
	`{"type":"ping"}`,
	`{"type":"send","id":"","room":"r"}`,
	`{}`, `null`, `[]`, `"x"`, ``,
}

func FuzzDecodeClientFrame(f *testing.F) {
	for _, seed := range clientFrameSeeds {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		fr, err := DecodeClientFrame(raw)
		if err != nil {
			var fe *BadFrameError
			if !errors.As(err, &fe) || fe.Code == "" {
				t.Fatalf("error without a code: %v", err)
			}
			return
		}
		// An accepted frame survives a round trip unchanged and is accepted again.
		again, err := json.Marshal(fr)
		if err != nil {
			t.Fatal(err)
		}
		fr2, err := DecodeClientFrame(again)
		if err != nil {
			t.Fatalf("re-encoded frame refused: %v (%s)", err, again)
		}
		if !reflect.DeepEqual(normalizeFrame(fr), normalizeFrame(fr2)) {
			t.Fatalf("round trip changed the frame:\n%+v\n%+v", fr, fr2)
		}
	})
}

// normalizeFrame makes empty and nil collections equal, as omitempty does on the wire.
func normalizeFrame(f ClientFrame) ClientFrame {
	if len(f.Attachments) == 0 {
		f.Attachments = nil
	}
	if len(f.Rooms) == 0 {
		f.Rooms = nil
	}
	return f
}
