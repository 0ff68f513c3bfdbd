package daemon

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/keyd-io/keyd/backends/disk"
	"github.com/keyd-io/keyd/backends/vault"
	"github.com/keyd-io/keyd/config"
	"github.com/keyd-io/keyd/rotation"
)

// vaultOrphanMinAge keeps a private key that no state names for this long before the
// orphan sweep deletes it: another replica may have stored it and not yet committed the
// state naming it. It is far above any commit's duration.
const vaultOrphanMinAge = 10 * time.Minute

// storage is an opened backend: one Store per keyset, plus how runners must treat it.
type storage interface {
	Keyset(name string) rotation.Store
	// Tune sets the runner options this backend needs (refresh, orphan age).
	Tune(opts *rotation.Options)
	Close() error
}

// openStorage opens the configured backend.
func openStorage(ctx context.Context, cfg *config.Config, log *zap.Logger) (storage, error) {
	switch cfg.Storage.Backend {
	case "disk":
		b, err := disk.Open(cfg.Storage.Disk.Dir, disk.Options{
			IssuerFileMode: cfg.Storage.Disk.Mode(),
		})
		if err != nil {
			return nil, fmt.Errorf("storage.disk: %w", err)
		}
		return diskStorage{b}, nil
	case "vault":
		v := cfg.Storage.Vault
		names := make([]string, 0, len(cfg.Keysets))
		for _, ks := range cfg.Keysets {
			names = append(names, ks.Name)
		}
		b, err := vault.Open(ctx, vault.Options{
			Address:      v.Address,
			Mount:        v.Mount,
			Prefix:       v.Prefix,
			Auth:         v.Auth,
			TokenFile:    v.TokenFile,
			RoleIDFile:   v.RoleIDFile,
			SecretIDFile: v.SecretIDFile,
			CACert:       v.CACert,
			Namespace:    v.Namespace,
			Keysets:      names,
			Log:          log.With(zap.String("storage", "vault")),
		})
		if err != nil {
			return nil, err
		}
		return vaultStorage{Backend: b, refresh: v.Refresh.D()}, nil
	}
	return nil, fmt.Errorf("storage.backend %q: not available in this build", cfg.Storage.Backend)
}

type diskStorage struct{ *disk.Backend }

func (s diskStorage) Keyset(name string) rotation.Store { return s.Backend.Keyset(name) }

// Tune leaves the defaults: one keyd owns a disk dir (it holds the lock), so nothing
// changes behind its back and an orphan key can be removed at once.
func (s diskStorage) Tune(*rotation.Options) {}

type vaultStorage struct {
	*vault.Backend
	refresh time.Duration
}

func (s vaultStorage) Keyset(name string) rotation.Store { return s.Backend.Keyset(name) }

// Tune makes runners re-read the state every refresh, since other replicas may change
// it, and spares keys a replica stored for a commit still under way.
func (s vaultStorage) Tune(opts *rotation.Options) {
	opts.Refresh = s.refresh
	opts.OrphanMinAge = vaultOrphanMinAge
}
