package rotation_test

import (
	"context"
	"testing"
	"time"

	"github.com/keyd-io/keyd/backends/disk"
	"github.com/keyd-io/keyd/rotation"
)

// BenchmarkRotationDisk measures one immediate rotation on local disk: a new key pair
// generated, its private key written and synced, the state committed, current.jwk and
// current.pem replaced, and the key retired one rotation earlier removed.
func BenchmarkRotationDisk(b *testing.B) {
	for _, alg := range []string{"ES256", "EdDSA", "RS256"} {
		b.Run(alg, func(b *testing.B) {
			store, err := disk.Open(b.TempDir(), disk.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer store.Close()
			pol := rotation.Policy{Algorithm: alg, RSABits: 2048, PublishLead: time.Hour,
				Grace: time.Nanosecond, Schedule: everyYear{}}
			ks := rotation.NewKeyset("bench", pol, store.Keyset("bench"), rotation.Options{})
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
		})
	}
}

// everyYear keeps the schedule out of the way: the benchmark asks for every rotation.
type everyYear struct{}

func (everyYear) Next(t time.Time) time.Time { return t.AddDate(1, 0, 0) }
