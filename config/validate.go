package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Algorithms lists every signing algorithm keyd can create keys for.
var Algorithms = []string{
	"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
}

// keysetName keeps keyset names safe as path segments in URLs, directories and Vault paths.
var keysetName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// maxSocketPath is the longest Unix socket path Linux accepts (sun_path less its NUL).
const maxSocketPath = 107

// scheduleHorizon bounds how far ahead the schedule is scanned for its shortest gap.
const (
	scheduleHorizon  = 366 * 24 * time.Hour
	scheduleMaxFires = 20000
)

func (c *Config) validate() error {
	var errs []error
	add := func(key string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}

	if _, _, err := net.SplitHostPort(c.Server.Listen); err != nil {
		add("server.listen", "%q is not host:port: %v", c.Server.Listen, err)
	}
	if (c.Server.TLSCertFile == "") != (c.Server.TLSKeyFile == "") {
		add("server.tls_cert_file", "tls_cert_file and tls_key_file must be set together")
	}
	if c.Server.JWKSMaxAge.D() < time.Second {
		add("server.jwks_max_age", "must be at least 1s, got %s", c.Server.JWKSMaxAge.D())
	}
	if n := len(c.Server.AdminSocket); n > maxSocketPath {
		add("server.admin_socket", "%q is %d bytes; a Unix socket path may have at most %d",
			c.Server.AdminSocket, n, maxSocketPath)
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		add("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "console":
	default:
		add("log.format", "%q is not one of json, console", c.Log.Format)
	}
	errs = append(errs, c.Storage.validate()...)
	if c.Storage.Backend == "vault" {
		// Replicas learn of a new next key only at their next refresh; it must reach them
		// all before it may sign.
		for _, k := range c.Keysets {
			if k.PublishLead > 0 && c.Storage.Vault.Refresh > k.PublishLead {
				add("storage.vault.refresh", "%s is longer than publish_lead %s of keyset %q: "+
					"other replicas would serve a new key only after it may already sign",
					c.Storage.Vault.Refresh.D(), k.PublishLead.D(), k.Name)
			}
		}
	}

	seen := map[string]bool{}
	gaps := map[string]time.Duration{}
	for i := range c.Keysets {
		k := &c.Keysets[i]
		prefix := fmt.Sprintf("keyset[%d] (%q)", i, k.Name)
		if c.Storage.Backend == "disk" &&
			filepath.Clean(c.Server.AdminSocket) == filepath.Join(c.Storage.Disk.Dir, k.Name) {
			add(prefix+": name", "%q is the admin socket's name in the storage dir; rename the "+
				"keyset or set server.admin_socket", k.Name)
		}
		if seen[k.Name] {
			add(prefix+": name", "%q is already the name of an earlier keyset", k.Name)
		}
		seen[k.Name] = true
		for _, err := range k.validate(gaps) {
			errs = append(errs, fmt.Errorf("%s: %w", prefix, err))
		}
	}
	errs = append(errs, c.Notify.validate()...)
	return errors.Join(errs...)
}

func (s *Storage) validate() []error {
	var errs []error
	switch s.Backend {
	case "disk":
		if _, err := parseMode(s.Disk.FileMode); err != nil {
			errs = append(errs, fmt.Errorf("storage.disk.file_mode: %w", err))
		}
	case "vault":
		v := s.Vault
		if v.Address == "" && os.Getenv("VAULT_ADDR") == "" {
			errs = append(errs, fmt.Errorf("storage.vault.address: required (or set VAULT_ADDR)"))
		}
		switch v.Auth {
		case "token":
		case "approle":
			if v.RoleIDFile == "" || v.SecretIDFile == "" {
				errs = append(errs, fmt.Errorf("storage.vault.auth: approle needs role_id_file "+
					"and secret_id_file"))
			}
		default:
			errs = append(errs, fmt.Errorf("storage.vault.auth: %q is not one of token, approle",
				v.Auth))
		}
		if v.Refresh.D() < time.Second {
			errs = append(errs, fmt.Errorf("storage.vault.refresh: must be at least 1s"))
		}
	default:
		errs = append(errs, fmt.Errorf("storage.backend: %q is not one of disk, vault", s.Backend))
	}
	return errs
}

// validate checks one keyset. gaps remembers each schedule's shortest gap, since a year
// of fires takes a millisecond or two to scan and many keysets share one schedule.
func (k *Keyset) validate(gaps map[string]time.Duration) []error {
	var errs []error
	add := func(key string, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
	}

	if !keysetName.MatchString(k.Name) {
		add("name", "%q must be 1-64 letters, digits, '.', '_' or '-', not starting with "+
			"'.', '_' or '-'", k.Name)
	}
	if !validAlgorithm(k.Algorithm) {
		add("algorithm", "%q is not one of %s", k.Algorithm, strings.Join(Algorithms, " "))
	}
	if isRSA(k.Algorithm) {
		switch k.RSABits {
		case 2048, 3072, 4096:
		default:
			add("rsa_bits", "%d is not one of 2048, 3072, 4096", k.RSABits)
		}
	} else if k.RSABits != 0 {
		add("rsa_bits", "only RS* and PS* algorithms take rsa_bits, not %s", k.Algorithm)
	}
	if k.TokenTTL.D() <= 0 {
		add("token_ttl", "must be positive")
	}
	if k.Grace < k.TokenTTL {
		add("grace", "%s is shorter than token_ttl %s: a retired key would leave the JWKS "+
			"while tokens it signed are still valid", k.Grace.D(), k.TokenTTL.D())
	}
	if k.PublishLead.D() <= 0 {
		add("publish_lead", "must be positive")
	}

	sched, err := parseSchedule(k.Schedule)
	if err != nil {
		add("schedule", "%q: %v", k.Schedule, err)
		return errs
	}
	k.Cron = sched
	if sched.Next(time.Now()).IsZero() {
		add("schedule", "%q never fires (no matching date within five years)", k.Schedule)
		return errs
	}
	gap, ok := gaps[k.Schedule]
	if !ok {
		gap = shortestGap(sched, time.Now())
		gaps[k.Schedule] = gap
	}
	if gap < k.PublishLead.D() {
		add("schedule", "%q fires every %s at times, more often than publish_lead %s: "+
			"each new key must be published for publish_lead before it signs",
			k.Schedule, gap, k.PublishLead.D())
	}
	return errs
}

// parseSchedule parses a 5-field cron expression or descriptor with an optional
// CRON_TZ= (or TZ=) prefix. The cron library panics on a zone prefix with nothing after
// it, so that shape is refused first, and any other panic becomes an error.
func parseSchedule(spec string) (sched cron.Schedule, err error) {
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		if !strings.Contains(spec, " ") {
			return nil, fmt.Errorf("a time zone prefix must be followed by a space and a " +
				"schedule, as in \"CRON_TZ=Europe/Berlin 0 3 * * *\"")
		}
	}
	defer func() {
		if r := recover(); r != nil {
			sched, err = nil, fmt.Errorf("cannot parse schedule: %v", r)
		}
	}()
	return cron.ParseStandard(spec)
}

