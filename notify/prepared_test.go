package notify

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyd-io/keyd/config"
	"github.com/keyd-io/keyd/rotation"
)

// TestPreparedEventsWaitForTheirCommit prepares an activation under a commit id, settles
// it one way or another (possibly after a restart in between), then publishes a marker
// event to the same receiver. Events to one destination go out in order, so once the
// marker arrives, the activation would have arrived before it if it was ever sendable.
func TestPreparedEventsWaitForTheirCommit(t *testing.T) {
	tests := []struct {
		name string
		// restart drops the notifier between Prepare and settling, as a crash would.
		restart bool
		// settle is what keyd learns about the write afterwards.
		settle   func(n *Notifier) error
		wantSent bool
		// wantKept says the record is still prepared afterwards.
		wantKept bool
	}{
		{
			name:     "committed",
			settle:   func(n *Notifier) error { return n.Resolve("api", []string{"c0", "c1"}) },
			wantSent: true,
		},
		{
			name:   "not in the committed state",
			settle: func(n *Notifier) error { return n.Resolve("api", []string{"c0", "c2"}) },
		},
		{
			name:   "aborted",
			settle: func(n *Notifier) error { return n.Abort("api", "c1") },
		},
		{
			name:     "committed before a crash",
			restart:  true,
			settle:   func(n *Notifier) error { return n.Resolve("api", []string{"c1"}) },
			wantSent: true,
		},
		{
			name:    "not committed before a crash",
			restart: true,
			settle:  func(n *Notifier) error { return n.Resolve("api", nil) },
		},
		{
			name:     "another keyset's commit",
			settle:   func(n *Notifier) error { return n.Resolve("web", []string{"c1"}) },
			wantKept: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			secret, secretFile := writeSecret(t, dir)
			recv := newReceiver(t)
			cfg := newTestConfig(t, config.Notify{Webhooks: []config.Webhook{{
				URL: recv.URL, SecretFile: secretFile, Events: config.EventTypes,
				Retry: fastRetry,
			}}})

			n := startNotifier(t, cfg, nil)
			if err := n.Prepare("api", "c1", []rotation.Change{
				change(rotation.Activated, "k1", "k0"),
			}); err != nil {
				t.Fatalf("prepare: %v", err)
			}
			prepared := preparedFiles(t, cfg.Notify.Dir)
			if len(prepared) != 1 || len(outboxFiles(t, cfg.Notify.Dir)) != 0 {
				t.Fatalf("outbox after Prepare: prepared %v, sendable %v; want one prepared",
					prepared, outboxFiles(t, cfg.Notify.Dir))
			}
			rec := readRecord(t, prepared[0])
			if rec.Keyset != "api" || rec.Commit != "c1" {
				t.Fatalf("prepared record names keyset %q commit %q", rec.Keyset, rec.Commit)
			}
			if tc.restart {
				n.Stop()
				n.Close()
				n = startNotifier(t, cfg, nil)
			}

			if err := tc.settle(n); err != nil {
				t.Fatalf("settle: %v", err)
			}
			if err := n.Publish("api", []rotation.Change{
				change(rotation.RetiredChange, "k0", ""),
			}); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the marker", func() bool {
				seen := recv.seen()
				return len(seen) > 0 && seen[len(seen)-1].Event(t).Type == "key.retired"
			})

			seen := recv.seen()
			var ids []string
			for _, req := range seen {
				verifySignature(t, secret, req)
				ids = append(ids, req.ID())
			}
			want := 1
			if tc.wantSent {
				want = 2
				if seen[0].ID() != rec.ID || seen[0].Event(t).KID != "k1" {
					t.Errorf("first request is %s of %s, want the prepared %s", seen[0].ID(),
						seen[0].Event(t).KID, rec.ID)
				}
			}
			if len(seen) != want {
				t.Errorf("receiver got %v, want %d requests", ids, want)
			}
			if kept := len(preparedFiles(t, cfg.Notify.Dir)) == 1; kept != tc.wantKept {
				t.Errorf("record still prepared: %v, want %v", kept, tc.wantKept)
			}
		})
	}
}

// TestPrepareKeepsNothingOnFailure prepares for two destinations, the second of which
// cannot be written: Prepare fails and leaves nothing behind for the first.
func TestPrepareKeepsNothingOnFailure(t *testing.T) {
	dir := t.TempDir()
	_, secretFile := writeSecret(t, dir)
	hook := config.Webhook{SecretFile: secretFile, Events: config.EventTypes, Retry: fastRetry}
	first, second := hook, hook
	first.URL, second.URL = "http://127.0.0.1:9/a", "http://127.0.0.1:9/b"
	cfg := newTestConfig(t, config.Notify{Webhooks: []config.Webhook{first, second}})
	n, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	broken := filepath.Join(cfg.Notify.Dir, n.workers[1].key)
	if err := os.Remove(broken); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(broken, nil, 0o600); err != nil {
		t.Fatal(err)
	}

	err = n.Prepare("api", "c1", []rotation.Change{change(rotation.Activated, "k1", "")})
	if err == nil || !strings.Contains(err.Error(), "queue key.activated of kid k1") {
		t.Fatalf("Prepare error = %v, want one naming the event", err)
	}
	if files := preparedFiles(t, cfg.Notify.Dir); len(files) != 0 {
		t.Errorf("a failed Prepare left %v", files)
	}
	if err := n.Resolve("api", []string{"c1"}); err != nil {
		t.Fatalf("resolve: %v", err)
	}
	for _, w := range n.workers {
		if w.head() != nil {
			t.Errorf("%s queued an event of a failed Prepare", w.label)
		}
	}
}

// preparedFiles lists the prepared records under dir.
func preparedFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*", "*"+preparedExt))
	if err != nil {
		t.Fatal(err)
	}
	return files
}
