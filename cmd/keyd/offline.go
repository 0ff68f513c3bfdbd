package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/keyd-io/keyd/backends"
	"github.com/keyd-io/keyd/config"
	"github.com/keyd-io/keyd/daemon"
	"github.com/keyd-io/keyd/jwks"
	"github.com/keyd-io/keyd/keys"
	"github.com/keyd-io/keyd/rotation"
)

// offlineCommands read the stored state directly (read-only), so they work whether or not
// the daemon runs.
func offlineCommands(configPath *string) []*cobra.Command {
	var jwksKeyset string
	jwksCmd := &cobra.Command{
		Use:   "jwks",
		Short: "Print a keyset's JWKS from the stored state",
		Long: "Print the JSON Web Key Set that keyd serves for a keyset, built from the\n" +
			"stored state: the same bytes as GET /.well-known/jwks.json (the default\n" +
			"keyset) or /keysets/NAME/jwks.json. Storage is opened read-only.",
		Example: "  keyd jwks\n  keyd jwks --keyset api --config /etc/keyd/config.toml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, ks, err := configAndKeyset(*configPath, jwksKeyset)
			if err != nil {
				return err
			}
			st, err := openStored(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer st.Close()
			s, err := st.state(cmd.Context(), ks.Name)
			if err != nil {
				return err
			}
			maxAge := min(cfg.Server.JWKSMaxAge.D(), ks.PublishLead.D())
			var out bytes.Buffer
			if err := json.Indent(&out, jwks.Encode(s, maxAge).Body, "", "  "); err != nil {
				return err
			}
			out.WriteByte('\n')
			_, err = cmd.OutOrStdout().Write(out.Bytes())
			return err
		},
	}
	jwksCmd.Flags().StringVar(&jwksKeyset, "keyset", "", "the keyset (default: the default keyset)")

	var (
		signKeyset string
		claims     string
		ttl        time.Duration
	)
	sign := &cobra.Command{
		Use:   "sign --keyset NAME --claims JSON [--ttl D]",
		Short: "Sign a JWT with a keyset's current key",
		Long: "Mint a compact JWS (JWT) signed with the keyset's current key, for tests and\n" +
			"debugging. keyd sets iat to now, exp to now + ttl and the kid header; the\n" +
			"ttl defaults to, and may not exceed, the keyset's token_ttl. Reads the\n" +
			"private key from storage, so it needs the rights of the user keyd runs as.",
		Example: "  keyd sign --keyset api --claims '{\"sub\":\"alice\",\"aud\":\"billing\"}'\n" +
			"  keyd sign --keyset api --claims '{\"sub\":\"ci\"}' --ttl 5m",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if signKeyset == "" {
				return errors.New("--keyset is required")
			}
			cfg, ks, err := configAndKeyset(*configPath, signKeyset)
			if err != nil {
				return err
			}
			if ttl == 0 {
				ttl = ks.TokenTTL.D()
			}
			if ttl < 0 || ttl > ks.TokenTTL.D() {
				return fmt.Errorf("--ttl %s: must be positive and at most keyset %q's "+
					"token_ttl %s", ttl, ks.Name, ks.TokenTTL.D())
			}
			st, err := openStored(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer st.Close()
			token, err := st.sign(cmd.Context(), ks.Name, claims, ttl, time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), token)
			return nil
		},
	}
	sign.Flags().StringVar(&signKeyset, "keyset", "", "the keyset whose current key signs (required)")
	sign.Flags().StringVar(&claims, "claims", "{}", "the token's claims as a JSON object")
	sign.Flags().DurationVar(&ttl, "ttl", 0, "token lifetime (default and maximum: token_ttl)")

	return []*cobra.Command{planCommand(configPath), jwksCmd, sign}
}

