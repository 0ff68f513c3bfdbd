package daemon

import (
	"context"
	"fmt"

	"go.uber.org/zap"

	"github.com/keyd-io/keyd/backends/disk"
	"github.com/keyd-io/keyd/config"
	"github.com/keyd-io/keyd/rotation"
)

// Reader is storage opened for the offline commands (keyd plan, jwks, sign): they only
// read, so a running daemon is not disturbed.
type Reader interface {
	Keyset(name string) rotation.Store
	Close() error
}

// OpenReader opens the configured storage for reading. A disk dir is opened without its
// lock (the daemon may hold it) and refuses every write; Vault is shared by design.
func OpenReader(ctx context.Context, cfg *config.Config, log *zap.Logger) (Reader, error) {
	if cfg.Storage.Backend == "disk" {
		b, err := disk.Open(cfg.Storage.Disk.Dir, disk.Options{ReadOnly: true,
			IssuerFileMode: cfg.Storage.Disk.Mode()})
		if err != nil {
			return nil, fmt.Errorf("storage.disk.dir %s: %w", cfg.Storage.Disk.Dir, err)
		}
		return diskStorage{b}, nil
	}
	return openStorage(ctx, cfg, log)
}

// Policy returns the rotation policy that keyset ks's configuration describes, as the
// daemon runs it; keyd plan simulates with it.
func Policy(ks *config.Keyset) rotation.Policy { return policyOf(ks) }
