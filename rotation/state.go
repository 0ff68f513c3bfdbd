// Package rotation decides when and how a keyset's keys move through their lifecycle
// (next → current → retired → removed, or revoked) and carries the decisions out against
// a storage backend in a crash-safe order.
//
// The decisions (Plan, Apply, WakeAt) are pure functions of the state and the time; the
// Keyset runner only supplies the time, fresh keys and storage.
package rotation

import (
	"bytes"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

// StateVersion is the version of the state document this keyd reads and writes.
const StateVersion = 1

// Phase is where a key is in its lifecycle.
type Phase string

// The phases a stored key can be in. Removed and revoked keys leave the state.
const (
	Next    Phase = "next"
	Current Phase = "current"
	Retired Phase = "retired"
)

// Key is one key of a keyset as the state records it. Public is the public JWK served to
// verifiers; the private key is stored apart, under KID.
type Key struct {
	KID         string          `json:"kid"`
	Alg         string          `json:"alg"`
	Phase       Phase           `json:"state"`
	PublishedAt time.Time       `json:"published_at"`
	ActivatedAt time.Time       `json:"activated_at,omitzero"`
	RetiredAt   time.Time       `json:"retired_at,omitzero"`
	ExpiresAt   time.Time       `json:"expires_at,omitzero"`
	Public      json.RawMessage `json:"public"`
}

// State is a keyset's committed state: the keys verifiers may meet and the rotation clock.
type State struct {
	Version int    `json:"version"`
	Keyset  string `json:"keyset"`
	Keys    []Key  `json:"keys"`
	// RotatedAt is when the last promotion (or the first start) happened; the schedule
	// counts from it, so runs missed while keyd was down add up to one catch-up rotation.
	RotatedAt time.Time `json:"rotated_at"`
	// RequestedAt is when an operator asked for a rotation that still waits for the next
	// key to have been published for publish_lead; zero when none waits.
	RequestedAt time.Time `json:"rotate_requested_at,omitzero"`
	// Commits holds the ids of the last writes of the keyset's state, oldest first and
	// this document's own last, at most MaxRecentCommits. The events a write announces
	// are kept prepared under its id until a state lists it. Documents written by older
	// keyds have none.
	Commits []string `json:"recent_commits,omitempty"`
}

// MaxRecentCommits bounds State.Commits. A commit whose id has left the list can no
// longer be recognised as landed, so the bound must exceed the number of commits other
// replicas may make while this one is down between a commit and its confirmation.
const MaxRecentCommits = 16

// RecordCommit adds commit id to the state's recent commits, dropping the oldest beyond
// MaxRecentCommits.
func (s *State) RecordCommit(id string) {
	s.Commits = append(slices.Clone(s.Commits), id)
	if extra := len(s.Commits) - MaxRecentCommits; extra > 0 {
		s.Commits = s.Commits[extra:]
	}
}

// Committed reports whether commit id is among the state's recent commits.
func (s *State) Committed(id string) bool { return slices.Contains(s.Commits, id) }

// Find returns the key with the given kid, or nil.
func (s *State) Find(kid string) *Key {
	for i := range s.Keys {
		if s.Keys[i].KID == kid {
			return &s.Keys[i]
		}
	}
	return nil
}

// InPhase returns the first key in phase p, or nil.
func (s *State) InPhase(p Phase) *Key {
	for i := range s.Keys {
		if s.Keys[i].Phase == p {
			return &s.Keys[i]
		}
	}
	return nil
}

// Published returns the keys verifiers must be able to find, in JWKS order: current
// first, then next, then retired keys newest first.
func (s *State) Published() []Key {
	out := slices.Clone(s.Keys)
	rank := map[Phase]int{Current: 0, Next: 1, Retired: 2}
	slices.SortStableFunc(out, func(a, b Key) int {
		if d := rank[a.Phase] - rank[b.Phase]; d != 0 {
			return d
		}
		return b.RetiredAt.Compare(a.RetiredAt)
	})
	return out
}

// Clone returns a deep copy of the state that shares no slices with s.
func (s State) Clone() State {
	s.Keys = slices.Clone(s.Keys)
	s.Commits = slices.Clone(s.Commits)
	return s
}

// Encode returns the state document as stored.
func (s *State) Encode() ([]byte, error) {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode state: %w", err)
	}
	return append(data, '\n'), nil
}

