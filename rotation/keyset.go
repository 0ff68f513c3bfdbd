package rotation

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/keyd-io/keyd/backends"
	"github.com/keyd-io/keyd/keys"
)

// Retry bounds for a failed step (storage down, disk full): the step is tried again with
// exponential backoff and jitter between these.
const (
	retryInitial = time.Second
	retryMax     = time.Minute
)

// ErrUnknownKID means a request named a kid the keyset does not hold.
var ErrUnknownKID = errors.New("no such kid in this keyset")

// Store keeps one keyset's state document and private keys. Implementations live in
// backends/*; all of them pass backends/backendtest.
type Store interface {
	// Load returns the state document and its version; backends.ErrNotFound when the
	// keyset has never been started. Private keys with no state beside them are an error.
	Load(ctx context.Context) ([]byte, uint64, error)
	// Save writes the state document if its version is still prev (0: none yet) and
	// returns the new version; backends.ErrConflict when it is not.
	Save(ctx context.Context, doc []byte, prev uint64) (uint64, error)
	PutKey(ctx context.Context, kid string, privateJWK []byte) error
	GetKey(ctx context.Context, kid string) ([]byte, error)
	DeleteKey(ctx context.Context, kid string) error
	ListKeys(ctx context.Context) ([]backends.StoredKey, error)
	// PublishCurrent hands the current private key to issuers (current.jwk, current.pem).
	PublishCurrent(ctx context.Context, k *keys.Key) error
	// Location names where the state lives, for error messages.
	Location() string
}

// IssuedChecker is implemented by stores that can tell cheaply whether the issuers' copy
// of the current key (current.jwk and current.pem on disk) is still in place, so that a
// copy removed or changed behind keyd's back is restored at the next step (a SIGHUP
// runs one).
type IssuedChecker interface {
	IssuedIs(ctx context.Context, kid string) bool
}

// CommitFunc is called after a state change is committed, with the new state and the
// changes in the order they happened (none when another replica made the change).
type CommitFunc func(s State, changes []Change)

// PrepareFunc is called before a state write with the write's commit id and the changes
// it carries; it must store whatever announces them durably but not yet act on it. An
// error fails the step before anything is written.
type PrepareFunc func(commitID string, changes []Change) error

// Options tunes a Keyset; the zero value suits a single keyd on local disk.
type Options struct {
	Log *zap.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Prepare is told about every state write before it is made. The write commits if,
	// and only if, a state later reported to OnCommit lists its commit id in Commits.
	Prepare PrepareFunc
	// Abort is told about a prepared write that certainly did not land (another replica
	// wrote first), so that what Prepare stored can be dropped at once.
	Abort func(commitID string)
	// OnCommit is told about every committed state, including the state found at Start.
	OnCommit CommitFunc
	// OnStep is told about every step: the request it served, what it decided and how it
	// ended (for metrics).
	OnStep func(req Request, d Decision, err error)
	// Refresh re-reads the state this often to pick up other replicas' changes; 0 never.
	Refresh time.Duration
	// OrphanMinAge keeps a private key no state names for at least this long before it is
	// deleted, so that a replica's key stored just before its commit is not taken away.
	OrphanMinAge time.Duration
}

// Keyset runs one keyset: it loads or creates its keys, carries out every change when it
// is due, and takes operators' requests. Changes never overlap; requests that arrive
// while one runs are folded into at most one more.
type Keyset struct {
	name  string
	store Store
	opts  Options
	log   *zap.Logger

	mu      sync.Mutex
	pol     Policy
	pending Request
	waiters []chan error
	state   *State
	version uint64
	status  Status
	wake    chan struct{}
	// probe is received by Run between steps; Alive sends on it.
	probe chan struct{}

	publishedKID string
	// swept is set once a step has swept orphan private keys since the start.
	swept bool
	// unconfirmed holds the state writes storage did not confirm since the state last
	// moved; one of them may have landed.
	unconfirmed []*unconfirmedWrite
}

