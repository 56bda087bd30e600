package bridge

import (
	"context"
	"reflect"
	"slices"
	"testing"
)

// Presence contacts: a direct chat and a small group make contacts; a group above the
// large-group threshold does not (it announces no joins and leaves).
func TestContactsLeaveOutLargeGroups(t *testing.T) {
	ctx := context.Background()
	env, c := newChat(t, 100)
	alice, bob, carol, dave, erin, frank := env.User(t, "alice"), env.User(t, "bob"), env.User(t, "carol"),
		env.User(t, "dave"), env.User(t, "erin"), env.User(t, "frank")
	if _, _, err := env.Chat.OpenDirect(ctx, alice, frank); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Chat.CreateGroup(ctx, alice, "small", "", []string{bob}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Chat.CreateGroup(ctx, alice, "large", "", []string{carol, dave, erin}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		largeGroup int
		want       []string
	}{
		{"groups of 4 are large", 3, []string{bob, frank}},
		{"groups of 4 are small", 4, []string{bob, carol, dave, erin, frank}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Rooms{Chat: c, People: env.Users, LargeGroup: tt.largeGroup}.Contacts(ctx, alice)
			if err != nil {
				t.Fatal(err)
			}
			want := append([]string(nil), tt.want...)
			slices.Sort(want)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("contacts = %v, want %v", got, want)
			}
		})
	}
}
