package main

import (
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/keyd-io/keyd/internal/keydtest"
	"github.com/keyd-io/keyd/internal/vaulttest"
)

// servedPoll is how often the benchmark looks at the replicas' ETags.
const servedPoll = 5 * time.Millisecond

// BenchmarkVaultReplicaLatency measures, for three keyd replicas on one Vault with
// refresh = "1s", how long a rotation signalled to one replica takes until that replica
// serves the new JWKS (commit-ms) and until all three do (all-ms). The second figure is
// bounded by refresh.
func BenchmarkVaultReplicaLatency(b *testing.B) {
	srv := vaulttest.StartDev(b)
	config := vaultConfig(b, srv, "")
	replicas := []*keydtest.Process{
		keydtest.Start(b, config, keydtest.Options{}),
		keydtest.Start(b, config, keydtest.Options{}),
		keydtest.Start(b, config, keydtest.Options{}),
	}
	var commit, all time.Duration
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		waitNextReady(b, replicas[0], srv)
		old := sameETag(b, replicas, "")
		b.StartTimer()

		start := time.Now()
		replicas[0].Signal(syscall.SIGUSR1)
		deadline := start.Add(keydtest.ReadyTimeout)
		var first time.Duration
		for {
			tags := make([]string, len(replicas))
			for i, p := range replicas {
				tags[i] = etag(p)
			}
			if first == 0 && tags[0] != old && tags[0] != "" {
				first = time.Since(start)
			}
			if tags[0] != old && tags[0] != "" && !slices.Contains(tags, old) &&
				slices.Equal(tags, slices.Repeat(tags[:1], len(tags))) {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("replicas did not converge within %s: %q", keydtest.ReadyTimeout, tags)
			}
			time.Sleep(servedPoll)
		}
		commit += first
		all += time.Since(start)
	}
	b.ReportMetric(float64(commit.Milliseconds())/float64(b.N), "commit-ms")
	b.ReportMetric(float64(all.Milliseconds())/float64(b.N), "all-ms")
}
