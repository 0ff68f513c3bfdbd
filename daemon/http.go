package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/keyd-io/keyd/rotation"
)

// HTTP server limits: slow or oversized clients are cut off without affecting others.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 10 * time.Second
	idleTimeout       = 2 * time.Minute
	maxHeaderBytes    = 16 << 10
)

// OverdueAfter is how long past its due time a change may stay undone (storage failing)
// before /readyz reports the keyset not ready.
const OverdueAfter = 5 * time.Minute

func (d *Daemon) listen() error {
	ln, err := net.Listen("tcp", d.cfg.Server.Listen)
	if err != nil {
		return fmt.Errorf("server.listen: %w", err)
	}
	d.listener = ln
	if d.cfg.Server.TLSCertFile != "" {
		cert, err := loadCertificate(d.cfg.Server.TLSCertFile, d.cfg.Server.TLSKeyFile)
		if err != nil {
			return fmt.Errorf("server.tls_cert_file: %w", err)
		}
		d.cert = cert
	}

	mux := http.NewServeMux()
	jwksHandler := d.metrics.countJWKS(d.jwks)
	mux.Handle("/.well-known/jwks.json", jwksHandler)
	mux.Handle("/keysets/", jwksHandler)
	// GET patterns also answer HEAD; other methods get 405 with an Allow header.
	mux.HandleFunc("GET /healthz", d.healthz)
	mux.HandleFunc("GET /readyz", d.readyz)
	mux.Handle("GET /metrics", d.metrics.handler())
	d.server = &http.Server{
		Handler:           jwksFirst(jwksHandler, mux),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          nil,
	}
	return nil
}

// jwksFirst hands clean JWKS paths, which verifiers request at volume, straight to the
// JWKS handler (it checks the path itself) and every other request to mux. Skipping
// ServeMux's cleaning and matching saved about a tenth of the CPU time per JWKS request
// under wrk (docs/performance.md). Paths that cleaning would change ("//", "/.") still
// go through mux, so they are answered as before.
func jwksFirst(jwks, mux http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if p == "/.well-known/jwks.json" || strings.HasPrefix(p, "/keysets/") &&
			!strings.Contains(p, "//") && !strings.Contains(p, "/.") {
			jwks.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func (d *Daemon) serve() error {
	var err error
	if d.cert != nil {
		d.server.TLSConfig = d.cert.config()
		err = d.server.ServeTLS(d.listener, "", "")
	} else {
		err = d.server.Serve(d.listener)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

func (d *Daemon) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("ok\n"))
}

// readiness is /readyz's body.
type readiness struct {
	Ready   bool                       `json:"ready"`
	Keysets map[string]keysetReadiness `json:"keysets"`
}

type keysetReadiness struct {
	Ready    bool     `json:"ready"`
	Problems []string `json:"problems,omitempty"`
}

// readyz is ready when every keyset's keys are loaded, its last storage operation worked
// and no change is overdue by more than OverdueAfter.
func (d *Daemon) readyz(w http.ResponseWriter, r *http.Request) {
	body := readiness{Ready: true, Keysets: map[string]keysetReadiness{}}
	now := time.Now()
	for _, run := range d.runners() {
		problems := problemsOf(run.keyset.Status(), now)
		body.Keysets[run.keyset.Name()] = keysetReadiness{Ready: len(problems) == 0,
			Problems: problems}
		body.Ready = body.Ready && len(problems) == 0
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !body.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_ = json.NewEncoder(w).Encode(body)
}

// problemsOf lists what keeps a keyset with status st from being ready at now.
func problemsOf(st rotation.Status, now time.Time) []string {
	var problems []string
	if !st.Loaded {
		problems = append(problems, "keys not loaded")
	}
	if st.LastError != nil {
		problems = append(problems, fmt.Sprintf("storage failing since %s: %v",
			st.FailingSince.UTC().Format(time.RFC3339), st.LastError))
	}
	if st.Loaded && now.Sub(st.NextChange) > OverdueAfter {
		problems = append(problems, fmt.Sprintf("rotation overdue since %s",
			st.NextChange.UTC().Format(time.RFC3339)))
	}
	sort.Strings(problems)
	return problems
}
