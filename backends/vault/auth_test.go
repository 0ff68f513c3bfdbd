package vault

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/keyd-io/keyd/internal/vaulttest"
)

// renewTimeout bounds how long a test waits for a renewal or a new login.
const renewTimeout = 45 * time.Second

func TestLoginBackoff(t *testing.T) {
	tests := []struct {
		name     string
		attempt  int
		min, max time.Duration
	}{
		{name: "first", attempt: 0, min: 500 * time.Millisecond, max: time.Second},
		{name: "third", attempt: 2, min: 2 * time.Second, max: 4 * time.Second},
		{name: "capped", attempt: 10, min: loginRetryMax / 2, max: loginRetryMax},
		{name: "far out", attempt: 100, min: loginRetryMax / 2, max: loginRetryMax},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for range 100 {
				if d := loginBackoff(tc.attempt); d < tc.min || d > tc.max {
					t.Fatalf("loginBackoff(%d) = %s, want within [%s, %s]", tc.attempt, d,
						tc.min, tc.max)
				}
			}
		})
	}
}

// TestReloginBacksOff checks that failing logins (Vault down) are retried with growing
// waits, not in a tight loop, and logged once per distinct error.
func TestReloginBacksOff(t *testing.T) {
	dir := t.TempDir()
	roleID, secretID := filepath.Join(dir, "role-id"), filepath.Join(dir, "secret-id")
	for _, p := range []string{roleID, secretID} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := api.DefaultConfig()
	cfg.Address, cfg.MaxRetries = "http://127.0.0.1:1", 0
	client, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	s, err := newSession(client, Options{Auth: "approle", RoleIDFile: roleID,
		SecretIDFile: secretID, Log: zap.New(core)})
	if err != nil {
		t.Fatal(err)
	}
	const attempts = 6
	var waits []time.Duration
	s.sleep = func(ctx context.Context, d time.Duration) bool {
		waits = append(waits, d)
		return len(waits) < attempts
	}

	s.relogin(t.Context())
	if len(waits) != attempts {
		t.Fatalf("relogin waited %d times, want %d", len(waits), attempts)
	}
	for i, d := range waits {
		if lo := loginRetryInitial << i / 2; d < lo {
			t.Errorf("wait %d = %s, want at least %s", i, d, lo)
		}
	}
	if n := logs.FilterMessage("Vault login failed; will retry").Len(); n != 1 {
		t.Errorf("logged %d login failures, want 1 for the same error", n)
	}
}

// TestRenewAndRelogin runs logins with short TTLs against a real Vault: the token is
// renewed while it may be, and a new login (AppRole) or the token file's new token
// (token auth) takes over when it reaches its maximum lifetime.
func TestRenewAndRelogin(t *testing.T) {
	srv := vaulttest.StartDev(t)
	root := srv.Client()
	if err := root.Sys().PutPolicy("keyd", testPolicy); err != nil {
		t.Fatal(err)
	}

	t.Run("approle", func(t *testing.T) {
		t.Parallel()
		if err := root.Sys().EnableAuthWithOptions("approle", &api.EnableAuthOptions{
			Type: "approle"}); err != nil {
			t.Fatal(err)
		}
		if _, err := root.Logical().Write("auth/approle/role/keyd", map[string]any{
			"token_policies": "keyd", "token_ttl": "3s", "token_max_ttl": "7s",
		}); err != nil {
			t.Fatal(err)
		}
		role, err := root.Logical().Read("auth/approle/role/keyd/role-id")
		if err != nil {
			t.Fatal(err)
		}
		sid, err := root.Logical().Write("auth/approle/role/keyd/secret-id", nil)
		if err != nil {
			t.Fatal(err)
		}
		b := open(t, srv, Options{Auth: "approle",
			RoleIDFile:   writeSecret(t, "role-id", role.Data["role_id"].(string)),
			SecretIDFile: writeSecret(t, "secret-id", sid.Data["secret_id"].(string)),
		})
		first := b.client.Token()
		waitRenewed(t, root, first)
		waitFor(t, "a new AppRole login", func() bool { return b.client.Token() != first })
		checkWorks(t, b)
	})

	t.Run("token file", func(t *testing.T) {
		t.Parallel()
		first := createToken(t, root, "3s", "7s")
		tokenFile := writeSecret(t, "token", first)
		b := open(t, srv, Options{Auth: "token", TokenFile: tokenFile})
		waitRenewed(t, root, first)
		// The new token must outlive the wait for the first one's end.
		second := createToken(t, root, "1m", "2m")
		if err := os.WriteFile(tokenFile, []byte(second), 0o600); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the token file's new token", func() bool { return b.client.Token() == second })
		checkWorks(t, b)
	})
}

// testPolicy is the policy docs/vault.md gives operators, for prefix keyd.
const testPolicy = `
path "secret/data/keyd/*"     { capabilities = ["create", "read", "update"] }
path "secret/metadata/keyd/*" { capabilities = ["list", "read", "delete"] }
`

func open(t *testing.T, srv *vaulttest.Server, opts Options) *Backend {
	t.Helper()
	opts.Address, opts.Mount, opts.Prefix = srv.Addr, "secret", "keyd"
	opts.Keysets = []string{"default"}
	opts.Log = zaptest.NewLogger(t)
	b, err := Open(t.Context(), opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func createToken(t *testing.T, root *api.Client, ttl, maxTTL string) string {
	t.Helper()
	tok, err := root.Auth().Token().Create(&api.TokenCreateRequest{
		Policies: []string{"keyd"}, TTL: ttl, ExplicitMaxTTL: maxTTL, NoParent: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Auth.ClientToken
}

// waitRenewed polls until token has been renewed at least once.
func waitRenewed(t *testing.T, root *api.Client, token string) {
	t.Helper()
	waitFor(t, "a token renewal", func() bool {
		s, err := root.Auth().Token().Lookup(token)
		return err == nil && s != nil && s.Data["last_renewal_time"] != nil
	})
}

func checkWorks(t *testing.T, b *Backend) {
	t.Helper()
	ks := b.Keyset("default")
	_, _, err := ks.Load(t.Context())
	if err != nil && !strings.Contains(err.Error(), "not found") {
		t.Fatalf("Load with the new login: %v", err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(renewTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", renewTimeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func writeSecret(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
