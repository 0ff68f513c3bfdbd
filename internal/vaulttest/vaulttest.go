// Package vaulttest runs a real HashiCorp Vault server for tests: a dev server (in
// memory, unsealed, KV version 2 at secret/) or a server on file storage that the test
// initialises and unseals, so that its data survives a stop and a start. The server binary
// is $KEYD_VAULT_BIN (`make vault` builds it); tests that need it fail without it.
package vaulttest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
)

// StartTimeout bounds how long a Vault server may take to answer after it is started.
const StartTimeout = 60 * time.Second

// EnvBin names the environment variable holding the Vault server binary's path.
const EnvBin = "KEYD_VAULT_BIN"

// Server is a Vault server started by a test.
type Server struct {
	t testing.TB
	// Addr is the server's URL; RootToken a token with every capability.
	Addr      string
	RootToken string
	// CACert is the CA certificate file a TLS server's certificate is issued by.
	CACert string

	args      []string
	home      string
	unsealKey string

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	log     *syncBuffer
	cleanup bool
}

// Bin returns the Vault server binary, failing the test when $KEYD_VAULT_BIN is unset or
// does not name a file: a test that needs Vault must not pass without it.
func Bin(t testing.TB) string {
	t.Helper()
	bin := os.Getenv(EnvBin)
	if bin == "" {
		t.Fatalf("%s is not set: build the Vault server with `make vault` and run the tests "+
			"with `make test`, or set %s=/path/to/vault", EnvBin, EnvBin)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s: %v (build it with `make vault`)", EnvBin, err)
	}
	return bin
}

// StartDev starts a dev server: in memory, unsealed, with KV version 2 at secret/.
func StartDev(t testing.TB) *Server {
	t.Helper()
	addr := freeAddr(t)
	s := &Server{
		t:         t,
		Addr:      "http://" + addr,
		RootToken: randomID(t),
		home:      t.TempDir(),
	}
	s.args = []string{"server", "-dev", "-dev-listen-address=" + addr,
		"-dev-root-token-id=" + s.RootToken, "-dev-no-store-token"}
	s.start()
	s.waitActive()
	return s
}

// StartDevTLS starts a dev server that serves HTTPS with a certificate from a CA it
// generates into CACert.
func StartDevTLS(t testing.TB) *Server {
	t.Helper()
	addr := freeAddr(t)
	dir := t.TempDir()
	s := &Server{
		t:         t,
		Addr:      "https://" + addr,
		RootToken: randomID(t),
		CACert:    filepath.Join(dir, "vault-ca.pem"),
		home:      t.TempDir(),
	}
	s.args = []string{"server", "-dev", "-dev-tls", "-dev-tls-cert-dir=" + dir,
		"-dev-listen-address=" + addr, "-dev-root-token-id=" + s.RootToken,
		"-dev-no-store-token"}
	s.start()
	s.waitFor("vault to write its CA certificate", func() bool {
		info, err := os.Stat(s.CACert)
		return err == nil && info.Size() > 0
	})
	s.waitActive()
	return s
}

// StartFile starts a server on file storage in a temp dir, initialises it with a single
// unseal key, unseals it and enables KV version 2 at secret/.
func StartFile(t testing.TB) *Server {
	t.Helper()
	addr := freeAddr(t)
	dir := t.TempDir()
	hcl := fmt.Sprintf(`storage "file" { path = %q }
listener "tcp" {
  address     = %q
  tls_disable = true
}
api_addr      = "http://%s"
disable_mlock = true
`, filepath.Join(dir, "data"), addr, addr)
	conf := filepath.Join(dir, "vault.hcl")
	if err := os.WriteFile(conf, []byte(hcl), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, Addr: "http://" + addr, home: dir, args: []string{"server", "-config=" + conf}}
	s.start()
	s.waitAnswering()

	init, err := s.anonClient().Sys().Init(&api.InitRequest{SecretShares: 1, SecretThreshold: 1})
	if err != nil {
		t.Fatalf("vault init: %v", err)
	}
	s.RootToken, s.unsealKey = init.RootToken, init.Keys[0]
	s.Unseal()
	if err := s.Client().Sys().Mount("secret", &api.MountInput{
		Type: "kv", Options: map[string]string{"version": "2"},
	}); err != nil {
		t.Fatalf("enable kv-v2 at secret/: %v", err)
	}
	s.waitKV("secret")
	return s
}

