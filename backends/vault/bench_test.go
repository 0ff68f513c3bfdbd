package vault_test

import (
	"context"
	"testing"
	"time"

	"github.com/keyd-io/keyd/backends/vault"
	"github.com/keyd-io/keyd/internal/vaulttest"
	"github.com/keyd-io/keyd/rotation"
)

// BenchmarkRotationVault measures one immediate rotation on a local Vault dev server: a
// new ES256 key stored, the state committed with check-and-set, the issuers' current
// secret replaced, and the key retired one rotation earlier destroyed.
func BenchmarkRotationVault(b *testing.B) {
	srv := vaulttest.StartDev(b)
	backend, err := vault.Open(vaulttest.Context(b), vault.Options{
		Address: srv.Addr, Mount: "secret", Prefix: "bench", Auth: "token",
		TokenFile: writeFile(b, "token", srv.RootToken), Keysets: []string{"bench"},
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { backend.Close() })
	pol := rotation.Policy{Algorithm: "ES256", PublishLead: time.Hour, Grace: time.Nanosecond,
		Schedule: everyYear{}}
	ks := rotation.NewKeyset("bench", pol, backend.Keyset("bench"), rotation.Options{})
	ctx := context.Background()
	if err := ks.Start(ctx); err != nil {
		b.Fatal(err)
	}
	req := rotation.Request{Rotate: true, Immediate: true}
	for b.Loop() {
		if err := ks.Step(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// everyYear keeps the schedule out of the way: the benchmark asks for every rotation.
type everyYear struct{}

func (everyYear) Next(t time.Time) time.Time { return t.AddDate(1, 0, 0) }
