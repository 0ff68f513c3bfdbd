package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// secretPrefix marks a Standard Webhooks signing secret.
const secretPrefix = "whsec_"

// Secret bounds of the Standard Webhooks specification, in bytes after decoding.
const (
	minSecretBytes = 24
	maxSecretBytes = 64
)

// redacted is what a Secret prints as, whatever the verb or encoder.
const redacted = "[redacted]"

// Secret is a webhook signing key. It never prints, logs or marshals its value: every
// formatting path yields "[redacted]".
type Secret struct{ key []byte }

// LoadSecret reads a "whsec_<base64>" secret from path. Errors name the file, never its
// content.
func LoadSecret(path string) (Secret, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Secret{}, fmt.Errorf("read secret: %w", err)
	}
	s, err := ParseSecret(string(data))
	if err != nil {
		return Secret{}, fmt.Errorf("secret in %s: %w", path, err)
	}
	return s, nil
}

// ParseSecret decodes a "whsec_<base64>" secret (the prefix is optional). Errors never
// quote the text.
func ParseSecret(text string) (Secret, error) {
	text = strings.TrimPrefix(strings.TrimSpace(text), secretPrefix)
	key, err := base64.StdEncoding.DecodeString(text)
	if err != nil {
		return Secret{}, errors.New("not \"whsec_\" followed by standard base64")
	}
	if len(key) < minSecretBytes || len(key) > maxSecretBytes {
		return Secret{}, fmt.Errorf("decodes to %d bytes; want %d to %d", len(key),
			minSecretBytes, maxSecretBytes)
	}
	return Secret{key: key}, nil
}

// Sign returns the Standard Webhooks signature header value of one attempt:
// "v1," and the base64 HMAC-SHA256 of "<id>.<timestamp>.<body>".
func (s Secret) Sign(id string, timestamp int64, body []byte) string {
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(strconv.FormatInt(timestamp, 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// String returns "[redacted]".
func (Secret) String() string { return redacted }

// GoString returns "[redacted]", so %#v hides the key too.
func (Secret) GoString() string { return redacted }

// Format writes "[redacted]" for every verb (%d and %x included).
func (Secret) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// MarshalText returns "[redacted]", for JSON, TOML and log encoders.
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// MarshalJSON returns "[redacted]" as a JSON string.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }
