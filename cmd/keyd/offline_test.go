package main_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyd-io/keyd/internal/keydtest"
)

// pyjwtVerify checks a token against a JWKS with PyJWT: it picks the key by the token's
// kid, verifies signature, exp and aud, and prints the claims.
const pyjwtVerify = `
import json, sys, jwt
jwks = json.load(open(sys.argv[1]))
token = sys.argv[2]
kid = jwt.get_unverified_header(token)["kid"]
key = next(k for k in jwks["keys"] if k["kid"] == kid)
claims = jwt.decode(token, jwt.PyJWK(key).key, algorithms=[key["alg"]], audience="billing")
print(json.dumps(claims))
`

const python = "/usr/bin/python3"

func TestSignVerifiedByPyJWT(t *testing.T) {
	if err := exec.Command(python, "-c", "import jwt, cryptography").Run(); err != nil {
		t.Fatalf("PyJWT with cryptography is not installed for %s (bash interop/INSTALL.sh "+
			"installs it): %v", python, err)
	}
	algs := []string{"ES256", "ES384", "ES512", "RS256", "PS256", "EdDSA"}
	var keysets strings.Builder
	for _, alg := range algs {
		keysets.WriteString("[[keyset]]\nname = \"" + strings.ToLower(alg) + "\"\n" +
			"algorithm = \"" + alg + "\"\ntoken_ttl = \"10m\"\ngrace = \"20m\"\n")
	}
	s := newSetup(t, keysets.String())
	p := keydtest.Start(t, s.config(), keydtest.Options{})

	for _, alg := range algs {
		name := strings.ToLower(alg)
		t.Run(alg, func(t *testing.T) {
			out, code := run(t, p, "sign", "--keyset", name, "--ttl", "5m",
				"--claims", `{"sub":"alice","aud":"billing","n":12345678901234567}`)
			if code != 0 {
				t.Fatalf("keyd sign: exit %d\n%s", code, out)
			}
			token := strings.TrimSpace(out)
			header := decodeSegment(t, token, 0)
			if header["kid"] != currentKID(keysetStatus(t, status(t, p), name)) ||
				header["alg"] != alg {
				t.Errorf("header %v, want the current kid and alg %s", header, alg)
			}

			_, jwks := p.Get("/keysets/" + name + "/jwks.json")
			path := filepath.Join(t.TempDir(), "jwks.json")
			if err := os.WriteFile(path, jwks, 0o600); err != nil {
				t.Fatal(err)
			}
			verified, err := exec.Command(python, "-c", pyjwtVerify, path, token).CombinedOutput()
			if err != nil {
				t.Fatalf("PyJWT refused the token: %v\n%s", err, verified)
			}
			var claims map[string]json.Number
			dec := json.NewDecoder(bytes.NewReader(verified))
			dec.UseNumber()
			var raw map[string]any
			if err := dec.Decode(&raw); err != nil {
				t.Fatal(err)
			}
			claims = map[string]json.Number{}
			for k, v := range raw {
				if n, ok := v.(json.Number); ok {
					claims[k] = n
				}
			}
			iat, _ := claims["iat"].Int64()
			exp, _ := claims["exp"].Int64()
			if exp-iat != 300 || raw["sub"] != "alice" || claims["n"] != "12345678901234567" {
				t.Errorf("claims %s: want sub alice, exp = iat + 300, n kept exact", verified)
			}
		})
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{name: "ttl above token_ttl", args: []string{"--ttl", "11m"}, want: "at most"},
		{name: "exp in claims", args: []string{"--claims", `{"exp":1}`}, want: "--ttl"},
		{name: "claims not an object", args: []string{"--claims", `[1]`}, want: "JSON object"},
		{name: "unknown keyset", args: []string{"--keyset", "nope"}, want: `no keyset "nope"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"sign", "--keyset", "es256"}, tc.args...)
			out, code := run(t, p, args...)
			if code == 0 || !strings.Contains(out, tc.want) {
				t.Errorf("exit %d, output %q, want a failure mentioning %q", code, out, tc.want)
			}
		})
	}
}

func decodeSegment(t *testing.T, token string, i int) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("%q is not a compact JWS", token)
	}
	data, err := base64.RawURLEncoding.DecodeString(parts[i])
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestOfflineJWKSMatchesServed: `keyd jwks` reads the state beside the running daemon
// and prints the same key set it serves.
func TestOfflineJWKSMatchesServed(t *testing.T) {
	s := newSetup(t, twoKeysets)
	p := keydtest.Start(t, s.config(), keydtest.Options{})
	for _, tc := range []struct {
		name string
		args []string
		path string
	}{
		{name: "default keyset", path: "/.well-known/jwks.json"},
		{name: "named keyset", args: []string{"--keyset", "api"}, path: "/keysets/api/jwks.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, code := run(t, p, append([]string{"jwks"}, tc.args...)...)
			if code != 0 {
				t.Fatalf("keyd jwks: exit %d\n%s", code, out)
			}
			var compact bytes.Buffer
			if err := json.Compact(&compact, []byte(out)); err != nil {
				t.Fatal(err)
			}
			_, served := p.Get(tc.path)
			if compact.String() != string(served) {
				t.Errorf("keyd jwks printed\n%s\nthe daemon serves\n%s", compact.String(), served)
			}
		})
	}
}

func TestPlan(t *testing.T) {
	s := newSetup(t, `
[[keyset]]
name = "default"
[[keyset]]
name = "fast"
schedule = "@hourly"
publish_lead = "10m"
token_ttl = "5m"
grace = "15m"
`)
	cfg := filepath.Join(s.dir, "keyd.toml")
	if err := os.WriteFile(cfg, []byte(strings.ReplaceAll(s.config(), "{{listen}}",
		"127.0.0.1:8080")), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code := keydtest.Run(t, "plan", "--config", cfg, "--rotations", "2")
	if code != 0 {
		t.Fatalf("keyd plan: exit %d\n%s", code, out)
	}
	sections := strings.Split(out, "keyset ")
	if len(sections) != 3 {
		t.Fatalf("want a section per keyset:\n%s", out)
	}
	for _, tc := range []struct {
		name     string
		section  string
		want     []string
		wantNone string
	}{
		{name: "default", section: sections[1],
			want:     []string{"simulating the first start", "planned-1", "planned-3"},
			wantNone: "warning"},
		{name: "fast", section: sections[2],
			want: []string{"planned-3", "warning: publish_lead 10m is shorter than a " +
				"verifier JWKS cache of 1h"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, w := range tc.want {
				if !strings.Contains(tc.section, w) {
					t.Errorf("lacks %q:\n%s", w, tc.section)
				}
			}
			if tc.wantNone != "" && strings.Contains(tc.section, tc.wantNone) {
				t.Errorf("has %q:\n%s", tc.wantNone, tc.section)
			}
		})
	}
	if _, err := os.Stat(s.data); !os.IsNotExist(err) {
		t.Errorf("keyd plan created the data dir: %v", err)
	}
}

func TestHelpOnEveryCommand(t *testing.T) {
	for _, cmd := range []string{"run", "check-config", "version", "status", "rotate",
		"revoke", "plan", "jwks", "sign"} {
		t.Run(cmd, func(t *testing.T) {
			out, code := keydtest.Run(t, cmd, "--help")
			if code != 0 || !strings.Contains(out, "Usage:") || !strings.Contains(out, "--config") {
				t.Errorf("keyd %s --help: exit %d\n%s", cmd, code, out)
			}
		})
	}
}
