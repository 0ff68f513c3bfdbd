// Package notify tells issuers about committed key changes: it signs and posts events to
// webhooks (as the Standard Webhooks specification says) and runs exec hooks, keeping every
// pending delivery in a durable outbox on local disk until it is delivered or given up.
package notify

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/keyd-io/keyd/config"
	"github.com/keyd-io/keyd/rotation"
)

// Event is the body every webhook and exec hook receives, as JSON.
type Event struct {
	// ID identifies the event; every attempt at every destination carries the same ID,
	// so receivers can drop duplicates.
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	OccurredAt time.Time `json:"occurred_at"`
	Keyset     string    `json:"keyset"`
	KID        string    `json:"kid"`
	Alg        string    `json:"alg"`
	// PreviousKID is the key that signed before, on key.activated; empty otherwise.
	PreviousKID string `json:"previous_kid,omitempty"`
	JWKSURI     string `json:"jwks_uri"`
}

// newEvent describes change c of keyset. The time is the key's own timestamp for the
// change where the state records one, else now.
func newEvent(id, keyset string, c rotation.Change, jwksURI string, now time.Time) Event {
	at := now
	switch c.Type {
	case rotation.Published:
		at = orNow(c.Key.PublishedAt, now)
	case rotation.Activated:
		at = orNow(c.Key.ActivatedAt, now)
	case rotation.RetiredChange:
		at = orNow(c.Key.RetiredAt, now)
	}
	return Event{
		ID:          id,
		Type:        string(c.Type),
		OccurredAt:  at.UTC().Truncate(time.Second),
		Keyset:      keyset,
		KID:         c.Key.KID,
		Alg:         c.Key.Alg,
		PreviousKID: c.PreviousKID,
		JWKSURI:     jwksURI,
	}
}

func orNow(t, now time.Time) time.Time {
	if t.IsZero() {
		return now
	}
	return t
}

// newEventID returns a fresh random event id, "evt_" and 32 hex digits.
func newEventID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux
	return "evt_" + hex.EncodeToString(b[:])
}

// JWKSBase returns the URL that jwks_uri values start with: notify.jwks_base_url when set,
// else http(s)://<server.listen>. An unspecified listen host (":8080", "0.0.0.0:8080") is
// replaced by the machine's host name, since receivers cannot reach "0.0.0.0".
func JWKSBase(cfg *config.Config) string {
	if cfg.Notify.JWKSBaseURL != "" {
		return strings.TrimSuffix(cfg.Notify.JWKSBaseURL, "/")
	}
	scheme := "http"
	if cfg.Server.TLSCertFile != "" {
		scheme = "https"
	}
	host, port, err := net.SplitHostPort(cfg.Server.Listen)
	if err != nil {
		return scheme + "://" + cfg.Server.Listen
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
		if name, err := os.Hostname(); err == nil && name != "" {
			host = name
		}
	}
	return (&url.URL{Scheme: scheme, Host: net.JoinHostPort(host, port)}).String()
}

// jwksURI returns where keyset's JWKS is served under base.
func jwksURI(base, keyset string) string {
	return base + "/keysets/" + url.PathEscape(keyset) + "/jwks.json"
}
