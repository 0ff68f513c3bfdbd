package vault_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/keyd-io/keyd/backends"
	"github.com/keyd-io/keyd/backends/vault"
	"github.com/keyd-io/keyd/internal/vaulttest"
	"github.com/keyd-io/keyd/keys"
)

// TestLoadWithoutState checks what a keyset without a state document loads as: a first
// start when nothing or only private keys are there (another replica may be creating the
// keyset), an error when an issuer key was published (its state was lost) or the state's
// latest version was deleted.
func TestLoadWithoutState(t *testing.T) {
	srv := vaulttest.StartDev(t)
	b := openBackend(t, srv, vault.Options{Prefix: "lost",
		Keysets: []string{"empty", "keys-only", "published", "deleted"}})
	k, err := keys.Generate("ES256", 0)
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := k.PrivateJWK()
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		keyset   string
		prepare  func(ctx context.Context, s *vault.Store) error
		notFound bool
		wantErr  string
	}{
		{name: "nothing stored", keyset: "empty", notFound: true},
		{
			name:   "private keys only",
			keyset: "keys-only",
			prepare: func(ctx context.Context, s *vault.Store) error {
				return s.PutKey(ctx, k.KID, jwk)
			},
			notFound: true,
		},
		{
			name:   "issuer key published",
			keyset: "published",
			prepare: func(ctx context.Context, s *vault.Store) error {
				return s.PublishCurrent(ctx, k)
			},
			wantErr: "secret/data/lost/published/current exists: refusing to create new keys",
		},
		{
			name:   "latest state version deleted",
			keyset: "deleted",
			prepare: func(ctx context.Context, s *vault.Store) error {
				if _, err := s.Save(ctx, []byte(`{}`), 0); err != nil {
					return err
				}
				return srv.Client().KVv2("secret").Delete(ctx, "lost/deleted/state")
			},
			wantErr: "vault kv undelete -versions=1 secret/lost/deleted/state",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := b.Keyset(tc.keyset)
			if tc.prepare != nil {
				if err := tc.prepare(t.Context(), s); err != nil {
					t.Fatal(err)
				}
			}
			_, _, err := s.Load(t.Context())
			if tc.notFound {
				if !errors.Is(err, backends.ErrNotFound) {
					t.Fatalf("Load = %v, want backends.ErrNotFound", err)
				}
				return
			}
			if err == nil || errors.Is(err, backends.ErrNotFound) ||
				!strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Load = %v, want an error (not not-found) containing %q", err,
					tc.wantErr)
			}
		})
	}
}
