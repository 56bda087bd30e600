package chattest

import (
	"context"
	"slices"
	"testing"
)

// runContacts: the presence contacts look-up (chat.Store.Contacts) is the same in every
// store: direct rooms always count, groups only up to the large-group size, the caller's
// exclusions (those who blocked the user) and the user themself never appear, and a
// member who left is no longer a contact.
func runContacts(t *testing.T, env func(t *testing.T) *Env) {
	t.Run("contacts: direct rooms and small groups, once each, without exclusions or leavers", func(t *testing.T) {
		ctx := context.Background()
		e := env(t)
		alice, bob, carol, dave, erin, frank := e.User(t, "alice"), e.User(t, "bob"), e.User(t, "carol"),
			e.User(t, "dave"), e.User(t, "erin"), e.User(t, "frank")
		if _, _, err := e.Chat.OpenDirect(ctx, alice, frank); err != nil {
			t.Fatal(err)
		}
		small, err := e.Chat.CreateGroup(ctx, alice, "small", "", []string{bob, frank})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Chat.CreateGroup(ctx, alice, "large", "", []string{carol, dave, erin}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.Chat.CreateGroup(ctx, bob, "without alice", "", []string{carol}); err != nil {
			t.Fatal(err)
		}
		tests := []struct {
			name       string
			exclude    []string
			largeGroup int
			want       []string
		}{
			{"groups of 4 are large", nil, 3, []string{bob, frank}},
			{"groups of 4 are small", nil, 4, []string{bob, carol, dave, erin, frank}},
			{"exclusions never appear, even through a direct room", []string{frank, dave}, 4, []string{bob, carol, erin}},
			{"a large-group size of zero leaves direct rooms only", []string{}, 0, []string{frank}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := e.Chat.Contacts(ctx, alice, tt.exclude, tt.largeGroup)
				if err != nil {
					t.Fatal(err)
				}
				want := slices.Clone(tt.want)
				slices.Sort(want)
				if !slices.Equal(got, want) {
					t.Fatalf("contacts of alice = %v, want %v", got, want)
				}
			})
		}
		if err := e.Chat.Leave(ctx, bob, small.ID); err != nil {
			t.Fatal(err)
		}
		got, err := e.Chat.Contacts(ctx, alice, nil, 3)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, []string{frank}) {
			t.Fatalf("after bob left the small group, contacts of alice = %v, want only frank (%s)", got, frank)
		}
		if got, err := e.Chat.Contacts(ctx, e.User(t, "loner"), nil, 100); err != nil || len(got) != 0 {
			t.Fatalf("contacts of a user in no room = %v, %v; want none", got, err)
		}
	})
}
