package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/keyd-io/keyd/config"
)

// maxResponseBytes bounds how much of a receiver's answer is read (and thrown away).
const maxResponseBytes = 64 << 10

// webhook posts signed events to one URL.
type webhook struct {
	url     string
	label   string // url with credentials and query redacted
	secret  Secret
	timeout time.Duration
	client  *http.Client
	now     func() time.Time
}

func newWebhook(cfg config.Webhook, now func() time.Time) (*webhook, error) {
	secret, err := LoadSecret(cfg.SecretFile)
	if err != nil {
		return nil, fmt.Errorf("secret_file: %w", err)
	}
	return &webhook{
		url:     cfg.URL,
		label:   redactURL(cfg.URL),
		secret:  secret,
		timeout: cfg.Timeout.D(),
		now:     now,
		client: &http.Client{
			// A redirect is a configuration mistake; following it would send the signed
			// event somewhere nobody configured.
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		},
	}, nil
}

// deliver makes one signed POST. 2xx is success; 5xx, 408, 429 and network errors are
// retried (after Retry-After when given); anything else is permanent.
func (w *webhook) deliver(ctx context.Context, p *pending) error {
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url,
		bytes.NewReader(p.Body))
	if err != nil {
		return permanent(fmt.Errorf("build request to %s: %w", w.label, stripURL(err)))
	}
	timestamp := w.now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "keyd")
	req.Header.Set("webhook-id", p.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(timestamp, 10))
	req.Header.Set("webhook-signature", w.secret.Sign(p.ID, timestamp, p.Body))

	resp, err := w.client.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("post to %s: no answer within %s", w.label, w.timeout)
		}
		return fmt.Errorf("post to %s: %w", w.label, stripURL(err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
	resp.Body.Close()

	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		return nil
	case code >= 500 || code == http.StatusRequestTimeout || code == http.StatusTooManyRequests:
		err := fmt.Errorf("%s answered %s", w.label, resp.Status)
		return retryAfter(err, parseRetryAfter(resp.Header.Get("Retry-After"), w.now()))
	default:
		return permanent(fmt.Errorf("%s answered %s", w.label, resp.Status))
	}
}

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP date. It returns 0
// when the header is absent or unreadable.
func parseRetryAfter(value string, now time.Time) time.Duration {
	if value == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(value, 10, 64); err == nil {
		if secs < 0 {
			return 0
		}
		return time.Duration(min(secs, int64(365*24*time.Hour/time.Second))) * time.Second
	}
	if at, err := http.ParseTime(value); err == nil && at.After(now) {
		return at.Sub(now)
	}
	return 0
}
