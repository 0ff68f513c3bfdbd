package notify

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyd-io/keyd/config"
	"github.com/keyd-io/keyd/rotation"
)

// hookScript writes an executable shell script into dir and returns its path.
func hookScript(t *testing.T, dir, body string) string {
	t.Helper()
	path := filepath.Join(dir, "hook.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o700); err != nil {
		t.Fatal(err)
	}
	return path
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return string(data)
}

func TestExecHookEnvironmentAndStdin(t *testing.T) {
	t.Setenv("VAULT_TOKEN", "hvs.keyd-own-token")
	t.Setenv("KEYD_KID", "stale")
	dir := t.TempDir()
	hook := hookScript(t, dir, `cat > "$1/stdin.json"
env | grep -E '^(KEYD_|VAULT_)' | sort > "$1/env.tmp"
mv "$1/env.tmp" "$1/env"
`)
	cfg := newTestConfig(t, config.Notify{Exec: []config.Exec{{
		Command: []string{hook, dir}, Events: []string{"key.activated"}, Retry: fastRetry,
	}}})
	n := startNotifier(t, cfg, nil)

	if err := n.Publish("api", []rotation.Change{
		change(rotation.Published, "kid-3", ""),
		change(rotation.Activated, "kid-2", "kid-1"),
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the hook to run", func() bool { return readFile(t, dir+"/env") != "" })

	var ev Event
	if err := json.Unmarshal([]byte(readFile(t, dir+"/stdin.json")), &ev); err != nil {
		t.Fatalf("stdin is not the event: %v", err)
	}
	if ev.Type != "key.activated" || ev.KID != "kid-2" || ev.PreviousKID != "kid-1" ||
		ev.Keyset != "api" || ev.Alg != "ES256" || !strings.HasPrefix(ev.ID, "evt_") {
		t.Errorf("stdin event = %+v", ev)
	}
	want := strings.Join([]string{
		"KEYD_ALG=ES256",
		"KEYD_EVENT=key.activated",
		"KEYD_EVENT_ID=" + ev.ID,
		"KEYD_JWKS_URI=https://keys.example.test/keysets/api/jwks.json",
		"KEYD_KEYSET=api",
		"KEYD_KID=kid-2",
		"KEYD_PREVIOUS_KID=kid-1",
	}, "\n") + "\n"
	if got := readFile(t, dir+"/env"); got != want {
		t.Errorf("hook environment:\n%s\nwant:\n%s", got, want)
	}
}

func TestExecHookRetries(t *testing.T) {
	tests := []struct {
		name    string
		script  string // $1 is a scratch dir; runs are counted in $1/runs
		timeout time.Duration
		wantLog string
	}{
		{
			name: "non-zero exit",
			script: `echo run >> "$1/runs"
[ -e "$1/failed" ] && exit 0
touch "$1/failed"
echo "issuer not ready" >&2
exit 3
`,
			timeout: 5 * time.Second,
			wantLog: "issuer not ready",
		},
		{
			name: "timeout",
			script: `echo run >> "$1/runs"
[ -e "$1/failed" ] && exit 0
touch "$1/failed"
exec sleep 60
`,
			timeout: 200 * time.Millisecond,
			wantLog: "timed out",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			hook := hookScript(t, dir, tc.script)
			retry := fastRetry
			retry.Timeout = config.Duration(tc.timeout)
			logs, log := newLogBuffer()
			cfg := newTestConfig(t, config.Notify{Exec: []config.Exec{{
				Command: []string{hook, dir}, Events: config.EventTypes, Retry: retry,
			}}})
			n := startNotifier(t, cfg, log)

			if err := n.Publish("default", []rotation.Change{
				change(rotation.Activated, "k1", ""),
			}); err != nil {
				t.Fatal(err)
			}
			eventually(t, "an empty outbox", func() bool {
				return len(outboxFiles(t, cfg.Notify.Dir)) == 0
			})
			if runs := strings.Count(readFile(t, dir+"/runs"), "run"); runs != 2 {
				t.Errorf("hook ran %d times, want 2", runs)
			}
			if !strings.Contains(logs.String(), tc.wantLog) {
				t.Errorf("log does not say %q:\n%s", tc.wantLog, logs.String())
			}
		})
	}
}

func TestExecHookOutputIsBounded(t *testing.T) {
	dir := t.TempDir()
	hook := hookScript(t, dir, `head -c 100000 /dev/zero | tr '\0' x`)
	logs, log := newLogBuffer()
	cfg := newTestConfig(t, config.Notify{Exec: []config.Exec{{
		Command: []string{hook}, Events: config.EventTypes, Retry: fastRetry,
	}}})
	n := startNotifier(t, cfg, log)

	if err := n.Publish("default", []rotation.Change{change(rotation.Removed, "k0", "")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the hook's log line", func() bool {
		return strings.Contains(logs.String(), "exec hook finished")
	})
	text := logs.String()
	if got := strings.Count(text, "x"); got > maxHookOutput+100 {
		t.Errorf("log holds %d bytes of hook output, want at most about %d", got, maxHookOutput)
	}
	if !strings.Contains(text, "95904 more bytes not kept") {
		t.Errorf("log does not say how much output was dropped:\n%.300s", text)
	}
}

func TestSlowHookDoesNotDelayWebhook(t *testing.T) {
	dir := t.TempDir()
	_, secretFile := writeSecret(t, dir)
	recv := newReceiver(t)
	hook := hookScript(t, dir, "exec sleep 60\n")
	slow := fastRetry
	slow.Timeout = config.Duration(time.Minute)
	cfg := newTestConfig(t, config.Notify{
		Exec: []config.Exec{{Command: []string{hook}, Events: config.EventTypes, Retry: slow}},
		Webhooks: []config.Webhook{{
			URL: recv.URL, SecretFile: secretFile, Events: config.EventTypes, Retry: fastRetry,
		}},
	})
	n := startNotifier(t, cfg, nil)

	start := time.Now()
	for _, kid := range []string{"k1", "k2"} {
		if err := n.Publish("default", []rotation.Change{
			change(rotation.Published, kid, ""),
		}); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "both events at the webhook", func() bool { return len(recv.seen()) == 2 })
	if elapsed := time.Since(start); elapsed > 10*time.Second {
		t.Errorf("webhook served after %s, behind the hook", elapsed)
	}
	if pending := len(outboxFiles(t, cfg.Notify.Dir)); pending != 2 {
		t.Errorf("outbox holds %d records, want the hook's 2 still pending", pending)
	}
}
