package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/keyd-io/keyd/backends"
	"github.com/keyd-io/keyd/config"
	"github.com/keyd-io/keyd/jwks"
	"github.com/keyd-io/keyd/keys"
	"github.com/keyd-io/keyd/rotation"
)

func testMetrics(t *testing.T) *metrics {
	t.Helper()
	cfg, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	return newMetrics(&Daemon{cfg: cfg, keysets: map[string]*runner{}})
}

// failingStore answers every call with err.
type failingStore struct{ err error }

func (f failingStore) Load(context.Context) ([]byte, uint64, error) { return nil, 0, f.err }
func (f failingStore) Save(context.Context, []byte, uint64) (uint64, error) {
	return 0, f.err
}
func (f failingStore) PutKey(context.Context, string, []byte) error   { return f.err }
func (f failingStore) GetKey(context.Context, string) ([]byte, error) { return nil, f.err }
func (f failingStore) DeleteKey(context.Context, string) error        { return f.err }
func (f failingStore) ListKeys(context.Context) ([]backends.StoredKey, error) {
	return nil, f.err
}
func (f failingStore) PublishCurrent(context.Context, *keys.Key) error { return f.err }
func (f failingStore) Location() string                                { return "nowhere" }

func TestInstrumentedStoreCountsFailuresOnly(t *testing.T) {
	for _, tc := range []struct {
		name       string
		err        error
		wantErrors float64
	}{
		{name: "success", err: nil, wantErrors: 0},
		{name: "not found is an answer", err: fmt.Errorf("x: %w", backends.ErrNotFound)},
		{name: "lost check-and-set is an answer", err: backends.ErrConflict},
		{name: "failure", err: errors.New("disk full"), wantErrors: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := testMetrics(t)
			s := m.store("api", failingStore{err: tc.err})
			_, _, _ = s.Load(context.Background())
			_, _ = s.Save(context.Background(), nil, 0)
			if got := testutil.ToFloat64(m.storageErrors.WithLabelValues("api", "save")); got != tc.wantErrors {
				t.Errorf("save errors = %v, want %v", got, tc.wantErrors)
			}
			if got := observations(t, m, "save"); got != 1 {
				t.Errorf("%d save latencies observed, want 1", got)
			}
			if s.Location() != "nowhere" {
				t.Error("Location not passed through")
			}
		})
	}
}

