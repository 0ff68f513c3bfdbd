package daemon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/keyd-io/keyd/config"
)

// TestOpenReaderBesideTheDaemon: the offline commands read a keyset while the daemon holds
// the storage lock, with the directory modes the daemon's file_mode implies.
func TestOpenReaderBesideTheDaemon(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fileMode string
	}{
		{name: "owner only", fileMode: "0600"},
		{name: "group-readable issuer files", fileMode: "0640"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "keyd.toml")
			err := os.WriteFile(path, []byte(`
[server]
listen = "127.0.0.1:0"
admin_socket = "`+filepath.Join(dir, "admin.sock")+`"
[storage.disk]
dir = "`+filepath.Join(dir, "data")+`"
file_mode = "`+tc.fileMode+`"
`), 0o600)
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			d, err := New(context.Background(), cfg, zap.NewNop(), zap.NewAtomicLevel())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(d.Close)

			r, err := OpenReader(context.Background(), cfg, zap.NewNop())
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if _, _, err := r.Keyset("default").Load(context.Background()); err != nil {
				t.Errorf("read the state beside the daemon: %v", err)
			}
			if err := r.Keyset("default").PutKey(context.Background(), strings.Repeat("A", 43), nil); err == nil {
				t.Error("a reader wrote to storage")
			}
		})
	}
}
