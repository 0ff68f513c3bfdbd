package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/keyd-io/keyd/config"
	"github.com/keyd-io/keyd/rotation"
)

// Notifier queues every committed change for every destination that asked for it and
// delivers each destination's queue in its own worker, so that a dead receiver never
// delays another. Deliveries are at least once: a receiver may see an event again after
// a crash, always with the same id.
type Notifier struct {
	log     *zap.Logger
	box     *outbox
	base    string
	now     func() time.Time
	newID   func() string
	jitter  func(time.Duration) time.Duration
	workers []*worker

	mu  sync.Mutex // orders Publish and Prepare calls, so sequences follow commit order
	seq uint64
	// prepared holds the deliveries written for state writes not yet known to have landed.
	prepared []*held

	stopGrace time.Duration
	stop      context.CancelFunc // ends waiting: no new attempt starts
	abort     context.CancelFunc // ends attempts in flight
	wg        sync.WaitGroup
}

// DefaultStopGrace is how long Stop lets attempts in flight finish before it cuts them off.
const DefaultStopGrace = 5 * time.Second

// Options tunes a Notifier; the zero value is right outside tests.
type Options struct {
	Log *zap.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Jitter spreads a backoff delay d; by default a random delay in [d/2, d].
	Jitter func(d time.Duration) time.Duration
	// StopGrace is how long Stop waits for attempts in flight; DefaultStopGrace when 0.
	StopGrace time.Duration
}

// New builds the destinations of cfg.Notify, opens the outbox and loads every delivery
// still pending there from an earlier run. Nothing is sent until Start. With no
// destination configured the Notifier does nothing and touches no disk.
func New(cfg *config.Config, opts Options) (*Notifier, error) {
	n := newNotifier(JWKSBase(cfg), opts)
	if !cfg.Notify.Enabled() {
		return n, nil
	}
	for i, wc := range cfg.Notify.Webhooks {
		hook, err := newWebhook(wc, n.now)
		if err != nil {
			return nil, fmt.Errorf("notify.webhook[%d]: %w", i, err)
		}
		n.add(kindWebhook, wc.URL, hook.label, wc.Events, wc.Retry, hook)
	}
	for _, xc := range cfg.Notify.Exec {
		hook := newExecHook(xc, n.log)
		n.add(kindExec, fmt.Sprintf("%q", xc.Command), hook.label, xc.Events, xc.Retry, hook)
	}
	if err := n.open(cfg.Notify.Dir); err != nil {
		return nil, fmt.Errorf("notify.dir: %w", err)
	}
	for _, h := range n.prepared {
		if cfg.Keyset(h.p.Keyset) == nil {
			// TODO: prepared events of a keyset removed from the configuration wait, unsent,
			// until the keyset is configured again; an operator must delete them otherwise.
			n.log.Warn("outbox holds prepared events of a keyset no longer configured; "+
				"they are kept, not sent", zap.String("keyset", h.p.Keyset),
				zap.String("file", h.p.path))
		}
	}
	return n, nil
}

func newNotifier(base string, opts Options) *Notifier {
	n := &Notifier{log: opts.Log, base: base, now: opts.Now, newID: newEventID,
		jitter: opts.Jitter, stopGrace: opts.StopGrace}
	if n.stopGrace == 0 {
		n.stopGrace = DefaultStopGrace
	}
	if n.log == nil {
		n.log = zap.NewNop()
	}
	if n.now == nil {
		n.now = time.Now
	}
	if n.jitter == nil {
		n.jitter = halfJitter
	}
	return n
}

// add registers one destination; identity must stay the same across restarts, since it
// names the destination's outbox directory.
func (n *Notifier) add(kind, identity, label string, events []string, retry config.Retry,
	to deliverer,
) *worker {
	sum := sha256.Sum256([]byte(identity))
	w := &worker{
		kind:   kind,
		key:    kind + "-" + hex.EncodeToString(sum[:8]),
		label:  label,
		events: events,
		retry:  retry,
		to:     to,
		log:    n.log.With(zap.String("destination", label), zap.String("kind", kind)),
		now:    n.now,
		jitter: n.jitter,
		wake:   make(chan struct{}, 1),
	}
	n.workers = append(n.workers, w)
	return w
}

