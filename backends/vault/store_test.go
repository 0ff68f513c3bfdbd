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

// TestPublishCurrentNeverGoesBack checks that a replica publishing from an older state
// does not replace the issuers' key published for a newer one.
func TestPublishCurrentNeverGoesBack(t *testing.T) {
	srv := vaulttest.StartDev(t)
	b := openBackend(t, srv, vault.Options{Prefix: "publish"})
	s := b.Keyset("default")
	older, newer := newKey(t), newKey(t)
	stateNaming := func(current *keys.Key) []byte {
		return []byte(`{"version":1,"keyset":"default","keys":[{"kid":"` + current.KID +
			`","state":"current"}]}`)
	}
	issued := func() string {
		t.Helper()
		secret, err := srv.Client().KVv2("secret").Get(t.Context(), "publish/default/current")
		if err != nil {
			t.Fatal(err)
		}
		return secret.Data["kid"].(string)
	}

	v, err := s.Save(t.Context(), stateNaming(older), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PublishCurrent(t.Context(), older); err != nil {
		t.Fatalf("publish the committed current key: %v", err)
	}
	if _, err := s.Save(t.Context(), stateNaming(newer), v); err != nil {
		t.Fatal(err)
	}
	if err := s.PublishCurrent(t.Context(), newer); err != nil {
		t.Fatalf("publish the newly committed current key: %v", err)
	}
	if err := s.PublishCurrent(t.Context(), older); err != nil {
		t.Fatalf("a stale publication: %v, want it skipped without error", err)
	}
	if got := issued(); got != newer.KID {
		t.Fatalf("issuers read key %s, want the newer %s", got, newer.KID)
	}
}

func newKey(t *testing.T) *keys.Key {
	t.Helper()
	k, err := keys.Generate("ES256", 0)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