// configAndKeyset loads the configuration and finds keyset name (the default keyset when
// name is empty).
func configAndKeyset(configPath, name string) (*config.Config, *config.Keyset, error) {
	cfg, err := loadConfig(configPath)
	if err != nil {
		return nil, nil, err
	}
	if name == "" {
		return cfg, cfg.DefaultKeyset(), nil
	}
	ks := cfg.Keyset(name)
	if ks == nil {
		var names []string
		for _, k := range cfg.Keysets {
			names = append(names, k.Name)
		}
		return nil, nil, fmt.Errorf("no keyset %q in %s (keysets: %s)", name, cfg.Source(),
			strings.Join(names, ", "))
	}
	return cfg, ks, nil
}

// stored is storage opened read-only for the offline commands.
type stored struct {
	daemon.Reader
}

// openStored opens the configured storage without disturbing a running daemon.
func openStored(ctx context.Context, cfg *config.Config) (*stored, error) {
	r, err := daemon.OpenReader(orBackground(ctx), cfg, zap.NewNop())
	if err != nil {
		return nil, err
	}
	return &stored{Reader: r}, nil
}

// state returns keyset name's stored state; backends.ErrNotFound when it never started.
func (s *stored) state(ctx context.Context, name string) (rotation.State, error) {
	store := s.Keyset(name)
	doc, _, err := store.Load(orBackground(ctx))
	if errors.Is(err, backends.ErrNotFound) {
		return rotation.State{}, fmt.Errorf("keyset %q has no stored state at %s yet (keyd "+
			"creates it on its first start): %w", name, store.Location(), err)
	}
	if err != nil {
		return rotation.State{}, fmt.Errorf("keyset %q: %w", name, err)
	}
	st, err := rotation.Decode(doc, name)
	if err != nil {
		return rotation.State{}, fmt.Errorf("keyset %q: %s: %w", name, store.Location(), err)
	}
	return st, nil
}

// sign mints a JWT with keyset name's current key.
func (s *stored) sign(ctx context.Context, name, claimsJSON string, ttl time.Duration,
	now time.Time,
) (string, error) {
	claims, err := parseClaims(claimsJSON)
	if err != nil {
		return "", err
	}
	st, err := s.state(ctx, name)
	if err != nil {
		return "", err
	}
	cur := st.InPhase(rotation.Current)
	data, err := s.Keyset(name).GetKey(orBackground(ctx), cur.KID)
	if err != nil {
		return "", fmt.Errorf("keyset %q: current key %s: %w", name, cur.KID, err)
	}
	key, err := keys.ParsePrivateJWK(data)
	if err != nil {
		return "", fmt.Errorf("keyset %q: current key %s: %w", name, cur.KID, err)
	}

	tok := jwt.New()
	for claim, v := range claims {
		if err := tok.Set(claim, v); err != nil {
			return "", fmt.Errorf("--claims: %s: %w", claim, err)
		}
	}
	now = now.Truncate(time.Second)
	for claim, v := range map[string]any{
		jwt.IssuedAtKey: now, jwt.ExpirationKey: now.Add(ttl),
	} {
		if err := tok.Set(claim, v); err != nil {
			return "", fmt.Errorf("set %s: %w", claim, err)
		}
	}
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.KeyIDKey, key.KID); err != nil {
		return "", err
	}
	if err := hdr.Set(jws.TypeKey, "JWT"); err != nil {
		return "", err
	}
	signed, err := jwt.Sign(tok, jwt.WithKey(jwa.SignatureAlgorithm(key.Alg), key.Signer,
		jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", fmt.Errorf("sign with %s (%s): %w", key.KID, key.Alg, err)
	}
	return string(signed), nil
}

// parseClaims decodes --claims: a JSON object without iat and exp, which keyd sets.
func parseClaims(text string) (map[string]any, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil {
		return nil, fmt.Errorf("--claims: not a JSON object: %w", err)
	}
	if dec.More() {
		return nil, errors.New("--claims: trailing data after the JSON object")
	}
	for _, claim := range []string{jwt.IssuedAtKey, jwt.ExpirationKey} {
		if _, ok := claims[claim]; ok {
			return nil, fmt.Errorf("--claims: %q is set by keyd (use --ttl)", claim)
		}
	}
	return claims, nil
}

func orBackground(ctx context.Context) context.Context {
	if ctx == nil {
		return context.Background()
	}
	return ctx
}
