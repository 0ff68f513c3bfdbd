package daemon

import (
	"go.uber.org/zap"

	"github.com/keyd-io/keyd/rotation"
)

// prepare is called by keyset name's runner before each state write: the events the
// write announces are stored in the outbox, not yet sendable, under its commit id. An
// error fails the write, which is retried like any storage failure.
func (d *Daemon) prepare(name, commit string, changes []rotation.Change) error {
	return d.notifier.Prepare(name, commit, changes)
}

// abort is called by keyset name's runner when a prepared write lost to another
// replica's: its events are dropped.
func (d *Daemon) abort(name, commit string) {
	if err := d.notifier.Abort(name, commit); err != nil {
		// The records stay prepared and are dropped at the next commit or start.
		d.log.Warn("notify: events of a write that did not land not dropped yet",
			zap.String("keyset", name), zap.Error(err))
	}
}

// onCommit is called by keyset name's runner after every committed state, and for the
// state found at start: the JWKS is re-encoded at once, so verifiers see a change as soon
// as storage holds it, and the prepared events of every write the state lists become
// sendable (those of writes it does not list are dropped).
func (d *Daemon) onCommit(name string, s rotation.State) {
	d.jwks.Publish(name, s, d.maxAge(name))
	if err := d.notifier.Resolve(name, s.Commits); err != nil {
		d.log.Error("notify: events of a committed state not queued yet; retried at the "+
			"next commit or start", zap.String("keyset", name), zap.Error(err))
	}
}
