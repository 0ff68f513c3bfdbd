package main_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/keyd-io/keyd/admin"
	"github.com/keyd-io/keyd/internal/keydtest"
)

const twoKeysets = `
[[keyset]]
name = "default"
[[keyset]]
name = "api"
algorithm = "EdDSA"
publish_lead = "1h"
`

// status runs `keyd status --json`.
func status(t *testing.T, p *keydtest.Process) admin.Status {
	t.Helper()
	out, code := run(t, p, "status", "--json")
	if code != 0 {
		t.Fatalf("keyd status: exit %d\n%s", code, out)
	}
	var st admin.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("keyd status --json: %v\n%s", err, out)
	}
	return st
}

func keysetStatus(t *testing.T, st admin.Status, name string) admin.KeysetStatus {
	t.Helper()
	for _, ks := range st.Keysets {
		if ks.Name == name {
			return ks
		}
	}
	t.Fatalf("no keyset %q in status", name)
	return admin.KeysetStatus{}
}

func currentKID(ks admin.KeysetStatus) string {
	for _, k := range ks.Keys {
		if k.State == "current" {
			return k.KID
		}
	}
	return ""
}

// jwksKIDs returns the kids a keyset's JWKS lists, in order.
func jwksKIDs(t *testing.T, p *keydtest.Process, keyset string) []string {
	t.Helper()
	resp, body := p.Get("/keysets/" + keyset + "/jwks.json")
	if resp.StatusCode != 200 {
		t.Fatalf("JWKS of %s: %d", keyset, resp.StatusCode)
	}
	var set struct {
		Keys []struct {
			KID string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KID)
	}
	return kids
}

func TestAdminCommands(t *testing.T) {
	s := newSetup(t, twoKeysets)
	p := keydtest.Start(t, s.config(), keydtest.Options{})

	st := status(t, p)
	api := keysetStatus(t, st, "api")
	first := currentKID(api)
	if len(api.Keys) != 2 || first == "" || api.NextRotation.IsZero() || api.Algorithm != "EdDSA" {
		t.Fatalf("api status = %+v", api)
	}
	if info, err := os.Stat(s.socket); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("admin socket: %v mode %v, want 0600", err, info.Mode().Perm())
	}

	t.Run("status as text", func(t *testing.T) {
		out, code := run(t, p, "status")
		if code != 0 || !strings.Contains(out, "keyset api: EdDSA") ||
			!strings.Contains(out, first) || !strings.Contains(out, "next rotation:") {
			t.Errorf("keyd status: exit %d\n%s", code, out)
		}
	})

	t.Run("rotate waits for publish_lead", func(t *testing.T) {
		out, code := run(t, p, "rotate", "--keyset", "api")
		if code != 0 || !strings.Contains(out, "api: deferred until") {
			t.Fatalf("keyd rotate: exit %d\n%s", code, out)
		}
		if got := currentKID(keysetStatus(t, status(t, p), "api")); got != first {
			t.Errorf("current changed to %s on a deferred rotation", got)
		}
	})

	var second string
	t.Run("rotate --immediate", func(t *testing.T) {
		out, code := run(t, p, "rotate", "--keyset", "api", "--immediate")
		if code != 0 || !strings.Contains(out, "api: rotated") {
			t.Fatalf("keyd rotate --immediate: exit %d\n%s", code, out)
		}
		api := keysetStatus(t, status(t, p), "api")
		second = currentKID(api)
		if second == first || len(api.Keys) != 3 {
			t.Fatalf("after rotation: current %s (was %s), %d keys", second, first, len(api.Keys))
		}
		if kids := jwksKIDs(t, p, "api"); kids[0] != second {
			t.Errorf("JWKS starts with %s, want the new current %s", kids[0], second)
		}
	})

	t.Run("revoke asks on a terminal", func(t *testing.T) {
		script, err := exec.LookPath("script")
		if err != nil {
			t.Fatal("script(1) is not installed (.ci/run installs Debian's bsdutils)")
		}
		// script gives keyd a terminal; the answer "n" comes through it.
		cmd := exec.Command(script, "-qec", keydtest.Binary(t)+" revoke --keyset api "+second+
			" --config "+p.Config, "/dev/null")
		cmd.Stdin = strings.NewReader("n\n")
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "[y/N]") ||
			!strings.Contains(string(out), "revocation cancelled") {
			t.Errorf("revoke on a terminal answered n: %v\n%s", err, out)
		}
		if kids := jwksKIDs(t, p, "api"); kids[0] != second {
			t.Errorf("a cancelled revocation changed the JWKS: %v", kids)
		}
	})

	t.Run("revoke the current key", func(t *testing.T) {
		out, code := run(t, p, "revoke", "--keyset", "api", second)
		if code != 0 || !strings.Contains(out, "api: revoked") {
			t.Fatalf("keyd revoke: exit %d\n%s", code, out)
		}
		for _, kid := range jwksKIDs(t, p, "api") {
			if kid == second {
				t.Fatalf("revoked key %s still in the JWKS", second)
			}
		}
		if _, err := os.Stat(filepath.Join(s.data, "api", "keys", second+".jwk")); !os.IsNotExist(err) {
			t.Errorf("private key of the revoked key is still stored: %v", err)
		}
		api := keysetStatus(t, status(t, p), "api")
		if cur := currentKID(api); cur == "" || cur == second {
			t.Errorf("current after revocation = %q", cur)
		}
	})

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{name: "revoke an unknown kid", args: []string{"revoke", "--keyset", "api", "nope"},
			want: `holds no key nope`},
		{name: "revoke without keyset", args: []string{"revoke", "x"}, want: "--keyset is required"},
		{name: "rotate an unknown keyset", args: []string{"rotate", "--keyset", "web"},
			want: `no keyset "web"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := run(t, p, tc.args...)
			if code == 0 || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, output %q, want a failure mentioning %q", code, out, tc.want)
			}
		})
	}

	t.Run("audit", func(t *testing.T) {
		log := p.Log()
		for _, want := range []string{
			`"audit":"admin"`, `"peer_uid":` + strconv.Itoa(os.Geteuid()), `"command":"revoke"`,
			`"kid":"` + second + `"`, `"command":"rotate"`, `"immediate":true`,
			// Lifecycle lines say who caused them.
			`"event":"key.revoked","by":"admin uid ` + strconv.Itoa(os.Geteuid()) + `","kid":"` +
				second + `"`,
			`"event":"key.published","by":"schedule"`,
		} {
			if !strings.Contains(log, want) {
				t.Errorf("log lacks %s", want)
			}
		}
		if n := strings.Count(log, `"command":"revoke","keyset":"api","kid":"`+second); n != 1 {
			t.Errorf("revocation audited %d times, want once", n)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		before := jwksServed(t, p)
		p.Get("/.well-known/jwks.json")
		p.Get("/keysets/api/jwks.json")
		if after := jwksServed(t, p); after != before+2 {
			t.Errorf("keyd_jwks_requests_total{code=\"200\"} went from %v to %v over 2 requests",
				before, after)
		}
		resp, body := p.Get("/metrics")
		if resp.StatusCode != 200 {
			t.Fatalf("/metrics: %d", resp.StatusCode)
		}
		for _, want := range []string{
			`keyd_rotations_total{keyset="api",result="success",trigger="request"} 1`,
			`keyd_rotations_total{keyset="api",result="deferred",trigger="request"} 1`,
			`keyd_rotations_total{keyset="api",result="success",trigger="revoke"} 1`,
			`keyd_keys{keyset="api",state="current"} 1`,
			`keyd_keys{keyset="api",state="retired"} 1`,
			`keyd_rotation_overdue{keyset="api"} 0`,
			`keyd_keyset_ready{keyset="default"} 1`,
			`keyd_jwks_requests_total{code="200"}`,
			`keyd_storage_operation_duration_seconds_count{keyset="api",operation="save"}`,
			`keyd_storage_errors_total{keyset="api",operation="save"} 0`,
			`keyd_current_key_age_seconds{keyset="api"}`,
			`keyd_next_rotation_timestamp_seconds{keyset="api"}`,
			`keyd_last_rotation_timestamp_seconds{keyset="api"}`,
		} {
			if !strings.Contains(string(body), want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})
}

