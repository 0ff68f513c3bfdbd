package vault

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
	"go.uber.org/zap"
)

// Login retry bounds: while Vault is down every replica waits longer between attempts,
// with jitter, so that Vault coming back is not met by a storm of logins.
const (
	loginRetryInitial = time.Second
	loginRetryMax     = 2 * time.Minute
)

// session holds the client's login: it logs in, renews the token while Vault allows, and
// logs in again (or re-reads token_file) when the token can no longer be renewed.
type session struct {
	client *api.Client
	opts   Options
	log    *zap.Logger

	// secret is the last login's result, used to renew it; nil before the first login.
	secret *api.Secret
	// sleep waits between login attempts; replaced in tests.
	sleep func(ctx context.Context, d time.Duration) bool
}

func newSession(client *api.Client, opts Options) (*session, error) {
	switch opts.Auth {
	case "token", "approle":
	default:
		return nil, fmt.Errorf("storage.vault.auth: %q is not one of token, approle", opts.Auth)
	}
	return &session{client: client, opts: opts, log: opts.Log, sleep: sleepCtx}, nil
}

// login obtains a token and sets it on the client. A token's own TTL is looked up so that
// a renewable token is renewed like an AppRole login is.
func (s *session) login(ctx context.Context) error {
	var (
		secret *api.Secret
		err    error
	)
	if s.opts.Auth == "approle" {
		secret, err = s.loginAppRole(ctx)
	} else {
		secret, err = s.loginToken(ctx)
	}
	if err != nil {
		return err
	}
	s.secret = secret
	s.log.Info("logged in to Vault", zap.String("auth", s.opts.Auth),
		zap.Duration("ttl", time.Duration(secret.Auth.LeaseDuration)*time.Second),
		zap.Bool("renewable", secret.Auth.Renewable))
	return nil
}

func (s *session) loginToken(ctx context.Context) (*api.Secret, error) {
	token, setting := os.Getenv(api.EnvVaultToken), "VAULT_TOKEN"
	if s.opts.TokenFile != "" {
		data, err := readSecretFile(s.opts.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("storage.vault.token_file: %w", err)
		}
		token, setting = data, "storage.vault.token_file"
	}
	if token == "" {
		return nil, errors.New("storage.vault.auth: token auth needs token_file or the " +
			"VAULT_TOKEN environment variable")
	}
	s.client.SetToken(token)
	self, err := s.client.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("storage.vault.auth: the token from %s is not valid: %w",
			setting, err)
	}
	if self == nil || self.Data == nil {
		return nil, fmt.Errorf("storage.vault.auth: looking up the token from %s gave no "+
			"answer%s", setting, warnings(self))
	}
	ttl, _ := self.TokenTTL()
	renewable, _ := self.TokenIsRenewable()
	return &api.Secret{Auth: &api.SecretAuth{
		ClientToken:   token,
		Renewable:     renewable,
		LeaseDuration: int(ttl.Seconds()),
	}}, nil
}

func (s *session) loginAppRole(ctx context.Context) (*api.Secret, error) {
	roleID, err := readSecretFile(s.opts.RoleIDFile)
	if err != nil {
		return nil, fmt.Errorf("storage.vault.role_id_file: %w", err)
	}
	secretID, err := readSecretFile(s.opts.SecretIDFile)
	if err != nil {
		return nil, fmt.Errorf("storage.vault.secret_id_file: %w", err)
	}
	// The login request must not carry a previous, possibly expired token, and the
	// shared client keeps its token for requests in flight until the new one is set.
	anon, err := s.client.Clone()
	if err != nil {
		return nil, fmt.Errorf("storage.vault.auth: %w", err)
	}
	anon.ClearToken()
	if s.opts.Namespace != "" {
		anon.SetNamespace(s.opts.Namespace)
	}
	secret, err := anon.Logical().WriteWithContext(ctx, "auth/approle/login",
		map[string]any{"role_id": roleID, "secret_id": secretID})
	if err != nil {
		return nil, fmt.Errorf("storage.vault.auth: approle login: %w", err)
	}
	if secret == nil || secret.Auth == nil || secret.Auth.ClientToken == "" {
		return nil, fmt.Errorf("storage.vault.auth: approle login returned no token%s",
			warnings(secret))
	}
	s.client.SetToken(secret.Auth.ClientToken)
	return secret, nil
}

// maintain keeps the client logged in until ctx ends: it renews the token for as long as
// Vault allows, then logs in again, backing off with jitter while logins fail.
func (s *session) maintain(ctx context.Context) {
	for ctx.Err() == nil {
		s.watch(ctx)
		if ctx.Err() != nil {
			return
		}
		s.relogin(ctx)
	}
}

// watch renews the current token until it can no longer be renewed, then returns. A
// token that does not expire (a root token, a periodic token without TTL) is kept until
// ctx ends.
func (s *session) watch(ctx context.Context) {
	if s.secret.Auth.LeaseDuration == 0 {
		<-ctx.Done()
		return
	}
	w, err := s.client.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: s.secret})
	if err != nil {
		s.log.Error("cannot renew the Vault token; logging in again", zap.Error(err))
		return
	}
	go w.Start()
	defer w.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case err := <-w.DoneCh():
			if err != nil {
				s.log.Warn("Vault token renewal ended; logging in again", zap.Error(err))
			} else {
				s.log.Info("Vault token reached its maximum lifetime; logging in again")
			}
			return
		case r := <-w.RenewCh():
			if r != nil && r.Secret != nil && r.Secret.Auth != nil {
				s.log.Debug("renewed Vault token", zap.Duration("ttl",
					time.Duration(r.Secret.Auth.LeaseDuration)*time.Second))
			}
		}
	}
}

// relogin logs in until it succeeds or ctx ends, waiting longer after each failure.
func (s *session) relogin(ctx context.Context) {
	var lastErr string
	for attempt := 0; ; attempt++ {
		err := s.login(ctx)
		if err == nil {
			return
		}
		if err.Error() != lastErr {
			s.log.Error("Vault login failed; will retry", zap.Error(err))
			lastErr = err.Error()
		}
		if !s.sleep(ctx, loginBackoff(attempt)) {
			return
		}
	}
}

// loginBackoff returns the wait after failed login number attempt (from 0): it doubles
// from loginRetryInitial up to loginRetryMax, and a random half of it is jitter, so that
// replicas that lost Vault together do not come back together.
func loginBackoff(attempt int) time.Duration {
	d := loginRetryMax
	if attempt < 16 {
		d = min(loginRetryMax, loginRetryInitial<<attempt)
	}
	return d/2 + rand.N(d/2+1)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// readSecretFile returns a file's content without surrounding whitespace. The content
// is never part of an error.
func readSecretFile(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	v := strings.TrimSpace(string(data))
	if v == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return v, nil
}
