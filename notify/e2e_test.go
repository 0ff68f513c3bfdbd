package notify

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyd-io/keyd/config"
	"github.com/keyd-io/keyd/internal/keydtest"
	"github.com/keyd-io/keyd/rotation"
)

// TestDeliveryOutlivesKeyd runs the built keyd against a receiver that is down while keyd
// is killed and stopped, then comes up: the event is delivered exactly once, with the id
// it had from the start, and nothing delivered is ever sent again.
func TestDeliveryOutlivesKeyd(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	secret, secretFile := writeSecret(t, dir)
	receiverAddr := keydtest.FreeAddr(t) // nothing listens there yet
	config := `
[server]
listen = "{{listen}}"
admin_socket = "` + filepath.Join(dir, "admin.sock") + `"
[log]
level = "debug"
[storage.disk]
dir = "` + data + `"
[[keyset]]
name = "default"
schedule = "@every 1h"
publish_lead = "1s"
token_ttl = "1s"
grace = "1s"
[[notify.webhook]]
url = "http://` + receiverAddr + `/hooks/keyd"
secret_file = "` + secretFile + `"
events = ["key.activated"]
backoff_initial = "10ms"
backoff_max = "100ms"
`
	outbox := filepath.Join(data, ".outbox")

	// First run: the bootstrap activation is queued and fails; keyd is killed with -9.
	first := keydtest.Start(t, config, keydtest.Options{})
	first.WaitFor("a failed attempt", func() bool {
		return strings.Contains(first.Log(), "delivery failed; will retry")
	})
	first.Kill()
	files := outboxFiles(t, outbox)
	if len(files) != 1 {
		t.Fatalf("outbox after kill -9 = %v, want one record", files)
	}
	queued := readRecord(t, files[0])

	// Second run: still down; keyd resumes the delivery and stops cleanly on SIGTERM.
	second := keydtest.StartFile(t, first.Config, first.Addr, keydtest.Options{})
	second.WaitFor("the resumed delivery to fail", func() bool {
		return strings.Contains(second.Log(), "resuming pending deliveries") &&
			strings.Contains(second.Log(), "delivery failed; will retry")
	})
	// `keyd status` shows the delivery waiting, and for which receiver.
	out, code := keydtest.Run(t, "status", "--config", second.Config)
	if code != 0 || !strings.Contains(out, "pending deliveries: 1 for webhook http://"+
		receiverAddr+"/hooks/keyd") {
		t.Fatalf("keyd status (exit %d) does not show the pending delivery:\n%s", code, out)
	}
	if code := second.Stop(); code != 0 {
		t.Fatalf("keyd exited %d on SIGTERM", code)
	}
	if got := outboxFiles(t, outbox); len(got) != 1 || got[0] != files[0] {
		t.Fatalf("outbox after SIGTERM = %v, want %v", got, files)
	}

	// The receiver comes up, then keyd.
	recv := &receiver{headers: http.Header{}}
	recv.Server = httptest.NewUnstartedServer(http.HandlerFunc(recv.serve))
	ln, err := net.Listen("tcp", receiverAddr)
	if err != nil {
		t.Fatalf("listen on the receiver's address: %v", err)
	}
	recv.Listener = ln
	recv.Start()
	t.Cleanup(recv.Close)

	third := keydtest.StartFile(t, first.Config, first.Addr, keydtest.Options{})
	third.WaitFor("the delivery", func() bool { return len(outboxFiles(t, outbox)) == 0 })
	seen := recv.seen()
	if len(seen) != 1 {
		t.Fatalf("receiver got %d requests, want exactly 1", len(seen))
	}
	if seen[0].ID() != queued.ID {
		t.Errorf("webhook-id = %q, want the original %q", seen[0].ID(), queued.ID)
	}
	verifySignature(t, secret, seen[0])
	activated := seen[0].Event(t)
	if activated.Type != "key.activated" || activated.Keyset != "default" ||
		activated.Alg != "ES256" || activated.KID == "" {
		t.Errorf("event = %+v", activated)
	}
	if want := "http://" + first.Addr + "/keysets/default/jwks.json"; activated.JWKSURI != want {
		t.Errorf("jwks_uri = %q, want %q", activated.JWKSURI, want)
	}
	if code := third.Stop(); code != 0 {
		t.Fatalf("keyd exited %d on SIGTERM", code)
	}

	// A fourth run rotates. Events to one receiver go out in order, so once the new
	// activation arrives, any repeat of the old one would have arrived before it.
	fourth := keydtest.StartFile(t, first.Config, first.Addr, keydtest.Options{})
	fourth.Signal(syscall.SIGUSR1)
	fourth.WaitFor("the rotation's activation", func() bool { return len(recv.seen()) >= 2 })
	fourth.WaitFor("an empty outbox", func() bool { return len(outboxFiles(t, outbox)) == 0 })
	seen = recv.seen()
	if len(seen) != 2 {
		t.Fatalf("receiver got %d requests, want 2 (the first event was sent again?)",
			len(seen))
	}
	rotated := seen[1].Event(t)
	if rotated.ID == activated.ID || rotated.PreviousKID != activated.KID ||
		rotated.KID == activated.KID {
		t.Errorf("rotation event = %+v after %+v", rotated, activated)
	}
	verifySignature(t, secret, seen[1])
	_, metrics := fourth.Get("/metrics")
	for _, want := range []string{
		`keyd_notify_deliveries_total{kind="webhook",result="delivered"} 1`,
		`keyd_notify_pending{kind="webhook"} 0`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics does not show %s", want)
		}
	}
	if strings.Contains(fourth.Log(), strings.TrimPrefix(secret, secretPrefix)) {
		t.Error("keyd's log holds the webhook secret")
	}
	if code := fourth.Stop(); code != 0 {
		t.Fatalf("keyd exited %d on SIGTERM", code)
	}
}

