package rotation

import (
	"fmt"
	"time"
)

// NextPromotion returns when the next key becomes current if nothing else intervenes: at
// the schedule's next fire after the last rotation (or when a waiting request asks),
// never before the next key has been published for publish_lead.
func NextPromotion(s *State, pol Policy) time.Time {
	due := promotionDue(s, pol)
	if next := s.InPhase(Next); next != nil {
		due = later(due, next.PublishedAt.Add(pol.PublishLead))
	}
	return due
}

// Forecast is one change a simulation expects, and when.
type Forecast struct {
	At     time.Time
	Change Change
}

// maxForecastSteps bounds a simulation, whatever the schedule.
const maxForecastSteps = 1000

// Simulate plays the coming timeline of a keyset from state s (nil: never started) at
// now, on a copy, until rotations promotions have happened. Keys created on the way get
// the kids "planned-1", "planned-2", … and no key material. Nothing is stored.
func Simulate(s *State, keyset string, pol Policy, now time.Time, rotations int,
) []Forecast {
	var (
		out     []Forecast
		cur     *State
		planned int
	)
	if s != nil {
		c := s.Clone()
		cur = &c
	}
	at := now
	for step := 0; step < maxForecastSteps && rotations > 0; step++ {
		if cur != nil {
			at = later(now, WakeAt(cur, pol))
			if at.IsZero() || at.Year() > now.Year()+100 {
				break
			}
		}
		d := Plan(cur, pol, at, Request{})
		if d.Empty() {
			break
		}
		fresh := make([]Key, d.NewKeys())
		for i := range fresh {
			planned++
			fresh[i] = Key{KID: fmt.Sprintf("planned-%d", planned), Alg: pol.Algorithm}
		}
		next, changes := Apply(cur, keyset, pol, d, fresh, at)
		cur = &next
		for _, c := range changes {
			out = append(out, Forecast{At: at, Change: c})
			if c.Type == Activated && c.PreviousKID != "" {
				rotations--
			}
		}
	}
	return out
}
