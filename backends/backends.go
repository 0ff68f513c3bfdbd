// Package backends holds what every storage backend shares: the errors the rotation
// engine tests for with errors.Is, and the record of a stored private key.
package backends

import (
	"errors"
	"time"
)

var (
	// ErrNotFound means the thing asked for has never been stored.
	ErrNotFound = errors.New("not found")
	// ErrConflict means a check-and-set write lost: the state changed since it was read.
	ErrConflict = errors.New("state changed since it was read")
)

// StoredKey describes one private key held by a backend.
type StoredKey struct {
	KID       string
	CreatedAt time.Time
}
