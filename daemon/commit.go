package daemon

import (
	"go.uber.org/zap"

	"github.com/keyd-io/keyd/rotation"
)

// onCommit is called by keyset name's runner after every committed state: the JWKS is
// re-encoded at once, so verifiers see a change as soon as storage holds it, and the
// changes (none when another replica committed the state) are queued for issuers.
func (d *Daemon) onCommit(name string, s rotation.State, changes []rotation.Change) {
	d.jwks.Publish(name, s, d.maxAge(name))
	// TODO: a crash between the commit and the outbox write below loses these events
	// (issuers still find the key in storage and the JWKS). Closing the gap needs the
	// state itself to record which changes were queued.
	if err := d.notifier.Publish(name, changes); err != nil {
		d.log.Error("notify: events not queued; issuers will not hear of them",
			zap.String("keyset", name), zap.Error(err))
	}
}
