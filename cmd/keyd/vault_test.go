package main

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/keyd-io/keyd/internal/keydtest"
	"github.com/keyd-io/keyd/internal/vaulttest"
	"github.com/keyd-io/keyd/rotation"
)

// vaultConfig is a keyd configuration on Vault with a one-second refresh and a
// one-second publish_lead, so that SIGUSR1 promotes at once after the first second.
func vaultConfig(t testing.TB, srv *vaulttest.Server, extra string) string {
	t.Helper()
	token := filepath.Join(t.TempDir(), "vault-token")
	if err := os.WriteFile(token, []byte(srv.RootToken), 0o600); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`
[server]
listen       = "{{listen}}"
admin_socket = %q
[log]
level = "debug"
[storage]
backend = "vault"
[storage.vault]
address    = %q
mount      = "secret"
prefix     = "keyd"
auth       = "token"
token_file = %q
refresh    = "1s"
%s
[[keyset]]
name         = "default"
algorithm    = "ES256"
schedule     = "@daily"
publish_lead = "1s"
token_ttl    = "10m"
grace        = "20m"
`, filepath.Join(t.TempDir(), "admin.sock"), srv.Addr, token, extra)
}

// storedState reads keyset default's committed state and its KV version from Vault.
func storedState(t testing.TB, srv *vaulttest.Server) (rotation.State, int) {
	t.Helper()
	secret, err := srv.Client().KVv2("secret").Get(vaulttest.Context(t), "keyd/default/state")
	if err != nil {
		t.Fatalf("read state from Vault: %v", err)
	}
	s, err := rotation.Decode([]byte(secret.Data["state"].(string)), "default")
	if err != nil {
		t.Fatalf("decode state: %v", err)
	}
	return s, secret.VersionMetadata.Version
}

// storedKIDs lists the private keys stored in Vault for keyset default.
func storedKIDs(t testing.TB, srv *vaulttest.Server) []string {
	t.Helper()
	list, err := srv.Client().Logical().List("secret/metadata/keyd/default/keys")
	if err != nil {
		t.Fatalf("list private keys: %v", err)
	}
	var out []string
	if list != nil {
		for _, k := range list.Data["keys"].([]any) {
			out = append(out, k.(string))
		}
	}
	slices.Sort(out)
	return out
}

// issuedKID reads the kid issuers find in the current secret.
func issuedKID(t testing.TB, srv *vaulttest.Server) string {
	t.Helper()
	secret, err := srv.Client().KVv2("secret").Get(vaulttest.Context(t), "keyd/default/current")
	if err != nil {
		t.Fatalf("read current key from Vault: %v", err)
	}
	kid, _ := secret.Data["kid"].(string)
	return kid
}

func kidsIn(s rotation.State) []string {
	var out []string
	for _, k := range s.Keys {
		out = append(out, k.KID)
	}
	slices.Sort(out)
	return out
}

// etag returns the ETag p serves for the default JWKS, or "" when it does not answer 200.
func etag(p *keydtest.Process) string {
	resp, err := http.Get(p.URL("/.well-known/jwks.json"))
	if err != nil {
		return ""
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ""
	}
	return resp.Header.Get("ETag")
}

// readyStatus returns /readyz's status code and body.
func readyStatus(p *keydtest.Process) (int, string) {
	resp, err := http.Get(p.URL("/readyz"))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var body strings.Builder
	buf := make([]byte, 4096)
	n, _ := resp.Body.Read(buf)
	body.Write(buf[:n])
	return resp.StatusCode, body.String()
}

// waitNextReady polls until the next key has been published for publish_lead (1s), so
// that SIGUSR1 promotes it at once instead of deferring.
func waitNextReady(t testing.TB, p *keydtest.Process, srv *vaulttest.Server) {
	t.Helper()
	p.WaitFor("the next key to be older than publish_lead", func() bool {
		s, _ := storedState(t, srv)
		next := s.InPhase(rotation.Next)
		return next != nil && time.Since(next.PublishedAt) > 1500*time.Millisecond
	})
}

// promoted checks that after is before with exactly one rotation: the old next key
// signs, the old current key is retired, and exactly one new key was created.
func promoted(t *testing.T, before, after rotation.State) {
	t.Helper()
	if got, want := after.InPhase(rotation.Current).KID, before.InPhase(rotation.Next).KID; got != want {
		t.Errorf("current key is %s, want the old next key %s", got, want)
	}
	old := after.Find(before.InPhase(rotation.Current).KID)
	if old == nil || old.Phase != rotation.Retired {
		t.Errorf("old current key %s is %v, want retired", before.InPhase(rotation.Current).KID, old)
	}
	var fresh []string
	for _, k := range after.Keys {
		if before.Find(k.KID) == nil {
			fresh = append(fresh, k.KID)
		}
	}
	if len(fresh) != 1 || len(after.Keys) != len(before.Keys)+1 {
		t.Errorf("rotation created keys %v (state holds %d keys, had %d), want exactly one",
			fresh, len(after.Keys), len(before.Keys))
	}
	if !after.RequestedAt.IsZero() {
		t.Errorf("a second rotation waits (requested at %s), want none", after.RequestedAt)
	}
}

