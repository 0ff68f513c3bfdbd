package notify

import (
	"errors"
	"fmt"
	"slices"

	"go.uber.org/zap"

	"github.com/keyd-io/keyd/rotation"
)

// A keyset's events are written in two phases around the state write that announces
// them, so that a crash can neither lose them nor send them for a write that never
// landed:
//
//  1. Prepare, before the write: the deliveries go to disk as prepared records, under
//     the write's commit id. Workers never see them.
//  2. Resolve, after any state of the keyset is committed or loaded: records whose
//     commit id the state lists become sendable (with the ids they were given in step
//     1); the keyset's other prepared records belong to writes that can no longer land
//     and are deleted. Abort deletes a write's records at once when it lost a race.
//
// A keyset's runner prepares and commits one write at a time, so when its state is
// committed no write of that keyset is still between the two phases.

// held is a prepared delivery and the worker that is to send it.
type held struct {
	w *worker
	p *pending
	// found says the record was read from disk at start, left by an earlier run.
	found bool
}

// Prepare durably stores, as prepared, the deliveries announcing changes, which the
// state write commit of keyset is about to make. On error nothing of it is kept, and the
// write must not be made.
func (n *Notifier) Prepare(keyset, commit string, changes []rotation.Change) error {
	if n.box == nil || len(changes) == 0 {
		return nil
	}
	if commit == "" {
		return errors.New("prepare events: empty commit id")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	written, err := n.write(keyset, commit, changes)
	if err != nil {
		for _, h := range written {
			if rerr := n.box.remove(h.p); rerr != nil {
				// Left on disk, it is deleted at the next start: its commit never lands.
				n.log.Warn("prepared outbox record not removed", zap.Error(rerr))
			}
		}
		return err
	}
	n.prepared = append(n.prepared, written...)
	return nil
}

// Abort deletes the prepared deliveries of state write commit of keyset, which did not
// land.
func (n *Notifier) Abort(keyset, commit string) error {
	return n.settle(keyset, func(*pending) bool { return false },
		func(p *pending) bool { return p.Commit == commit })
}

// Resolve settles the prepared deliveries of keyset against the commit ids of its
// committed state: those of a listed commit are queued for sending, the others deleted.
// A record that cannot be settled stays prepared and is tried again at the next Resolve.
func (n *Notifier) Resolve(keyset string, committed []string) error {
	landed := func(p *pending) bool { return slices.Contains(committed, p.Commit) }
	return n.settle(keyset, landed, func(*pending) bool { return true })
}

// settle confirms the prepared deliveries of keyset that landed says are committed, and
// deletes those of the rest that drop selects.
func (n *Notifier) settle(keyset string, landed, drop func(*pending) bool) error {
	if n.box == nil {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	var errs []error
	var sent, dropped int
	keep := n.prepared[:0]
	for _, h := range n.prepared {
		p := h.p
		switch {
		case p.Keyset != keyset:
			keep = append(keep, h)
		case landed(p):
			if err := n.box.confirm(p); err != nil {
				errs = append(errs, fmt.Errorf("queue %s of kid %s for %s: %w",
					p.event.Type, p.event.KID, h.w.label, err))
				keep = append(keep, h)
				continue
			}
			if h.found {
				sent++
			}
			h.w.push(p)
		case drop(p):
			if err := n.box.remove(p); err != nil {
				errs = append(errs, fmt.Errorf("drop %s of kid %s for %s: %w",
					p.event.Type, p.event.KID, h.w.label, err))
				keep = append(keep, h)
				continue
			}
			dropped++
		default:
			keep = append(keep, h)
		}
	}
	clear(n.prepared[len(keep):])
	n.prepared = keep
	if sent > 0 {
		n.log.Info("sending events of a state write that landed before a crash",
			zap.String("keyset", keyset), zap.Int("deliveries", sent))
	}
	if dropped > 0 {
		n.log.Info("dropped events of a state write that did not land",
			zap.String("keyset", keyset), zap.Int("deliveries", dropped))
	}
	return errors.Join(errs...)
}
