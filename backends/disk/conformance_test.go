package disk_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/keyd-io/keyd/backends/backendtest"
	"github.com/keyd-io/keyd/backends/disk"
	"github.com/keyd-io/keyd/keys"
	"github.com/keyd-io/keyd/rotation"
)

func TestConformance(t *testing.T) {
	b, err := disk.Open(t.TempDir(), disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	n := 0
	backendtest.Run(t, backendtest.Harness{
		Open: func(t *testing.T) rotation.Store {
			n++
			return b.Keyset(fmt.Sprintf("ks%d", n))
		},
		Current: func(t *testing.T, s rotation.Store) backendtest.Issued {
			t.Helper()
			path := s.(*disk.Store).CurrentPath()
			jwk, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			pem, err := os.ReadFile(filepath.Join(filepath.Dir(path), "current.pem"))
			if err != nil {
				t.Fatal(err)
			}
			k, err := keys.ParsePrivateJWK(jwk)
			if err != nil {
				t.Fatalf("current.jwk: %v", err)
			}
			return backendtest.Issued{KID: k.KID, Alg: k.Alg, JWK: jwk, PEM: pem}
		},
	})
}