// Decode parses and checks a stored state document for keyset name. It refuses anything
// it cannot fully trust rather than guessing: an unknown version, a missing or doubled
// current key, a doubled kid, a public JWK that is not public or not under its kid.
func Decode(data []byte, keyset string) (State, error) {
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return State{}, fmt.Errorf("decode state: %w", err)
	}
	// The document is indented; the served JWKS must hold each public key in the same
	// compact bytes as the replica that created it, or replicas' ETags would differ.
	for i := range s.Keys {
		var compact bytes.Buffer
		if err := json.Compact(&compact, s.Keys[i].Public); err != nil {
			return State{}, fmt.Errorf("decode state: key %q: %w", s.Keys[i].KID, err)
		}
		s.Keys[i].Public = compact.Bytes()
	}
	if err := s.check(keyset); err != nil {
		return State{}, fmt.Errorf("decode state: %w", err)
	}
	return s, nil
}

func (s *State) check(keyset string) error {
	if s.Version != StateVersion {
		return fmt.Errorf("state version %d is not supported (this keyd reads version %d)",
			s.Version, StateVersion)
	}
	if s.Keyset != keyset {
		return fmt.Errorf("state belongs to keyset %q, not %q", s.Keyset, keyset)
	}
	counts := map[Phase]int{}
	seen := map[string]bool{}
	var errs []error
	for i, k := range s.Keys {
		if seen[k.KID] {
			errs = append(errs, fmt.Errorf("key %q appears twice", k.KID))
		}
		seen[k.KID] = true
		counts[k.Phase]++
		if k.Phase != Next && k.Phase != Current && k.Phase != Retired {
			errs = append(errs, fmt.Errorf("keys[%d]: unknown state %q", i, k.Phase))
		}
		if k.Phase == Retired && k.ExpiresAt.IsZero() {
			errs = append(errs, fmt.Errorf("key %q: retired without expires_at", k.KID))
		}
		if err := checkPublic(k); err != nil {
			errs = append(errs, fmt.Errorf("key %q: %w", k.KID, err))
		}
	}
	if counts[Current] != 1 {
		errs = append(errs, fmt.Errorf("%d current keys, want exactly 1", counts[Current]))
	}
	if counts[Next] > 1 {
		errs = append(errs, fmt.Errorf("%d next keys, want at most 1", counts[Next]))
	}
	return errors.Join(errs...)
}

// checkPublic makes sure a stored public JWK is public and carries the key's kid and alg.
func checkPublic(k Key) error {
	parsed, err := jwk.ParseKey(k.Public)
	if err != nil {
		return fmt.Errorf("public JWK: %w", err)
	}
	switch parsed.(type) {
	case jwk.RSAPublicKey, jwk.ECDSAPublicKey, jwk.OKPPublicKey:
	default:
		return fmt.Errorf("public JWK is a %s key with private members", parsed.KeyType())
	}
	if parsed.KeyID() != k.KID || parsed.Algorithm().String() != k.Alg {
		return fmt.Errorf("public JWK has kid %q alg %q, state says %q %q",
			parsed.KeyID(), parsed.Algorithm(), k.KID, k.Alg)
	}
	sum, err := parsed.Thumbprint(crypto.SHA256)
	if err != nil || base64.RawURLEncoding.EncodeToString(sum) != k.KID {
		return errors.New("kid is not the RFC 7638 thumbprint of the public JWK")
	}
	return nil
}
