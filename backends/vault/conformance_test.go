package vault_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/keyd-io/keyd/backends/backendtest"
	"github.com/keyd-io/keyd/backends/vault"
	"github.com/keyd-io/keyd/internal/vaulttest"
	"github.com/keyd-io/keyd/rotation"
)

func TestConformance(t *testing.T) {
	srv := vaulttest.StartDev(t)
	root := srv.Client()
	// A mount that refuses every write without check-and-set, as careful operators set it.
	if err := root.Sys().Mount("strict", &api.MountInput{
		Type: "kv", Options: map[string]string{"version": "2"},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Logical().Write("strict/config", map[string]any{
		"cas_required": true}); err != nil {
		t.Fatal(err)
	}

	for _, mount := range []string{"secret", "strict"} {
		t.Run(mount, func(t *testing.T) {
			b := openBackend(t, srv, vault.Options{Mount: mount, Prefix: "conformance"})
			n := 0
			backendtest.Run(t, backendtest.Harness{
				Open: func(t *testing.T) rotation.Store {
					n++
					return b.Keyset(fmt.Sprintf("ks%d", n))
				},
				Current: func(t *testing.T, s rotation.Store) backendtest.Issued {
					t.Helper()
					path := s.(*vault.Store).CurrentPath()
					secret, err := root.KVv2(mount).Get(vaulttest.Context(t),
						strings.TrimPrefix(path, mount+"/"))
					if err != nil {
						t.Fatalf("read %s: %v", path, err)
					}
					field := func(name string) string {
						v, _ := secret.Data[name].(string)
						return v
					}
					return backendtest.Issued{KID: field("kid"), Alg: field("alg"),
						JWK: []byte(field("jwk")), PEM: []byte(field("pem"))}
				},
			})
		})
	}
}
