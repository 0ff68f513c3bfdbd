package daemon

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/keyd-io/keyd/backends"
	"github.com/keyd-io/keyd/keys"
	"github.com/keyd-io/keyd/rotation"
)

// Label values of keyd_rotations_total.
const (
	triggerSchedule = "schedule" // the cron schedule or a deferred request coming due
	triggerRequest  = "request"  // SIGUSR1 or `keyd rotate`
	triggerRevoke   = "revoke"   // `keyd revoke`
	resultSuccess   = "success"
	resultDeferred  = "deferred" // waits for the next key to be published for publish_lead
	resultFailure   = "failure"
)

// metrics holds the daemon's Prometheus metrics, on a registry of its own so that every
// Daemon (tests start several in one process) counts apart; /metrics adds the default
// registry's.
type metrics struct {
	reg            *prometheus.Registry
	rotations      *prometheus.CounterVec
	storageSeconds *prometheus.HistogramVec
	storageErrors  *prometheus.CounterVec
	jwksRequests   *prometheus.CounterVec
	// jwksByCode holds the counters of the usual status codes, resolved once so that
	// counting a JWKS request neither allocates nor hashes labels.
	jwksByCode map[int]prometheus.Counter
	writers    sync.Pool
}

func newMetrics(d *Daemon) *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		rotations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyd_rotations_total",
			Help: "Rotations and revocations tried, by keyset, trigger " +
				"(schedule, request, revoke) and result (success, deferred, failure).",
		}, []string{"keyset", "trigger", "result"}),
		storageSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "keyd_storage_operation_duration_seconds",
			Help:    "Time taken by storage operations, by keyset and operation.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 8),
		}, []string{"keyset", "operation"}),
		storageErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyd_storage_errors_total",
			Help: "Storage operations that failed, by keyset and operation.",
		}, []string{"keyset", "operation"}),
		jwksRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyd_jwks_requests_total",
			Help: "JWKS requests answered, by HTTP status code.",
		}, []string{"code"}),
		jwksByCode: map[int]prometheus.Counter{},
	}
	for _, code := range []int{200, 204, 304, 404, 405} {
		m.jwksByCode[code] = m.jwksRequests.WithLabelValues(strconv.Itoa(code))
	}
	m.writers.New = func() any { return &statusWriter{} }
	m.reg.MustRegister(m.rotations, m.storageSeconds, m.storageErrors, m.jwksRequests,
		stateCollector{d})
	return m
}

// handler serves this daemon's metrics together with the process-wide ones on the
// default registry (Go runtime, process, notifications).
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(prometheus.Gatherers{prometheus.DefaultGatherer, m.reg},
		promhttp.HandlerOpts{Registry: m.reg})
}

// observeStep returns the rotation.Options.OnStep of keyset name.
func (m *metrics) observeStep(name string) func(rotation.Request, rotation.Decision, error) {
	return func(req rotation.Request, d rotation.Decision, err error) {
		revoke := req.Revoke != "" || d.Revoke != ""
		tried := d.Promote || d.Defer || revoke || (err != nil && req.Rotate)
		if !tried {
			return
		}
		trigger := triggerSchedule
		switch {
		case revoke:
			trigger = triggerRevoke
		case req.Rotate:
			trigger = triggerRequest
		}
		result := resultSuccess
		switch {
		case err != nil:
			result = resultFailure
		case d.Defer:
			result = resultDeferred
		}
		m.rotations.WithLabelValues(name, trigger, result).Inc()
	}
}

// countJWKS counts next's answers by status code.
func (m *metrics) countJWKS(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := m.writers.Get().(*statusWriter)
		sw.ResponseWriter, sw.code = w, http.StatusOK
		next.ServeHTTP(sw, r)
		if c, ok := m.jwksByCode[sw.code]; ok {
			c.Inc()
		} else {
			m.jwksRequests.WithLabelValues(strconv.Itoa(sw.code)).Inc()
		}
		sw.ResponseWriter = nil
		m.writers.Put(sw)
	})
}

// statusWriter remembers the status code written through it.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// stateCollector reports every keyset's keys and clock at scrape time, from the state
// the runners hold, so nothing has to be kept in step.
type stateCollector struct{ d *Daemon }

