package notify

import (
	"errors"
	"net/url"
)

// redactURL returns u fit for logs and errors: credentials and the query, which often hold
// tokens, are replaced by "redacted".
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<invalid url>"
	}
	if u.User != nil {
		u.User = url.User("redacted")
	}
	if u.RawQuery != "" {
		u.RawQuery = "redacted"
	}
	u.Fragment = ""
	return u.String()
}

// stripURL removes the *url.Error layer that net/http puts around its errors, which
// quotes the request URL; the caller names the destination itself, redacted.
func stripURL(err error) error {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		return uerr.Err
	}
	return err
}
