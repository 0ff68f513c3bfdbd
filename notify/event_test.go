package notify

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/keyd-io/keyd/config"
	"github.com/keyd-io/keyd/rotation"
)

func TestJWKSBase(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		listen  string
		tls     bool
		baseURL string
		want    string
	}{
		{name: "loopback", listen: "127.0.0.1:8080", want: "http://127.0.0.1:8080"},
		{name: "tls", listen: "keys.internal:8443", tls: true, want: "https://keys.internal:8443"},
		{name: "ipv6", listen: "[::1]:8080", want: "http://[::1]:8080"},
		{name: "all interfaces", listen: "0.0.0.0:8080", want: "http://" + host + ":8080"},
		{name: "empty host", listen: ":8080", want: "http://" + host + ":8080"},
		{name: "configured", listen: "0.0.0.0:8080", baseURL: "https://keys.example.com/auth/",
			want: "https://keys.example.com/auth"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := &config.Config{}
			cfg.Server.Listen = tc.listen
			if tc.tls {
				cfg.Server.TLSCertFile, cfg.Server.TLSKeyFile = "/c", "/k"
			}
			cfg.Notify.JWKSBaseURL = tc.baseURL
			if got := JWKSBase(cfg); got != tc.want {
				t.Errorf("JWKSBase = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNewEventTimes(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 500, time.UTC)
	published := time.Date(2026, 2, 28, 3, 0, 0, 0, time.FixedZone("CET", 3600))
	activated := published.Add(24 * time.Hour)
	retired := activated.Add(24 * time.Hour)
	key := rotation.Key{KID: "k", Alg: "EdDSA", PublishedAt: published,
		ActivatedAt: activated, RetiredAt: retired}
	tests := []struct {
		name string
		typ  rotation.ChangeType
		key  rotation.Key
		want time.Time
	}{
		{name: "published", typ: rotation.Published, key: key, want: published},
		{name: "activated", typ: rotation.Activated, key: key, want: activated},
		{name: "retired", typ: rotation.RetiredChange, key: key, want: retired},
		{name: "removed", typ: rotation.Removed, key: key, want: now},
		{name: "revoked", typ: rotation.Revoked, key: key, want: now},
		{name: "no time recorded", typ: rotation.Activated, key: rotation.Key{KID: "k"},
			want: now},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := newEvent("evt_1", "api", rotation.Change{Type: tc.typ, Key: tc.key},
				"https://x/keysets/api/jwks.json", now)
			if !ev.OccurredAt.Equal(tc.want.Truncate(time.Second)) {
				t.Errorf("occurred_at = %s, want %s", ev.OccurredAt, tc.want)
			}
			if ev.OccurredAt.Location() != time.UTC {
				t.Errorf("occurred_at %s is not in UTC", ev.OccurredAt)
			}
		})
	}
}

func TestEventIDsAreUnique(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		id := newEventID()
		if seen[id] || !strings.HasPrefix(id, "evt_") || len(id) != 36 {
			t.Fatalf("event id %q repeated or malformed", id)
		}
		seen[id] = true
	}
}