// Client returns a client of the server holding the root token.
func (s *Server) Client() *api.Client {
	s.t.Helper()
	c := s.anonClient()
	c.SetToken(s.RootToken)
	return c
}

// Stop stops the server and waits for it to exit. Data of a file server is kept.
func (s *Server) Stop() {
	s.t.Helper()
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(StartTimeout):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Restart starts a stopped server again; a file server is unsealed.
func (s *Server) Restart() {
	s.t.Helper()
	s.start()
	if s.unsealKey != "" {
		s.waitAnswering()
		s.Unseal()
		s.waitKV("secret")
		return
	}
	s.waitActive()
}

// Seal seals the server.
func (s *Server) Seal() {
	s.t.Helper()
	if err := s.Client().Sys().Seal(); err != nil {
		s.t.Fatalf("vault seal: %v", err)
	}
}

// Unseal unseals a file server and waits until it serves requests.
func (s *Server) Unseal() {
	s.t.Helper()
	if s.unsealKey == "" {
		s.t.Fatal("vaulttest: only a file server can be unsealed")
	}
	if _, err := s.anonClient().Sys().Unseal(s.unsealKey); err != nil {
		s.t.Fatalf("vault unseal: %v", err)
	}
	s.waitActive()
}

// Log returns what the server wrote so far.
func (s *Server) Log() string { return s.log.String() }

func (s *Server) start() {
	s.t.Helper()
	cmd := exec.Command(Bin(s.t), s.args...)
	// A dev server stores its token in $HOME unless told not to; keep it out of the
	// user's home in any case.
	cmd.Env = append(os.Environ(), "HOME="+s.home, "VAULT_ADDR=", "VAULT_TOKEN=")
	if s.log == nil {
		s.log = &syncBuffer{}
	}
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start vault: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	if s.cleanup {
		return
	}
	s.cleanup = true
	s.t.Cleanup(func() {
		s.Stop()
		if s.t.Failed() {
			s.t.Logf("vault log:\n%s", s.Log())
		}
	})
}

// waitAnswering polls until the server answers health requests in any state.
func (s *Server) waitAnswering() {
	s.t.Helper()
	s.waitFor("vault to answer", func() bool {
		_, err := s.anonClient().Sys().Health()
		return err == nil
	})
}

// waitActive polls until the server is initialised, unsealed and active.
func (s *Server) waitActive() {
	s.t.Helper()
	s.waitFor("vault to be unsealed and active", func() bool {
		h, err := s.anonClient().Sys().Health()
		return err == nil && h.Initialized && !h.Sealed && !h.Standby
	})
}

// waitKV polls until a KV mount accepts requests (a fresh KV version 2 mount upgrades
// itself for a moment first).
func (s *Server) waitKV(mount string) {
	s.t.Helper()
	s.waitFor("kv mount "+mount+" to be ready", func() bool {
		_, err := s.Client().Logical().List(mount + "/metadata/")
		return err == nil
	})
}

func (s *Server) waitFor(what string, cond func() bool) {
	s.t.Helper()
	deadline := time.Now().Add(StartTimeout)
	for !cond() {
		s.mu.Lock()
		done := s.done
		s.mu.Unlock()
		select {
		case <-done:
			s.t.Fatalf("vault exited while waiting for %s:\n%s", what, s.Log())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("waited %s for %s:\n%s", StartTimeout, what, s.Log())
		}
	}
}

func (s *Server) anonClient() *api.Client {
	s.t.Helper()
	cfg := api.DefaultConfig()
	cfg.Address = s.Addr
	cfg.MaxRetries = 0
	cfg.Timeout = 5 * time.Second
	if s.CACert != "" {
		if err := cfg.ConfigureTLS(&api.TLSConfig{CACert: s.CACert}); err != nil {
			s.t.Fatal(err)
		}
	}
	c, err := api.NewClient(cfg)
	if err != nil {
		s.t.Fatal(err)
	}
	c.ClearToken()
	return c
}

// Context returns a context that ends with the test.
func Context(t testing.TB) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return ctx
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func randomID(t testing.TB) string {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
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
	if b == nil {
		return ""
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
