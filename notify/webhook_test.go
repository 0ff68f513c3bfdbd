package notify

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/keyd-io/keyd/config"
	"github.com/keyd-io/keyd/rotation"
)

func TestWebhookDelivery(t *testing.T) {
	tests := []struct {
		name         string
		statuses     []int // answers before the receiver settles on 200
		wantAttempts int
		wantResult   string
	}{
		{name: "first try", wantAttempts: 1, wantResult: resultDelivered},
		{name: "503 503 200", statuses: []int{503, 503}, wantAttempts: 3,
			wantResult: resultDelivered},
		{name: "408 retried", statuses: []int{408}, wantAttempts: 2, wantResult: resultDelivered},
		{name: "429 retried", statuses: []int{429}, wantAttempts: 2, wantResult: resultDelivered},
		{name: "400 not retried", statuses: []int{400}, wantAttempts: 1,
			wantResult: resultRejected},
		{name: "410 not retried", statuses: []int{410}, wantAttempts: 1,
			wantResult: resultRejected},
		{name: "redirect not followed", statuses: []int{302}, wantAttempts: 1,
			wantResult: resultRejected},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			secret, secretFile := writeSecret(t, dir)
			recv := newReceiver(t, tc.statuses...)
			cfg := newTestConfig(t, config.Notify{Webhooks: []config.Webhook{{
				URL: recv.URL + "/hooks/keyd", SecretFile: secretFile,
				Events: config.EventTypes, Retry: fastRetry,
			}}})
			before := testutil.ToFloat64(deliveriesTotal.WithLabelValues(kindWebhook,
				tc.wantResult))
			n := startNotifier(t, cfg, nil)

			if err := n.Publish("api", []rotation.Change{
				change(rotation.Activated, "kid-2", "kid-1"),
			}); err != nil {
				t.Fatal(err)
			}
			// A second event behind the first: once it arrives, the first is settled for
			// good, since a destination's events go out in order.
			if err := n.Publish("api", []rotation.Change{
				change(rotation.RetiredChange, "kid-1", ""),
			}); err != nil {
				t.Fatal(err)
			}
			eventually(t, "the second event", func() bool {
				seen := recv.seen()
				return len(seen) > 0 && seen[len(seen)-1].Event(t).Type == "key.retired"
			})

			seen := recv.seen()
			first, second := seen[:len(seen)-1], seen[len(seen)-1]
			if len(first) != tc.wantAttempts {
				t.Fatalf("attempts at the first event = %d, want %d", len(first),
					tc.wantAttempts)
			}
			for i, req := range first {
				if req.ID() != first[0].ID() {
					t.Errorf("attempt %d has webhook-id %q, want %q as on the first", i+1,
						req.ID(), first[0].ID())
				}
				if string(req.Body) != string(first[0].Body) {
					t.Errorf("attempt %d body differs from the first", i+1)
				}
				verifySignature(t, secret, req)
			}
			verifySignature(t, secret, second)
			if second.ID() == first[0].ID() {
				t.Errorf("two events share webhook-id %q", second.ID())
			}

			ev := first[0].Event(t)
			want := Event{
				ID: first[0].ID(), Type: "key.activated", OccurredAt: ev.OccurredAt,
				Keyset: "api", KID: "kid-2", Alg: "ES256", PreviousKID: "kid-1",
				JWKSURI: "https://keys.example.test/keysets/api/jwks.json",
			}
			if ev != want {
				t.Errorf("event = %+v, want %+v", ev, want)
			}
			if got := first[0].Headers.Get("Content-Type"); got != "application/json" {
				t.Errorf("Content-Type = %q", got)
			}
			after := testutil.ToFloat64(deliveriesTotal.WithLabelValues(kindWebhook,
				tc.wantResult))
			if after-before < 1 {
				t.Errorf("keyd_notify_deliveries_total{result=%q} did not grow", tc.wantResult)
			}
			eventually(t, "an empty outbox", func() bool {
				return len(outboxFiles(t, cfg.Notify.Dir)) == 0
			})
		})
	}
}

func TestWebhookKeepsEventOrder(t *testing.T) {
	dir := t.TempDir()
	_, secretFile := writeSecret(t, dir)
	recv := newReceiver(t, 503, 500, 503, 429)
	cfg := newTestConfig(t, config.Notify{Webhooks: []config.Webhook{{
		URL: recv.URL, SecretFile: secretFile, Events: config.EventTypes, Retry: fastRetry,
	}}})
	n := startNotifier(t, cfg, nil)

	commits := [][]rotation.Change{
		{change(rotation.Published, "k1", ""), change(rotation.Activated, "k1", "")},
		{change(rotation.Published, "k2", "")},
		{change(rotation.RetiredChange, "k1", ""), change(rotation.Activated, "k2", "k1")},
	}
	for _, c := range commits {
		if err := n.Publish("default", c); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "five delivered events", func() bool {
		return len(outboxFiles(t, cfg.Notify.Dir)) == 0
	})

	var order []string
	for _, req := range recv.seen() {
		ev := req.Event(t)
		step := ev.Type + " " + ev.KID
		if len(order) == 0 || order[len(order)-1] != step {
			order = append(order, step)
		}
	}
	want := []string{"key.published k1", "key.activated k1", "key.published k2",
		"key.retired k1", "key.activated k2"}
	if strings.Join(order, ", ") != strings.Join(want, ", ") {
		t.Errorf("delivery order = %v, want %v", order, want)
	}
}

