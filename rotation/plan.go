package rotation

import (
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Policy is a keyset's rotation policy, taken from its configuration.
type Policy struct {
	Algorithm   string
	RSABits     int
	Schedule    cron.Schedule
	PublishLead time.Duration
	Grace       time.Duration
}

// Request is an operator's ask: rotate now (respecting publish_lead unless Immediate), or
// revoke a key.
type Request struct {
	Rotate    bool
	Immediate bool
	Revoke    string
	// By says who asked, for the log of the changes it causes ("SIGUSR1", "admin uid 0");
	// empty for changes that simply fell due.
	By string
	// Since is the time from which a committed rotation counts as this request carried
	// out: when it was made, less the refresh interval with replicas, so that a signal
	// sent to every replica rotates once even if one of them has already adopted
	// another's rotation. Zero: any rotation before it does not count.
	Since time.Time
}

// Merge folds a later request into r, so that requests arriving during a rotation add
// up to at most one more.
func (r Request) Merge(later Request) Request {
	r.Rotate = r.Rotate || later.Rotate
	r.Immediate = r.Immediate || later.Immediate
	if later.Revoke != "" {
		r.Revoke = later.Revoke
	}
	if r.Since.IsZero() || (!later.Since.IsZero() && later.Since.Before(r.Since)) {
		r.Since = later.Since
	}
	if later.By != "" && !slices.Contains(strings.Split(r.By, ", "), later.By) {
		r.By = strings.TrimPrefix(r.By+", "+later.By, ", ")
	}
	return r
}

// without returns r less what done already carried out.
func (r Request) without(done Request) Request {
	if done.Rotate {
		r.Rotate, r.Immediate = false, false
	}
	if done.Revoke != "" && r.Revoke == done.Revoke {
		r.Revoke = ""
	}
	return r
}

// Decision is what is due for a keyset at one moment.
type Decision struct {
	// Bootstrap creates a current and a next key together (the very first start).
	Bootstrap bool
	// Promote makes next current, retires the old current and creates a new next.
	Promote bool
	// Defer records a rotation request that must wait for publish_lead.
	Defer bool
	// Revoke removes this kid at once.
	Revoke string
	// Remove lists retired keys whose grace has ended.
	Remove []string
	// Fresh is how many new keys Apply needs.
	Fresh int
}

// Empty reports whether nothing is due.
func (d Decision) Empty() bool {
	return !d.Bootstrap && !d.Promote && !d.Defer && d.Revoke == "" && len(d.Remove) == 0
}

// NewKeys returns how many fresh keys Apply needs for d.
func (d Decision) NewKeys() int { return d.Fresh }

// Plan decides what is due at now for a keyset in state s (nil: nothing stored yet).
func Plan(s *State, pol Policy, now time.Time, req Request) Decision {
	if s == nil {
		return Decision{Bootstrap: true, Fresh: 2}
	}
	var d Decision
	revoked := Phase("")
	if k := s.Find(req.Revoke); req.Revoke != "" && k != nil {
		d.Revoke, revoked = k.KID, k.Phase
	}
	for _, k := range s.Keys {
		if k.Phase == Retired && !now.Before(k.ExpiresAt) && k.KID != d.Revoke {
			d.Remove = append(d.Remove, k.KID)
		}
	}

	due := promotionDue(s, pol)
	switch {
	case revoked == Current:
		// A compromised current key stops signing now: next takes over at once.
		d.Promote = true
	case revoked == Next:
		// Current keeps signing; a fresh next replaces the revoked one.
	case req.Rotate && req.Immediate:
		d.Promote = true
	case !now.Before(due) && nextReady(s, pol, now):
		d.Promote = true
	case req.Rotate && !req.Since.IsZero() && s.RotatedAt.After(req.Since):
		// A rotation committed since the request was made (here or by another replica)
		// already carried it out.
	case req.Rotate && s.RequestedAt.IsZero():
		if nextReady(s, pol, now) {
			d.Promote = true
		} else {
			d.Defer = true
		}
	}
	if d.Promote || revoked == Next {
		d.Fresh = 1
	}
	if d.Promote && (s.InPhase(Next) == nil || revoked == Next) {
		d.Fresh = 2
	}
	return d
}

// Apply carries decision d out on a copy of s at now, using fresh keys (d.NewKeys() of
// them, each with KID, Alg and Public set). It returns the new state and the changes in
// the order they happened. A retired key's removal time is fixed when it retires
// (pol.Grace from then), so a later, shorter grace never cuts it short.
func Apply(s *State, keyset string, pol Policy, d Decision, fresh []Key,
	now time.Time,
) (State, []Change) {
	var out State
	if s != nil {
		out = s.Clone()
	} else {
		out = State{Version: StateVersion, Keyset: keyset}
	}
	var changes []Change
	take := func(p Phase) Key {
		k := fresh[0]
		fresh = fresh[1:]
		k.Phase, k.PublishedAt = p, now
		changes = append(changes, Change{Type: Published, Key: k})
		return k
	}

	if d.Bootstrap {
		cur := take(Current)
		cur.ActivatedAt = now
		out.Keys = append(out.Keys, cur, take(Next))
		changes = append(changes, Change{Type: Activated, Key: cur})
		out.RotatedAt = now
	}
	if d.Revoke != "" {
		if k := out.Find(d.Revoke); k != nil {
			changes = append(changes, Change{Type: Revoked, Key: *k})
			out.Keys = slices.DeleteFunc(out.Keys, func(k Key) bool { return k.KID == d.Revoke })
		}
	}
	for _, kid := range d.Remove {
		if k := out.Find(kid); k != nil {
			changes = append(changes, Change{Type: Removed, Key: *k})
			out.Keys = slices.DeleteFunc(out.Keys, func(k Key) bool { return k.KID == kid })
		}
	}
	if d.Promote {
		changes = append(changes, promote(&out, take, pol.Grace, now)...)
	}
	if out.InPhase(Next) == nil && len(fresh) > 0 {
		out.Keys = append(out.Keys, take(Next))
	}
	if d.Defer {
		out.RequestedAt = now
	}
	return out, changes
}

// promote makes the next key current (or, when next was revoked, a fresh key), retires the
// old current key, and publishes a fresh next key.
func promote(s *State, take func(Phase) Key, grace time.Duration, now time.Time) []Change {
	var changes []Change
	previous := ""
	if old := s.InPhase(Current); old != nil {
		previous = old.KID
		old.Phase, old.RetiredAt = Retired, now
		old.ExpiresAt = now.Add(grace)
		changes = append(changes, Change{Type: RetiredChange, Key: *old})
	}
	next := s.InPhase(Next)
	if next == nil {
		// No next key to promote (it was revoked): a fresh key must sign at once.
		s.Keys = append(s.Keys, take(Next))
		next = &s.Keys[len(s.Keys)-1]
	}
	next.Phase, next.ActivatedAt = Current, now
	changes = append(changes, Change{Type: Activated, Key: *next, PreviousKID: previous})
	s.RotatedAt, s.RequestedAt = now, time.Time{}
	return changes
}

// WakeAt returns when the next time-based change is due for s: a promotion (scheduled or
// requested, never before the next key has been published for publish_lead) or a
// retired key's grace ending.
func WakeAt(s *State, pol Policy) time.Time {
	wake := promotionDue(s, pol)
	if next := s.InPhase(Next); next != nil {
		wake = later(wake, next.PublishedAt.Add(pol.PublishLead))
	}
	for _, k := range s.Keys {
		if k.Phase == Retired && k.ExpiresAt.Before(wake) {
			wake = k.ExpiresAt
		}
	}
	return wake
}

// promotionDue returns when the schedule (or a waiting request) asks for the next promotion.
func promotionDue(s *State, pol Policy) time.Time {
	due := pol.Schedule.Next(s.RotatedAt)
	if due.IsZero() {
		// A schedule that never fires (configuration refuses one) must not read as
		// "due since the beginning of time".
		due = s.RotatedAt.AddDate(100, 0, 0)
	}
	if !s.RequestedAt.IsZero() && (due.IsZero() || s.RequestedAt.Before(due)) {
		due = s.RequestedAt
	}
	return due
}

func nextReady(s *State, pol Policy, now time.Time) bool {
	next := s.InPhase(Next)
	return next == nil || !now.Before(next.PublishedAt.Add(pol.PublishLead))
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
