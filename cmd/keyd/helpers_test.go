package main_test

import (
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyd-io/keyd/internal/keydtest"
)

// waitTimeout bounds every wait for a notification.
const waitTimeout = 30 * time.Second

// setup is one test's keyd configuration: its data dir and admin socket in a temp dir.
type setup struct {
	dir     string
	data    string
	socket  string
	keysets string
}

func newSetup(t *testing.T, keysets string) *setup {
	t.Helper()
	dir := t.TempDir()
	return &setup{dir: dir, data: filepath.Join(dir, "data"),
		socket: filepath.Join(dir, "admin.sock"), keysets: keysets}
}

// config returns the TOML for keydtest.Start ({{listen}} is filled in there).
func (s *setup) config() string {
	return fmt.Sprintf(`
[server]
listen = "{{listen}}"
admin_socket = %q
[storage.disk]
dir = %q
%s`, s.socket, s.data, s.keysets)
}

// run runs a keyd subcommand against p's configuration.
func run(t *testing.T, p *keydtest.Process, args ...string) (string, int) {
	t.Helper()
	return keydtest.Run(t, append(args, "--config", p.Config)...)
}

// notifySocket stands in for systemd's notification socket.
type notifySocket struct {
	path string
	msgs chan string
}

func newNotifySocket(t *testing.T) *notifySocket {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	n := &notifySocket{path: path, msgs: make(chan string, 1024)}
	go func() {
		buf := make([]byte, 4096)
		for {
			size, err := conn.Read(buf)
			if err != nil {
				close(n.msgs)
				return
			}
			n.msgs <- string(buf[:size])
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return n
}

// env is keyd's environment for this socket, with a watchdog when watchdog > 0.
func (n *notifySocket) env(watchdog time.Duration) []string {
	env := []string{"NOTIFY_SOCKET=" + n.path}
	if watchdog > 0 {
		env = append(env, fmt.Sprintf("WATCHDOG_USEC=%d", watchdog.Microseconds()))
	}
	return env
}

// expect returns the first message starting with prefix, and the ones skipped before it.
func (n *notifySocket) expect(t *testing.T, prefix string) (string, []string) {
	t.Helper()
	var skipped []string
	deadline := time.After(waitTimeout)
	for {
		select {
		case msg, ok := <-n.msgs:
			if !ok {
				t.Fatalf("notify socket closed while waiting for %s", prefix)
			}
			if strings.HasPrefix(msg, prefix) {
				return msg, skipped
			}
			skipped = append(skipped, msg)
		case <-deadline:
			t.Fatalf("no %s notification within %s (got %q)", prefix, waitTimeout, skipped)
		}
	}
}

// quiet collects messages for d and returns them.
func (n *notifySocket) quiet(d time.Duration) []string {
	var got []string
	deadline := time.After(d)
	for {
		select {
		case msg, ok := <-n.msgs:
			if !ok {
				return got
			}
			got = append(got, msg)
		case <-deadline:
			return got
		}
	}
}

func countPrefix(msgs []string, prefix string) int {
	n := 0
	for _, m := range msgs {
		if strings.HasPrefix(m, prefix) {
			n++
		}
	}
	return n
}

var monotonic = regexp.MustCompile(`(?m)^MONOTONIC_USEC=[1-9][0-9]*$`)
