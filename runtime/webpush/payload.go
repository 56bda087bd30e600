package webpush

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxPlaintext is the largest JSON payload Notify sends. Push services accept 4096 bytes
// of body; aes128gcm spends 86 on the header (salt, record size, key id), 16 on the
// authentication tag and 1 on the padding delimiter, which leaves 3993.
const MaxPlaintext = 4096 - 86 - 16 - 1

// DefaultPreviewRunes is how much of a message body PayloadFromMessage previews: about
// what a notification shows on a phone.
const DefaultPreviewRunes = 200

// PayloadTypeMessage is the type of a new-message notification.
const PayloadTypeMessage = "message"

// ErrPayloadTooLarge means a payload exceeds MaxPlaintext even with an empty preview.
var ErrPayloadTooLarge = errors.New("webpush: payload too large")

// Payload is the JSON the service worker receives in its push event.
type Payload struct {
	Type       string `json:"type"`
	Room       string `json:"room"`
	MessageID  string `json:"id,omitempty"`
	Sender     string `json:"sender"`
	SenderName string `json:"sender_name,omitempty"`
	// Preview is the start of the message, or empty when previews are hidden.
	Preview string `json:"preview,omitempty"`
	Seq     int64  `json:"seq"`
}

// Message is what PayloadFromMessage needs of a delivered chat message.
type Message struct {
	ID         string
	Room       string
	Sender     string
	SenderName string
	Body       string
	Seq        int64
}

// PreviewOptions shape the preview of PayloadFromMessage.
type PreviewOptions struct {
	// Hide leaves the preview out, for users who do not want message text on their lock
	// screen or rooms whose content must not transit push services.
	Hide bool
	// MaxRunes bounds the preview (0 = DefaultPreviewRunes).
	MaxRunes int
}

// PayloadFromMessage builds the notification of m. The caller must already have dropped
// recipients who blocked the sender: this function cannot know who receives it.
func PayloadFromMessage(m Message, opts PreviewOptions) Payload {
	p := Payload{
		Type:       PayloadTypeMessage,
		Room:       m.Room,
		MessageID:  m.ID,
		Sender:     m.Sender,
		SenderName: m.SenderName,
		Seq:        m.Seq,
	}
	if !opts.Hide {
		limit := opts.MaxRunes
		if limit <= 0 {
			limit = DefaultPreviewRunes
		}
		p.Preview = previewText(m.Body, limit)
	}
	return p
}

// previewText collapses whitespace (a notification is one or two lines) and cuts to at
// most limit runes, marking the cut with an ellipsis.
func previewText(body string, limit int) string {
	text := strings.Join(strings.FieldsFunc(strings.ToValidUTF8(body, "\uFFFD"), unicode.IsSpace), " ")
	if utf8.RuneCountInString(text) <= limit {
		return text
	}
	n := 0
	for i := range text {
		if n == limit-1 {
			return strings.TrimRightFunc(text[:i], unicode.IsSpace) + "…"
		}
		n++
	}
	return text
}

// Encode returns p as JSON of at most maxBytes, cutting the preview on a UTF-8 boundary
// (and marking the cut with an ellipsis) when it does not fit.
func (p Payload) Encode(maxBytes int) ([]byte, error) {
	p.Preview = strings.ToValidUTF8(p.Preview, "\uFFFD")
	b, err := marshal(p)
	if err != nil {
		return nil, err
	}
	if len(b) <= maxBytes {
		return b, nil
	}
	full := p.Preview
	p.Preview = ""
	bare, err := marshal(p)
	if err != nil {
		return nil, err
	}
	if len(bare) > maxBytes {
		return nil, fmt.Errorf("%w: %d bytes without a preview, at most %d", ErrPayloadTooLarge, len(bare), maxBytes)
	}
	// JSON escaping can make the encoded preview longer than the text; shrink the budget
	// by the overshoot until it fits. Each round strictly shortens the cut.
	const ellipsis = "…"
	budget := maxBytes - len(bare) - len(ellipsis)
	for budget > 0 {
		cut := cutUTF8(full, budget)
		p.Preview = cut + ellipsis
		b, err = marshal(p)
		if err != nil {
			return nil, err
		}
		if len(b) <= maxBytes {
			return b, nil
		}
		budget = len(cut) - (len(b) - maxBytes)
	}
	return bare, nil
}

// cutUTF8 returns the longest prefix of s of at most n bytes that ends on a rune boundary.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// marshal encodes without HTML escaping: the service worker parses JSON, not HTML, and
// escaping would triple the size of every < > &.
func marshal(p Payload) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p); err != nil {
		return nil, fmt.Errorf("webpush: encode payload: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
