package notify

import (
	"context"
	"errors"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/keyd-io/keyd/config"
	"github.com/keyd-io/keyd/rotation"
)

// scripted is a destination whose attempts fail as told, reporting each attempt's time.
type scripted struct {
	results  []error // one per attempt; the last repeats
	hang     time.Duration
	started  chan struct{} // told when an attempt starts, if set
	attempts chan time.Time
}

func (s *scripted) deliver(ctx context.Context, _ *pending) error {
	if s.started != nil {
		s.started <- struct{}{}
	}
	if s.hang > 0 {
		timer := time.NewTimer(s.hang)
		defer timer.Stop()
		select {
		case <-ctx.Done():
		case <-timer.C:
		}
	}
	s.attempts <- time.Now()
	if len(s.results) == 0 {
		return nil
	}
	err := s.results[0]
	if len(s.results) > 1 {
		s.results = s.results[1:]
	}
	return err
}

func noJitter(d time.Duration) time.Duration { return d }

// newFakeNotifier builds a Notifier over real outbox files with the given destinations.
func newFakeNotifier(t *testing.T, opts Options, retry config.Retry, dests ...deliverer,
) (*Notifier, []*worker) {
	t.Helper()
	if opts.Jitter == nil {
		opts.Jitter = noJitter
	}
	n := newNotifier("https://keys.example.test", opts)
	var workers []*worker
	for i, d := range dests {
		workers = append(workers, n.add(kindWebhook, "fake-"+itoa(i), "fake-"+itoa(i),
			config.EventTypes, retry, d))
	}
	if err := n.open(t.TempDir()); err != nil {
		t.Fatal(err)
	}
	return n, workers
}

func TestRetrySchedule(t *testing.T) {
	failure := errors.New("503 Service Unavailable")
	tests := []struct {
		name       string
		retry      config.Retry
		results    []error
		wantAt     []time.Duration // attempt times after the event
		wantResult string
	}{
		{
			name:       "delivered after two failures",
			retry:      retryPolicy(time.Second, 8*time.Second, time.Hour),
			results:    []error{failure, failure, nil},
			wantAt:     []time.Duration{0, 1 * time.Second, 3 * time.Second},
			wantResult: resultDelivered,
		},
		{
			name:    "backoff doubles up to backoff_max, then gives up on time",
			retry:   retryPolicy(time.Second, 8*time.Second, 30*time.Second),
			results: []error{failure},
			wantAt: []time.Duration{0, 1 * time.Second, 3 * time.Second, 7 * time.Second,
				15 * time.Second, 23 * time.Second, 30 * time.Second},
			wantResult: resultGaveUp,
		},
		{
			name:       "Retry-After longer than the backoff is honoured",
			retry:      retryPolicy(time.Second, time.Minute, time.Hour),
			results:    []error{retryAfter(failure, 20*time.Second), nil},
			wantAt:     []time.Duration{0, 20 * time.Second},
			wantResult: resultDelivered,
		},
		{
			name:       "Retry-After shorter than the backoff waits for the backoff",
			retry:      retryPolicy(10*time.Second, time.Minute, time.Hour),
			results:    []error{retryAfter(failure, time.Second), nil},
			wantAt:     []time.Duration{0, 10 * time.Second},
			wantResult: resultDelivered,
		},
		{
			name:       "Retry-After past give_up_after is cut to a last attempt",
			retry:      retryPolicy(time.Second, time.Minute, 10*time.Second),
			results:    []error{retryAfter(failure, time.Hour)},
			wantAt:     []time.Duration{0, 10 * time.Second},
			wantResult: resultGaveUp,
		},
		{
			name:       "permanent failure is not retried",
			retry:      retryPolicy(time.Second, time.Minute, time.Hour),
			results:    []error{permanent(errors.New("400 Bad Request"))},
			wantAt:     []time.Duration{0},
			wantResult: resultRejected,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				dest := &scripted{results: tc.results, attempts: make(chan time.Time)}
				n, workers := newFakeNotifier(t, Options{}, tc.retry, dest)
				before := testutil.ToFloat64(deliveriesTotal.WithLabelValues(kindWebhook,
					tc.wantResult))
				start := time.Now()
				if err := n.Publish("default", []rotation.Change{
					change(rotation.Activated, "k1", ""),
				}); err != nil {
					t.Fatal(err)
				}
				n.Start()
				defer n.Stop()

				var got []time.Duration
				for range tc.wantAt {
					got = append(got, (<-dest.attempts).Sub(start))
				}
				synctest.Wait()

				if !slices.Equal(got, tc.wantAt) {
					t.Errorf("attempts at %v, want %v", got, tc.wantAt)
				}
				if p := workers[0].head(); p != nil {
					t.Errorf("delivery %s still queued after its last attempt", p.ID)
				}
				if files := outboxFiles(t, n.box.dir); len(files) != 0 {
					t.Errorf("outbox still holds %v", files)
				}
				after := testutil.ToFloat64(deliveriesTotal.WithLabelValues(kindWebhook,
					tc.wantResult))
				if after != before+1 {
					t.Errorf("deliveries{result=%q} grew by %v, want 1", tc.wantResult,
						after-before)
				}
			})
		})
	}
}

