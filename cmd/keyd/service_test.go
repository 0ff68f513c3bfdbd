package main_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyd-io/keyd/internal/keydtest"
)

// watchdog is the WatchdogSec the tests give keyd: pings every 200ms.
const watchdog = 400 * time.Millisecond

func TestServiceNotifications(t *testing.T) {
	s := newSetup(t, "[[keyset]]\nname = \"default\"\n")
	ns := newNotifySocket(t)
	p := keydtest.Start(t, s.config(), keydtest.Options{Env: ns.env(watchdog), NoWait: true})

	ready, before := ns.expect(t, "READY=1")
	resp, body := p.Get("/.well-known/jwks.json")
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"kid"`) {
		t.Fatalf("JWKS right after READY=1: %d %s", resp.StatusCode, body)
	}
	if !strings.Contains(ready, "\nSTATUS=serving 1 keysets") {
		t.Errorf("READY without a STATUS summary: %q", ready)
	}
	if n := countPrefix(before, "WATCHDOG=1"); n > 0 {
		t.Errorf("%d watchdog pings before READY=1", n)
	}

	t.Run("watchdog pings", func(t *testing.T) {
		ns.expect(t, "WATCHDOG=1")
		ns.expect(t, "WATCHDOG=1")
	})

	t.Run("reload", func(t *testing.T) {
		p.Signal(syscall.SIGHUP)
		reloading, _ := ns.expect(t, "RELOADING=1")
		if !monotonic.MatchString(reloading) {
			t.Errorf("RELOADING=1 without MONOTONIC_USEC: %q", reloading)
		}
		ns.expect(t, "READY=1")
	})

	t.Run("a wedged rotation loop stops the pings", func(t *testing.T) {
		// The next save reads state.json first; a FIFO with no writer holds it there.
		state := filepath.Join(s.data, "default", "state.json")
		doc, err := os.ReadFile(state)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(state); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mkfifo(state, 0o600); err != nil {
			t.Fatal(err)
		}
		p.Signal(syscall.SIGUSR1) // a rotation request: the runner starts a save and hangs

		p.WaitFor("the stuck loop to be noticed", func() bool {
			return strings.Contains(p.Log(), "rotation loop not answering")
		})
		ns.quiet(watchdog) // a ping already under way may still arrive
		if got := countPrefix(ns.quiet(3*watchdog), "WATCHDOG=1"); got != 0 {
			t.Fatalf("%d watchdog pings while the rotation loop is stuck", got)
		}

		// Unblock the save with the state it expects: the loop recovers and pings resume.
		fifo, err := os.OpenFile(state, os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fifo.Write(doc); err != nil {
			t.Fatal(err)
		}
		fifo.Close()
		ns.expect(t, "WATCHDOG=1")
	})

	t.Run("stop", func(t *testing.T) {
		p.Signal(syscall.SIGTERM)
		ns.expect(t, "STOPPING=1")
		if code := p.Wait(); code != 0 {
			t.Errorf("exit code %d after SIGTERM, want 0", code)
		}
	})
}

// TestSlowStorageAtStartExtendsTimeout: a Vault that accepts connections but never
// answers keeps keyd starting; it asks systemd for more time, saying what it waits for.
func TestSlowStorageAtStartExtendsTimeout(t *testing.T) {
	release := make(chan struct{})
	vault := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	t.Cleanup(vault.Close)
	t.Cleanup(func() { close(release) })

	s := newSetup(t, "[[keyset]]\nname = \"default\"\n")
	config := s.config() + fmt.Sprintf("[storage]\nbackend = \"vault\"\n[storage.vault]\n"+
		"address = %q\n", vault.URL)
	ns := newNotifySocket(t)
	p := keydtest.Start(t, config, keydtest.Options{
		Env: append(ns.env(0), "VAULT_TOKEN=test-token"), NoWait: true})
	extend, before := ns.expect(t, "EXTEND_TIMEOUT_USEC=")
	if n := countPrefix(before, "READY=1"); n > 0 {
		t.Fatal("READY=1 while storage was still opening")
	}
	if !strings.Contains(extend, "STATUS=opening storage (vault)") {
		t.Errorf("extension without a STATUS saying what keyd waits for: %q", extend)
	}
	ns.expect(t, "EXTEND_TIMEOUT_USEC=") // and again, while it still waits
	if !strings.Contains(p.Log(), "storage is slow") {
		t.Errorf("no log line about slow storage:\n%s", p.Log())
	}
}

// TestNoNotifySocket: outside systemd keyd runs the same, and says nothing.
func TestNoNotifySocket(t *testing.T) {
	s := newSetup(t, "[[keyset]]\nname = \"default\"\n")
	p := keydtest.Start(t, s.config(), keydtest.Options{})
	resp, body := p.Get("/readyz")
	var ready struct {
		Ready bool `json:"ready"`
	}
	if err := json.Unmarshal(body, &ready); err != nil || resp.StatusCode != 200 || !ready.Ready {
		t.Fatalf("readyz %d %s", resp.StatusCode, body)
	}
	if strings.Contains(p.Log(), "notify systemd") {
		t.Error("keyd tried to notify systemd without NOTIFY_SOCKET")
	}
}
