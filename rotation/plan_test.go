package rotation

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/keyd-io/keyd/keys"
)

var epoch = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// none expects a step to change nothing (a nil wantChanges skips the check).
var none = []string{}

// sim drives Plan and Apply the way the runner does, naming keys K1, K2, ... in the order
// they are created so that cases can say which key is where.
type sim struct {
	t     *testing.T
	pol   Policy
	state *State
	names map[string]string
	made  int
}

func newSim(t *testing.T, schedule string, lead, grace time.Duration) *sim {
	t.Helper()
	sched, err := cron.ParseStandard(schedule)
	if err != nil {
		t.Fatal(err)
	}
	return &sim{t: t, names: map[string]string{}, pol: Policy{
		Algorithm: "EdDSA", Schedule: sched, PublishLead: lead, Grace: grace,
	}}
}

// step runs one decision at now and returns the change types, each with its key's name.
func (s *sim) step(now time.Time, req Request) []string {
	s.t.Helper()
	d := Plan(s.state, s.pol, now, req)
	fresh := make([]Key, d.NewKeys())
	for i := range fresh {
		k, err := keys.Generate(s.pol.Algorithm, 0)
		if err != nil {
			s.t.Fatal(err)
		}
		pub, err := k.PublicJWK()
		if err != nil {
			s.t.Fatal(err)
		}
		s.made++
		s.names[k.KID] = fmt.Sprintf("K%d", s.made)
		fresh[i] = Key{KID: k.KID, Alg: k.Alg, Public: pub}
	}
	if d.Empty() {
		return nil
	}
	next, changes := Apply(s.state, "test", s.pol, d, fresh, now)
	doc, err := next.Encode()
	if err != nil {
		s.t.Fatal(err)
	}
	if _, err := Decode(doc, "test"); err != nil {
		s.t.Fatalf("Apply produced a state Decode refuses: %v", err)
	}
	s.state = &next
	var out []string
	for _, c := range changes {
		out = append(out, strings.TrimPrefix(string(c.Type), "key.")+" "+s.names[c.Key.KID])
	}
	return out
}

// phases describes the state as "current=K2 next=K3 retired=K1".
func (s *sim) phases() string {
	var parts []string
	for _, k := range s.state.Published() {
		parts = append(parts, fmt.Sprintf("%s=%s", k.Phase, s.names[k.KID]))
	}
	return strings.Join(parts, " ")
}

type simStep struct {
	at          time.Duration // since epoch
	req         Request
	wantChanges []string
	wantPhases  string
	// wantWake is when WakeAt says the next change is due, since epoch; 0 skips the check.
	wantWake time.Duration
}

