package daemon

import (
	"fmt"

	"go.uber.org/zap"

	"github.com/keyd-io/keyd/backends/disk"
	"github.com/keyd-io/keyd/config"
	"github.com/keyd-io/keyd/rotation"
)

// storage is an opened backend: one Store per keyset, plus how runners must treat it.
type storage interface {
	Keyset(name string) rotation.Store
	// Tune sets the runner options this backend needs (refresh, orphan age).
	Tune(opts *rotation.Options)
	Close() error
}

// openStorage opens the configured backend.
func openStorage(cfg *config.Config, log *zap.Logger) (storage, error) {
	switch cfg.Storage.Backend {
	case "disk":
		b, err := disk.Open(cfg.Storage.Disk.Dir, disk.Options{
			IssuerFileMode: cfg.Storage.Disk.Mode(),
		})
		if err != nil {
			return nil, fmt.Errorf("storage.disk: %w", err)
		}
		return diskStorage{b}, nil
	}
	return nil, fmt.Errorf("storage.backend %q: not available in this build", cfg.Storage.Backend)
}

type diskStorage struct{ *disk.Backend }

func (s diskStorage) Keyset(name string) rotation.Store { return s.Backend.Keyset(name) }

// Tune leaves the defaults: one keyd owns a disk dir (it holds the lock), so nothing
// changes behind its back and an orphan key can be removed at once.
func (s diskStorage) Tune(*rotation.Options) {}
