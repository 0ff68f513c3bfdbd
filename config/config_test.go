package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyd-io/keyd/config"
)

func load(t *testing.T, body string) (*config.Config, string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keyd.toml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	return cfg, path, err
}

func TestLoadRefusesBadConfig(t *testing.T) {
	tests := []struct {
		name string
		body string
		// want lists what the error must say besides the file's path.
		want []string
	}{
		{name: "unknown key", body: "[server]\nlisten = \"127.0.0.1:1\"\nlisen = 1\n",
			want: []string{"server.lisen", "unknown key"}},
		{name: "unknown section", body: "[storage.s3]\nbucket = \"x\"\n",
			want: []string{"storage.s3", "unknown key"}},
		{name: "bad duration", body: "[[keyset]]\nname = \"a\"\npublish_lead = \"1x\"\n",
			want: []string{"line 3", "publish_lead", `invalid duration "1x"`}},
		{name: "keyset named like the admin socket",
			body: "[storage.disk]\ndir = \"/var/lib/keyd\"\n[[keyset]]\nname = \"admin.sock\"\n",
			want: []string{"admin.sock", "admin socket"}},
		{name: "socket path too long",
			body: "[server]\nadmin_socket = \"/" + strings.Repeat("s", 120) + "\"\n",
			want: []string{"server.admin_socket", "at most 107"}},
		{name: "zero duration", body: "[[keyset]]\nname = \"a\"\ntoken_ttl = \"0s\"\n",
			want: []string{"token_ttl", "must be positive"}},
		{name: "overflowing duration", body: "[[keyset]]\nname = \"a\"\ngrace = \"99999999999d\"\n",
			want: []string{"grace", "days"}},
		{name: "negative duration", body: "[[keyset]]\nname = \"a\"\ngrace = \"-1h\"\n",
			want: []string{"grace", "negative"}},
		{name: "bad cron", body: "[[keyset]]\nname = \"a\"\nschedule = \"61 * * * *\"\n",
			want: []string{`keyset[0] ("a"): schedule`, "61 * * * *"}},
		{name: "empty file", body: "", want: []string{"sets nothing"}},
		{name: "only comments", body: "# truncated\n", want: []string{"sets nothing"}},
		{name: "schedule that never fires",
			body: "[[keyset]]\nname = \"a\"\nschedule = \"0 0 31 2 *\"\n",
			want: []string{"schedule", "never fires"}},
		{name: "time zone with no schedule", body: "[[keyset]]\nname = \"a\"\nschedule = \"TZ=0\"\n",
			want: []string{"schedule", "followed by a space"}},
		{name: "schedule more often than publish_lead",
			body: "[[keyset]]\nname = \"a\"\nschedule = \"*/30 * * * *\"\npublish_lead = \"1h\"\n",
			want: []string{"schedule", "fires every 30m0s", "publish_lead 1h0m0s"}},
		{name: "every shorter than publish_lead",
			body: "[[keyset]]\nname = \"a\"\nschedule = \"@every 10m\"\npublish_lead = \"15m\"\n",
			want: []string{"schedule", "more often than publish_lead"}},
		{name: "grace below token_ttl",
			body: "[[keyset]]\nname = \"a\"\ntoken_ttl = \"2h\"\ngrace = \"1h\"\n",
			want: []string{"grace", "shorter than token_ttl"}},
		{name: "small RSA",
			body: "[[keyset]]\nname = \"a\"\nalgorithm = \"RS256\"\nrsa_bits = 1024\n",
			want: []string{"rsa_bits", "1024"}},
		{name: "rsa_bits on EC",
			body: "[[keyset]]\nname = \"a\"\nalgorithm = \"ES256\"\nrsa_bits = 2048\n",
			want: []string{"rsa_bits", "only RS* and PS*"}},
		{name: "unknown algorithm", body: "[[keyset]]\nname = \"a\"\nalgorithm = \"HS256\"\n",
			want: []string{"algorithm", "HS256"}},
		{name: "duplicate names", body: "[[keyset]]\nname = \"a\"\n[[keyset]]\nname = \"a\"\n",
			want: []string{`keyset[1] ("a"): name`, "already the name"}},
		{name: "name with a slash", body: "[[keyset]]\nname = \"a/b\"\n",
			want: []string{"name", "letters, digits"}},
		{name: "bad listen", body: "[server]\nlisten = \"8080\"\n",
			want: []string{"server.listen"}},
		{name: "half a TLS pair", body: "[server]\ntls_cert_file = \"c.pem\"\n",
			want: []string{"tls_cert_file and tls_key_file"}},
		{name: "bad log level", body: "[log]\nlevel = \"loud\"\n", want: []string{"log.level"}},
		{name: "bad backend", body: "[storage]\nbackend = \"s3\"\n",
			want: []string{"storage.backend", "s3"}},
		{name: "world-readable key files", body: "[storage.disk]\nfile_mode = \"0644\"\n",
			want: []string{"storage.disk.file_mode", "0644"}},
		{name: "approle without files",
			body: "[storage]\nbackend = \"vault\"\n[storage.vault]\naddress = \"http://v:1\"\n" +
				"auth = \"approle\"\n",
			want: []string{"storage.vault.auth", "role_id_file"}},
		{name: "vault refresh above publish_lead",
			body: "[storage]\nbackend = \"vault\"\n[storage.vault]\naddress = \"http://v:1\"\n" +
				"refresh = \"2m\"\n[[keyset]]\nname = \"a\"\npublish_lead = \"1m\"\n",
			want: []string{"storage.vault.refresh", "publish_lead 1m0s of keyset \"a\""}},
		{name: "not TOML", body: "[server\n", want: []string{"line", "table name"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, path, err := load(t, tc.body)
			if err == nil {
				t.Fatal("Load accepted a bad configuration")
			}
			for _, want := range append(tc.want, path) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	_, path, err := load(t, "[[keyset]]\nname = \"a\"\nalgorithm = \"X\"\ntoken_ttl = \"2h\"\n"+
		"grace = \"1h\"\n")
	if err == nil {
		t.Fatal("accepted")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want one per problem (2):\n%s", len(lines), err)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "config "+path+": ") {
			t.Fatalf("line %q does not start with the file", l)
		}
	}
}

func TestDefaults(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", "")
	t.Setenv("RUNTIME_DIRECTORY", "")
	cfg, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	ks := cfg.Keysets[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{name: "listen", got: cfg.Server.Listen, want: "127.0.0.1:8080"},
		{name: "dir", got: cfg.Storage.Disk.Dir, want: "./keyd-data"},
		{name: "admin socket", got: cfg.Server.AdminSocket, want: "keyd-data/admin.sock"},
		{name: "keyset", got: ks.Name, want: "default"},
		{name: "algorithm", got: ks.Algorithm, want: "ES256"},
		{name: "schedule", got: ks.Schedule, want: "@daily"},
		{name: "publish_lead", got: ks.PublishLead.D(), want: time.Hour},
		{name: "grace", got: ks.Grace.D(), want: 70 * time.Minute},
		{name: "max age", got: cfg.Server.JWKSMaxAge.D(), want: 5 * time.Minute},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestSystemdDirectories(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", "/var/lib/keyd:/var/lib/other")
	t.Setenv("RUNTIME_DIRECTORY", "/run/keyd")
	cfg, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Storage.Disk.Dir != "/var/lib/keyd" || cfg.Server.AdminSocket != "/run/keyd/admin.sock" {
		t.Fatalf("dir %s, socket %s", cfg.Storage.Disk.Dir, cfg.Server.AdminSocket)
	}
}

// TestExampleIsTheDefaults keeps config.toml.example honest: it parses, and every value it
// sets is the built-in default.
func TestExampleIsTheDefaults(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", "")
	t.Setenv("RUNTIME_DIRECTORY", "")
	example, err := config.Load("../config.toml.example")
	if err != nil {
		t.Fatal(err)
	}
	defaults, err := config.Default()
	if err != nil {
		t.Fatal(err)
	}
	example.Path, defaults.Path = "", ""
	example.Keysets[0].Cron, defaults.Keysets[0].Cron = nil, nil
	if got, want := describe(example), describe(defaults); got != want {
		t.Fatalf("example differs from the defaults:\nexample  %s\ndefaults %s", got, want)
	}
}

func describe(c *config.Config) string {
	var b strings.Builder
	for _, v := range []any{c.Server, c.Log, c.Storage, c.Keysets} {
		b.WriteString(fmt.Sprintf("%+v", v))
		b.WriteString(" | ")
	}
	return b.String()
}
