package notify

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyd-io/keyd/internal/keydtest"
	"github.com/keyd-io/keyd/internal/vaulttest"
)

// TestReplicasSendEachEventOnce runs three keyd replicas on one Vault, each with its own
// outbox and the same webhook: every change is announced once, by the replica that
// committed it, however many replicas see it.
func TestReplicasSendEachEventOnce(t *testing.T) {
	srv := vaulttest.StartDev(t)
	dir := t.TempDir()
	secret, secretFile := writeSecret(t, dir)
	token := filepath.Join(dir, "vault-token")
	if err := os.WriteFile(token, []byte(srv.RootToken), 0o600); err != nil {
		t.Fatal(err)
	}
	recv := newReceiver(t)

	var replicas []*keydtest.Process
	var outboxes []string
	for i := range 3 {
		outbox := filepath.Join(dir, fmt.Sprintf("outbox-%d", i))
		outboxes = append(outboxes, outbox)
		replicas = append(replicas, keydtest.Start(t, fmt.Sprintf(`
[server]
listen       = "{{listen}}"
admin_socket = %q
[storage]
backend = "vault"
[storage.vault]
address    = %q
token_file = %q
refresh    = "1s"
[[keyset]]
name         = "default"
schedule     = "@daily"
publish_lead = "1s"
token_ttl    = "10m"
grace        = "20m"
[notify]
dir           = %q
jwks_base_url = "https://keys.example.test"
[[notify.webhook]]
url             = %q
secret_file     = %q
backoff_initial = "10ms"
backoff_max     = "100ms"
`, filepath.Join(dir, fmt.Sprintf("admin-%d.sock", i)), srv.Addr, token, outbox,
			recv.URL, secretFile), keydtest.Options{}))
	}
	first := replicas[0]
	first.WaitFor("the bootstrap events", func() bool { return len(recv.seen()) >= 3 })
	// SIGUSR1 promotes at once only once the next key is older than publish_lead (1s);
	// occurred_at counts whole seconds.
	published := recv.seen()[0].Event(t).OccurredAt
	first.WaitFor("the next key to be older than publish_lead", func() bool {
		return time.Since(published) > 2*time.Second
	})

	for _, p := range replicas {
		p.Signal(syscall.SIGUSR1)
	}
	first.WaitFor("the rotation's events", func() bool { return len(recv.seen()) >= 6 })
	for _, p := range replicas {
		if code := p.Stop(); code != 0 {
			t.Fatalf("replica exited %d", code)
		}
	}

	var got []string
	ids := map[string]bool{}
	for _, req := range recv.seen() {
		verifySignature(t, secret, req)
		ev := req.Event(t)
		got = append(got, ev.Type)
		if ids[ev.ID] {
			t.Errorf("event %s (%s %s) sent twice", ev.ID, ev.Type, ev.KID)
		}
		ids[ev.ID] = true
	}
	sort.Strings(got)
	want := []string{"key.activated", "key.activated", "key.published", "key.published",
		"key.published", "key.retired"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("events %v, want %v: one bootstrap and one rotation, each sent once", got,
			want)
	}
	for _, outbox := range outboxes {
		if files := outboxFiles(t, outbox); len(files) != 0 {
			t.Errorf("outbox %s still holds %v", outbox, files)
		}
	}
}
