package vault_test

import (
	"fmt"
	"testing"

	"github.com/keyd-io/keyd/backends/backendtest"
	"github.com/keyd-io/keyd/backends/vault"
	"github.com/keyd-io/keyd/internal/vaulttest"
	"github.com/keyd-io/keyd/rotation"
)

func TestConformance(t *testing.T) {
	srv := vaulttest.StartDev(t)
	b := openBackend(t, srv, vault.Options{Prefix: "conformance"})
	root := srv.Client()
	n := 0
	backendtest.Run(t, backendtest.Harness{
		Open: func(t *testing.T) rotation.Store {
			n++
			return b.Keyset(fmt.Sprintf("ks%d", n))
		},
		Current: func(t *testing.T, s rotation.Store) backendtest.Issued {
			t.Helper()
			path := s.(*vault.Store).CurrentPath()
			secret, err := root.KVv2("secret").Get(vaulttest.Context(t),
				path[len("secret/"):])
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
}
