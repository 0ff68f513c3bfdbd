package jwks_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/keyd-io/keyd/jwks"
)

func newHandler(t testing.TB) (*jwks.Handler, *jwks.Document) {
	t.Helper()
	h := jwks.NewHandler("default")
	s := stateOf(t, "ES256", 0, 3)
	h.Publish("default", s, 5*time.Minute)
	h.Publish("api", stateOf(t, "EdDSA", 0, 2), time.Hour)
	return h, h.Document("default")
}

func TestHandler(t *testing.T) {
	h, doc := newHandler(t)
	tests := []struct {
		name       string
		method     string
		path       string
		header     map[string]string
		wantStatus int
		wantBody   bool
		wantHeader map[string]string
	}{
		{
			name: "default keyset", method: "GET", path: "/.well-known/jwks.json",
			wantStatus: 200, wantBody: true,
			wantHeader: map[string]string{
				"Content-Type":                "application/json",
				"Cache-Control":               "public, max-age=300",
				"Etag":                        doc.ETag,
				"Access-Control-Allow-Origin": "*",
			},
		},
		{
			name: "named keyset", method: "GET", path: "/keysets/api/jwks.json",
			wantStatus: 200, wantBody: true,
			wantHeader: map[string]string{"Cache-Control": "public, max-age=3600"},
		},
		{
			name: "HEAD has headers and no body", method: "HEAD", path: "/.well-known/jwks.json",
			wantStatus: 200,
			wantHeader: map[string]string{"Etag": doc.ETag, "Content-Type": "application/json"},
		},
		{
			name: "matching If-None-Match", method: "GET", path: "/.well-known/jwks.json",
			header:     map[string]string{"If-None-Match": doc.ETag},
			wantStatus: 304, wantHeader: map[string]string{"Etag": doc.ETag},
		},
		{
			name: "weak and listed If-None-Match", method: "GET", path: "/.well-known/jwks.json",
			header:     map[string]string{"If-None-Match": `"other", W/` + doc.ETag},
			wantStatus: 304,
		},
		{
			name: "stale If-None-Match", method: "GET", path: "/.well-known/jwks.json",
			header:     map[string]string{"If-None-Match": `"stale"`},
			wantStatus: 200, wantBody: true,
		},
		{
			name: "POST is refused", method: "POST", path: "/.well-known/jwks.json",
			wantStatus: 405, wantHeader: map[string]string{"Allow": "GET, HEAD, OPTIONS"},
		},
		{
			name: "DELETE is refused", method: "DELETE", path: "/keysets/api/jwks.json",
			wantStatus: 405,
		},
		{
			name: "CORS preflight", method: "OPTIONS", path: "/.well-known/jwks.json",
			wantStatus: 204, wantHeader: map[string]string{"Access-Control-Allow-Origin": "*"},
		},
		{name: "unknown keyset", method: "GET", path: "/keysets/nope/jwks.json", wantStatus: 404},
		{name: "dot-dot", method: "GET", path: "/keysets/../jwks.json", wantStatus: 404},
		{name: "nested name", method: "GET", path: "/keysets/a/b/jwks.json", wantStatus: 404},
		{name: "encoded slash", method: "GET", path: "/keysets/a%2Fb/jwks.json", wantStatus: 404},
		{name: "no name", method: "GET", path: "/keysets//jwks.json", wantStatus: 404},
		{name: "other path", method: "GET", path: "/jwks.json", wantStatus: 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, nil)
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.wantStatus {
				t.Fatalf("status %d, want %d", rec.Code, tc.wantStatus)
			}
			for k, v := range tc.wantHeader {
				if got := rec.Header().Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			if got := strings.Contains(rec.Body.String(), `"keys"`); got != tc.wantBody {
				t.Fatalf("JWKS in body %v, want %v", got, tc.wantBody)
			}
			if tc.wantBody && strings.Contains(rec.Body.String(), `"d"`) {
				t.Fatal("served a private member")
			}
		})
	}
}

func TestHandlerETagFollowsState(t *testing.T) {
	h, before := newHandler(t)
	s := stateOf(t, "ES256", 0, 3)
	h.Publish("default", s, 5*time.Minute)
	after := h.Document("default")
	if before.ETag == after.ETag {
		t.Fatal("ETag did not change with the keys")
	}
	// Replicas encode the same state independently: the bytes and ETag must match.
	if again := jwks.Encode(s, 5*time.Minute); again.ETag != after.ETag ||
		string(again.Body) != string(after.Body) {
		t.Fatal("the same state encoded twice gives different bytes")
	}
}

// discard is a ResponseWriter that keeps nothing, so the benchmark measures the handler.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

func BenchmarkHandler(b *testing.B) {
	h, doc := newHandler(b)
	for _, bc := range []struct {
		name string
		inm  string
	}{
		{name: "200"},
		{name: "304", inm: doc.ETag},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", "/.well-known/jwks.json", nil)
			if bc.inm != "" {
				req.Header.Set("If-None-Match", bc.inm)
			}
			w := &discard{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				h.ServeHTTP(w, req)
			}
		})
	}
}
