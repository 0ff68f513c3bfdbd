package rotation_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/keyd-io/keyd/backends/disk"
	"github.com/keyd-io/keyd/rotation"
)

// harness runs one keyset on a real disk store inside a synctest bubble, where time only
// moves when every goroutine waits, so the runner's timers fire at exact fake instants.
type harness struct {
	t       *testing.T
	dir     string
	backend *disk.Backend
	keyset  *rotation.Keyset
	cancel  context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	commits [][]rotation.Change
}

func policy(t *testing.T, schedule string, lead, grace time.Duration) rotation.Policy {
	t.Helper()
	sched, err := cron.ParseStandard(schedule)
	if err != nil {
		t.Fatal(err)
	}
	return rotation.Policy{Algorithm: "ES256", Schedule: sched, PublishLead: lead, Grace: grace}
}

func start(t *testing.T, dir string, pol rotation.Policy) *harness {
	t.Helper()
	b, err := disk.Open(dir, disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, dir: dir, backend: b, done: make(chan struct{})}
	h.keyset = rotation.NewKeyset("api", pol, b.Keyset("api"), rotation.Options{
		OnCommit: func(_ rotation.State, changes []rotation.Change) {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.commits = append(h.commits, changes)
		},
	})
	if err := h.keyset.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() {
		defer close(h.done)
		h.keyset.Run(ctx)
	}()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	if h.cancel != nil {
		h.cancel()
		<-h.done
		h.cancel = nil
		h.backend.Close()
	}
}

// count returns how many changes of type ct were committed so far.
func (h *harness) count(ct rotation.ChangeType) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, cs := range h.commits {
		for _, c := range cs {
			if c.Type == ct {
				n++
			}
		}
	}
	return n
}

func (h *harness) current() string {
	s, _ := h.keyset.State()
	return s.InPhase(rotation.Current).KID
}

// advance moves fake time forward by d and lets the runner finish what fell due.
func advance(d time.Duration) {
	time.Sleep(d)
	synctest.Wait()
}

func TestRunnerRotatesOnSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, t.TempDir(), policy(t, "@daily", time.Hour, 2*time.Hour))
		first := h.current()
		synctest.Wait()

		advance(24*time.Hour - time.Second)
		if got := h.count(rotation.Activated); got != 1 {
			t.Fatalf("%d activations before midnight, want only the first start's", got)
		}
		advance(time.Second)
		if got := h.count(rotation.Activated); got != 2 {
			t.Fatalf("%d activations at midnight, want 2", got)
		}
		s, _ := h.keyset.State()
		if s.Find(first).Phase != rotation.Retired {
			t.Fatalf("first key is %s after rotation, want retired", s.Find(first).Phase)
		}

		// The retired key leaves exactly when grace ends; no rotation is needed for that.
		advance(2*time.Hour - time.Second)
		if h.count(rotation.Removed) != 0 {
			t.Fatal("retired key removed before its grace ended")
		}
		advance(time.Second)
		if h.count(rotation.Removed) != 1 {
			t.Fatal("retired key not removed when its grace ended")
		}
		if _, err := os.Stat(filepath.Join(h.dir, "api", "keys", first+".jwk")); !os.IsNotExist(err) {
			t.Fatalf("private key of removed key still on disk: %v", err)
		}
	})
}

func TestRunnerCatchesUpOnceAfterDowntime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		pol := policy(t, "@daily", time.Hour, 2*time.Hour)
		h := start(t, dir, pol)
		synctest.Wait()
		h.stop()
		time.Sleep(5*24*time.Hour + 3*time.Hour) // keyd is down for five scheduled runs

		again := start(t, dir, pol)
		synctest.Wait()
		if got := again.count(rotation.Activated); got != 1 {
			t.Fatalf("%d activations at start after missing 5 runs, want exactly 1", got)
		}
		advance(20 * time.Hour) // to the next midnight
		if got := again.count(rotation.Activated); got != 1 {
			t.Fatalf("%d activations before the next scheduled run, want 1", got)
		}
		advance(time.Hour)
		if got := again.count(rotation.Activated); got != 2 {
			t.Fatalf("%d activations after the next scheduled run, want 2", got)
		}
	})
}

func TestRunnerCoalescesRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, t.TempDir(), policy(t, "@daily", time.Hour, 2*time.Hour))
		synctest.Wait()
		before := h.count(rotation.Activated)

		// Requests arriving together (a signal storm, or during a rotation) add up to at
		// most one more rotation.
		for range 5 {
			h.keyset.Request(rotation.Request{Rotate: true, Immediate: true})
		}
		synctest.Wait()
		if got := h.count(rotation.Activated) - before; got != 1 {
			t.Fatalf("5 coalesced requests made %d rotations, want 1", got)
		}
	})
}