// shortestGap returns the shortest time between two fires of s within a year after from.
func shortestGap(s cron.Schedule, from time.Time) time.Duration {
	prev := s.Next(from)
	if prev.IsZero() {
		return scheduleHorizon
	}
	shortest := scheduleHorizon
	for i := 0; i < scheduleMaxFires && prev.Sub(from) < scheduleHorizon; i++ {
		next := s.Next(prev)
		if next.IsZero() {
			break
		}
		shortest = min(shortest, next.Sub(prev))
		prev = next
	}
	return shortest
}

func validAlgorithm(alg string) bool {
	for _, a := range Algorithms {
		if a == alg {
			return true
		}
	}
	return false
}

func isRSA(alg string) bool {
	return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
}

func parseMode(s string) (os.FileMode, error) {
	mode, err := strconv.ParseUint(s, 8, 32)
	if err != nil || mode > 0o777 {
		return 0, fmt.Errorf("%q is not an octal file mode such as \"0600\"", s)
	}
	if mode&0o077&^0o040 != 0 {
		return 0, fmt.Errorf("%q gives private keys to others than the owner and group; "+
			"at most \"0640\"", s)
	}
	if mode&0o600 != 0o600 {
		return 0, fmt.Errorf("%q must let the owner read and write", s)
	}
	return os.FileMode(mode), nil
}
