package daemon

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/keyd-io/keyd/config"
	"github.com/keyd-io/keyd/notify"
)

// Opening storage and loading keys at start: storage that answers slowly gets more time
// from systemd, in steps, up to StartupTimeout; then keyd gives up with an error that says
// what it was waiting for.
const (
	// StartupTimeout bounds how long opening storage and loading every keyset may take.
	StartupTimeout = 2 * time.Minute
	// startupNotice is how long a start may take before systemd is asked for more time.
	startupNotice = 2 * time.Second
	// startupExtend is how much more time each request asks for.
	startupExtend = 10 * time.Second
)

// openKeysets opens storage and starts every keyset of cfg, within slowStart's bounds.
func (d *Daemon) openKeysets(ctx context.Context, cfg *config.Config) error {
	return slowStart(ctx, d.svc, d.log, func(ctx context.Context, doing func(string)) error {
		doing("opening storage (" + cfg.Storage.Backend + ")")
		backend, err := openStorage(ctx, cfg, d.log)
		if err != nil {
			return err
		}
		d.mu.Lock()
		d.backend = backend
		d.mu.Unlock()
		// The notifier comes before the keysets: a first start commits keys at once, and
		// those events must find their destinations.
		doing("opening notification outboxes")
		notifier, err := notify.New(cfg, notify.Options{Log: d.log.Named("notify")})
		if err != nil {
			return err
		}
		d.mu.Lock()
		d.notifier = notifier
		d.mu.Unlock()
		for i := range cfg.Keysets {
			name := cfg.Keysets[i].Name
			doing(fmt.Sprintf("loading keyset %s from %s", name,
				backend.Keyset(name).Location()))
			if err := d.startKeyset(ctx, &cfg.Keysets[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// slowStart runs load. While it runs, systemd's start timeout is extended every
// startupNotice, with a STATUS= saying what load is doing (as it last told doing). Past
// StartupTimeout, or ctx's deadline if sooner, slowStart returns an error saying what
// did not finish. A load that never returns (a hung file system) is left behind: keyd is
// about to exit.
func slowStart(ctx context.Context, svc *service, log *zap.Logger,
	load func(ctx context.Context, doing func(string)) error,
) error {
	ctx, cancel := context.WithTimeout(ctx, StartupTimeout)
	defer cancel()

	var (
		mu  sync.Mutex
		now string
	)
	doing := func(what string) {
		mu.Lock()
		now = what
		mu.Unlock()
	}
	current := func() string {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	done := make(chan error, 1)
	go func() { done <- load(ctx, doing) }()

	started := time.Now()
	ticker := time.NewTicker(startupNotice)
	defer ticker.Stop()
	for {
		select {
		case err := <-done:
			return err
		case <-ticker.C:
			what := current()
			log.Warn("storage is slow; still starting", zap.String("doing", what),
				zap.Duration("elapsed", time.Since(started)))
			svc.extendStart(startupExtend, what)
		case <-ctx.Done():
			return fmt.Errorf("start: still %s after %s, giving up: %w", current(),
				time.Since(started).Round(time.Second), ctx.Err())
		}
	}
}
