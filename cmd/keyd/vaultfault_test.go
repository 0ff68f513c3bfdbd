package main

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keyd-io/keyd/internal/keydtest"
	"github.com/keyd-io/keyd/internal/vaulttest"
)

// faultyVault stands between keyd and a real Vault and, on demand, answers what a real
// Vault cannot be made to answer at will: errors on state writes in the middle of a
// rotation, or every answer late.
type faultyVault struct {
	*httptest.Server
	mu     sync.Mutex
	status int           // answer state writes with this status when non-zero
	delay  time.Duration // hold every answer this long
	failed int           // state writes refused so far
}

func newFaultyVault(t *testing.T, srv *vaulttest.Server) *faultyVault {
	t.Helper()
	target, err := url.Parse(srv.Addr)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	f := &faultyVault{}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		status, delay := f.status, f.delay
		stateWrite := r.Method != http.MethodGet && strings.HasSuffix(r.URL.Path, "/default/state")
		if status != 0 && stateWrite {
			f.failed++
		}
		f.mu.Unlock()
		time.Sleep(delay) // the fault itself: a Vault that answers late
		if status != 0 && stateWrite {
			http.Error(w, `{"errors":["injected fault"]}`, status)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *faultyVault) set(status int, delay time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status, f.delay = status, delay
}

func (f *faultyVault) refused() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.failed
}

// TestVaultFaultsMidRotation makes Vault refuse the state write of a rotation (after the
// new private key is stored), and answer slowly: the JWKS stays served and unchanged, the
// failure shows in /readyz, and the rotation runs exactly once when the fault clears.
func TestVaultFaultsMidRotation(t *testing.T) {
	tests := []struct {
		name   string
		status int
		delay  time.Duration
	}{
		{name: "500 on the state write", status: http.StatusInternalServerError},
		{name: "503 on the state write", status: http.StatusServiceUnavailable},
		{name: "slow answers", delay: 1500 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := vaulttest.StartDev(t)
			fv := newFaultyVault(t, srv)
			config := strings.Replace(vaultConfig(t, srv, ""), srv.Addr, fv.URL, 1)
			p := keydtest.Start(t, config, keydtest.Options{})
			waitNextReady(t, p, srv)
			before, _ := storedState(t, srv)
			_, servedBefore := p.Get("/.well-known/jwks.json")

			fv.set(tc.status, tc.delay)
			p.Signal(syscall.SIGUSR1)
			if tc.status != 0 {
				p.WaitFor("/readyz to report the failed write", func() bool {
					code, body := readyStatus(p)
					return code == http.StatusServiceUnavailable && fv.refused() > 0 &&
						strings.Contains(body, "injected fault")
				})
				resp, served := p.Get("/.well-known/jwks.json")
				if resp.StatusCode != http.StatusOK || string(served) != string(servedBefore) {
					t.Fatalf("JWKS changed or not served while writes fail: %d", resp.StatusCode)
				}
				if n := strings.Count(p.Log(), "keyset step failed; will retry"); n != 1 {
					t.Errorf("the same failure was logged %d times at error level, want once", n)
				}
			} else {
				// While the rotation waits on Vault, verifiers are still answered.
				if resp, _ := p.Get("/.well-known/jwks.json"); resp.StatusCode != http.StatusOK {
					t.Fatalf("JWKS not served while Vault is slow: %d", resp.StatusCode)
				}
			}

			fv.set(0, 0)
			p.WaitFor("the rotation to run once the fault clears", func() bool {
				after, _ := storedState(t, srv)
				return after.InPhase("current").KID != before.InPhase("current").KID
			})
			p.WaitReady()
			after, _ := storedState(t, srv)
			promoted(t, before, after)
		})
	}
}
