package daemon

import (
	"github.com/keyd-io/keyd/rotation"
)

// onCommit is called by keyset name's runner after every committed state: the JWKS is
// re-encoded at once, so verifiers see a change as soon as storage holds it.
func (d *Daemon) onCommit(name string, s rotation.State, changes []rotation.Change) {
	d.jwks.Publish(name, s, d.maxAge(name))
}
