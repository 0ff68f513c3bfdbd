package rotation_test

import (
	"testing"
	"time"

	"github.com/keyd-io/keyd/rotation"
)

func TestSimulateFromFirstStart(t *testing.T) {
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	midnight := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	pol := policy(t, "@daily", time.Hour, 2*time.Hour)

	got := rotation.Simulate(nil, "api", pol, now, 2)
	want := []struct {
		at   time.Time
		typ  rotation.ChangeType
		kid  string
		prev string
	}{
		{at: now, typ: rotation.Published, kid: "planned-1"},
		{at: now, typ: rotation.Published, kid: "planned-2"},
		{at: now, typ: rotation.Activated, kid: "planned-1"},
		{at: midnight, typ: rotation.RetiredChange, kid: "planned-1"},
		{at: midnight, typ: rotation.Activated, kid: "planned-2", prev: "planned-1"},
		{at: midnight, typ: rotation.Published, kid: "planned-3"},
		{at: midnight.Add(2 * time.Hour), typ: rotation.Removed, kid: "planned-1"},
		{at: midnight.Add(24 * time.Hour), typ: rotation.RetiredChange, kid: "planned-2"},
		{at: midnight.Add(24 * time.Hour), typ: rotation.Activated, kid: "planned-3",
			prev: "planned-2"},
		{at: midnight.Add(24 * time.Hour), typ: rotation.Published, kid: "planned-4"},
	}
	if len(got) != len(want) {
		for _, f := range got {
			t.Logf("%s %s %s", f.At, f.Change.Type, f.Change.Key.KID)
		}
		t.Fatalf("%d forecast changes, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if !g.At.Equal(w.at) || g.Change.Type != w.typ || g.Change.Key.KID != w.kid ||
			g.Change.PreviousKID != w.prev {
			t.Errorf("change %d = %s %s %s (prev %q), want %s %s %s (prev %q)", i, g.At,
				g.Change.Type, g.Change.Key.KID, g.Change.PreviousKID, w.at, w.typ, w.kid, w.prev)
		}
	}
}

func TestSimulateLeavesStateAlone(t *testing.T) {
	now := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	pol := policy(t, "@daily", time.Hour, 2*time.Hour)
	first := rotation.Simulate(nil, "api", pol, now, 0)
	if len(first) != 0 {
		t.Fatalf("zero rotations forecast %d changes", len(first))
	}
	s, _ := rotation.Apply(nil, "api", pol, rotation.Decision{Bootstrap: true, Fresh: 2},
		[]rotation.Key{{KID: "a", Alg: "ES256"}, {KID: "b", Alg: "ES256"}}, now)
	before := s.Clone()
	rotation.Simulate(&s, "api", pol, now, 3)
	if len(s.Keys) != len(before.Keys) || !s.RotatedAt.Equal(before.RotatedAt) {
		t.Error("Simulate changed the state it was given")
	}
}

func TestNextPromotion(t *testing.T) {
	start := time.Date(2026, 3, 1, 23, 30, 0, 0, time.UTC)
	pol := policy(t, "@daily", time.Hour, 2*time.Hour)
	s, _ := rotation.Apply(nil, "api", pol, rotation.Decision{Bootstrap: true, Fresh: 2},
		[]rotation.Key{{KID: "a", Alg: "ES256"}, {KID: "b", Alg: "ES256"}}, start)
	for _, tc := range []struct {
		name        string
		requestedAt time.Time
		want        time.Time
	}{
		{name: "schedule waits for publish_lead", want: start.Add(time.Hour)},
		{name: "a waiting request", requestedAt: start.Add(50 * time.Minute),
			want: start.Add(time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := s.Clone()
			s.RequestedAt = tc.requestedAt
			if got := rotation.NextPromotion(&s, pol); !got.Equal(tc.want) {
				t.Errorf("NextPromotion = %s, want %s", got, tc.want)
			}
		})
	}
}
