package chat

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNewService_refusesBadLimits(t *testing.T) {
	for _, l := range []Limits{
		{MaxMessageBytes: 0, MessagesPerSecond: 1, MaxRoomMembers: 2},
		{MaxMessageBytes: 1, MessagesPerSecond: 0, MaxRoomMembers: 2},
		{MaxMessageBytes: 1, MessagesPerSecond: 1, MaxRoomMembers: 1},
	} {
		if _, err := NewService(nil, nil, l, nil); err == nil {
			t.Errorf("NewService(%+v) accepted", l)
		}
	}
}

func TestCheckContent(t *testing.T) {
	s, err := NewService(nil, nil, Limits{MaxMessageBytes: 8, MessagesPerSecond: 1, MaxRoomMembers: 2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  SendRequest
		want error
	}{
		{"ok", SendRequest{ClientID: "c", Body: "hi"}, nil},
		{"exactly the limit", SendRequest{ClientID: "c", Body: "12345678"}, nil},
		{"one byte over", SendRequest{ClientID: "c", Body: "123456789"}, ErrMessageTooLarge},
		{"multi-byte over", SendRequest{ClientID: "c", Body: "ééééé"}, ErrMessageTooLarge},
		{"attachment only", SendRequest{ClientID: "c", Attachments: []string{"f1"}}, nil},
		{"blank", SendRequest{ClientID: "c", Body: " \t\n"}, ErrEmptyMessage},
		{"NUL", SendRequest{ClientID: "c", Body: "a\x00"}, ErrInvalidBody},
		{"bad UTF-8", SendRequest{ClientID: "c", Body: "\xc3"}, ErrInvalidBody},
		{"no client id", SendRequest{Body: "hi"}, ErrInvalidClientID},
		{"space in client id", SendRequest{ClientID: "a b", Body: "hi"}, ErrInvalidClientID},
		{"long client id", SendRequest{ClientID: strings.Repeat("c", MaxClientID+1), Body: "hi"}, ErrInvalidClientID},
		{"too many attachments", SendRequest{ClientID: "c", Attachments: make([]string, MaxAttachments+1)}, ErrInvalidAttachment},
		{"bad attachment id", SendRequest{ClientID: "c", Attachments: []string{"a/b"}}, ErrInvalidAttachment},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.checkContent(tc.req)
			if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
				t.Fatalf("checkContent = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestTokenBucket(t *testing.T) {
	s, _ := NewService(nil, nil, Limits{MaxMessageBytes: 8, MessagesPerSecond: 2, MaxRoomMembers: 2}, nil)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 4 {
		if !s.takeToken("u", t0) {
			t.Fatalf("token %d of the burst of 4 refused", i)
		}
	}
	if s.takeToken("u", t0) {
		t.Fatal("5th token in the same instant granted")
	}
	if !s.takeToken("v", t0) {
		t.Fatal("another sender shares the bucket")
	}
	if !s.takeToken("u", t0.Add(500*time.Millisecond)) || s.takeToken("u", t0.Add(500*time.Millisecond)) {
		t.Fatal("half a second at 2/s should refill exactly one token")
	}
	s.refundToken("u")
	if !s.takeToken("u", t0.Add(500*time.Millisecond)) {
		t.Fatal("refunded token not usable")
	}
}
