package daemon

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
)

// sink records the notifications a service sends.
type sink struct {
	mu   sync.Mutex
	sent []string
}

func (s *sink) send(state string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = append(s.sent, state)
	return nil
}

func (s *sink) count(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, m := range s.sent {
		if strings.HasPrefix(m, prefix) {
			n++
		}
	}
	return n
}

func TestBeatPingsOnlyWhileLoopsAnswer(t *testing.T) {
	out := &sink{}
	// A short watchdog keeps the probe's deadline, real time, short.
	svc := &service{log: zap.NewNop(), send: out.send, enabled: true,
		watchdog: 20 * time.Millisecond}
	answering := func(context.Context) error { return nil }
	stuck := func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	}
	summary := func() string { return "serving 1 keysets" }

	for _, tc := range []struct {
		name     string
		alive    func(context.Context) error
		wantPing bool
	}{
		{name: "loops answer", alive: answering, wantPing: true},
		{name: "a loop is stuck", alive: stuck, wantPing: false},
		{name: "still stuck", alive: stuck, wantPing: false},
		{name: "the loop recovers", alive: answering, wantPing: true},
	} {
		before := out.count("WATCHDOG=1")
		pinged := svc.beat(context.Background(), tc.alive, summary)
		if pinged != tc.wantPing || (out.count("WATCHDOG=1") > before) != tc.wantPing {
			t.Errorf("%s: pinged %v, want %v", tc.name, pinged, tc.wantPing)
		}
	}
	if got := out.count("STATUS=serving 1 keysets"); got != 1 {
		t.Errorf("STATUS sent %d times, want once while it does not change", got)
	}
}

func TestWatchStopsWithContext(t *testing.T) {
	out := &sink{}
	svc := &service{log: zap.NewNop(), send: out.send, enabled: true, watchdog: time.Minute}
	tick := make(chan time.Time)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		svc.watch(ctx, tick, func(context.Context) error { return nil },
			func() string { return "ok" })
	}()
	tick <- time.Now()
	tick <- time.Now() // received only after the first beat has finished
	cancel()
	<-done
	if got := out.count("WATCHDOG=1"); got < 1 {
		t.Errorf("%d pings after two ticks, want at least one", got)
	}
}

func TestServiceMessages(t *testing.T) {
	out := &sink{}
	svc := &service{log: zap.NewNop(), send: out.send, enabled: true}
	svc.ready("serving 2 keysets")
	svc.reloading()
	svc.extendStart(10*time.Second, "loading keyset api")
	svc.stopping()

	for _, tc := range []struct {
		name string
		want []string
	}{
		{name: "ready", want: []string{"READY=1", "STATUS=serving 2 keysets"}},
		{name: "reloading", want: []string{"RELOADING=1", "MONOTONIC_USEC="}},
		{name: "extend", want: []string{"EXTEND_TIMEOUT_USEC=10000000", "STATUS=loading"}},
		{name: "stopping", want: []string{"STOPPING=1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			found := false
			for _, msg := range out.sent {
				if strings.HasPrefix(msg, tc.want[0]) {
					found = true
					for _, w := range tc.want[1:] {
						if !strings.Contains(msg, "\n"+w) {
							t.Errorf("%q lacks %q", msg, w)
						}
					}
				}
			}
			if !found {
				t.Errorf("no %s message in %q", tc.want[0], out.sent)
			}
		})
	}

	off := &service{log: zap.NewNop(), send: out.send}
	before := len(out.sent)
	off.ready("x")
	if len(out.sent) != before {
		t.Error("a service without NOTIFY_SOCKET sent a notification")
	}
}
