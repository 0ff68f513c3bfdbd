package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"time"
)

// Notification defaults, used for every [notify] key the file leaves out.
const (
	DefaultWebhookTimeout = 10 * time.Second
	DefaultExecTimeout    = 30 * time.Second
	DefaultBackoffInitial = time.Second
	DefaultBackoffMax     = 5 * time.Minute
	DefaultGiveUpAfter    = 24 * time.Hour
	outboxName            = ".outbox"
)

// EventTypes lists the events keyd sends to issuers, in lifecycle order.
var EventTypes = []string{
	"key.published", "key.activated", "key.retired", "key.removed", "key.revoked",
}

// Notify configures how issuers are told about key changes.
type Notify struct {
	// Dir holds the outbox of pending deliveries; <storage.disk.dir>/.outbox by default.
	Dir string `toml:"dir"`
	// JWKSBaseURL is the scheme and authority (and optional path prefix) put in front of
	// /keysets/<name>/jwks.json in every event's jwks_uri. By default it is derived from
	// server.listen and the TLS settings.
	JWKSBaseURL string    `toml:"jwks_base_url"`
	Webhooks    []Webhook `toml:"webhook"`
	Exec        []Exec    `toml:"exec"`
}

// Retry is the retry policy shared by webhooks and exec hooks.
type Retry struct {
	Timeout        Duration `toml:"timeout"`
	BackoffInitial Duration `toml:"backoff_initial"`
	BackoffMax     Duration `toml:"backoff_max"`
	GiveUpAfter    Duration `toml:"give_up_after"`
}

// Webhook is one HTTP receiver of signed events.
type Webhook struct {
	URL        string   `toml:"url"`
	SecretFile string   `toml:"secret_file"`
	Events     []string `toml:"events"`
	Retry
}

// Exec is one command run once per event, with the event on its standard input.
type Exec struct {
	Command []string `toml:"command"`
	Events  []string `toml:"events"`
	Retry
}

// Enabled reports whether any webhook or exec hook is configured.
func (n *Notify) Enabled() bool { return len(n.Webhooks) > 0 || len(n.Exec) > 0 }

func (n *Notify) applyDefaults(s *Storage) {
	if n.Dir == "" && s.Backend == "disk" {
		n.Dir = filepath.Join(s.Disk.Dir, outboxName)
	}
	for i := range n.Webhooks {
		n.Webhooks[i].Retry.applyDefaults(DefaultWebhookTimeout)
		if len(n.Webhooks[i].Events) == 0 {
			n.Webhooks[i].Events = EventTypes
		}
	}
	for i := range n.Exec {
		n.Exec[i].Retry.applyDefaults(DefaultExecTimeout)
		if len(n.Exec[i].Events) == 0 {
			n.Exec[i].Events = EventTypes
		}
	}
}

func (r *Retry) applyDefaults(timeout time.Duration) {
	if r.Timeout == 0 {
		r.Timeout = Duration(timeout)
	}
	if r.BackoffInitial == 0 {
		r.BackoffInitial = Duration(DefaultBackoffInitial)
	}
	if r.BackoffMax == 0 {
		r.BackoffMax = Duration(max(DefaultBackoffMax, r.BackoffInitial.D()))
	}
	if r.GiveUpAfter == 0 {
		r.GiveUpAfter = Duration(DefaultGiveUpAfter)
	}
}

func (n *Notify) validate() []error {
	var errs []error
	add := func(key string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}

	if n.Dir == "" && n.Enabled() {
		add("notify.dir", "required when storage.backend is not disk: pending deliveries "+
			"are kept on local disk")
	}
	if n.JWKSBaseURL != "" {
		u, err := url.Parse(n.JWKSBaseURL)
		switch {
		case err != nil:
			add("notify.jwks_base_url", "%q is not a URL", n.JWKSBaseURL)
		case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			add("notify.jwks_base_url", "%q must be an absolute http or https URL",
				n.JWKSBaseURL)
		case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
			add("notify.jwks_base_url", "%q must not carry credentials, a query or a fragment",
				n.JWKSBaseURL)
		}
	}
	urls, commands := map[string]bool{}, map[string]bool{}
	for i, w := range n.Webhooks {
		prefix := fmt.Sprintf("notify.webhook[%d]", i)
		if urls[w.URL] && w.URL != "" {
			add(prefix+".url", "the same URL is configured twice; list every event in one entry")
		}
		urls[w.URL] = true
		u, err := url.Parse(w.URL)
		switch {
		case w.URL == "":
			add(prefix+".url", "required")
		case err != nil:
			// url.Parse quotes the whole URL in its error; it may carry credentials.
			add(prefix+".url", "not a valid URL")
		case (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			add(prefix+".url", "must be an absolute http or https URL")
		}
		if w.SecretFile == "" {
			add(prefix+".secret_file", "required: every webhook is signed")
		}
		errs = append(errs, validateEvents(prefix, w.Events)...)
		errs = append(errs, w.Retry.validate(prefix)...)
	}
	for i, x := range n.Exec {
		prefix := fmt.Sprintf("notify.exec[%d]", i)
		if id := fmt.Sprintf("%q", x.Command); commands[id] {
			add(prefix+".command", "the same command is configured twice; list every event "+
				"in one entry")
		} else {
			commands[id] = true
		}
		if len(x.Command) == 0 || x.Command[0] == "" {
			add(prefix+".command", "required: the program and its arguments, as a list")
		}
		errs = append(errs, validateEvents(prefix, x.Events)...)
		errs = append(errs, x.Retry.validate(prefix)...)
	}
	return errs
}

func validateEvents(prefix string, events []string) []error {
	var errs []error
	seen := map[string]bool{}
	for _, e := range events {
		if !validEvent(e) {
			errs = append(errs, fmt.Errorf("%s.events: %q is not one of %v", prefix, e,
				EventTypes))
		}
		if seen[e] {
			errs = append(errs, fmt.Errorf("%s.events: %q listed twice", prefix, e))
		}
		seen[e] = true
	}
	return errs
}

func (r *Retry) validate(prefix string) []error {
	var errs []error
	add := func(key string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", prefix, key, fmt.Sprintf(format, args...)))
	}
	if r.Timeout.D() < time.Millisecond {
		add("timeout", "must be at least 1ms, got %s", r.Timeout.D())
	}
	if r.BackoffInitial.D() < time.Millisecond {
		add("backoff_initial", "must be at least 1ms, got %s", r.BackoffInitial.D())
	}
	if r.BackoffMax < r.BackoffInitial {
		add("backoff_max", "%s is shorter than backoff_initial %s", r.BackoffMax.D(),
			r.BackoffInitial.D())
	}
	if r.GiveUpAfter < r.BackoffInitial {
		add("give_up_after", "%s is shorter than backoff_initial %s: no retry could happen",
			r.GiveUpAfter.D(), r.BackoffInitial.D())
	}
	return errs
}

func validEvent(e string) bool {
	for _, t := range EventTypes {
		if t == e {
			return true
		}
	}
	return false
}
