package rotation_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyd-io/keyd/backends/disk"
	"github.com/keyd-io/keyd/rotation"
)

// hookLog records what a runner tells its Prepare, Abort and OnCommit hooks.
type hookLog struct {
	mu       sync.Mutex
	prepared []string
	aborted  []string
	states   []rotation.State
	// failPrepare, when set, is returned by Prepare.
	failPrepare error
}

func (l *hookLog) options() rotation.Options {
	return rotation.Options{
		Prepare: func(commit string, _ []rotation.Change) error {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.prepared = append(l.prepared, commit)
			return l.failPrepare
		},
		Abort: func(commit string) {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.aborted = append(l.aborted, commit)
		},
		OnCommit: func(s rotation.State, _ []rotation.Change) {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.states = append(l.states, s)
		},
	}
}

func (l *hookLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.prepared, l.aborted, l.states = nil, nil, nil
}

// writeEnv is what a TestPreparedWrites case acts on: the runner under test, a rival
// runner on the same storage, the hooks' record and the runner's store.
type writeEnv struct {
	ks, rival *rotation.Keyset
	log       *hookLog
	store     *lostAnswers
}

// TestPreparedWrites checks that every state write is prepared first, and that the state
// committed in the end lists the commit id of exactly the write that landed: none when
// Prepare fails (nothing is written) or another replica wins (the write is aborted), the
// first when its answer was lost and the retry conflicts with it.
func TestPreparedWrites(t *testing.T) {
	rotate := rotation.Request{Rotate: true, Immediate: true}
	tests := []struct {
		name    string
		act     func(ctx context.Context, e *writeEnv) error
		wantErr string
		// wantLanded is the index, among the writes prepared, of the one the final state
		// lists; -1 for none.
		wantLanded  int
		wantAborted []int
	}{
		{
			name: "prepare fails",
			act: func(ctx context.Context, e *writeEnv) error {
				e.log.failPrepare = errors.New("outbox disk full")
				return e.ks.Step(ctx, rotate)
			},
			wantErr:    "prepare events: outbox disk full",
			wantLanded: -1,
		},
		{
			name: "another replica wins",
			act: func(ctx context.Context, e *writeEnv) error {
				if err := e.rival.Step(ctx, rotate); err != nil {
					return err
				}
				return e.ks.Step(ctx, rotate)
			},
			wantLanded:  -1,
			wantAborted: []int{0},
		},
		{
			name: "answer lost, retry conflicts",
			act: func(ctx context.Context, e *writeEnv) error {
				e.store.lose = true
				if err := e.ks.Step(ctx, rotate); err == nil {
					return errors.New("a write without answer succeeded")
				}
				e.store.lose = false
				return e.ks.Step(ctx, rotate)
			},
			wantLanded:  0,
			wantAborted: []int{1},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			b, err := disk.Open(t.TempDir(), disk.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			store := &lostAnswers{Store: b.Keyset("api")}
			pol := policy(t, "@daily", time.Hour, 2*time.Hour)
			log := &hookLog{}
			ks := rotation.NewKeyset("api", pol, store, log.options())
			if err := ks.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if first, _ := ks.State(); len(first.Commits) != 1 ||
				!slices.Equal(log.prepared, first.Commits) {
				t.Fatalf("first start prepared %v, committed %v; want the same one id",
					log.prepared, first.Commits)
			}
			rival := rotation.NewKeyset("api", pol, b.Keyset("api"), rotation.Options{})
			if err := rival.Start(ctx); err != nil {
				t.Fatal(err)
			}
			before, _ := ks.State()
			log.reset()

			err = tc.act(ctx, &writeEnv{ks: ks, rival: rival, log: log, store: store})
			if wantErr := tc.wantErr != ""; (err != nil) != wantErr ||
				wantErr && !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}

			stored := storedState(t, ctx, b, "api")
			served, _ := ks.State()
			if !slices.Equal(served.Commits, stored.Commits) {
				t.Fatalf("runner serves commits %v, storage holds %v", served.Commits,
					stored.Commits)
			}
			if tc.wantErr != "" && !slices.Equal(stored.Commits, before.Commits) {
				t.Errorf("a failed step changed the stored state: commits %v, was %v",
					stored.Commits, before.Commits)
			}
			for i, id := range log.prepared {
				if landed := stored.Committed(id); landed != (i == tc.wantLanded) {
					t.Errorf("write %d (%s): in the stored state = %v, want %v", i, id,
						landed, !landed)
				}
			}
			var aborted []string
			for _, i := range tc.wantAborted {
				aborted = append(aborted, log.prepared[i])
			}
			if !slices.Equal(log.aborted, aborted) {
				t.Errorf("aborted %v, want %v (prepared %v)", log.aborted, aborted, log.prepared)
			}
			if n := len(log.states); n > 0 && !slices.Equal(log.states[n-1].Commits,
				stored.Commits) {
				t.Errorf("last state told to OnCommit lists %v, storage %v",
					log.states[n-1].Commits, stored.Commits)
			}
			assertKeysNamed(t, ctx, b, stored)
		})
	}
}

// storedState reads and decodes the state of keyset name from b.
func storedState(t *testing.T, ctx context.Context, b *disk.Backend, name string,
) rotation.State {
	t.Helper()
	doc, _, err := b.Keyset(name).Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s, err := rotation.Decode(doc, name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// assertKeysNamed fails unless every stored private key is named by s: a write that did
// not land leaves no key behind (an unconfirmed one leaves its keys to the orphan sweep).
func assertKeysNamed(t *testing.T, ctx context.Context, b *disk.Backend, s rotation.State) {
	t.Helper()
	stored, err := b.Keyset(s.Keyset).ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range stored {
		if s.Find(k.KID) == nil {
			t.Errorf("private key %s is named by no state", k.KID)
		}
	}
}