// observations returns how many latencies of operation op the histogram holds.
func observations(t *testing.T, m *metrics, op string) uint64 {
	t.Helper()
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "keyd_storage_operation_duration_seconds" {
			continue
		}
		for _, metric := range f.GetMetric() {
			for _, l := range metric.GetLabel() {
				if l.GetName() == "operation" && l.GetValue() == op {
					return metric.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return 0
}

func TestObserveStepLabels(t *testing.T) {
	for _, tc := range []struct {
		name    string
		req     rotation.Request
		d       rotation.Decision
		err     error
		trigger string
		result  string
	}{
		{name: "scheduled", d: rotation.Decision{Promote: true},
			trigger: triggerSchedule, result: resultSuccess},
		{name: "requested", req: rotation.Request{Rotate: true},
			d: rotation.Decision{Promote: true}, trigger: triggerRequest, result: resultSuccess},
		{name: "deferred", req: rotation.Request{Rotate: true},
			d: rotation.Decision{Defer: true}, trigger: triggerRequest, result: resultDeferred},
		{name: "revoked", req: rotation.Request{Revoke: "k"},
			d: rotation.Decision{Revoke: "k", Promote: true}, trigger: triggerRevoke,
			result: resultSuccess},
		{name: "failed", d: rotation.Decision{Promote: true}, err: errors.New("down"),
			trigger: triggerSchedule, result: resultFailure},
		{name: "request failed before deciding", req: rotation.Request{Rotate: true},
			err: errors.New("down"), trigger: triggerRequest, result: resultFailure},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := testMetrics(t)
			m.observeStep("api")(tc.req, tc.d, tc.err)
			got := testutil.ToFloat64(m.rotations.WithLabelValues("api", tc.trigger, tc.result))
			if got != 1 || testutil.CollectAndCount(m.rotations) != 1 {
				t.Errorf("rotations{%s,%s} = %v in %d series, want 1 in 1", tc.trigger,
					tc.result, got, testutil.CollectAndCount(m.rotations))
			}
		})
	}

	m := testMetrics(t)
	m.observeStep("api")(rotation.Request{}, rotation.Decision{Remove: []string{"x"}}, nil)
	m.observeStep("api")(rotation.Request{}, rotation.Decision{}, errors.New("down"))
	if n := testutil.CollectAndCount(m.rotations); n != 0 {
		t.Errorf("steps without a rotation counted: %d series", n)
	}
}

// discard is a ResponseWriter that keeps nothing, so that allocations are the handler's.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

func jwksHandlers(t testing.TB) (plain, counted http.Handler, m *metrics) {
	t.Helper()
	k, err := keys.Generate("ES256", 0)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := k.PublicJWK()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	s := rotation.State{Version: rotation.StateVersion, Keyset: "default", RotatedAt: now,
		Keys: []rotation.Key{{KID: k.KID, Alg: k.Alg, Phase: rotation.Current,
			PublishedAt: now, ActivatedAt: now, Public: pub}}}
	h := jwks.NewHandler("default")
	h.Publish("default", s, time.Minute)
	cfg, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	m = newMetrics(&Daemon{cfg: cfg, keysets: map[string]*runner{}})
	return h, m.countJWKS(h), m
}

func TestCountJWKS(t *testing.T) {
	plain, counted, m := jwksHandlers(t)
	for _, tc := range []struct {
		name   string
		method string
		path   string
		code   string
	}{
		{name: "served", method: "GET", path: "/.well-known/jwks.json", code: "200"},
		{name: "unknown keyset", method: "GET", path: "/keysets/nope/jwks.json", code: "404"},
		{name: "wrong method", method: "POST", path: "/.well-known/jwks.json", code: "405"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			counted.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
			if fmt.Sprint(rec.Code) != tc.code {
				t.Fatalf("code %d, want %s", rec.Code, tc.code)
			}
			if got := testutil.ToFloat64(m.jwksRequests.WithLabelValues(tc.code)); got != 1 {
				t.Errorf("jwks_requests{code=%s} = %v, want 1", tc.code, got)
			}
		})
	}

	// Counting must not add allocations to the JWKS path.
	req := httptest.NewRequest("GET", "/.well-known/jwks.json", nil)
	w := &discard{h: http.Header{}}
	allocs := func(h http.Handler) float64 {
		return testing.AllocsPerRun(200, func() {
			clear(w.h)
			h.ServeHTTP(w, req)
		})
	}
	if base, got := allocs(plain), allocs(counted); got > base {
		t.Errorf("counted JWKS request allocates %v times, the handler alone %v", got, base)
	}
}

func BenchmarkCountedJWKS(b *testing.B) {
	_, counted, _ := jwksHandlers(b)
	req := httptest.NewRequest("GET", "/.well-known/jwks.json", nil)
	w := &discard{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		counted.ServeHTTP(w, req)
	}
}

func TestMetricNames(t *testing.T) {
	m := testMetrics(t)
	m.observeStep("api")(rotation.Request{Rotate: true}, rotation.Decision{Promote: true}, nil)
	_, _, _ = m.store("api", failingStore{}).Load(context.Background())
	m.jwksByCode[200].Inc()
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "keyd_") {
			names = append(names, f.GetName())
		}
	}
	for _, want := range []string{"keyd_rotations_total", "keyd_jwks_requests_total",
		"keyd_storage_operation_duration_seconds"} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Errorf("%s not gathered (have %v)", want, names)
		}
	}
}

// TestHandlerServesDefaultRegistryToo: /metrics carries the process-wide metrics beside
// the daemon's own, without a name clash.
func TestHandlerServesDefaultRegistryToo(t *testing.T) {
	m := testMetrics(t)
	m.jwksByCode[200].Inc()
	rec := httptest.NewRecorder()
	m.handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{"keyd_jwks_requests_total", "go_goroutines",
		"process_cpu_seconds_total"} {
		if rec.Code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics (%d) lacks %s", rec.Code, want)
		}
	}
}
