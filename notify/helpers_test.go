package notify

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/keyd-io/keyd/config"
	"github.com/keyd-io/keyd/rotation"
)

// pollDeadline bounds every wait on a real process or server.
const pollDeadline = 15 * time.Second

// eventually polls cond until it holds or pollDeadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(pollDeadline)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", pollDeadline, what)
		}
		<-tick.C
	}
}

// writeSecret writes a fresh "whsec_" secret into dir and returns its text and path.
func writeSecret(t testing.TB, dir string) (text, path string) {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	text = secretPrefix + base64.StdEncoding.EncodeToString(key)
	path = filepath.Join(dir, "webhook.secret")
	if err := os.WriteFile(path, []byte(text+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return text, path
}

// request is one webhook request as a receiver saw it.
type request struct {
	Headers http.Header
	Body    []byte
}

func (r request) ID() string { return r.Headers.Get("webhook-id") }

func (r request) Event(t *testing.T) Event {
	t.Helper()
	var ev Event
	if err := json.Unmarshal(r.Body, &ev); err != nil {
		t.Fatalf("decode body %q: %v", r.Body, err)
	}
	return ev
}

// receiver is a real HTTP server on loopback that answers with scripted statuses (then
// 200) and records every request.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	statuses []int
	headers  http.Header // added to scripted answers
	requests []request
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	t.Helper()
	r := &receiver{statuses: statuses, headers: http.Header{}}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	var body bytes.Buffer
	_, _ = body.ReadFrom(req.Body)
	r.mu.Lock()
	r.requests = append(r.requests, request{Headers: req.Header.Clone(), Body: body.Bytes()})
	status := http.StatusOK
	if len(r.statuses) > 0 {
		status, r.statuses = r.statuses[0], r.statuses[1:]
		for k, v := range r.headers {
			w.Header()[k] = v
		}
	}
	r.mu.Unlock()
	w.WriteHeader(status)
}

func (r *receiver) seen() []request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]request(nil), r.requests...)
}

// verifySignature checks req with the independent verifier in testdata, run by
// /usr/bin/python3.
func verifySignature(t *testing.T, secret string, req request) {
	t.Helper()
	if out, err := runVerifier(secret, req); err != nil {
		t.Fatalf("independent verifier refused webhook %s: %v: %s", req.ID(), err, out)
	}
}

func runVerifier(secret string, req request) ([]byte, error) {
	headers := map[string]string{}
	for k := range req.Headers {
		headers[k] = req.Headers.Get(k)
	}
	input, _ := json.Marshal(map[string]any{
		"secret": secret, "headers": headers, "body": string(req.Body),
		"now": time.Now().Unix(),
	})
	cmd := exec.Command("/usr/bin/python3", "testdata/verify_webhook.py")
	cmd.Stdin = bytes.NewReader(input)
	return cmd.CombinedOutput()
}

// fastRetry is a retry policy for real-time tests: quick, and never giving up.
var fastRetry = config.Retry{
	Timeout:        config.Duration(5 * time.Second),
	BackoffInitial: config.Duration(time.Millisecond),
	BackoffMax:     config.Duration(20 * time.Millisecond),
	GiveUpAfter:    config.Duration(time.Hour),
}

// newTestConfig returns a complete configuration with the given notify section; its
// outbox lives in a fresh temporary dir unless n.Dir is set.
func newTestConfig(t *testing.T, n config.Notify) *config.Config {
	t.Helper()
	cfg, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	if n.Dir == "" {
		n.Dir = filepath.Join(t.TempDir(), "outbox")
	}
	if n.JWKSBaseURL == "" {
		n.JWKSBaseURL = "https://keys.example.test"
	}
	cfg.Notify = n
	return cfg
}

// startNotifier builds and starts a Notifier for cfg and stops it at cleanup.
func startNotifier(t *testing.T, cfg *config.Config, log *zap.Logger) *Notifier {
	t.Helper()
	// A short stop grace: tests with hanging hooks need not wait for them at cleanup.
	n, err := New(cfg, Options{Log: log, StopGrace: 100 * time.Millisecond})
	if err != nil {
		t.Fatalf("new notifier: %v", err)
	}
	n.Start()
	t.Cleanup(func() {
		n.Stop()
		n.Close()
	})
	return n
}

// logBuffer is a JSON zap logger writing into memory, as production logs are encoded.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) Sync() error { return nil }

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newLogBuffer() (*logBuffer, *zap.Logger) {
	b := &logBuffer{}
	enc := zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig())
	return b, zap.New(zapcore.NewCore(enc, b, zapcore.DebugLevel))
}

// change returns a lifecycle change of a key with the given kid.
func change(typ rotation.ChangeType, kid, previous string) rotation.Change {
	return rotation.Change{
		Type:        typ,
		Key:         rotation.Key{KID: kid, Alg: "ES256"},
		PreviousKID: previous,
	}
}

// outboxFiles lists the pending records under dir.
func outboxFiles(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*", "*"+recordExt))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func itoa(i int) string { return strconv.Itoa(i) }
