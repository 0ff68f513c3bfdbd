package notify

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/keyd-io/keyd/config"
	"github.com/keyd-io/keyd/rotation"
)

// BenchmarkPublish measures what a commit pays to queue one event for one destination:
// encoding it and writing its outbox record durably (temp file, fsync, rename, fsync dir).
func BenchmarkPublish(b *testing.B) {
	n := newNotifier("https://keys.example.test", Options{})
	n.add(kindWebhook, "bench", "bench", config.EventTypes, fastRetry, &scripted{})
	if err := n.open(b.TempDir()); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { n.Close() })
	changes := []rotation.Change{change(rotation.Activated, "k1", "k0")}
	b.ReportAllocs()
	for b.Loop() {
		if err := n.Publish("default", changes); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWebhookRoundTrip measures one event from Publish to a signed POST answered by a
// receiver on loopback, outbox record removed.
func BenchmarkWebhookRoundTrip(b *testing.B) {
	dir := b.TempDir()
	_, secretFile := writeSecret(b, dir)
	got := make(chan struct{}, 1)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
		got <- struct{}{}
	}))
	b.Cleanup(recv.Close)
	cfg, err := config.Default()
	if err != nil {
		b.Fatal(err)
	}
	cfg.Notify = config.Notify{Dir: filepath.Join(dir, "outbox"), Webhooks: []config.Webhook{{
		URL: recv.URL, SecretFile: secretFile, Events: config.EventTypes, Retry: fastRetry,
	}}}
	n, err := New(cfg, Options{})
	if err != nil {
		b.Fatal(err)
	}
	n.Start()
	b.Cleanup(func() {
		n.Stop()
		n.Close()
	})
	changes := []rotation.Change{change(rotation.Activated, "k1", "k0")}
	for b.Loop() {
		if err := n.Publish("default", changes); err != nil {
			b.Fatal(err)
		}
		<-got
	}
}