// Status is a keyset's health as /readyz and status report it.
type Status struct {
	Loaded bool
	// LastError is the last step's error, nil after a success.
	LastError error
	// FailingSince is when steps started failing; zero while they succeed.
	FailingSince time.Time
	// NextChange is when the next time-based change is due.
	NextChange time.Time
}

// NewKeyset returns a runner for keyset name; call Start, then Run.
func NewKeyset(name string, pol Policy, store Store, opts Options) *Keyset {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.Prepare == nil {
		opts.Prepare = func(string, []Change) error { return nil }
	}
	if opts.Abort == nil {
		opts.Abort = func(string) {}
	}
	if opts.OnCommit == nil {
		opts.OnCommit = func(State, []Change) {}
	}
	if opts.OnStep == nil {
		opts.OnStep = func(Request, Decision, error) {}
	}
	return &Keyset{
		name:  name,
		store: store,
		opts:  opts,
		pol:   pol,
		log:   opts.Log.With(zap.String("keyset", name)),
		wake:  make(chan struct{}, 1),
		probe: make(chan struct{}),
	}
}

// Name returns the keyset's name.
func (k *Keyset) Name() string { return k.name }

// Start loads the keyset's state, or creates the first current and next keys when the
// keyset has never been started, and brings the issuers' current key up to date. A
// state it cannot read stops it: keyd never writes over a state it does not understand.
func (k *Keyset) Start(ctx context.Context) error {
	doc, version, err := k.store.Load(ctx)
	switch {
	case errors.Is(err, backends.ErrNotFound):
		k.log.Info("first start: creating current and next keys",
			zap.String("location", k.store.Location()))
	case err != nil:
		return fmt.Errorf("keyset %q: %w", k.name, err)
	default:
		s, err := Decode(doc, k.name)
		if err != nil {
			return fmt.Errorf("keyset %q: %s: %w", k.name, k.store.Location(), err)
		}
		for _, p := range []Phase{Current, Next} {
			if key := s.InPhase(p); key != nil {
				if err := k.checkPrivate(ctx, key.KID); err != nil {
					return fmt.Errorf("keyset %q: %s key: %w", k.name, p, err)
				}
			}
		}
		k.commit(s, version, nil)
	}
	// The first step also sweeps orphan private keys (see Step).
	return k.Step(ctx, Request{})
}

// Run carries out due changes and requests until ctx ends. Failed steps are retried with
// backoff; the last committed state stays served meanwhile. A step under way when ctx
// ends is finished, not cut short.
func (k *Keyset) Run(ctx context.Context) {
	work := context.WithoutCancel(ctx)
	backoff := time.Duration(0)
	lastRefresh := k.opts.Now()
	for {
		wait := k.untilNextChange()
		if backoff > 0 {
			wait = min(wait, backoff)
		}
		if k.opts.Refresh > 0 {
			wait = min(wait, max(0, lastRefresh.Add(k.opts.Refresh).Sub(k.opts.Now())))
		}
		if !k.idle(ctx, wait) {
			return
		}

		if k.opts.Refresh > 0 && !k.opts.Now().Before(lastRefresh.Add(k.opts.Refresh)) {
			lastRefresh = k.opts.Now()
			if err := k.refresh(work); err != nil {
				k.fail(err)
				backoff = nextBackoff(backoff)
				continue
			}
		}
		req, waiters := k.takeRequest()
		err := k.Step(work, req)
		for _, w := range waiters {
			w <- err
		}
		if err != nil {
			if len(waiters) == 0 {
				k.requeue(req)
			}
			backoff = nextBackoff(backoff)
			continue
		}
		backoff = 0
	}
}

// idle waits up to wait, or until a request wakes it, answering Alive meanwhile without
// moving the deadline. It returns false when ctx ends.
func (k *Keyset) idle(ctx context.Context, wait time.Duration) bool {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-timer.C:
			return true
		case <-k.wake:
			return true
		case <-k.probe:
		}
	}
}

