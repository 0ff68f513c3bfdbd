// Package vault stores keysets in a HashiCorp Vault KV version 2 mount:
//
//	<mount>/data/<prefix>/<keyset>/state       the keyset's state document (field "state")
//	<mount>/data/<prefix>/<keyset>/keys/<kid>  one private JWK per key (field "jwk")
//	<mount>/data/<prefix>/<keyset>/current     the current key for issuers: kid, alg, jwk, pem
//
// The state is written with KV check-and-set, so when several keyd replicas share the
// mount exactly one of them commits a given change; its version is the KV version. A
// private key is destroyed by deleting its metadata, which removes every version.
package vault

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"
	"go.uber.org/zap"
)

// Client limits: a slow or absent Vault fails a request quickly, and the rotation runner's
// own backoff decides when to try again.
const (
	requestTimeout = 10 * time.Second
	clientRetries  = 1
)

// Options configures Open; the names follow the [storage.vault] settings.
type Options struct {
	Address string
	Mount   string
	Prefix  string
	// Auth is "token" (TokenFile, else $VAULT_TOKEN) or "approle" (RoleIDFile, SecretIDFile).
	Auth         string
	TokenFile    string
	RoleIDFile   string
	SecretIDFile string
	// CACert is a PEM file of CA certificates to trust for Vault's TLS certificate.
	CACert    string
	Namespace string
	// Keysets are the keysets whose paths the token's capabilities are checked on at Open.
	Keysets []string
	Log     *zap.Logger
}

// Backend is a connection to Vault, logged in and kept logged in.
type Backend struct {
	client *api.Client
	layout layout
	auth   *session
	log    *zap.Logger

	stop context.CancelFunc
	done sync.WaitGroup
}

// Open connects to Vault, logs in and checks, before keyd relies on it, that Vault is
// reachable and unsealed, that the mount is KV version 2 and that the token may do
// everything keyd needs under the prefix. Each refusal names the setting to fix. The
// login is then renewed, and repeated when it can no longer be renewed, until Close.
func Open(ctx context.Context, opts Options) (*Backend, error) {
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	l, err := newLayout(opts.Mount, opts.Prefix)
	if err != nil {
		return nil, err
	}
	client, err := newClient(opts)
	if err != nil {
		return nil, err
	}
	if err := checkHealth(ctx, client); err != nil {
		return nil, err
	}
	auth, err := newSession(client, opts)
	if err != nil {
		return nil, err
	}
	if err := auth.login(ctx); err != nil {
		return nil, err
	}
	if err := checkMount(ctx, client, l); err != nil {
		return nil, err
	}
	if err := checkCapabilities(ctx, client, l, opts.Keysets); err != nil {
		return nil, err
	}

	b := &Backend{client: client, layout: l, auth: auth, log: opts.Log}
	runCtx, cancel := context.WithCancel(context.Background())
	b.stop = cancel
	b.done.Add(1)
	go func() {
		defer b.done.Done()
		auth.maintain(runCtx)
	}()
	return b, nil
}

// Close stops renewing the login. It does not revoke the token: a token from a file or
// the environment belongs to whoever issued it.
func (b *Backend) Close() error {
	b.stop()
	b.done.Wait()
	return nil
}

// Keyset returns the store of one keyset.
func (b *Backend) Keyset(name string) *Store {
	return &Store{client: b.client, layout: b.layout, keyset: name}
}

func newClient(opts Options) (*api.Client, error) {
	cfg := api.DefaultConfig()
	if cfg.Error != nil {
		return nil, fmt.Errorf("storage.vault: %w", cfg.Error)
	}
	if opts.Address != "" {
		cfg.Address = opts.Address
	}
	cfg.Timeout = requestTimeout
	cfg.MaxRetries = clientRetries
	if opts.CACert != "" {
		if _, err := os.Stat(opts.CACert); err != nil {
			return nil, fmt.Errorf("storage.vault.ca_cert: %w", err)
		}
		if err := cfg.ConfigureTLS(&api.TLSConfig{CACert: opts.CACert}); err != nil {
			return nil, fmt.Errorf("storage.vault.ca_cert: %w", err)
		}
	}
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("storage.vault.address: %w", err)
	}
	// NewClient picks VAULT_TOKEN up from the environment; the session decides instead.
	client.ClearToken()
	if opts.Namespace != "" {
		client.SetNamespace(opts.Namespace)
	}
	return client, nil
}