func readRecord(t *testing.T, path string) record {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rec record
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatalf("outbox record %s: %v", path, err)
	}
	return rec
}

// TestKeydSendsEventsOfCommitBeforeCrash leaves on disk what a keyd killed between a
// rotation's state write and the confirmation of its events leaves: the rotation is made
// in this test by the same runner and outbox keyd uses, with nothing to confirm it. The
// real keyd started next finds the write in the state and sends its activation, once,
// under the id it was prepared with.
func TestKeydSendsEventsOfCommitBeforeCrash(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	secret, secretFile := writeSecret(t, dir)
	recv := newReceiver(t)
	outbox := filepath.Join(data, ".outbox")
	first := keydtest.Start(t, `
[server]
listen = "{{listen}}"
admin_socket = "`+filepath.Join(dir, "admin.sock")+`"
[storage.disk]
dir = "`+data+`"
[[keyset]]
name = "default"
schedule = "@every 1h"
publish_lead = "1s"
token_ttl = "1s"
grace = "1s"
[[notify.webhook]]
url = "`+recv.URL+`"
secret_file = "`+secretFile+`"
events = ["key.activated"]
backoff_initial = "10ms"
backoff_max = "100ms"
`, keydtest.Options{})
	first.WaitFor("the first activation", func() bool {
		return len(recv.seen()) == 1 && len(outboxFiles(t, outbox)) == 0
	})
	if code := first.Stop(); code != 0 {
		t.Fatalf("keyd exited %d on SIGTERM", code)
	}
	bootstrap := recv.seen()[0].Event(t)

	// The crash: a rotation committed, its activation prepared and never confirmed.
	rotated, prepared := rotateWithoutConfirm(t, first.Config)

	second := keydtest.StartFile(t, first.Config, first.Addr, keydtest.Options{})
	second.WaitFor("the prepared activation", func() bool {
		return len(recv.seen()) == 2 && len(outboxFiles(t, outbox)) == 0 &&
			len(preparedFiles(t, outbox)) == 0
	})
	if !strings.Contains(second.Log(), "sending events of a state write that landed") {
		t.Error("keyd did not log that it sends events of a write made before a crash")
	}
	sent := recv.seen()[1]
	verifySignature(t, secret, sent)
	activated := sent.Event(t)
	if sent.ID() != prepared.ID || activated.KID != rotated.InPhase(rotation.Current).KID ||
		activated.PreviousKID != bootstrap.KID {
		t.Errorf("sent %s %+v; want the prepared %s activating %s after %s", sent.ID(),
			activated, prepared.ID, rotated.InPhase(rotation.Current).KID, bootstrap.KID)
	}

	// One more rotation: events to one receiver go out in order, so a repeat of the
	// recovered activation would arrive before this one.
	published := rotated.InPhase(rotation.Next).PublishedAt
	second.WaitFor("the next key to be older than publish_lead", func() bool {
		return time.Since(published) > 1500*time.Millisecond
	})
	second.Signal(syscall.SIGUSR1)
	second.WaitFor("the next activation", func() bool { return len(recv.seen()) >= 3 })
	if code := second.Stop(); code != 0 {
		t.Fatalf("keyd exited %d on SIGTERM", code)
	}
	ids := map[string]bool{}
	for _, req := range recv.seen() {
		if ids[req.ID()] {
			t.Errorf("event %s sent twice", req.ID())
		}
		ids[req.ID()] = true
	}
	if n := len(recv.seen()); n != 3 {
		t.Errorf("receiver got %d requests, want 3 activations", n)
	}
}

// rotateWithoutConfirm rotates the keyset "default" of the keyd configured in path with
// the storage and outbox that keyd uses, preparing the events as keyd does but, as if it
// crashed right after the state write, never confirming them. It returns the state
// written and the prepared activation.
func rotateWithoutConfirm(t *testing.T, path string) (rotation.State, record) {
	t.Helper()
	ctx := context.Background()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	b := openDisk(t, cfg.Storage.Disk.Dir)
	defer b.Close()
	ks := cfg.Keysets[0]
	keyset := rotation.NewKeyset(ks.Name, rotation.Policy{
		Algorithm: ks.Algorithm, Schedule: ks.Cron, PublishLead: ks.PublishLead.D(),
		Grace: ks.Grace.D(),
	}, b.Keyset(ks.Name), rotation.Options{
		Prepare: func(commit string, changes []rotation.Change) error {
			return n.Prepare(ks.Name, commit, changes)
		},
	})
	if err := keyset.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := keyset.Step(ctx, rotation.Request{Rotate: true, Immediate: true}); err != nil {
		t.Fatal(err)
	}
	s, _ := keyset.State()
	files := preparedFiles(t, cfg.Notify.Dir)
	if len(files) != 1 {
		t.Fatalf("prepared records %v, want the one activation", files)
	}
	rec := readRecord(t, files[0])
	if !s.Committed(rec.Commit) {
		t.Fatalf("the state's commits %v do not list the prepared %s", s.Commits, rec.Commit)
	}
	return s, rec
}
