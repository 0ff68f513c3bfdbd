package rotation_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/keyd-io/keyd/backends/disk"
	"github.com/keyd-io/keyd/rotation"
)

// gatedStore blocks every Save until the gate is opened, wedging the runner mid-step.
type gatedStore struct {
	rotation.Store
	gate chan struct{}
}

func (g *gatedStore) Save(ctx context.Context, doc []byte, prev uint64) (uint64, error) {
	<-g.gate
	return g.Store.Save(ctx, doc, prev)
}

func TestAliveAnswersOnlyBetweenSteps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := disk.Open(t.TempDir(), disk.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		gate := make(chan struct{})
		open := make(chan struct{})
		close(open)
		store := &gatedStore{Store: b.Keyset("api"), gate: open}
		var steps []error
		k := rotation.NewKeyset("api", policy(t, "@daily", time.Hour, 2*time.Hour), store,
			rotation.Options{OnStep: func(_ rotation.Request, _ rotation.Decision, err error) {
				steps = append(steps, err)
			}})
		if err := k.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			k.Run(ctx)
		}()
		alive := func() error {
			probe, stop := context.WithTimeout(context.Background(), time.Second)
			defer stop()
			return k.Alive(probe)
		}

		if err := alive(); err != nil {
			t.Fatalf("idle runner: Alive = %v", err)
		}

		// An immediate rotation needs a Save; with the gate shut the step hangs there.
		store.gate = gate
		k.Request(rotation.Request{Rotate: true, Immediate: true})
		synctest.Wait()
		if err := alive(); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("wedged runner: Alive = %v, want a deadline error", err)
		}

		close(gate)
		synctest.Wait()
		if err := alive(); err != nil {
			t.Fatalf("runner after the wedge: Alive = %v", err)
		}
		if len(steps) < 2 || steps[len(steps)-1] != nil {
			t.Errorf("steps = %v, want the start and the rotation, both fine", steps)
		}
		cancel()
		<-done
	})
}

// TestAliveKeepsTimers: answering probes must not postpone a due change.
func TestAliveKeepsTimers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, t.TempDir(), policy(t, "@daily", time.Hour, 2*time.Hour))
		synctest.Wait()
		// Probe every half hour for a day: the midnight rotation still happens on time.
		for range 48 {
			advance(30 * time.Minute)
			probe, stop := context.WithTimeout(context.Background(), time.Second)
			if err := h.keyset.Alive(probe); err != nil {
				t.Fatal(err)
			}
			stop()
		}
		if got := h.count(rotation.Activated); got < 2 {
			t.Fatalf("%d activations after a day of probes, want the scheduled one too", got)
		}
	})
}
