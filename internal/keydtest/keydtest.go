// Package keydtest runs the real keyd binary in end-to-end tests: it builds keyd once per
// test binary, starts it on a test's configuration, waits until it is ready and stops
// it when the test ends. A test's keyd log is shown when the test fails.
package keydtest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ReadyTimeout bounds how long a started keyd may take to answer /readyz.
const ReadyTimeout = 60 * time.Second

var build struct {
	once sync.Once
	path string
	err  error
}

// Binary returns the path of a keyd binary built from this checkout, building it on the
// first call.
func Binary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		dir, err := os.MkdirTemp("", "keyd-bin-")
		if err != nil {
			build.err = err
			return
		}
		build.path = filepath.Join(dir, "keyd")
		cmd := exec.Command("go", "build", "-o", build.path, "github.com/keyd-io/keyd/cmd/keyd")
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build keyd: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.path
}

// FreeAddr returns a loopback address with a port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Process is a running keyd.
type Process struct {
	t      testing.TB
	cmd    *exec.Cmd
	exited chan struct{}
	err    error

	// Config is the configuration file's path; Addr the HTTP listen address.
	Config string
	Addr   string
	log    *syncBuffer
}

// Options tunes Start.
type Options struct {
	// Env is added to keyd's environment.
	Env []string
	// NoWait returns as soon as the process has started, without waiting for /readyz.
	NoWait bool
}

// Start writes config (TOML; "{{listen}}" is replaced by a free address) to a file in a
// temp dir, starts `keyd run --config FILE` and waits until /readyz answers 200.
func Start(t testing.TB, config string, opts Options) *Process {
	t.Helper()
	addr := FreeAddr(t)
	path := filepath.Join(t.TempDir(), "keyd.toml")
	config = strings.ReplaceAll(config, "{{listen}}", addr)
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return StartFile(t, path, addr, opts)
}

// StartFile starts keyd on an existing configuration file listening on addr.
func StartFile(t testing.TB, path, addr string, opts Options) *Process {
	t.Helper()
	p := &Process{t: t, Config: path, Addr: addr, log: &syncBuffer{}, exited: make(chan struct{})}
	p.cmd = exec.Command(Binary(t), "run", "--config", path)
	p.cmd.Env = append(os.Environ(), opts.Env...)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start keyd: %v", err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.Kill()
		if t.Failed() {
			t.Logf("keyd log (%s):\n%s", path, p.Log())
		}
	})
	if !opts.NoWait {
		p.WaitReady()
	}
	return p
}

// URL returns the address of path on this keyd.
func (p *Process) URL(path string) string { return "http://" + p.Addr + path }

// Log returns everything keyd wrote to stdout and stderr so far.
func (p *Process) Log() string { return p.log.String() }

// Pid returns the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// WaitReady polls /readyz until it answers 200, failing the test if keyd exits first.
func (p *Process) WaitReady() {
	p.t.Helper()
	p.WaitFor("/readyz to answer 200", func() bool {
		resp, err := http.Get(p.URL("/readyz"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// WaitFor polls cond until it holds, failing the test after ReadyTimeout or if keyd exits.
func (p *Process) WaitFor(what string, cond func() bool) {
	p.t.Helper()
	deadline := time.Now().Add(ReadyTimeout)
	for !cond() {
		select {
		case <-p.exited:
			p.t.Fatalf("keyd exited (%v) while waiting for %s\n%s", p.err, what, p.Log())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("waited %s for %s", ReadyTimeout, what)
		}
	}
}

// Signal sends sig to keyd.
func (p *Process) Signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal keyd: %v", err)
	}
}

// Stop sends SIGTERM and returns keyd's exit code once it has exited.
func (p *Process) Stop() int {
	p.t.Helper()
	p.Signal(syscall.SIGTERM)
	return p.Wait()
}

// Wait waits for keyd to exit and returns its exit code.
func (p *Process) Wait() int {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(ReadyTimeout):
		p.t.Fatalf("keyd did not exit within %s", ReadyTimeout)
	}
	var exitErr *exec.ExitError
	if errors.As(p.err, &exitErr) {
		return exitErr.ExitCode()
	}
	if p.err != nil {
		p.t.Fatalf("wait for keyd: %v", p.err)
	}
	return 0
}

// Kill stops keyd at once with SIGKILL, if it still runs.
func (p *Process) Kill() {
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// Get fetches path and returns the response with its body read.
func (p *Process) Get(path string, header ...string) (*http.Response, []byte) {
	p.t.Helper()
	req, err := http.NewRequest(http.MethodGet, p.URL(path), nil)
	if err != nil {
		p.t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		p.t.Fatalf("GET %s: read body: %v", path, err)
	}
	return resp, body
}

// Run runs a keyd subcommand to completion and returns its combined output and exit code.
func Run(t testing.TB, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(Binary(t), args...)
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return string(out), exitErr.ExitCode()
	}
	if err != nil {
		t.Fatalf("run keyd %v: %v", args, err)
	}
	return string(out), 0
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