// Do carries req out and waits for the step that includes it. A revocation of a kid the
// keyset does not hold fails at once. Unlike Request, a failed step is not retried: the
// caller (an operator at the admin socket) is told and decides.
func (k *Keyset) Do(ctx context.Context, req Request) error {
	k.mu.Lock()
	if req.Revoke != "" && (k.state == nil || k.state.Find(req.Revoke) == nil) {
		k.mu.Unlock()
		return fmt.Errorf("keyset %q: revoke %s: %w", k.name, req.Revoke, ErrUnknownKID)
	}
	done := make(chan error, 1)
	k.pending = k.pending.Merge(k.stamp(req))
	k.waiters = append(k.waiters, done)
	k.mu.Unlock()
	select {
	case k.wake <- struct{}{}:
	default:
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("keyset %q: %w before the outcome was known; the request stays "+
			"queued and may still be carried out", k.name, ctx.Err())
	}
}

// Alive returns nil as soon as Run's loop is between steps and answers, proving that it
// runs and is not stuck in a step; it returns an error when ctx ends first. The service
// watchdog is fed only while every keyset is alive.
func (k *Keyset) Alive(ctx context.Context) error {
	select {
	case k.probe <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("keyset %q: rotation loop does not answer: %w", k.name, ctx.Err())
	}
}

// Request asks for a rotation or revocation; it is carried out by Run as soon as the
// current step, if any, has finished.
func (k *Keyset) Request(req Request) {
	k.mu.Lock()
	k.pending = k.pending.Merge(k.stamp(req))
	k.mu.Unlock()
	select {
	case k.wake <- struct{}{}:
	default:
	}
}

// SetPolicy replaces the rotation policy (after a configuration reload).
func (k *Keyset) SetPolicy(pol Policy) {
	k.mu.Lock()
	k.pol = pol
	k.mu.Unlock()
	k.Request(Request{})
}

// State returns the last committed state, or false before the first load.
func (k *Keyset) State() (State, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.state == nil {
		return State{}, false
	}
	return k.state.Clone(), true
}

// Status returns the keyset's health.
func (k *Keyset) Status() Status {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.status
}

func (k *Keyset) takeRequest() (Request, []chan error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	req, waiters := k.pending, k.waiters
	k.pending, k.waiters = Request{}, nil
	return req, waiters
}

func (k *Keyset) requeue(req Request) {
	k.mu.Lock()
	k.pending = req.Merge(k.pending)
	k.mu.Unlock()
}

func (k *Keyset) untilNextChange() time.Duration {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.state == nil {
		return retryInitial
	}
	return max(0, k.status.NextChange.Sub(k.opts.Now()))
}

func (k *Keyset) fail(err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	changed := k.status.LastError == nil || rootCause(k.status.LastError) != rootCause(err)
	if k.status.FailingSince.IsZero() {
		k.status.FailingSince = k.opts.Now()
	}
	k.status.LastError = err
	// One line per change of error: an outage retried every minute for hours must not
	// flood the journal.
	if changed {
		k.log.Error("keyset step failed; will retry", zap.Error(err))
	} else {
		k.log.Debug("keyset step failed again", zap.Error(err))
	}
}

// rootCause returns the text of the innermost error err wraps ("no space left on device",
// "connection refused"): each attempt names its own fresh kid and temporary file, but
// the cause is what tells an operator whether the problem changed.
func rootCause(err error) string {
	for {
		inner := errors.Unwrap(err)
		if inner == nil {
			return err.Error()
		}
		err = inner
	}
}

func nextBackoff(d time.Duration) time.Duration {
	d = max(retryInitial, min(retryMax, 2*d))
	return d/2 + rand.N(d/2+1)
}

// stamp sets when a rotation request starts to count as carried out, if the requester did
// not: now, less the refresh interval (see Request.Since).
func (k *Keyset) stamp(req Request) Request {
	if req.Rotate && req.Since.IsZero() {
		req.Since = k.opts.Now().Add(-k.opts.Refresh)
	}
	return req
}
