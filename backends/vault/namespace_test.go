package vault

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/keyd-io/keyd/backends"
)

// TestNamespaceOnEveryRequest checks that every request, the AppRole login included,
// carries the configured namespace. Open-source Vault has no namespaces, so a stand-in
// server answers the few requests Open makes.
func TestNamespaceOnEveryRequest(t *testing.T) {
	var (
		mu   sync.Mutex
		seen = map[string]string{}
	)
	answers := map[string]string{
		"/v1/sys/health": `{"initialized":true,"sealed":false,"standby":false}`,
		"/v1/auth/approle/login": `{"auth":{"client_token":"issued","lease_duration":0,` +
			`"renewable":false}}`,
		"/v1/sys/internal/ui/mounts/secret": `{"data":{"path":"secret/","type":"kv",` +
			`"options":{"version":"2"}}}`,
		"/v1/sys/capabilities-self": `{"data":{"capabilities":["root"]}}`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen[r.URL.Path] = r.Header.Get("X-Vault-Namespace")
		mu.Unlock()
		// Anything else (the state, the current key) has never been written.
		body, ok := answers[r.URL.Path]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
		}
		_, _ = w.Write([]byte(body))
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	roleID, secretID := filepath.Join(dir, "role-id"), filepath.Join(dir, "secret-id")
	for _, p := range []string{roleID, secretID} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	b, err := Open(t.Context(), Options{Address: srv.URL, Mount: "secret", Prefix: "keyd",
		Auth: "approle", RoleIDFile: roleID, SecretIDFile: secretID, Namespace: "team-a",
		Keysets: []string{"default"}})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	if _, _, err := b.Keyset("default").Load(t.Context()); !errors.Is(err,
		backends.ErrNotFound) {
		t.Fatalf("Load = %v, want backends.ErrNotFound", err)
	}

	mu.Lock()
	defer mu.Unlock()
	for _, path := range []string{"/v1/auth/approle/login", "/v1/sys/internal/ui/mounts/secret",
		"/v1/sys/capabilities-self", "/v1/secret/data/keyd/default/state"} {
		if got := seen[path]; got != "team-a" {
			t.Errorf("%s: namespace %q, want %q", path, got, "team-a")
		}
	}
}
