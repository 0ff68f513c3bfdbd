package notify

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/keyd-io/keyd/config"
	"github.com/keyd-io/keyd/rotation"
)

func TestPendingDeliveriesSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	secret, secretFile := writeSecret(t, dir)
	down := make([]int, 1000) // down until told otherwise
	for i := range down {
		down[i] = 503
	}
	recv := newReceiver(t, down...)
	cfg := newTestConfig(t, config.Notify{Webhooks: []config.Webhook{{
		URL: recv.URL, SecretFile: secretFile, Events: config.EventTypes, Retry: fastRetry,
	}}})

	first, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Publish("default", []rotation.Change{
		change(rotation.Activated, "k1", ""),
	}); err != nil {
		t.Fatal(err)
	}
	files := outboxFiles(t, cfg.Notify.Dir)
	if len(files) != 1 {
		t.Fatalf("outbox holds %v before any attempt, want one record", files)
	}
	first.Start()
	eventually(t, "a failed attempt", func() bool { return len(recv.seen()) > 0 })
	first.Stop()
	first.Close()
	if got := outboxFiles(t, cfg.Notify.Dir); len(got) != 1 || got[0] != files[0] {
		t.Fatalf("outbox after stop = %v, want %v", got, files)
	}
	recv.mu.Lock()
	recv.statuses = nil // the receiver recovers
	recv.mu.Unlock()

	second := startNotifier(t, cfg, nil)
	if err := second.Publish("default", []rotation.Change{
		change(rotation.RetiredChange, "k0", ""),
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "an empty outbox", func() bool {
		return len(outboxFiles(t, cfg.Notify.Dir)) == 0
	})

	seen := recv.seen()
	last := seen[len(seen)-1]
	if last.Event(t).Type != "key.retired" {
		t.Fatalf("last request is %s, want the event published after the restart",
			last.Event(t).Type)
	}
	for _, req := range seen[:len(seen)-1] {
		if req.ID() != seen[0].ID() {
			t.Errorf("the resumed event changed id: %s, then %s", seen[0].ID(), req.ID())
		}
		verifySignature(t, secret, req)
	}
}

func TestCorruptOutboxRecordIsSetAside(t *testing.T) {
	dir := t.TempDir()
	_, secretFile := writeSecret(t, dir)
	recv := newReceiver(t)
	cfg := newTestConfig(t, config.Notify{Webhooks: []config.Webhook{{
		URL: recv.URL, SecretFile: secretFile, Events: config.EventTypes, Retry: fastRetry,
	}}})

	first, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Publish("default", []rotation.Change{
		change(rotation.Published, "k1", ""), change(rotation.Published, "k2", ""),
	}); err != nil {
		t.Fatal(err)
	}
	first.Close()
	files := outboxFiles(t, cfg.Notify.Dir)
	if err := os.WriteFile(files[0], []byte("{half a rec"), 0o600); err != nil {
		t.Fatal(err)
	}
	leftover := filepath.Join(filepath.Dir(files[0]), ".1-evt.json.tmp-123")
	if err := os.WriteFile(leftover, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}

	logs, log := newLogBuffer()
	startNotifier(t, cfg, log)
	eventually(t, "the intact record", func() bool { return len(recv.seen()) == 1 })

	if got := recv.seen()[0].Event(t).KID; got != "k2" {
		t.Errorf("delivered kid %s, want k2", got)
	}
	if _, err := os.Stat(files[0] + corruptExt); err != nil {
		t.Errorf("corrupt record not set aside: %v", err)
	}
	if _, err := os.Stat(leftover); !os.IsNotExist(err) {
		t.Errorf("temporary leftover not removed: %v", err)
	}
	if !strings.Contains(logs.String(), "outbox record unreadable") {
		t.Errorf("corrupt record not logged:\n%s", logs.String())
	}
}

func TestOutboxIsExclusive(t *testing.T) {
	dir := t.TempDir()
	_, secretFile := writeSecret(t, dir)
	cfg := newTestConfig(t, config.Notify{Webhooks: []config.Webhook{{
		URL: "http://127.0.0.1:9/", SecretFile: secretFile, Events: config.EventTypes,
		Retry: fastRetry,
	}}})
	first, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if _, err := New(cfg, Options{}); err == nil || !strings.Contains(err.Error(), "notify.dir") {
		t.Errorf("second notifier on the same outbox: err = %v, want a lock error", err)
	}
}

func TestPublishReportsEventsItCannotQueue(t *testing.T) {
	dir := t.TempDir()
	_, secretFile := writeSecret(t, dir)
	cfg := newTestConfig(t, config.Notify{Webhooks: []config.Webhook{{
		URL: "http://127.0.0.1:9/", SecretFile: secretFile, Events: config.EventTypes,
		Retry: fastRetry,
	}}})
	n, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	// The destination's directory is replaced by a file: no record can be written there.
	dest := filepath.Join(cfg.Notify.Dir, n.workers[0].key)
	if err := os.Remove(dest); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dest, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	before := testutil.ToFloat64(deliveriesTotal.WithLabelValues(kindWebhook, resultNotQueued))

	err = n.Publish("default", []rotation.Change{change(rotation.Activated, "k1", "")})
	if err == nil || !strings.Contains(err.Error(), "queue key.activated of kid k1") {
		t.Errorf("Publish error = %v, want one naming the event", err)
	}
	if got := testutil.ToFloat64(deliveriesTotal.WithLabelValues(kindWebhook,
		resultNotQueued)); got != before+1 {
		t.Errorf("deliveries{result=not_queued} grew by %v, want 1", got-before)
	}
	if n.workers[0].head() != nil {
		t.Error("an event that is not on disk was queued in memory")
	}
}