// TestVaultReplicas runs three keyd processes on one Vault and rotates all of them at
// once: exactly one rotation happens, and every replica serves the same JWKS.
func TestVaultReplicas(t *testing.T) {
	srv := vaulttest.StartDev(t)
	config := vaultConfig(t, srv, "")
	first := keydtest.Start(t, config, keydtest.Options{})
	replicas := []*keydtest.Process{
		first,
		keydtest.Start(t, config, keydtest.Options{}),
		keydtest.Start(t, config, keydtest.Options{}),
	}
	before, _ := storedState(t, srv)
	sameETag(t, replicas, "")
	if len(before.Keys) != 2 {
		t.Fatalf("after three starts the state holds %d keys, want 2 (one bootstrap)",
			len(before.Keys))
	}
	waitNextReady(t, first, srv)
	oldETag := etag(first)

	for _, p := range replicas {
		p.Signal(syscall.SIGUSR1)
	}
	sameETag(t, replicas, oldETag)

	after, _ := storedState(t, srv)
	promoted(t, before, after)
	first.WaitFor("the loser's private keys to be deleted", func() bool {
		return slices.Equal(storedKIDs(t, srv), kidsIn(after))
	})
	first.WaitFor("issuers' current key to be the promoted one", func() bool {
		return issuedKID(t, srv) == after.InPhase(rotation.Current).KID
	})
	for _, p := range replicas {
		if strings.Contains(p.Log(), srv.RootToken) {
			t.Fatal("a replica logged the Vault token")
		}
	}
}

// sameETag polls until every replica serves one ETag other than old.
func sameETag(t testing.TB, replicas []*keydtest.Process, old string) string {
	t.Helper()
	var tags []string
	defer func() {
		if t.Failed() {
			t.Logf("ETags served: %q", tags)
		}
	}()
	replicas[0].WaitFor("every replica to serve the same new JWKS", func() bool {
		tags = tags[:0]
		for _, p := range replicas {
			tags = append(tags, etag(p))
		}
		return tags[0] != "" && tags[0] != old &&
			slices.Equal(tags, slices.Repeat(tags[:1], len(tags)))
	})
	return tags[0]
}

// TestVaultOutage stops and seals Vault under a running keyd: the JWKS stays served,
// /readyz reports the storage failure, a rotation asked for meanwhile changes nothing
// served, and runs exactly once when Vault is back.
func TestVaultOutage(t *testing.T) {
	srv := vaulttest.StartFile(t)
	p := keydtest.Start(t, vaultConfig(t, srv, ""), keydtest.Options{})

	tests := []struct {
		name    string
		down    func()
		up      func()
		problem string
	}{
		{name: "stopped", down: srv.Stop, up: srv.Restart, problem: "connection refused"},
		{name: "sealed", down: srv.Seal, up: srv.Unseal, problem: "sealed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			waitNextReady(t, p, srv)
			before, _ := storedState(t, srv)
			_, servedBefore := p.Get("/.well-known/jwks.json")
			tag := etag(p)

			tc.down()
			p.WaitFor("/readyz to report the storage failure", func() bool {
				code, body := readyStatus(p)
				return code == http.StatusServiceUnavailable && strings.Contains(body, tc.problem)
			})
			signalled := strings.Count(p.Log(), "SIGUSR1")
			p.Signal(syscall.SIGUSR1)
			p.WaitFor("keyd to take the signal", func() bool {
				return strings.Count(p.Log(), "SIGUSR1") > signalled
			})
			resp, served := p.Get("/.well-known/jwks.json")
			if resp.StatusCode != http.StatusOK || string(served) != string(servedBefore) ||
				resp.Header.Get("ETag") != tag {
				t.Fatalf("while Vault is %s the JWKS changed or is not served: %d %s",
					tc.name, resp.StatusCode, served)
			}

			tc.up()
			p.WaitFor("the rotation to run once Vault is back", func() bool {
				return etag(p) != tag
			})
			p.WaitReady()
			after, _ := storedState(t, srv)
			promoted(t, before, after)
		})
	}
}

// TestVaultKV1Refused checks that keyd refuses to start on a KV version 1 mount and says
// which setting to fix.
func TestVaultKV1Refused(t *testing.T) {
	srv := vaulttest.StartDev(t)
	if err := srv.Client().Sys().Mount("kv1", &api.MountInput{
		Type: "kv", Options: map[string]string{"version": "1"},
	}); err != nil {
		t.Fatal(err)
	}
	config := strings.Replace(vaultConfig(t, srv, ""), `mount      = "secret"`,
		`mount      = "kv1"`, 1)
	p := keydtest.Start(t, config, keydtest.Options{NoWait: true})
	if code := p.Wait(); code == 0 {
		t.Fatal("keyd started on a KV version 1 mount")
	}
	if want := `storage.vault.mount: "kv1" is a kv secrets engine (version 1)`; !strings.Contains(
		p.Log(), want) {
		t.Fatalf("keyd's output does not say %q:\n%s", want, p.Log())
	}
	if strings.Contains(p.Log(), srv.RootToken) {
		t.Fatal("keyd's output shows the Vault token")
	}
}