// checkHealth refuses a Vault that cannot be reached, is not initialised or is sealed.
func checkHealth(ctx context.Context, client *api.Client) error {
	h, err := client.Sys().HealthWithContext(ctx)
	switch {
	case err != nil:
		return fmt.Errorf("storage.vault.address: cannot reach Vault at %s: %w",
			client.Address(), err)
	case !h.Initialized:
		return fmt.Errorf("storage.vault.address: Vault at %s is not initialised",
			client.Address())
	case h.Sealed:
		return fmt.Errorf("storage.vault.address: Vault at %s is sealed; unseal it first",
			client.Address())
	}
	return nil
}

// checkMount refuses a mount that does not exist, is not a KV secrets engine of version 2,
// or is only part of a longer mount path.
func checkMount(ctx context.Context, client *api.Client, l layout) error {
	s, err := client.Logical().ReadWithContext(ctx, "sys/internal/ui/mounts/"+l.mount)
	if err != nil {
		return fmt.Errorf("storage.vault.mount: look up mount %q: %w", l.mount, err)
	}
	if s == nil || s.Data == nil {
		return fmt.Errorf("storage.vault.mount: %q is not a mount this token can see%s",
			l.mount, warnings(s))
	}
	mountPath := strings.Trim(fmt.Sprint(s.Data["path"]), "/")
	if mountPath != l.mount {
		return fmt.Errorf("storage.vault.mount: %q lies inside mount %q; set mount = %q and "+
			"put the rest in prefix", l.mount, mountPath, mountPath)
	}
	kind, _ := s.Data["type"].(string)
	version := ""
	if o, ok := s.Data["options"].(map[string]any); ok {
		version, _ = o["version"].(string)
	}
	if kind != "kv" || version != "2" {
		if kind == "kv" && version == "" {
			version = "1"
		}
		return fmt.Errorf("storage.vault.mount: %q is a %s secrets engine (version %s); keyd "+
			"needs KV version 2 for check-and-set writes: `vault secrets enable -path=%s kv-v2` "+
			"or `vault kv enable-versioning %s`", l.mount, kind, orNone(version), l.mount, l.mount)
	}
	return nil
}

// Every capability keyd uses, by path. "root" grants them all.
var needed = []struct {
	path func(l layout, keyset string) string
	caps []string
}{
	{func(l layout, ks string) string { return l.data(ks, "state") },
		[]string{"create", "read", "update"}},
	{func(l layout, ks string) string { return l.data(ks, "current") },
		[]string{"create", "update"}},
	{func(l layout, ks string) string { return l.data(ks, "keys", "probe") },
		[]string{"create", "read", "update"}},
	{func(l layout, ks string) string { return l.metadata(ks, "keys", "probe") },
		[]string{"read", "delete"}},
	{func(l layout, ks string) string { return l.metadata(ks, "keys") },
		[]string{"list"}},
	{func(l layout, ks string) string { return l.metadata(ks) },
		[]string{"list"}},
}

// checkCapabilities asks Vault which capabilities the token has on every path keyd uses
// for each keyset, and refuses a token that lacks any.
func checkCapabilities(ctx context.Context, client *api.Client, l layout, keysets []string,
) error {
	var errs []error
	for _, ks := range keysets {
		for _, n := range needed {
			p := n.path(l, ks)
			have, err := client.Sys().CapabilitiesSelfWithContext(ctx, p)
			if err != nil {
				return fmt.Errorf("storage.vault.auth: look up the token's capabilities on %s: %w",
					p, err)
			}
			if missing := lacking(have, n.caps); len(missing) > 0 {
				errs = append(errs, fmt.Errorf("%s: missing %s", p, strings.Join(missing, ", ")))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("storage.vault.auth: the token's policies do not allow what keyd "+
			"needs:\n%w", errors.Join(errs...))
	}
	return nil
}

func lacking(have, want []string) []string {
	set := map[string]bool{}
	for _, c := range have {
		set[c] = true
	}
	if set["root"] {
		return nil
	}
	var out []string
	for _, c := range want {
		if !set[c] {
			out = append(out, c)
		}
	}
	return out
}

// warnings renders the warnings Vault attached to a response, for error messages.
func warnings(s *api.Secret) string {
	if s == nil || len(s.Warnings) == 0 {
		return ""
	}
	return " (Vault says: " + strings.Join(s.Warnings, "; ") + ")"
}

func orNone(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
