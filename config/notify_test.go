package config_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyd-io/keyd/config"
)

func TestNotifyRefusesBadConfig(t *testing.T) {
	const hook = "[[notify.webhook]]\nurl = \"https://issuer.test/h\"\nsecret_file = \"/s\"\n"
	tests := []struct {
		name string
		body string
		want []string
	}{
		{name: "unknown key", body: hook + "retries = 3\n",
			want: []string{"notify.webhook", "retries", "unknown key"}},
		{name: "webhook without url", body: "[[notify.webhook]]\nsecret_file = \"/s\"\n",
			want: []string{"notify.webhook[0].url: required"}},
		{name: "webhook url not http", body: "[[notify.webhook]]\nurl = \"ftp://x/\"\n" +
			"secret_file = \"/s\"\n",
			want: []string{"notify.webhook[0].url", "absolute http or https"}},
		{name: "relative url", body: "[[notify.webhook]]\nurl = \"/hooks\"\nsecret_file = \"/s\"\n",
			want: []string{"notify.webhook[0].url", "absolute http or https"}},
		{name: "webhook without secret",
			body: "[[notify.webhook]]\nurl = \"https://issuer.test/h\"\n",
			want: []string{"notify.webhook[0].secret_file: required"}},
		{name: "unknown event", body: hook + "events = [\"key.rotated\"]\n",
			want: []string{"notify.webhook[0].events", `"key.rotated"`}},
		{name: "event twice", body: hook + "events = [\"key.revoked\", \"key.revoked\"]\n",
			want: []string{"notify.webhook[0].events", "listed twice"}},
		{name: "same url twice", body: hook + hook,
			want: []string{"notify.webhook[1].url", "configured twice"}},
		{name: "backoff_max below backoff_initial",
			body: hook + "backoff_initial = \"1m\"\nbackoff_max = \"10s\"\n",
			want: []string{"notify.webhook[0].backoff_max", "shorter than backoff_initial"}},
		{name: "give_up_after below backoff_initial",
			body: hook + "backoff_initial = \"1m\"\ngive_up_after = \"10s\"\n",
			want: []string{"notify.webhook[0].give_up_after", "no retry could happen"}},
		{name: "bad timeout", body: hook + "timeout = \"soon\"\n",
			want: []string{"timeout", `invalid duration "soon"`}},
		{name: "exec without command", body: "[[notify.exec]]\nevents = [\"key.activated\"]\n",
			want: []string{"notify.exec[0].command: required"}},
		{name: "exec command as a string", body: "[[notify.exec]]\ncommand = \"/bin/true\"\n",
			want: []string{"command"}},
		{name: "vault without notify.dir", body: "[storage]\nbackend = \"vault\"\n" +
			"[storage.vault]\naddress = \"https://vault.test:8200\"\n" + hook,
			want: []string{"notify.dir: required"}},
		{name: "jwks_base_url with a query",
			body: "[notify]\njwks_base_url = \"https://keys.test/?a=b\"\n",
			want: []string{"notify.jwks_base_url", "query"}},
		{name: "jwks_base_url relative", body: "[notify]\njwks_base_url = \"keys.test\"\n",
			want: []string{"notify.jwks_base_url", "absolute"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, path, err := load(t, tc.body)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, want := range append(tc.want, path) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not say %q", err, want)
				}
			}
		})
	}
}

func TestNotifyErrorsHideURLCredentials(t *testing.T) {
	_, _, err := load(t, "[[notify.webhook]]\nurl = \"https://u:s3cr3t@issuer.test:x/\"\n"+
		"secret_file = \"/s\"\n")
	if err == nil {
		t.Fatal("accepted an invalid URL")
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("error %q shows the URL's password", err)
	}
}

func TestNotifyDefaults(t *testing.T) {
	data := t.TempDir()
	cfg, _, err := load(t, "[storage.disk]\ndir = \""+data+"\"\n"+
		"[[notify.webhook]]\nurl = \"https://issuer.test/h\"\nsecret_file = \"/s\"\n"+
		"[[notify.exec]]\ncommand = [\"/usr/local/bin/reload-issuer\"]\n"+
		"events = [\"key.activated\"]\n")
	if err != nil {
		t.Fatal(err)
	}
	n := cfg.Notify
	if want := filepath.Join(data, ".outbox"); n.Dir != want {
		t.Errorf("notify.dir = %q, want %q", n.Dir, want)
	}
	tests := []struct {
		name   string
		retry  config.Retry
		events []string
		want   config.Retry
		wantEv []string
	}{
		{name: "webhook", retry: n.Webhooks[0].Retry, events: n.Webhooks[0].Events,
			want: config.Retry{Timeout: config.Duration(10 * time.Second),
				BackoffInitial: config.Duration(time.Second),
				BackoffMax:     config.Duration(5 * time.Minute),
				GiveUpAfter:    config.Duration(24 * time.Hour)},
			wantEv: config.EventTypes},
		{name: "exec", retry: n.Exec[0].Retry, events: n.Exec[0].Events,
			want: config.Retry{Timeout: config.Duration(30 * time.Second),
				BackoffInitial: config.Duration(time.Second),
				BackoffMax:     config.Duration(5 * time.Minute),
				GiveUpAfter:    config.Duration(24 * time.Hour)},
			wantEv: []string{"key.activated"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.retry != tc.want {
				t.Errorf("retry = %+v, want %+v", tc.retry, tc.want)
			}
			if !slices.Equal(tc.events, tc.wantEv) {
				t.Errorf("events = %v, want %v", tc.events, tc.wantEv)
			}
		})
	}
}

// TestNotifyExampleIsTheDefaults keeps docs/notify.config.toml honest: it parses, and the
// retry values it shows are the built-in defaults.
func TestNotifyExampleIsTheDefaults(t *testing.T) {
	cfg, err := config.Load("../docs/notify.config.toml")
	if err != nil {
		t.Fatal(err)
	}
	n := cfg.Notify
	if len(n.Webhooks) != 1 || len(n.Exec) != 1 {
		t.Fatalf("example has %d webhooks and %d exec hooks, want one of each",
			len(n.Webhooks), len(n.Exec))
	}
	body := "[[notify.webhook]]\nurl = \"https://issuer.test/\"\nsecret_file = \"/s\"\n" +
		"[[notify.exec]]\ncommand = [\"/bin/true\"]\n"
	loaded, _, err := load(t, body)
	if err != nil {
		t.Fatal(err)
	}
	defaults := loaded.Notify
	if n.Webhooks[0].Retry != defaults.Webhooks[0].Retry {
		t.Errorf("example webhook retry %+v, defaults %+v", n.Webhooks[0].Retry,
			defaults.Webhooks[0].Retry)
	}
	if n.Exec[0].Retry != defaults.Exec[0].Retry {
		t.Errorf("example exec retry %+v, defaults %+v", n.Exec[0].Retry, defaults.Exec[0].Retry)
	}
}