var (
	keysDesc = prometheus.NewDesc("keyd_keys",
		"Keys published, by keyset and state (current, next, retired).",
		[]string{"keyset", "state"}, nil)
	currentAgeDesc = prometheus.NewDesc("keyd_current_key_age_seconds",
		"Time since the current key started signing.", []string{"keyset"}, nil)
	nextRotationDesc = prometheus.NewDesc("keyd_next_rotation_timestamp_seconds",
		"When the next key is due to become current (Unix time).", []string{"keyset"}, nil)
	lastRotationDesc = prometheus.NewDesc("keyd_last_rotation_timestamp_seconds",
		"When the last successful rotation (or the first start) happened (Unix time).",
		[]string{"keyset"}, nil)
	overdueDesc = prometheus.NewDesc("keyd_rotation_overdue",
		"1 when a due change has been left undone for longer than 5 minutes "+
			"(the /readyz bound), else 0.", []string{"keyset"}, nil)
	readyDesc = prometheus.NewDesc("keyd_keyset_ready",
		"1 when the keyset is ready as /readyz judges it, else 0.", []string{"keyset"}, nil)
)

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{keysDesc, currentAgeDesc, nextRotationDesc,
		lastRotationDesc, overdueDesc, readyDesc} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	for _, r := range c.d.runners() {
		name := r.keyset.Name()
		st := r.keyset.Status()
		ch <- gauge(readyDesc, boolValue(len(problemsOf(st, now)) == 0), name)
		s, ok := r.keyset.State()
		if !ok {
			continue
		}
		ch <- gauge(overdueDesc, boolValue(now.Sub(st.NextChange) > OverdueAfter), name)
		counts := map[rotation.Phase]int{rotation.Current: 0, rotation.Next: 0, rotation.Retired: 0}
		for _, k := range s.Keys {
			counts[k.Phase]++
		}
		for phase, n := range counts {
			ch <- gauge(keysDesc, float64(n), name, string(phase))
		}
		if cur := s.InPhase(rotation.Current); cur != nil {
			ch <- gauge(currentAgeDesc, now.Sub(cur.ActivatedAt).Seconds(), name)
		}
		ch <- gauge(lastRotationDesc, unixSeconds(s.RotatedAt), name)
		if pol, ok := c.d.policy(name); ok {
			ch <- gauge(nextRotationDesc, unixSeconds(rotation.NextPromotion(&s, pol)), name)
		}
	}
}

func gauge(desc *prometheus.Desc, v float64, labels ...string) prometheus.Metric {
	return prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// The operations of rotation.Store, as labels.
var storageOperations = []string{
	"load", "save", "put_key", "get_key", "delete_key", "list_keys", "publish_current",
}

// instrumentedStore times every operation of a rotation.Store and counts its failures.
// A missing thing (backends.ErrNotFound) and a lost check-and-set race
// (backends.ErrConflict) are answers, not failures.
type instrumentedStore struct {
	rotation.Store
	seconds map[string]prometheus.Observer
	errors  map[string]prometheus.Counter
}

// store wraps keyset name's store with timing and error counting.
func (m *metrics) store(name string, s rotation.Store) rotation.Store {
	is := &instrumentedStore{Store: s, seconds: map[string]prometheus.Observer{},
		errors: map[string]prometheus.Counter{}}
	for _, op := range storageOperations {
		is.seconds[op] = m.storageSeconds.WithLabelValues(name, op)
		is.errors[op] = m.storageErrors.WithLabelValues(name, op)
	}
	return is
}

func (s *instrumentedStore) observe(op string, start time.Time, err error) {
	s.seconds[op].Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, backends.ErrNotFound) &&
		!errors.Is(err, backends.ErrConflict) {
		s.errors[op].Inc()
	}
}

func (s *instrumentedStore) Load(ctx context.Context) ([]byte, uint64, error) {
	start := time.Now()
	doc, version, err := s.Store.Load(ctx)
	s.observe("load", start, err)
	return doc, version, err
}

func (s *instrumentedStore) Save(ctx context.Context, doc []byte, prev uint64,
) (uint64, error) {
	start := time.Now()
	version, err := s.Store.Save(ctx, doc, prev)
	s.observe("save", start, err)
	return version, err
}

func (s *instrumentedStore) PutKey(ctx context.Context, kid string, privateJWK []byte) error {
	start := time.Now()
	err := s.Store.PutKey(ctx, kid, privateJWK)
	s.observe("put_key", start, err)
	return err
}

func (s *instrumentedStore) GetKey(ctx context.Context, kid string) ([]byte, error) {
	start := time.Now()
	data, err := s.Store.GetKey(ctx, kid)
	s.observe("get_key", start, err)
	return data, err
}

func (s *instrumentedStore) DeleteKey(ctx context.Context, kid string) error {
	start := time.Now()
	err := s.Store.DeleteKey(ctx, kid)
	s.observe("delete_key", start, err)
	return err
}

func (s *instrumentedStore) ListKeys(ctx context.Context) ([]backends.StoredKey, error) {
	start := time.Now()
	stored, err := s.Store.ListKeys(ctx)
	s.observe("list_keys", start, err)
	return stored, err
}

func (s *instrumentedStore) PublishCurrent(ctx context.Context, k *keys.Key) error {
	start := time.Now()
	err := s.Store.PublishCurrent(ctx, k)
	s.observe("publish_current", start, err)
	return err
}

// IssuedIs passes the check through when the wrapped store offers it; a store that does
// not is taken at its word.
func (s *instrumentedStore) IssuedIs(ctx context.Context, kid string) bool {
	if c, ok := s.Store.(rotation.IssuedChecker); ok {
		return c.IssuedIs(ctx, kid)
	}
	return true
}