func TestRunnerDefersRequestedRotation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, t.TempDir(), policy(t, "@daily", time.Hour, 2*time.Hour))
		synctest.Wait()
		advance(10 * time.Minute)
		err := h.keyset.Do(context.Background(), rotation.Request{Rotate: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := h.count(rotation.Activated); got != 1 {
			t.Fatalf("rotation ran while next was younger than publish_lead")
		}
		advance(50*time.Minute - time.Second)
		if got := h.count(rotation.Activated); got != 1 {
			t.Fatalf("deferred rotation ran early")
		}
		advance(time.Second)
		if got := h.count(rotation.Activated); got != 2 {
			t.Fatalf("deferred rotation did not run once next was publish_lead old")
		}
	})
}

func TestRunnerRevokeUnknownKID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, t.TempDir(), policy(t, "@daily", time.Hour, 2*time.Hour))
		err := h.keyset.Do(context.Background(), rotation.Request{Revoke: "nope"})
		if err == nil {
			t.Fatal("revoking an unknown kid succeeded")
		}
	})
}

func TestStartRefusesCorruptStateUntouched(t *testing.T) {
	tests := []struct {
		name    string
		state   string
		wantMsg string
	}{
		{name: "not JSON", state: "{not json", wantMsg: "decode state"},
		{name: "unknown version", state: `{"version": 9, "keyset": "api", "keys": []}`,
			wantMsg: "state version 9 is not supported"},
		{name: "no current key", state: `{"version": 1, "keyset": "api", "keys": []}`,
			wantMsg: "0 current keys"},
		{name: "another keyset's state", state: `{"version": 1, "keyset": "web", "keys": []}`,
			wantMsg: `belongs to keyset "web"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "api", "state.json")
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(tc.state), 0o600); err != nil {
				t.Fatal(err)
			}
			b, err := disk.Open(dir, disk.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			ks := rotation.NewKeyset("api", policy(t, "@daily", time.Hour, time.Hour),
				b.Keyset("api"), rotation.Options{})
			err = ks.Start(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.wantMsg) ||
				!strings.Contains(err.Error(), path) {
				t.Fatalf("Start: %v, want an error naming %s and saying %q", err, path, tc.wantMsg)
			}
			after, _ := os.ReadFile(path)
			if string(after) != tc.state {
				t.Fatal("the refused state file was changed")
			}
			if entries, _ := os.ReadDir(filepath.Join(dir, "api")); len(entries) != 1 {
				t.Fatalf("keyset dir holds %d entries after a refused start, want only state.json",
					len(entries))
			}
		})
	}
}

func TestStartCleansOrphanKeys(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		pol := policy(t, "@daily", time.Hour, time.Hour)
		h := start(t, dir, pol)
		synctest.Wait()
		h.stop()

		// A crash between storing a fresh private key and committing the state leaves a
		// key that no state names.
		orphan := filepath.Join(dir, "api", "keys", strings.Repeat("A", 43)+".jwk")
		if err := os.WriteFile(orphan, []byte("{}"), 0o600); err != nil {
			t.Fatal(err)
		}
		again := start(t, dir, pol)
		synctest.Wait()
		if _, err := os.Stat(orphan); !os.IsNotExist(err) {
			t.Fatalf("orphan private key survived a start: %v", err)
		}
		s, _ := again.keyset.State()
		for _, k := range s.Keys {
			if _, err := os.Stat(filepath.Join(dir, "api", "keys", k.KID+".jwk")); err != nil {
				t.Fatalf("a named key was cleaned up: %v", err)
			}
		}
	})
}

func TestNextKeyWithoutPrivateKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		pol := policy(t, "@daily", time.Hour, time.Hour)
		h := start(t, dir, pol)
		synctest.Wait()
		s, _ := h.keyset.State()
		next := s.InPhase(rotation.Next).KID
		current := s.InPhase(rotation.Current).KID
		if err := os.Remove(filepath.Join(dir, "api", "keys", next+".jwk")); err != nil {
			t.Fatal(err)
		}

		// A promotion would make current a key issuers cannot be handed: refused.
		err := h.keyset.Do(context.Background(), rotation.Request{Rotate: true, Immediate: true})
		if err == nil || !strings.Contains(err.Error(), "promote next key") {
			t.Fatalf("rotation with a lost next key: %v, want a refusal", err)
		}
		if h.current() != current {
			t.Fatal("the current key changed although its successor has no private key")
		}

		// Revoking the broken next key repairs the keyset.
		if err := h.keyset.Do(context.Background(), rotation.Request{Revoke: next}); err != nil {
			t.Fatalf("revoke the broken next key: %v", err)
		}
		if err := h.keyset.Do(context.Background(),
			rotation.Request{Rotate: true, Immediate: true}); err != nil {
			t.Fatalf("rotation after replacing the next key: %v", err)
		}

		// At start, a state whose next key has no private key is refused.
		h.stop()
		s, _ = h.keyset.State()
		lost := s.InPhase(rotation.Next).KID
		if err := os.Remove(filepath.Join(dir, "api", "keys", lost+".jwk")); err != nil {
			t.Fatal(err)
		}
		b, err := disk.Open(dir, disk.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		err = rotation.NewKeyset("api", pol, b.Keyset("api"), rotation.Options{}).
			Start(context.Background())
		if err == nil || !strings.Contains(err.Error(), "next key") {
			t.Fatalf("Start with a lost next key: %v, want a refusal naming it", err)
		}
	})
}
