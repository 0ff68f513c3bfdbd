// Package admin is keyd's admin socket: a Unix socket, mode 0600, that takes one JSON
// request per connection and answers with one JSON response. Only the daemon's own user
// and root may use it; the kernel vouches for the peer's uid (SO_PEERCRED).
package admin

import "time"

// Size limits: a request larger than MaxRequestBytes is refused unread.
const (
	MaxRequestBytes  = 64 << 10
	MaxResponseBytes = 8 << 20
)

// The commands a Request may carry.
const (
	CommandStatus = "status"
	CommandRotate = "rotate"
	CommandRevoke = "revoke"
)

// Outcomes of a rotation or revocation, per keyset.
const (
	OutcomeRotated  = "rotated"
	OutcomeDeferred = "deferred"
	OutcomeRevoked  = "revoked"
	OutcomeFailed   = "failed"
)

// Request is one command sent to the daemon.
type Request struct {
	Command string `json:"command"`
	// Keyset names the keyset; empty means every keyset (rotate only).
	Keyset string `json:"keyset,omitempty"`
	// KID is the key to revoke.
	KID string `json:"kid,omitempty"`
	// Immediate rotates without waiting for publish_lead.
	Immediate bool `json:"immediate,omitempty"`
}

// Response is the daemon's answer. Error is set when the command failed as a whole.
type Response struct {
	Error   string   `json:"error,omitempty"`
	Status  *Status  `json:"status,omitempty"`
	Results []Result `json:"results,omitempty"`
}

// Status describes every keyset the daemon serves.
type Status struct {
	Version string         `json:"version"`
	Config  string         `json:"config"`
	Started time.Time      `json:"started"`
	Keysets []KeysetStatus `json:"keysets"`
	// Pending counts the deliveries waiting for each webhook or exec hook.
	Pending map[string]int `json:"pending_deliveries,omitempty"`
}

// KeysetStatus is one keyset's policy, health and keys (JWKS order).
type KeysetStatus struct {
	Name        string `json:"name"`
	Algorithm   string `json:"algorithm"`
	Schedule    string `json:"schedule"`
	PublishLead string `json:"publish_lead"`
	Grace       string `json:"grace"`
	// NextRotation is when next is promoted, unless a revocation comes first.
	NextRotation time.Time `json:"next_rotation,omitzero"`
	// LastRotation is when the last promotion (or the first start) happened.
	LastRotation time.Time `json:"last_rotation,omitzero"`
	// RotationRequestedAt is set while a requested rotation waits for publish_lead.
	RotationRequestedAt time.Time `json:"rotation_requested_at,omitzero"`
	// Problem says why the keyset is not healthy; empty when it is.
	Problem string      `json:"problem,omitempty"`
	Keys    []KeyStatus `json:"keys"`
}

// KeyStatus is one key of a keyset. It never carries key material.
type KeyStatus struct {
	KID         string    `json:"kid"`
	Alg         string    `json:"alg"`
	State       string    `json:"state"`
	PublishedAt time.Time `json:"published_at"`
	ActivatedAt time.Time `json:"activated_at,omitzero"`
	RetiredAt   time.Time `json:"retired_at,omitzero"`
	ExpiresAt   time.Time `json:"expires_at,omitzero"`
}

// Result is what a rotation or revocation did to one keyset.
type Result struct {
	Keyset     string `json:"keyset"`
	Outcome    string `json:"outcome"`
	CurrentKID string `json:"current_kid,omitempty"`
	NextKID    string `json:"next_kid,omitempty"`
	// PromoteAt is when a deferred rotation will happen.
	PromoteAt time.Time `json:"promote_at,omitzero"`
	Error     string    `json:"error,omitempty"`
}