func TestDeadDestinationDoesNotDelayOthers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dead := &scripted{hang: time.Minute, results: []error{errors.New("no answer")},
			attempts: make(chan time.Time, 100)}
		alive := &scripted{attempts: make(chan time.Time, 100)}
		n, _ := newFakeNotifier(t, Options{}, retryPolicy(time.Second, time.Minute, time.Hour),
			dead, alive)
		start := time.Now()
		for _, kid := range []string{"k1", "k2", "k3"} {
			if err := n.Publish("default", []rotation.Change{
				change(rotation.Published, kid, ""),
			}); err != nil {
				t.Fatal(err)
			}
		}
		n.Start()
		defer n.Stop()

		for i := range 3 {
			if at := (<-alive.attempts).Sub(start); at != 0 {
				t.Errorf("event %d reached the live destination after %s, want at once",
					i+1, at)
			}
		}
		if len(dead.attempts) != 0 {
			t.Errorf("the dead destination answered before the live one was served")
		}
	})
}

func TestStopLetsAttemptsInFlightFinish(t *testing.T) {
	tests := []struct {
		name        string
		attempt     time.Duration
		wantStop    time.Duration // how long Stop takes
		wantPending int
	}{
		{name: "finishes within the grace", attempt: 2 * time.Second,
			wantStop: 2 * time.Second, wantPending: 0},
		{name: "cut off after the grace", attempt: time.Minute,
			wantStop: DefaultStopGrace, wantPending: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				dest := &scripted{hang: tc.attempt, started: make(chan struct{}, 1),
					attempts: make(chan time.Time, 1)}
				n, _ := newFakeNotifier(t, Options{},
					retryPolicy(time.Second, time.Minute, time.Hour), dest)
				if err := n.Publish("default", []rotation.Change{
					change(rotation.Activated, "k1", ""),
				}); err != nil {
					t.Fatal(err)
				}
				n.Start()
				<-dest.started

				start := time.Now()
				n.Stop()
				if took := time.Since(start); took != tc.wantStop {
					t.Errorf("Stop took %s, want %s", took, tc.wantStop)
				}
				if got := len(outboxFiles(t, n.box.dir)); got != tc.wantPending {
					t.Errorf("%d deliveries left in the outbox, want %d", got, tc.wantPending)
				}
			})
		})
	}
}

func TestGiveUpCountsFromTheEventNotTheRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		dir := t.TempDir()
		retry := retryPolicy(time.Second, time.Minute, 24*time.Hour)
		first := newNotifier("https://keys.example.test", Options{})
		first.add(kindWebhook, "fake", "fake", config.EventTypes, retry, &scripted{})
		if err := first.open(dir); err != nil {
			t.Fatal(err)
		}
		if err := first.Publish("default", []rotation.Change{
			change(rotation.Activated, "k1", ""),
		}); err != nil {
			t.Fatal(err)
		}
		first.Close() // stopped before any attempt

		// keyd comes back a day and an hour later.
		later := func() time.Time { return time.Now().Add(25 * time.Hour) }
		dest := &scripted{results: []error{errors.New("still down")},
			attempts: make(chan time.Time, 10)}
		second := newNotifier("https://keys.example.test", Options{Now: later})
		w := second.add(kindWebhook, "fake", "fake", config.EventTypes, retry, dest)
		if err := second.open(dir); err != nil {
			t.Fatal(err)
		}
		defer second.Close()
		second.Start()
		defer second.Stop()
		synctest.Wait()

		if got := len(dest.attempts); got != 1 {
			t.Errorf("%d attempts after the restart, want 1 and then give up", got)
		}
		if w.head() != nil {
			t.Errorf("delivery still queued, want it given up")
		}
	})
}

func retryPolicy(initial, ceiling, giveUp time.Duration) config.Retry {
	return config.Retry{
		Timeout:        config.Duration(10 * time.Second),
		BackoffInitial: config.Duration(initial),
		BackoffMax:     config.Duration(ceiling),
		GiveUpAfter:    config.Duration(giveUp),
	}
}

func TestHalfJitterStaysInRange(t *testing.T) {
	for _, d := range []time.Duration{0, 1, 2, time.Millisecond, time.Second, time.Hour} {
		for range 100 {
			if got := halfJitter(d); got < d/2 || got > d {
				t.Fatalf("halfJitter(%s) = %s, outside [%s, %s]", d, got, d/2, d)
			}
		}
	}
}