func TestAdminWhenUnreachable(t *testing.T) {
	s := newSetup(t, twoKeysets)
	cfg := filepath.Join(s.dir, "keyd.toml")
	addr := keydtest.FreeAddr(t)
	if err := os.WriteFile(cfg, []byte(strings.ReplaceAll(s.config(), "{{listen}}", addr)),
		0o644); err != nil {
		t.Fatal(err)
	}
	out, code := keydtest.Run(t, "status", "--config", cfg)
	if code == 0 || !strings.Contains(out, "keyd is not running") ||
		!strings.Contains(out, s.socket) {
		t.Errorf("status without a daemon: exit %d\n%s", code, out)
	}

	t.Run("socket of another user", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Fatal("this case needs root to run the client as another user; CI runs as root")
		}
		// The daemon's dir is open to all, so only the socket's own mode keeps others out.
		// Only the test's own dirs are opened, never the system temp dir itself.
		for dir := s.dir; strings.HasPrefix(dir, os.TempDir()+"/"); dir = filepath.Dir(dir) {
			if err := os.Chmod(dir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		keydtest.StartFile(t, cfg, addr, keydtest.Options{})
		bin := filepath.Join(s.dir, "keyd")
		data, err := os.ReadFile(keydtest.Binary(t))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, data, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "status", "--config", cfg)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "permission denied") {
			t.Errorf("status as uid 65534: %v\n%s", err, out)
		}
	})
}

// jwksServed reads keyd_jwks_requests_total{code="200"} from /metrics (0 when absent).
func jwksServed(t *testing.T, p *keydtest.Process) float64 {
	t.Helper()
	_, body := p.Get("/metrics")
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, `keyd_jwks_requests_total{code="200"} `); ok {
			v, err := strconv.ParseFloat(rest, 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return v
		}
	}
	return 0
}