func TestLifecycle(t *testing.T) {
	const h = time.Hour
	tests := []struct {
		name     string
		schedule string
		lead     time.Duration
		grace    time.Duration
		steps    []simStep
	}{
		{
			name: "first start creates current and next together", schedule: "@daily",
			lead: h, grace: 2 * h,
			steps: []simStep{{
				at:          0,
				wantChanges: []string{"published K1", "published K2", "activated K1"},
				wantPhases:  "current=K1 next=K2",
				wantWake:    24 * h,
			}},
		},
		{
			name: "scheduled rotation promotes next and publishes a new next", schedule: "@daily",
			lead: h, grace: 2 * h,
			steps: []simStep{
				{at: 0, wantPhases: "current=K1 next=K2"},
				{at: 23 * h, wantChanges: none, wantPhases: "current=K1 next=K2"},
				{
					at:          24 * h,
					wantChanges: []string{"retired K1", "activated K2", "published K3"},
					wantPhases:  "current=K2 next=K3 retired=K1",
					wantWake:    26 * h,
				},
			},
		},
		{
			name:     "retired key leaves exactly when its grace ends, without a rotation",
			schedule: "@daily", lead: h, grace: 2 * h,
			steps: []simStep{
				{at: 0},
				{at: 24 * h, wantPhases: "current=K2 next=K3 retired=K1"},
				{at: 26*h - time.Second, wantChanges: none, wantPhases: "current=K2 next=K3 retired=K1"},
				{
					at: 26 * h, wantChanges: []string{"removed K1"},
					wantPhases: "current=K2 next=K3", wantWake: 48 * h,
				},
			},
		},
		{
			name:     "rotation is deferred while next is younger than publish_lead",
			schedule: "0 0 * * *", lead: 2 * h, grace: 2 * h,
			steps: []simStep{
				{at: 23 * h, wantPhases: "current=K1 next=K2", wantWake: 25 * h},
				{at: 24 * h, wantChanges: none, wantPhases: "current=K1 next=K2"},
				{
					at: 25 * h, wantChanges: []string{"retired K1", "activated K2", "published K3"},
					wantPhases: "current=K2 next=K3 retired=K1",
				},
			},
		},
		{
			name:     "a requested rotation waits for publish_lead, then runs by itself",
			schedule: "@daily", lead: h, grace: 2 * h,
			steps: []simStep{
				{at: 0},
				{
					at: 30 * time.Minute, req: Request{Rotate: true},
					wantChanges: none, wantPhases: "current=K1 next=K2", wantWake: h,
				},
				{
					at: h, wantChanges: []string{"retired K1", "activated K2", "published K3"},
					wantPhases: "current=K2 next=K3 retired=K1",
				},
			},
		},
		{
			name:     "a request already carried out by a rotation since it was made is dropped",
			schedule: "@daily", lead: h, grace: 2 * h,
			steps: []simStep{
				{at: 0},
				{at: 24 * h, wantPhases: "current=K2 next=K3 retired=K1"},
				{
					// Another replica rotated at 24h; this one took the same signal a
					// moment later and has adopted that rotation.
					at: 24*h + 2*time.Second, req: Request{Rotate: true,
						Since: epoch.Add(24*h - 8*time.Second)},
					wantChanges: none, wantPhases: "current=K2 next=K3 retired=K1",
					wantWake: 26 * h,
				},
			},
		},
		{
			name:     "an immediate rotation ignores publish_lead",
			schedule: "@daily", lead: h, grace: 2 * h,
			steps: []simStep{
				{at: 0},
				{
					at: time.Minute, req: Request{Rotate: true, Immediate: true},
					wantChanges: []string{"retired K1", "activated K2", "published K3"},
					wantPhases:  "current=K2 next=K3 retired=K1",
				},
			},
		},
		{
			name:     "runs missed while down add up to exactly one catch-up rotation",
			schedule: "@daily", lead: h, grace: 2 * h,
			steps: []simStep{
				{at: 0},
				{
					at:          5*24*h + 12*h,
					wantChanges: []string{"retired K1", "activated K2", "published K3"},
					wantPhases:  "current=K2 next=K3 retired=K1",
					wantWake:    5*24*h + 14*h,
				},
				{at: 5*24*h + 12*h + time.Second, wantChanges: none},
			},
		},
		{
			name:     "revoking the current key promotes next at once",
			schedule: "@daily", lead: h, grace: 2 * h,
			steps: []simStep{
				{at: 0},
				{
					at: time.Minute, req: Request{Revoke: "K1"},
					wantChanges: []string{"revoked K1", "activated K2", "published K3"},
					wantPhases:  "current=K2 next=K3",
				},
			},
		},
		{
			name:     "revoking the next key creates a fresh next",
			schedule: "@daily", lead: h, grace: 2 * h,
			steps: []simStep{
				{at: 0},
				{
					at: time.Minute, req: Request{Revoke: "K2"},
					wantChanges: []string{"revoked K2", "published K3"},
					wantPhases:  "current=K1 next=K3",
				},
			},
		},
		{
			name:     "revoking a retired key removes it before its grace ends",
			schedule: "@daily", lead: h, grace: 2 * h,
			steps: []simStep{
				{at: 0},
				{at: 24 * h},
				{
					at: 24*h + time.Minute, req: Request{Revoke: "K1"},
					wantChanges: []string{"revoked K1"}, wantPhases: "current=K2 next=K3",
				},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSim(t, tc.schedule, tc.lead, tc.grace)
			for i, st := range tc.steps {
				req := st.req
				if req.Revoke != "" {
					req.Revoke = s.kidOf(req.Revoke)
				}
				got := s.step(epoch.Add(st.at), req)
				if st.wantChanges != nil {
					if !slices.Equal(got, st.wantChanges) {
						t.Fatalf("step %d at +%s: changes %q, want %q", i, st.at, got, st.wantChanges)
					}
				}
				if st.wantPhases != "" && s.phases() != st.wantPhases {
					t.Fatalf("step %d at +%s: %s, want %s", i, st.at, s.phases(), st.wantPhases)
				}
				if st.wantWake != 0 {
					if wake := WakeAt(s.state, s.pol); !wake.Equal(epoch.Add(st.wantWake)) {
						t.Fatalf("step %d: wake at +%s, want +%s", i, wake.Sub(epoch), st.wantWake)
					}
				}
			}
		})
	}
}

func (s *sim) kidOf(name string) string {
	for kid, n := range s.names {
		if n == name {
			return kid
		}
	}
	s.t.Fatalf("no key named %s", name)
	return ""
}

func TestRequestMergeCoalesces(t *testing.T) {
	tests := []struct {
		name  string
		first Request
		later Request
		want  Request
	}{
		{name: "two rotations are one", first: Request{Rotate: true},
			later: Request{Rotate: true}, want: Request{Rotate: true}},
		{name: "immediate wins", first: Request{Rotate: true},
			later: Request{Rotate: true, Immediate: true}, want: Request{Rotate: true, Immediate: true}},
		{name: "the earliest since is kept",
			first: Request{Rotate: true, Since: epoch.Add(time.Minute)},
			later: Request{Rotate: true, Since: epoch},
			want:  Request{Rotate: true, Since: epoch}},
		{name: "a revocation is kept", first: Request{Rotate: true},
			later: Request{Revoke: "k"}, want: Request{Rotate: true, Revoke: "k"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.first.Merge(tc.later); got != tc.want {
				t.Fatalf("Merge = %+v, want %+v", got, tc.want)
			}
		})
	}
}
