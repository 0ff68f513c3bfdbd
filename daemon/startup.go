package daemon

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/keyd-io/keyd/config"
)

// Loading keys at start: storage that answers slowly gets more time from systemd, in
// steps, up to StartupTimeout; then keyd gives up with an error naming the keyset.
const (
	// StartupTimeout bounds how long loading every keyset at start may take.
	StartupTimeout = 2 * time.Minute
	// startupNotice is how long loading may take before systemd is asked for more time.
	startupNotice = 2 * time.Second
	// startupExtend is how much more time each request asks for.
	startupExtend = 10 * time.Second
)

// loadKeysets starts every keyset of cfg. While it runs, systemd's start timeout is
// extended every startupNotice; past StartupTimeout (or ctx's deadline, if sooner) it
// returns an error naming the keyset whose storage does not answer. A load that never
// returns (a hung file system) is left behind: keyd is about to exit.
func (d *Daemon) loadKeysets(ctx context.Context, cfg *config.Config) error {
	ctx, cancel := context.WithTimeout(ctx, StartupTimeout)
	defer cancel()

	var (
		mu      sync.Mutex
		loading string
	)
	done := make(chan error, 1)
	go func() {
		for i := range cfg.Keysets {
			mu.Lock()
			loading = cfg.Keysets[i].Name
			mu.Unlock()
			if err := d.startKeyset(ctx, &cfg.Keysets[i]); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()

	started := time.Now()
	ticker := time.NewTicker(startupNotice)
	defer ticker.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-ticker.C:
			mu.Lock()
			name := loading
			mu.Unlock()
			where := d.backend.Keyset(name).Location()
			d.log.Warn("storage is slow; still loading keyset", zap.String("keyset", name),
				zap.String("location", where), zap.Duration("elapsed", time.Since(started)))
			d.svc.extendStart(startupExtend, fmt.Sprintf("loading keyset %s from %s",
				name, where))
		case <-ctx.Done():
			mu.Lock()
			name := loading
			mu.Unlock()
			return fmt.Errorf("keyset %q: storage %s did not answer within %s: %w", name,
				d.backend.Keyset(name).Location(), time.Since(started).Round(time.Second),
				ctx.Err())
		}
	}
}
