package notify

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/keyd-io/keyd/config"
)

// Kinds of destination, as the kind label of the metrics says.
const (
	kindWebhook = "webhook"
	kindExec    = "exec"
)

// deliverer makes one attempt to hand an event to one destination. A plain error is
// retried; see permanent and retryAfter for the others.
type deliverer interface {
	deliver(ctx context.Context, p *pending) error
}

// attemptError says how a failed attempt must be treated.
type attemptError struct {
	err        error
	permanent  bool
	retryAfter time.Duration
}

func (e *attemptError) Error() string { return e.err.Error() }
func (e *attemptError) Unwrap() error { return e.err }

// permanent marks err as not worth retrying: the delivery is given up at once.
func permanent(err error) error { return &attemptError{err: err, permanent: true} }

// retryAfter marks err as retryable no sooner than after d, as the receiver asked.
func retryAfter(err error, d time.Duration) error {
	return &attemptError{err: err, retryAfter: d}
}

// worker delivers the queue of one destination in order, one delivery at a time.
type worker struct {
	kind   string
	key    string // the outbox directory
	label  string // the destination as logs show it, without secrets
	events []string
	retry  config.Retry
	to     deliverer
	box    *outbox
	log    *zap.Logger
	now    func() time.Time
	jitter func(time.Duration) time.Duration

	mu    sync.Mutex
	queue []*pending
	wake  chan struct{}
}

func (w *worker) push(p *pending) {
	w.mu.Lock()
	w.queue = append(w.queue, p)
	w.mu.Unlock()
	pendingGauge.WithLabelValues(w.kind).Inc()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *worker) head() *pending {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.queue) == 0 {
		return nil
	}
	return w.queue[0]
}

// run delivers the queue until waiting ends. Attempts run under inFlight, which ends
// later, so that an attempt under way when keyd stops can still finish.
func (w *worker) run(waiting, inFlight context.Context) {
	for waiting.Err() == nil {
		p := w.head()
		if p == nil {
			select {
			case <-w.wake:
				continue
			case <-waiting.Done():
				return
			}
		}
		if !w.deliver(waiting, inFlight, p) {
			return
		}
	}
}

// deliver attempts p until it is delivered, rejected or given up. It returns false when
// keyd stops first; p then stays in the outbox.
func (w *worker) deliver(waiting, inFlight context.Context, p *pending) bool {
	log := w.log.With(zap.String("event", p.event.Type), zap.String("event_id", p.ID),
		zap.String("keyset", p.event.Keyset), zap.String("kid", p.event.KID))
	lastErr := ""
	for attempt := 1; ; attempt++ {
		err := w.to.deliver(inFlight, p)
		if inFlight.Err() != nil {
			return false // cut off: the outcome is unknown
		}
		wait, done := w.settle(log, p, attempt, err)
		if done {
			return true
		}
		if waiting.Err() != nil {
			return false
		}
		// One warning per distinct failure; repeats of the same one go to debug.
		level := zap.DebugLevel
		if msg := err.Error(); msg != lastErr {
			level, lastErr = zap.WarnLevel, msg
		}
		log.Log(level, "delivery failed; will retry", zap.Int("attempt", attempt),
			zap.Duration("retry_in", wait), zap.Error(err))

		timer := time.NewTimer(wait)
		select {
		case <-waiting.Done():
			timer.Stop()
			return false
		case <-timer.C:
		}
	}
}

// settle acts on the outcome err of attempt number attempt at p: it finishes p when the
// attempt succeeded, failed for good or was the last before give_up_after, and otherwise
// returns how long to wait before the next one.
func (w *worker) settle(log *zap.Logger, p *pending, attempt int, err error,
) (wait time.Duration, done bool) {
	if err == nil {
		attemptsTotal.WithLabelValues(w.kind, "ok").Inc()
		w.finish(p, resultDelivered)
		log.Info("event delivered", zap.Int("attempts", attempt))
		return 0, true
	}
	var aerr *attemptError
	errors.As(err, &aerr)
	if aerr != nil && aerr.permanent {
		attemptsTotal.WithLabelValues(w.kind, "fail").Inc()
		w.finish(p, resultRejected)
		log.Error("event rejected; not retried", zap.Int("attempts", attempt), zap.Error(err))
		return 0, true
	}
	attemptsTotal.WithLabelValues(w.kind, "retry").Inc()

	now, deadline := w.now(), p.CreatedAt.Add(w.retry.GiveUpAfter.D())
	if !now.Before(deadline) {
		w.finish(p, resultGaveUp)
		log.Error("event given up: not delivered within give_up_after",
			zap.Int("attempts", attempt),
			zap.Duration("give_up_after", w.retry.GiveUpAfter.D()), zap.Error(err))
		return 0, true
	}
	wait = w.backoff(attempt)
	if aerr != nil {
		wait = max(wait, aerr.retryAfter)
	}
	return min(wait, deadline.Sub(now)), false
}

// finish removes p from the outbox and the queue.
func (w *worker) finish(p *pending, result string) {
	if err := w.box.remove(p); err != nil {
		// The record stays and is sent again at the next start: a duplicate, not a loss.
		w.log.Error("outbox record not removed", zap.String("event_id", p.ID), zap.Error(err))
	}
	w.mu.Lock()
	w.queue = w.queue[1:]
	w.mu.Unlock()
	pendingGauge.WithLabelValues(w.kind).Dec()
	deliveriesTotal.WithLabelValues(w.kind, result).Inc()
}

// backoff returns the jittered delay after failed attempt number attempt (from 1):
// backoff_initial doubled per attempt, at most backoff_max.
func (w *worker) backoff(attempt int) time.Duration {
	d, ceiling := w.retry.BackoffInitial.D(), w.retry.BackoffMax.D()
	for i := 1; i < attempt && d < ceiling; i++ {
		d *= 2
	}
	return w.jitter(min(d, ceiling))
}

// halfJitter returns a random delay in [d/2, d], so that receivers coming back are not
// hit by every sender at the same instant.
func halfJitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}
