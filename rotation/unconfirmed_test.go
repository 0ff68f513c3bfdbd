package rotation_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/keyd-io/keyd/backends/disk"
	"github.com/keyd-io/keyd/rotation"
)

// lostAnswers is a store whose state writes land but, while lose is set, report failure,
// as a write whose answer is lost in a timeout does.
type lostAnswers struct {
	rotation.Store
	lose bool
}

func (s *lostAnswers) Save(ctx context.Context, doc []byte, prev uint64) (uint64, error) {
	v, err := s.Store.Save(ctx, doc, prev)
	if err == nil && s.lose {
		return 0, errors.New("timeout awaiting the answer")
	}
	return v, err
}

// TestUnconfirmedWriteThatLanded checks that a rotation whose state write landed without
// confirmation is announced once, when it is read back, and is not carried out twice.
func TestUnconfirmedWriteThatLanded(t *testing.T) {
	tests := []struct {
		name string
		// retry is how the runner next meets the stored state.
		retry func(ctx context.Context, ks *rotation.Keyset) error
	}{
		{
			name: "retried request conflicts",
			retry: func(ctx context.Context, ks *rotation.Keyset) error {
				return ks.Step(ctx, rotation.Request{Rotate: true, Immediate: true})
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := disk.Open(t.TempDir(), disk.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { b.Close() })
			store := &lostAnswers{Store: b.Keyset("api")}
			var commits [][]rotation.Change
			ks := rotation.NewKeyset("api", policy(t, "@daily", time.Hour, 2*time.Hour), store,
				rotation.Options{OnCommit: func(_ rotation.State, changes []rotation.Change) {
					commits = append(commits, changes)
				}})
			ctx := context.Background()
			if err := ks.Start(ctx); err != nil {
				t.Fatal(err)
			}
			before, _ := ks.State()

			store.lose = true
			if err := ks.Step(ctx, rotation.Request{Rotate: true, Immediate: true}); err == nil {
				t.Fatal("Step succeeded although the write was not confirmed")
			}
			if len(commits) != 1 {
				t.Fatalf("an unconfirmed write was announced: %d commits", len(commits))
			}

			store.lose = false
			if err := tc.retry(ctx, ks); err != nil {
				t.Fatalf("retry: %v", err)
			}
			after, _ := ks.State()
			if len(commits) != 2 {
				t.Fatalf("%d commits after the retry, want the landed one announced", len(commits))
			}
			var activated int
			for _, c := range commits[1] {
				if c.Type == rotation.Activated {
					activated++
				}
			}
			if activated != 1 {
				t.Fatalf("the landed write announced %d activations, want 1", activated)
			}
			if got, want := after.InPhase(rotation.Current).KID,
				before.InPhase(rotation.Next).KID; got != want {
				t.Fatalf("current is %s, want the old next key %s (one rotation)", got, want)
			}
			if len(after.Keys) != 3 {
				t.Fatalf("state holds %d keys, want 3 after exactly one rotation",
					len(after.Keys))
			}
		})
	}
}

// TestUnconfirmedWriteRunner runs the same loss under the runner with a refresh, as on
// Vault: the landed rotation is announced when read back, and the request it carried out
// is not carried out a second time.
func TestUnconfirmedWriteRunner(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := disk.Open(t.TempDir(), disk.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		store := &flakyStore{Store: b.Keyset("api")}
		var (
			mu      sync.Mutex
			commits [][]rotation.Change
		)
		ks := rotation.NewKeyset("api", policy(t, "@daily", time.Second, 2*time.Hour), store,
			rotation.Options{Refresh: time.Second,
				OnCommit: func(_ rotation.State, changes []rotation.Change) {
					mu.Lock()
					defer mu.Unlock()
					commits = append(commits, changes)
				}})
		ctx, cancel := context.WithCancel(context.Background())
		if err := ks.Start(ctx); err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() {
			defer close(done)
			ks.Run(ctx)
		}()
		t.Cleanup(func() { cancel(); <-done })
		advance(2 * time.Second) // the next key is now older than publish_lead
		before, _ := ks.State()

		// The write lands unconfirmed and the retries fail, so the runner's refresh is the
		// first to read the landed state back.
		store.mode.Store(loseOnce)
		ks.Request(rotation.Request{Rotate: true})
		advance(5 * time.Second)
		store.mode.Store(healthy)
		advance(time.Minute)

		mu.Lock()
		defer mu.Unlock()
		after, _ := ks.State()
		activations := 0
		for _, cs := range commits[1:] {
			for _, c := range cs {
				if c.Type == rotation.Activated {
					activations++
				}
			}
		}
		if activations != 1 {
			t.Fatalf("%d activations announced after the lost answer, want 1", activations)
		}
		if got, want := after.InPhase(rotation.Current).KID,
			before.InPhase(rotation.Next).KID; got != want || len(after.Keys) != 3 {
			t.Fatalf("current %s with %d keys; want the old next key %s and 3 keys (one "+
				"rotation)", got, len(after.Keys), want)
		}
	})
}

// flakyStore is a store written from the runner's goroutine: in mode loseOnce the next
// state write lands but reports failure, and every write after it fails outright, until
// the mode is set back to healthy.
type flakyStore struct {
	rotation.Store
	mode atomic.Int32
}

const (
	healthy = iota
	loseOnce
	down
)

func (s *flakyStore) Save(ctx context.Context, doc []byte, prev uint64) (uint64, error) {
	switch s.mode.Load() {
	case down:
		return 0, errors.New("storage unavailable")
	case loseOnce:
		if _, err := s.Store.Save(ctx, doc, prev); err != nil {
			return 0, err
		}
		s.mode.Store(down)
		return 0, errors.New("timeout awaiting the answer")
	}
	return s.Store.Save(ctx, doc, prev)
}
