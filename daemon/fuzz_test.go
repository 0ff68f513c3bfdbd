package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/keyd-io/keyd/admin"
	"github.com/keyd-io/keyd/config"
)

// FuzzAdminRequest sends arbitrary bytes to a running daemon's admin socket: every input
// gets an answer (usually an error), the daemon keeps serving, and its keysets keep
// exactly one current key.
func FuzzAdminRequest(f *testing.F) {
	dir := f.TempDir()
	cfgText := "[server]\nlisten = \"127.0.0.1:0\"\nadmin_socket = \"" +
		filepath.Join(dir, "admin.sock") + "\"\n[storage.disk]\ndir = \"" +
		filepath.Join(dir, "data") + "\"\n[[keyset]]\nname = \"default\"\n" +
		"algorithm = \"EdDSA\"\n"
	cfg, err := config.Parse([]byte(cfgText), "fuzz.toml")
	if err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d, err := New(ctx, cfg, zap.NewNop(), zap.NewAtomicLevel())
	if err != nil {
		f.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx, make(chan os.Signal)) }()
	f.Cleanup(func() {
		cancel()
		<-done
	})

	for _, req := range []admin.Request{
		{Command: "status"},
		{Command: "rotate", Keyset: "default"},
		{Command: "rotate", Immediate: true},
		{Command: "revoke", Keyset: "default", KID: "nope"},
		{Command: "revoke", Keyset: "../etc", KID: "x"},
	} {
		line, _ := json.Marshal(req)
		f.Add(append(line, '\n'))
	}
	f.Add([]byte("{\"command\":\"status\",\"extra\":1}\n"))
	f.Add([]byte("not json\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		conn, err := net.DialTimeout("unix", cfg.Server.AdminSocket, 5*time.Second)
		if err != nil {
			t.Fatalf("admin socket gone: %v", err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := conn.Write(data); err != nil {
			return // the daemon may close a connection it has already answered
		}
		_ = conn.(*net.UnixConn).CloseWrite()
		var resp admin.Response
		if err := json.NewDecoder(bufio.NewReader(conn)).Decode(&resp); err != nil {
			t.Fatalf("no answer to %q: %v", data, err)
		}
		for _, r := range d.runners() {
			s, ok := r.keyset.State()
			if !ok || s.InPhase("current") == nil {
				t.Fatalf("keyset %s lost its current key after %q", r.keyset.Name(), data)
			}
		}
	})
}
