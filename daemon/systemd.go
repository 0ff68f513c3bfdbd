package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	sdnotify "github.com/coreos/go-systemd/v22/daemon"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// statusEvery is how often the STATUS= line is refreshed when no watchdog is configured.
const statusEvery = 30 * time.Second

// service tells systemd (through $NOTIFY_SOCKET) how keyd is doing: READY=1 once keys are
// loaded and the listener accepts, RELOADING=1 around SIGHUP, STOPPING=1 on shutdown,
// STATUS= with a short summary, and WATCHDOG=1 while every rotation loop answers.
// Without $NOTIFY_SOCKET every method does nothing.
type service struct {
	log *zap.Logger
	// send delivers one notification; sdnotify.SdNotify outside tests.
	send func(state string) error
	// watchdog is systemd's WatchdogSec (0: no watchdog).
	watchdog time.Duration
	enabled  bool
	// wedged is set while pings are withheld (watch's goroutine only).
	wedged bool

	mu         sync.Mutex
	lastStatus string
}

func newService(log *zap.Logger) *service {
	s := &service{log: log, send: func(state string) error {
		_, err := sdnotify.SdNotify(false, state)
		return err
	}}
	s.enabled = os.Getenv("NOTIFY_SOCKET") != ""
	if !s.enabled {
		return s
	}
	watchdog, err := sdnotify.SdWatchdogEnabled(false)
	if err != nil {
		log.Warn("WATCHDOG_USEC is not usable; no watchdog pings", zap.Error(err))
	}
	s.watchdog = watchdog
	return s
}

// notify sends state, logging (not returning) a failure: keyd keeps serving when systemd
// cannot be told.
func (s *service) notify(state string) {
	if !s.enabled {
		return
	}
	if err := s.send(state); err != nil {
		s.log.Warn("notify systemd", zap.String("notify", firstLine(state)), zap.Error(err))
	}
}

func (s *service) ready(status string) {
	s.mu.Lock()
	s.lastStatus = status
	s.mu.Unlock()
	s.notify("READY=1\nSTATUS=" + status)
}

// reloading announces a reload; systemd needs the monotonic time it started at.
func (s *service) reloading() {
	s.notify(fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d\nSTATUS=reloading configuration",
		monotonicMicros()))
}

func (s *service) stopping() { s.notify("STOPPING=1\nSTATUS=stopping") }

// status sends STATUS= when the summary has changed since the last one.
func (s *service) status(status string) {
	s.mu.Lock()
	same := status == s.lastStatus
	s.lastStatus = status
	s.mu.Unlock()
	if same {
		return
	}
	s.notify("STATUS=" + status)
}

// extendStart asks systemd for at least d more time to start.
func (s *service) extendStart(d time.Duration, status string) {
	s.notify(fmt.Sprintf("EXTEND_TIMEOUT_USEC=%d\nSTATUS=%s", d.Microseconds(), status))
}

// watch runs until ctx ends, calling beat on every tick.
func (s *service) watch(ctx context.Context, tick <-chan time.Time,
	alive func(context.Context) error, summary func() string,
) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
		}
		s.beat(ctx, alive, summary)
	}
}

// beat refreshes STATUS= and, when systemd has a watchdog, sends WATCHDOG=1 only if
// alive returns nil within half the watchdog interval: a rotation loop stuck in a step
// stops the pings and systemd restarts keyd. It reports whether it pinged.
func (s *service) beat(ctx context.Context, alive func(context.Context) error,
	summary func() string,
) bool {
	s.status(summary())
	if s.watchdog <= 0 {
		return false
	}
	probeCtx, cancel := context.WithTimeout(ctx, s.watchdog/2)
	err := alive(probeCtx)
	cancel()
	if ctx.Err() != nil {
		return false
	}
	if err != nil {
		if !s.wedged {
			s.log.Error("rotation loop not answering; withholding watchdog pings",
				zap.Error(err))
		}
		s.wedged = true
		return false
	}
	if s.wedged {
		s.log.Info("rotation loops answer again; watchdog pings resumed")
	}
	s.wedged = false
	s.notify("WATCHDOG=1")
	return true
}

// tickEvery returns the period of watch's ticks: half the watchdog interval, so one
// missed ping is not yet fatal, or statusEvery without a watchdog.
func (s *service) tickEvery() time.Duration {
	if s.watchdog > 0 {
		return s.watchdog / 2
	}
	return statusEvery
}

// startService starts the goroutine that feeds systemd's watchdog and STATUS= line.
func (d *Daemon) startService() {
	if !d.svc.enabled {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	ticker := time.NewTicker(d.svc.tickEvery())
	done := make(chan struct{})
	d.stopSvc = func() {
		cancel()
		<-done
		ticker.Stop()
	}
	go func() {
		defer close(done)
		d.svc.watch(ctx, ticker.C, d.loopsAlive, d.summary)
	}()
}

// loopsAlive returns nil when every keyset's rotation loop answers before ctx ends.
func (d *Daemon) loopsAlive(ctx context.Context) error {
	var errs []error
	for _, r := range d.runners() {
		errs = append(errs, r.keyset.Alive(ctx))
	}
	return errors.Join(errs...)
}

// summary is the STATUS= line: how many keysets are served and the next rotation, or
// which keysets are failing.
func (d *Daemon) summary() string {
	var (
		failing  []string
		nextName string
		next     time.Time
	)
	runners := d.runners()
	for _, r := range runners {
		st := r.keyset.Status()
		if st.LastError != nil {
			failing = append(failing, r.keyset.Name())
		}
		if st.Loaded && (next.IsZero() || st.NextChange.Before(next)) {
			next, nextName = st.NextChange, r.keyset.Name()
		}
	}
	msg := fmt.Sprintf("serving %d keysets", len(runners))
	if len(failing) > 0 {
		return msg + "; storage failing for " + strings.Join(failing, ", ")
	}
	if !next.IsZero() {
		msg += fmt.Sprintf("; next change %s at %s", nextName,
			next.UTC().Format(time.RFC3339))
	}
	return msg
}

func monotonicMicros() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano() / 1000
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
