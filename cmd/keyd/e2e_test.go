package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/keyd-io/keyd/internal/keydtest"
)

// pyjwt runs one job through interop/python/pyjwt_tool.py (PyJWT, with Debian's
// python3) and returns its answer.
func pyjwt(t *testing.T, action string, job map[string]any) map[string]any {
	t.Helper()
	line, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/usr/bin/python3", "../../interop/python/pyjwt_tool.py", action)
	cmd.Stdin = bytes.NewReader(append(line, '\n'))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pyjwt %s: %v\n%s", action, err, out)
	}
	var answer map[string]any
	if err := json.Unmarshal(out, &answer); err != nil {
		t.Fatalf("pyjwt %s: %v\n%s", action, err, out)
	}
	return answer
}

type jwkSet struct {
	Keys []struct {
		KID string `json:"kid"`
		Alg string `json:"alg"`
		D   string `json:"d"`
	} `json:"keys"`
}

func kidsOf(t *testing.T, body []byte) []string {
	t.Helper()
	var set jwkSet
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatalf("JWKS: %v\n%s", err, body)
	}
	var kids []string
	for _, k := range set.Keys {
		if k.D != "" {
			t.Fatal("JWKS holds a private member")
		}
		kids = append(kids, k.KID)
	}
	return kids
}

// currentKey reads the kid and alg issuers find in current.jwk.
func currentKey(t *testing.T, dir string) (kid, alg string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "current.jwk"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct{ KID, Alg string }
	if err := json.Unmarshal(data, &k); err != nil {
		t.Fatal(err)
	}
	return k.KID, k.Alg
}

func TestEndToEnd(t *testing.T) {
	data := t.TempDir()
	// publish_lead of 1s: SIGUSR1 right after the first start is deferred until the next
	// key has been published for a second, then runs by itself.
	config := `
[server]
listen = "{{listen}}"
[log]
level = "debug"
[storage.disk]
dir = "` + data + `"
[[keyset]]
name = "default"
algorithm = "ES256"
schedule = "@daily"
publish_lead = "1s"
token_ttl = "10m"
grace = "15m"
`
	keyd := keydtest.Start(t, config, keydtest.Options{})
	resp, body := keyd.Get("/.well-known/jwks.json")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("JWKS: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=1" {
		t.Fatalf("Cache-Control %q, want max-age capped at publish_lead (1s)", cc)
	}
	kids := kidsOf(t, body)
	firstETag := resp.Header.Get("ETag")
	kid, alg := currentKey(t, filepath.Join(data, "default"))
	if len(kids) != 2 || kids[0] != kid {
		t.Fatalf("JWKS kids %v, want current %s first and a next key", kids, kid)
	}

	// An issuer signs with current.pem; an independent library verifies with the JWKS.
	token := pyjwt(t, "sign", map[string]any{"id": "e2e", "sub": "e2e", "ttl": 600,
		"pem": filepath.Join(data, "default", "current.pem"), "kid": kid, "alg": alg})["token"]
	verify := func(what string) {
		t.Helper()
		got := pyjwt(t, "verify", map[string]any{"id": "e2e", "token": token,
			"jwks": keyd.URL("/.well-known/jwks.json")})
		if got["sub"] != "e2e" {
			t.Fatalf("%s: PyJWT answered %v", what, got)
		}
	}
	verify("before rotation")

	keyd.Signal(syscall.SIGUSR1)
	// The JWKS lists the new current key first as soon as the state is committed; issuers
	// find it in current.jwk right after (it was already published as next).
	keyd.WaitFor("the next key to become current", func() bool {
		_, body := keyd.Get("/.well-known/jwks.json")
		newKID, _ := currentKey(t, filepath.Join(data, "default"))
		return kidsOf(t, body)[0] == kids[1] && newKID == kids[1]
	})
	resp, body = keyd.Get("/.well-known/jwks.json")
	rotated := kidsOf(t, body)
	if len(rotated) != 3 || rotated[2] != kids[0] {
		t.Fatalf("after rotation %v, want [old next, new next, old current]", rotated)
	}
	verify("after rotation, with the retired key still published")

	etag := resp.Header.Get("ETag")
	if etag == firstETag {
		t.Fatal("ETag did not change with the keys")
	}
	if resp, _ := keyd.Get("/.well-known/jwks.json", "If-None-Match", firstETag); resp.StatusCode != 200 {
		t.Fatalf("stale If-None-Match: %d, want 200", resp.StatusCode)
	}
	if resp, _ := keyd.Get("/.well-known/jwks.json", "If-None-Match", etag); resp.StatusCode != 304 {
		t.Fatalf("current If-None-Match: %d, want 304", resp.StatusCode)
	}

	if code := keyd.Stop(); code != 0 {
		t.Fatalf("SIGTERM: exit %d, want 0", code)
	}
	again := keydtest.StartFile(t, keyd.Config, keyd.Addr, keydtest.Options{})
	if _, body := again.Get("/.well-known/jwks.json"); !equal(kidsOf(t, body), rotated) {
		t.Fatalf("after restart %v, want the same kids %v", kidsOf(t, body), rotated)
	}
	if code := again.Stop(); code != 0 {
		t.Fatalf("SIGTERM: exit %d, want 0", code)
	}
}

func TestSecondKeydOnTheSameDirExits(t *testing.T) {
	data := t.TempDir()
	config := "[server]\nlisten = \"{{listen}}\"\n[storage.disk]\ndir = \"" + data + "\"\n"
	keydtest.Start(t, config, keydtest.Options{})
	second := keydtest.Start(t, config, keydtest.Options{NoWait: true})
	if code := second.Wait(); code == 0 {
		t.Fatal("a second keyd on the same dir kept running")
	}
	if !strings.Contains(second.Log(), "in use by another keyd") {
		t.Fatalf("no clear error:\n%s", second.Log())
	}
}

func TestBadConfigStopsStartup(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keyd.toml")
	if err := os.WriteFile(path, []byte("[[keyset]]\nname = \"a\"\ngrace = \"1m\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := keydtest.Run(t, "run", "--config", path)
	if code == 0 || !strings.Contains(out, path) || !strings.Contains(out, "grace") {
		t.Fatalf("exit %d, output %q: want a failure naming the file and the key", code, out)
	}
}

func equal(a, b []string) bool {
	return strings.Join(a, ",") == strings.Join(b, ",")
}
