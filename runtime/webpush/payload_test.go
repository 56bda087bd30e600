package webpush_test

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/parleychat/parley/runtime/webpush"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestPayloadFromMessage(t *testing.T) {
	msg := webpush.Message{ID: "m-9", Room: "r-1", Sender: "u-ann", SenderName: "Ann", Body: "  hello\n\tworld  ", Seq: 3}
	tests := []struct {
		name        string
		body        string
		opts        webpush.PreviewOptions
		wantPreview string
	}{
		{"whitespace collapsed", msg.Body, webpush.PreviewOptions{}, "hello world"},
		{"hidden", msg.Body, webpush.PreviewOptions{Hide: true}, ""},
		{"cut to MaxRunes with an ellipsis", "ab cd ef", webpush.PreviewOptions{MaxRunes: 4}, "ab…"},
		{"exactly MaxRunes is not cut", "abcd", webpush.PreviewOptions{MaxRunes: 4}, "abcd"},
		{"runes, not bytes", "żółw🐢żółw", webpush.PreviewOptions{MaxRunes: 6}, "żółw🐢…"},
		{"default limit", strings.Repeat("x", 500), webpush.PreviewOptions{}, strings.Repeat("x", webpush.DefaultPreviewRunes-1) + "…"},
		{"invalid UTF-8 replaced", "a\xffb", webpush.PreviewOptions{}, "a\uFFFDb"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := msg
			m.Body = tt.body
			p := webpush.PayloadFromMessage(m, tt.opts)
			want := webpush.Payload{Type: "message", Room: "r-1", MessageID: "m-9", Sender: "u-ann", SenderName: "Ann", Preview: tt.wantPreview, Seq: 3}
			if p != want {
				t.Fatalf("payload %+v\nwant    %+v", p, want)
			}
		})
	}
}

// TestPayloadGolden pins the JSON the service worker parses.
func TestPayloadGolden(t *testing.T) {
	for name, opts := range map[string]webpush.PreviewOptions{"message": {}, "message_hidden_preview": {Hide: true}} {
		t.Run(name, func(t *testing.T) {
			p := webpush.PayloadFromMessage(webpush.Message{
				ID: "01J9Z6", Room: "room-7", Sender: "user-3", SenderName: "Zoë", Body: "See you at <8> & bring \"the\" cake 🎂", Seq: 42,
			}, opts)
			got, err := p.Encode(webpush.MaxPlaintext)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", name+".json")
			if *update {
				if err := os.WriteFile(path, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if string(got)+"\n" != string(want) {
				t.Fatalf("payload JSON\n%s\nwant (%s)\n%s", got, path, want)
			}
		})
	}
}

func TestPayloadEncodeCutsOnRuneBoundary(t *testing.T) {
	p := webpush.Payload{Type: "message", Room: "r", Sender: "s", Seq: 1,
		Preview: strings.Repeat("a😀ß\"<\n漢", 40)} // 1-4 byte runes and JSON escapes
	full, err := p.Encode(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	bare := p
	bare.Preview = ""
	bareJSON, _ := bare.Encode(1 << 20)
	for limit := len(bareJSON); limit <= len(full)+2; limit++ {
		got, err := p.Encode(limit)
		if err != nil {
			t.Fatalf("limit %d: %v", limit, err)
		}
		if len(got) > limit {
			t.Fatalf("limit %d: %d bytes", limit, len(got))
		}
		var back webpush.Payload
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("limit %d: invalid JSON %s: %v", limit, got, err)
		}
		if !utf8.ValidString(back.Preview) {
			t.Fatalf("limit %d: preview is not valid UTF-8: %q", limit, back.Preview)
		}
		if back.Preview == p.Preview {
			if len(got) != len(full) {
				t.Fatalf("limit %d: full preview but %d bytes", limit, len(got))
			}
			continue
		}
		cut := strings.TrimSuffix(back.Preview, "…")
		if !strings.HasPrefix(p.Preview, cut) {
			t.Fatalf("limit %d: preview %q is not a prefix", limit, back.Preview)
		}
		if back.Preview != "" && !strings.HasSuffix(back.Preview, "…") {
			t.Fatalf("limit %d: a cut preview must end in an ellipsis: %q", limit, back.Preview)
		}
		if limit >= len(full) {
			t.Fatalf("limit %d fits the full payload (%d bytes) but the preview was cut", limit, len(full))
		}
	}
}

func TestPayloadEncodeTooLarge(t *testing.T) {
	p := webpush.Payload{Type: "message", Room: strings.Repeat("r", webpush.MaxPlaintext), Preview: "hi"}
	if _, err := p.Encode(webpush.MaxPlaintext); !errors.Is(err, webpush.ErrPayloadTooLarge) {
		t.Fatalf("err = %v, want ErrPayloadTooLarge", err)
	}
}
