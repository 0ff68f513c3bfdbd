// Package jwks serves keysets' public keys as JSON Web Key Sets.
//
// A keyset's document (body, ETag, headers) is encoded once per committed state and then
// swapped in atomically; requests only read it, so serving costs no encoding and no
// allocation for the body.
package jwks

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"time"

	"github.com/keyd-io/keyd/rotation"
)

// Document is one keyset's encoded JWKS with the headers served with it.
type Document struct {
	Body []byte
	// ETag is a strong validator derived from Body alone, so every replica serving the
	// same state sends the same ETag.
	ETag string

	header map[string][]string
}

// Encode builds the JWKS of state s: current key first, then next, then retired keys
// newest first, public members only. maxAge bounds how long verifiers may cache it.
func Encode(s rotation.State, maxAge time.Duration) *Document {
	var body bytes.Buffer
	body.WriteString(`{"keys":[`)
	for i, k := range s.Published() {
		if i > 0 {
			body.WriteByte(',')
		}
		body.Write(k.Public)
	}
	body.WriteString("]}")
	return newDocument(body.Bytes(), maxAge)
}

func newDocument(body []byte, maxAge time.Duration) *Document {
	sum := sha256.Sum256(body)
	etag := `"` + base64.RawURLEncoding.EncodeToString(sum[:18]) + `"`
	return &Document{
		Body: body,
		ETag: etag,
		header: map[string][]string{
			"Content-Type":                {"application/json"},
			"Content-Length":              {strconv.Itoa(len(body))},
			"Cache-Control":               {fmt.Sprintf("public, max-age=%d", int(maxAge.Seconds()))},
			"Etag":                        {etag},
			"Access-Control-Allow-Origin": {"*"},
			"X-Content-Type-Options":      {"nosniff"},
		},
	}
}