// open opens the outbox in dir and queues what it holds.
func (n *Notifier) open(dir string) error {
	box, err := openOutbox(dir)
	if err != nil {
		return err
	}
	n.box = box
	known := map[string]bool{}
	for _, w := range n.workers {
		w.box = box
		known[w.key] = true
		if err := box.prepare(w.key); err != nil {
			return err
		}
		loaded, prepared, errs := box.load(w.key)
		for _, err := range errs {
			n.log.Error("outbox record unreadable", zap.Error(err))
		}
		for _, p := range loaded {
			n.seq = max(n.seq, p.seq)
			w.push(p)
		}
		for _, p := range prepared {
			n.seq = max(n.seq, p.seq)
			n.prepared = append(n.prepared, &held{w: w, p: p, found: true})
		}
		if len(loaded) > 0 {
			n.log.Info("resuming pending deliveries", zap.String("destination", w.label),
				zap.Int("pending", len(loaded)))
		}
		if len(prepared) > 0 {
			n.log.Info("found events of state writes made before a crash; they are sent "+
				"once the keyset's state shows the write landed", zap.String("destination",
				w.label), zap.Int("prepared", len(prepared)))
		}
	}
	dirs, err := box.destinations()
	if err != nil {
		return err
	}
	for _, d := range dirs {
		if !known[d] {
			// TODO: deliveries for a destination removed from the configuration stay on
			// disk; an operator must delete the directory once it is no longer wanted.
			n.log.Warn("outbox holds deliveries for a destination no longer configured; "+
				"they are kept, not sent", zap.String("outbox_dir", d))
		}
	}
	return nil
}

// Publish queues the changes of one commit of keyset, already committed, for every
// destination that wants them. Each delivery is on disk before Publish returns, and
// before any attempt.
func (n *Notifier) Publish(keyset string, changes []rotation.Change) error {
	if n.box == nil || len(changes) == 0 {
		return nil
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	queued, err := n.write(keyset, "", changes)
	for _, h := range queued {
		h.w.push(h.p)
	}
	return err
}

// write stores a delivery of each of changes for every destination that wants it,
// prepared under commit when commit is set, and returns those it stored. It must be
// called with n.mu held.
func (n *Notifier) write(keyset, commit string, changes []rotation.Change,
) ([]*held, error) {
	now := n.now()
	var out []*held
	var errs []error
	for _, c := range changes {
		ev := newEvent(n.newID(), keyset, c, jwksURI(n.base, keyset), now)
		body, err := json.Marshal(ev)
		if err != nil {
			errs = append(errs, fmt.Errorf("encode event %s: %w", ev.Type, err))
			continue
		}
		for _, w := range n.workers {
			if !slices.Contains(w.events, ev.Type) {
				continue
			}
			n.seq++
			p, err := n.box.add(w.key, n.seq, record{
				ID: ev.ID, Destination: w.label, CreatedAt: now, Body: body,
				Keyset: keyset, Commit: commit,
			}, commit != "")
			if err != nil {
				deliveriesTotal.WithLabelValues(w.kind, resultNotQueued).Inc()
				errs = append(errs, fmt.Errorf("queue %s of kid %s for %s: %w", ev.Type,
					ev.KID, w.label, err))
				continue
			}
			out = append(out, &held{w: w, p: p})
		}
	}
	return out, errors.Join(errs...)
}

// Start starts one delivery worker per destination.
func (n *Notifier) Start() {
	inFlight, abort := context.WithCancel(context.Background())
	waiting, stop := context.WithCancel(inFlight)
	n.stop, n.abort = stop, abort
	for _, w := range n.workers {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			w.run(waiting, inFlight)
		}()
	}
}

// Stop ends every worker: no new attempt starts, and attempts in flight get the stop grace
// to finish. One still running then is cut off; its delivery stays in the outbox and is
// made again, with the same id, at the next start. Pending deliveries are never dropped.
func (n *Notifier) Stop() {
	if n.stop == nil {
		return
	}
	n.stop()
	done := make(chan struct{})
	go func() {
		n.wg.Wait()
		close(done)
	}()
	grace := time.NewTimer(n.stopGrace)
	defer grace.Stop()
	select {
	case <-done:
	case <-grace.C:
		n.log.Warn("cutting off deliveries in flight; they resume at the next start",
			zap.Duration("stop_grace", n.stopGrace))
		n.abort()
		<-done
	}
	n.abort()
}

// Close releases the outbox.
func (n *Notifier) Close() error {
	if n.box == nil {
		return nil
	}
	return n.box.close()
}

// Pending returns how many deliveries wait for each destination, by the destination's
// label as logs show it (never with secrets); destinations with none are left out.
func (n *Notifier) Pending() map[string]int {
	out := map[string]int{}
	if n == nil {
		return out
	}
	for _, w := range n.workers {
		w.mu.Lock()
		if len(w.queue) > 0 {
			out[w.kind+" "+w.label] = len(w.queue)
		}
		w.mu.Unlock()
	}
	return out
}
