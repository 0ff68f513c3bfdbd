package daemon

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/keyd-io/keyd/config"
)

// TestStartGivesUpOnHungStorage: a state file that never answers (a FIFO with no
// writer, like a hung network file system) stops the start with an error that names
// the keyset and the file, once the start deadline passes.
func TestStartGivesUpOnHungStorage(t *testing.T) {
	dir := t.TempDir()
	stateDir := filepath.Join(dir, "data", "api")
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(stateDir, "state.json")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	// Let the abandoned read finish when the test ends.
	t.Cleanup(func() {
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
	path := filepath.Join(dir, "keyd.toml")
	err := os.WriteFile(path, []byte(`
[server]
listen = "127.0.0.1:0"
admin_socket = "`+filepath.Join(dir, "admin.sock")+`"
[storage.disk]
dir = "`+filepath.Join(dir, "data")+`"
[[keyset]]
name = "api"
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	d, err := New(ctx, cfg, zap.NewNop(), zap.NewAtomicLevel())
	if err == nil {
		d.Close()
		t.Fatal("New succeeded on storage that never answers")
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `"api"`) ||
		!strings.Contains(err.Error(), fifo) {
		t.Errorf("err = %v, want a deadline error naming keyset \"api\" and %s", err, fifo)
	}
}
