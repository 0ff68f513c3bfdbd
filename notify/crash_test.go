package notify

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/keyd-io/keyd/backends/disk"
	"github.com/keyd-io/keyd/config"
	"github.com/keyd-io/keyd/rotation"
)

// failingSave is a store whose state writes fail without landing.
type failingSave struct{ rotation.Store }

func (failingSave) Save(context.Context, []byte, uint64) (uint64, error) {
	return 0, errors.New("storage unavailable")
}

// TestCrashBetweenCommitAndConfirm rotates a keyset on real disk storage with a real
// outbox and "crashes" right after the state write, before its events are confirmed:
// runner and notifier are dropped, then opened again as keyd does at its next start.
// Events of a write that landed are then sent, once each, with the ids they were
// prepared under; those of a write that did not land are dropped unsent.
func TestCrashBetweenCommitAndConfirm(t *testing.T) {
	tests := []struct {
		name string
		// saveFails makes the rotation's state write fail without landing.
		saveFails bool
		want      []string
	}{
		{
			name: "write landed",
			want: []string{"key.retired", "key.activated", "key.published"},
		},
		{name: "write did not land", saveFails: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			data := filepath.Join(dir, "data")
			secret, secretFile := writeSecret(t, dir)
			recv := newReceiver(t)
			cfg := newTestConfig(t, config.Notify{Webhooks: []config.Webhook{{
				URL: recv.URL, SecretFile: secretFile, Events: config.EventTypes,
				Retry: fastRetry,
			}}})
			outboxEmpty := func() bool {
				return len(outboxFiles(t, cfg.Notify.Dir)) == 0 &&
					len(preparedFiles(t, cfg.Notify.Dir)) == 0
			}

			// The first start, whose three events are delivered.
			first := openRun(t, cfg, data, true, nil)
			if err := first.keyset.Start(ctx); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the first start's events", func() bool {
				return outboxEmpty() && len(recv.seen()) == 3
			})
			before, _ := first.keyset.State()
			first.close()

			// A rotation whose events nothing confirms: the crash lands first.
			var wrap func(rotation.Store) rotation.Store
			if tc.saveFails {
				wrap = func(s rotation.Store) rotation.Store { return failingSave{s} }
			}
			crashed := openRun(t, cfg, data, false, wrap)
			if err := crashed.keyset.Start(ctx); err != nil {
				t.Fatal(err)
			}
			err := crashed.keyset.Step(ctx, rotation.Request{Rotate: true, Immediate: true})
			if tc.saveFails != (err != nil) {
				t.Fatalf("rotation: %v", err)
			}
			prepared := map[string]bool{}
			var commit string
			for _, path := range preparedFiles(t, cfg.Notify.Dir) {
				rec := readRecord(t, path)
				prepared[rec.ID], commit = true, rec.Commit
			}
			if len(prepared) != 3 || len(outboxFiles(t, cfg.Notify.Dir)) != 0 {
				t.Fatalf("outbox at the crash: %d prepared, %d sendable; want 3 prepared",
					len(prepared), len(outboxFiles(t, cfg.Notify.Dir)))
			}
			crashed.close()

			// The next start settles the prepared events against the state it loads.
			next := openRun(t, cfg, data, true, nil)
			if err := next.keyset.Start(ctx); err != nil {
				t.Fatalf("start after the crash: %v", err)
			}
			eventually(t, "an empty outbox", outboxEmpty)
			s, _ := next.keyset.State()
			if s.Committed(commit) == tc.saveFails {
				t.Fatalf("state lists commits %v; the rotation's %s landed: %v", s.Commits,
					commit, !tc.saveFails)
			}
			seen := recv.seen()[3:]
			var types []string
			for _, req := range seen {
				verifySignature(t, secret, req)
				types = append(types, req.Event(t).Type)
				if !prepared[req.ID()] {
					t.Errorf("sent %s (%s), which was not prepared before the crash",
						req.ID(), req.Event(t).Type)
				}
			}
			if !slices.Equal(types, tc.want) {
				t.Errorf("after the crash the receiver got %v, want %v", types, tc.want)
			}
			for _, req := range seen {
				ev := req.Event(t)
				if ev.Type != "key.activated" {
					continue
				}
				if ev.KID != s.InPhase(rotation.Current).KID ||
					ev.PreviousKID != before.InPhase(rotation.Current).KID {
					t.Errorf("activation %+v does not match the state", ev)
				}
			}
			next.close()
		})
	}
}

// run is one life of keyd's rotation and notification on shared disk storage and outbox.
type run struct {
	keyset   *rotation.Keyset
	notifier *Notifier
	backend  *disk.Backend
}

// openRun opens the storage in data and the outbox of cfg and wires a runner for keyset
// "default" to the notifier as keyd does; without confirm, committed states are not
// told to the notifier, as when keyd crashes right after a commit. wrap, when set,
// wraps the keyset's store.
func openRun(t *testing.T, cfg *config.Config, data string, confirm bool,
	wrap func(rotation.Store) rotation.Store,
) *run {
	t.Helper()
	r := &run{backend: openDisk(t, data), notifier: startNotifier(t, cfg, nil)}
	var store rotation.Store = r.backend.Keyset("default")
	if wrap != nil {
		store = wrap(store)
	}
	opts := rotation.Options{
		Prepare: func(commit string, changes []rotation.Change) error {
			return r.notifier.Prepare("default", commit, changes)
		},
		Abort: func(commit string) {
			if err := r.notifier.Abort("default", commit); err != nil {
				t.Errorf("abort: %v", err)
			}
		},
	}
	if confirm {
		opts.OnCommit = func(s rotation.State, _ []rotation.Change) {
			if err := r.notifier.Resolve("default", s.Commits); err != nil {
				t.Errorf("resolve: %v", err)
			}
		}
	}
	r.keyset = rotation.NewKeyset("default", testPolicy(t), store, opts)
	return r
}

// close drops the run; deliveries in flight are cut off and stay in the outbox.
func (r *run) close() {
	r.notifier.Stop()
	r.notifier.Close()
	r.backend.Close()
}

func openDisk(t *testing.T, dir string) *disk.Backend {
	t.Helper()
	b, err := disk.Open(dir, disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func testPolicy(t *testing.T) rotation.Policy {
	t.Helper()
	sched, err := cron.ParseStandard("@daily")
	if err != nil {
		t.Fatal(err)
	}
	return rotation.Policy{Algorithm: "ES256", Schedule: sched, PublishLead: time.Hour,
		Grace: 2 * time.Hour}
}
