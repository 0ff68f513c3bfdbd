package admin_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/keyd-io/keyd/admin"
)

// echo answers status with the peer's uid as the version, so tests see who was checked.
type echo struct{ got chan admin.Request }

func (e echo) Handle(_ context.Context, peer admin.Peer, req admin.Request) admin.Response {
	if e.got != nil {
		e.got <- req
	}
	if req.Command != admin.CommandStatus {
		return admin.Response{Error: "unknown command " + req.Command}
	}
	return admin.Response{Status: &admin.Status{Version: "peer-ok"}}
}

func listen(t *testing.T, opts admin.Options) (*admin.Server, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "admin.sock")
	srv, err := admin.Listen(path, echo{}, zap.NewNop(), opts)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve() }()
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return srv, path
}

func TestRoundTripAndSocketMode(t *testing.T) {
	_, path := listen(t, admin.Options{})
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("socket mode %o, want 600", mode)
	}
	client := &admin.Client{Socket: path}
	resp, err := client.Do(context.Background(), admin.Request{Command: admin.CommandStatus})
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status == nil || resp.Status.Version != "peer-ok" {
		t.Errorf("status = %+v", resp.Status)
	}
	if _, err := client.Do(context.Background(), admin.Request{Command: "dance"}); err == nil ||
		!strings.Contains(err.Error(), "unknown command") {
		t.Errorf("unknown command: err = %v", err)
	}
}

func TestRefusedPeer(t *testing.T) {
	_, path := listen(t, admin.Options{Allow: func(uint32) bool { return false }})
	client := &admin.Client{Socket: path}
	_, err := client.Do(context.Background(), admin.Request{Command: admin.CommandStatus})
	if err == nil || !strings.Contains(err.Error(), "may not use the admin socket") {
		t.Errorf("err = %v, want a refusal naming the uid", err)
	}
}

func TestOversizedRequest(t *testing.T) {
	_, path := listen(t, admin.Options{})
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	big := `{"command":"status","keyset":"` + strings.Repeat("a", admin.MaxRequestBytes) + `"}` + "\n"
	go func() { _, _ = conn.Write([]byte(big)) }()
	buf := make([]byte, 4096)
	n, _ := conn.Read(buf)
	if !strings.Contains(string(buf[:n]), "larger than") {
		t.Errorf("answer %q, want a size refusal", buf[:n])
	}
}

func TestClientErrors(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()

	for _, tc := range []struct {
		name    string
		socket  string
		wantErr error
		wantMsg string
	}{
		{name: "no socket", socket: filepath.Join(dir, "none.sock"),
			wantErr: admin.ErrNotRunning, wantMsg: "is keyd running"},
		{name: "stale socket", socket: stale,
			wantErr: admin.ErrNotRunning, wantMsg: "nothing listens"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &admin.Client{Socket: tc.socket}
			_, err := c.Do(context.Background(), admin.Request{Command: admin.CommandStatus})
			if !errors.Is(err, tc.wantErr) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("err = %v, want %v mentioning %q", err, tc.wantErr, tc.wantMsg)
			}
		})
	}
}

func TestListenReplacesOnlyStaleSockets(t *testing.T) {
	_, path := listen(t, admin.Options{})
	if _, err := admin.Listen(path, echo{}, zap.NewNop(), admin.Options{}); err == nil ||
		!strings.Contains(err.Error(), "in use") {
		t.Errorf("second Listen on a live socket: err = %v", err)
	}

	stale := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: stale, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	srv, err := admin.Listen(stale, echo{}, zap.NewNop(), admin.Options{})
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	srv.Close()

	plain := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Listen(plain, echo{}, zap.NewNop(), admin.Options{}); err == nil {
		t.Error("Listen over a regular file succeeded")
	}
}