func TestWebhookEventsFilter(t *testing.T) {
	dir := t.TempDir()
	_, secretFile := writeSecret(t, dir)
	recv := newReceiver(t)
	cfg := newTestConfig(t, config.Notify{Webhooks: []config.Webhook{{
		URL: recv.URL, SecretFile: secretFile, Events: []string{"key.revoked"},
		Retry: fastRetry,
	}}})
	n := startNotifier(t, cfg, nil)

	if err := n.Publish("default", []rotation.Change{
		change(rotation.Published, "k1", ""),
		change(rotation.Activated, "k1", ""),
		change(rotation.Revoked, "k0", ""),
	}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the revocation", func() bool { return len(recv.seen()) == 1 })
	if got := recv.seen()[0].Event(t); got.Type != "key.revoked" || got.KID != "k0" {
		t.Errorf("delivered %s %s, want key.revoked k0", got.Type, got.KID)
	}
	if files := outboxFiles(t, cfg.Notify.Dir); len(files) != 0 {
		t.Errorf("outbox holds %v; events nobody asked for must not be queued", files)
	}
}

func TestWebhookCredentialsInURL(t *testing.T) {
	dir := t.TempDir()
	secret, secretFile := writeSecret(t, dir)
	recv := newReceiver(t, 500, 401)
	u, _ := url.Parse(recv.URL)
	u.User = url.UserPassword("issuer", "hunter2-pass")
	u.RawQuery = "token=query-token-xyz"
	logs, log := newLogBuffer()
	cfg := newTestConfig(t, config.Notify{Webhooks: []config.Webhook{{
		URL: u.String(), SecretFile: secretFile, Events: config.EventTypes, Retry: fastRetry,
	}}})
	n := startNotifier(t, cfg, log)

	if err := n.Publish("default", []rotation.Change{change(rotation.Activated, "k1", "")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the rejection to be logged", func() bool {
		return strings.Contains(logs.String(), "event rejected")
	})

	if user, pass, ok := requestAuth(recv.seen()[0]); !ok || user != "issuer" ||
		pass != "hunter2-pass" {
		t.Errorf("receiver got basic auth %q %q %v; the URL's credentials must be sent",
			user, pass, ok)
	}
	text := logs.String()
	for _, leak := range []string{"hunter2-pass", "query-token-xyz", secret,
		strings.TrimPrefix(secret, secretPrefix)} {
		if strings.Contains(text, leak) {
			t.Errorf("log holds %q:\n%s", leak, text)
		}
	}
	if !strings.Contains(text, "redacted@") {
		t.Errorf("log does not name the destination with redacted credentials:\n%s", text)
	}
}

func requestAuth(r request) (user, pass string, ok bool) {
	req := &http.Request{Header: r.Headers}
	return req.BasicAuth()
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		value string
		want  time.Duration
	}{
		{name: "absent", value: "", want: 0},
		{name: "seconds", value: "120", want: 2 * time.Minute},
		{name: "negative", value: "-5", want: 0},
		{name: "http date", value: "Sun, 01 Mar 2026 12:00:30 GMT", want: 30 * time.Second},
		{name: "date in the past", value: "Sun, 01 Mar 2026 11:00:00 GMT", want: 0},
		{name: "garbage", value: "soon", want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseRetryAfter(tc.value, now); got != tc.want {
				t.Errorf("parseRetryAfter(%q) = %s, want %s", tc.value, got, tc.want)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want string
	}{
		{name: "plain", raw: "https://issuer.test/hooks", want: "https://issuer.test/hooks"},
		{name: "user and password", raw: "https://u:p4ss@issuer.test/h",
			want: "https://redacted@issuer.test/h"},
		{name: "query token", raw: "https://issuer.test/h?token=t0k",
			want: "https://issuer.test/h?redacted"},
		{name: "unparsable", raw: "https://u:p4ss@issuer.test:port/", want: "<invalid url>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := redactURL(tc.raw); got != tc.want {
				t.Errorf("redactURL(%q) = %q, want %q", tc.raw, got, tc.want)
			}
		})
	}
}
