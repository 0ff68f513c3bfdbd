package vault_test

import (
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/keyd-io/keyd/backends/vault"
	"github.com/keyd-io/keyd/internal/vaulttest"
)

// openBackend opens a backend on srv with the root token, filling in what opts leaves out.
func openBackend(t *testing.T, srv *vaulttest.Server, opts vault.Options) *vault.Backend {
	t.Helper()
	b, err := vault.Open(vaulttest.Context(t), fill(t, srv, opts))
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// fill completes opts for srv: its address, mount secret, prefix keyd, keyset default,
// and token auth with the root token in a file.
func fill(t *testing.T, srv *vaulttest.Server, opts vault.Options) vault.Options {
	t.Helper()
	if opts.Address == "" {
		opts.Address = srv.Addr
	}
	if opts.Mount == "" {
		opts.Mount = "secret"
	}
	if opts.Prefix == "" {
		opts.Prefix = "keyd"
	}
	if opts.Keysets == nil {
		opts.Keysets = []string{"default"}
	}
	if opts.Auth == "" {
		opts.Auth = "token"
		opts.TokenFile = writeFile(t, "token", srv.RootToken)
	}
	return opts
}

func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// unusedAddr returns a loopback address nothing listens on.
func unusedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
