// Package config loads, defaults and validates keyd's TOML configuration in one place.
// A Config returned by Load or Default is complete: every default is filled in and every
// rule is checked, so the rest of keyd never re-validates.
package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/robfig/cron/v3"
)

// Built-in defaults, used for every key the file leaves out.
const (
	DefaultListen      = "127.0.0.1:8080"
	DefaultDiskDir     = "./keyd-data"
	DefaultKeyset      = "default"
	DefaultAlgorithm   = "ES256"
	DefaultSchedule    = "@daily"
	DefaultPublishLead = time.Hour
	DefaultTokenTTL    = time.Hour
	DefaultGrace       = time.Hour + 10*time.Minute
	DefaultJWKSMaxAge  = 5 * time.Minute
	DefaultRSABits     = 2048
	DefaultFileMode    = 0o600
	DefaultVaultMount  = "secret"
	DefaultVaultPrefix = "keyd"
	DefaultRefresh     = 10 * time.Second
	adminSocketName    = "admin.sock"
	// maxFileBytes bounds a configuration file, so a wrong path (/dev/zero) fails cleanly.
	maxFileBytes = 1 << 20
)

// Config is keyd's complete, validated configuration.
type Config struct {
	// Path is the file the configuration came from, or "" for the built-in defaults.
	Path    string   `toml:"-"`
	Server  Server   `toml:"server"`
	Log     Log      `toml:"log"`
	Storage Storage  `toml:"storage"`
	Keysets []Keyset `toml:"keyset"`
	Notify  Notify   `toml:"notify"`
}

// Server holds the HTTP listener and admin socket settings.
type Server struct {
	Listen      string   `toml:"listen"`
	AdminSocket string   `toml:"admin_socket"`
	TLSCertFile string   `toml:"tls_cert_file"`
	TLSKeyFile  string   `toml:"tls_key_file"`
	JWKSMaxAge  Duration `toml:"jwks_max_age"`
}

// Log holds the logger settings.
type Log struct {
	Level  string `toml:"level"`
	Format string `toml:"format"`
}

// Storage selects and configures the key storage backend.
type Storage struct {
	Backend string `toml:"backend"`
	Disk    Disk   `toml:"disk"`
	Vault   Vault  `toml:"vault"`
}

// Disk configures the local disk backend.
type Disk struct {
	Dir string `toml:"dir"`
	// FileMode is the mode of current.jwk and current.pem, as octal text ("0600", "0640").
	FileMode string `toml:"file_mode"`
}

// Vault configures the HashiCorp Vault backend (KV version 2).
type Vault struct {
	Address      string   `toml:"address"`
	Mount        string   `toml:"mount"`
	Prefix       string   `toml:"prefix"`
	Auth         string   `toml:"auth"`
	TokenFile    string   `toml:"token_file"`
	RoleIDFile   string   `toml:"role_id_file"`
	SecretIDFile string   `toml:"secret_id_file"`
	CACert       string   `toml:"ca_cert"`
	Namespace    string   `toml:"namespace"`
	Refresh      Duration `toml:"refresh"`
}

// Keyset is one named series of signing keys and its rotation policy.
type Keyset struct {
	Name        string   `toml:"name"`
	Algorithm   string   `toml:"algorithm"`
	RSABits     int      `toml:"rsa_bits"`
	Schedule    string   `toml:"schedule"`
	PublishLead Duration `toml:"publish_lead"`
	TokenTTL    Duration `toml:"token_ttl"`
	Grace       Duration `toml:"grace"`

	// Cron is the parsed Schedule.
	Cron cron.Schedule `toml:"-"`
}

// Load reads the configuration from path; an empty path means the built-in defaults.
// Every error names the file, the key and the reason.
func Load(path string) (*Config, error) {
	if path == "" {
		return Default()
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("config %s: larger than %d bytes; is it the right file?",
			path, maxFileBytes)
	}
	return Parse(data, path)
}

// Parse decodes, defaults and validates a configuration read from path.
func Parse(data []byte, path string) (*Config, error) {
	cfg := &Config{Path: path}
	md, err := toml.Decode(string(data), cfg)
	if err != nil {
		return nil, fmt.Errorf("config %s: %s", path, decodeError(err))
	}
	if len(md.Keys()) == 0 {
		// An empty or truncated file must not quietly become the built-in defaults (on a
		// reload that would drop every configured keyset).
		return nil, fmt.Errorf("config %s: the file sets nothing (empty or truncated?); "+
			"run without --config for the built-in defaults", path)
	}
	var errs []error
	for _, key := range md.Undecoded() {
		errs = append(errs, fmt.Errorf("%s: unknown key", key))
	}
	if len(errs) > 0 {
		return nil, fileError(path, errors.Join(errs...))
	}
	cfg.applyDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fileError(path, err)
	}
	return cfg, nil
}

// Default returns the built-in configuration used when no file is given.
func Default() (*Config, error) {
	cfg := &Config{}
	cfg.applyDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("built-in defaults: %w", err)
	}
	return cfg, nil
}

// Source names where the configuration came from, for messages.
func (c *Config) Source() string {
	if c.Path == "" {
		return "built-in defaults"
	}
	return c.Path
}

// DefaultKeyset returns the keyset served at /.well-known/jwks.json: the one named
// "default", else the first.
func (c *Config) DefaultKeyset() *Keyset {
	for i := range c.Keysets {
		if c.Keysets[i].Name == DefaultKeyset {
			return &c.Keysets[i]
		}
	}
	return &c.Keysets[0]
}

// Keyset returns the keyset with the given name, or nil.
func (c *Config) Keyset(name string) *Keyset {
	for i := range c.Keysets {
		if c.Keysets[i].Name == name {
			return &c.Keysets[i]
		}
	}
	return nil
}

// Mode returns the mode for the files issuers read (current.jwk, current.pem).
func (d Disk) Mode() os.FileMode {
	mode, err := parseMode(d.FileMode)
	if err != nil {
		return DefaultFileMode
	}
	return mode
}

func (c *Config) applyDefaults() {
	if c.Server.Listen == "" {
		c.Server.Listen = DefaultListen
	}
	if c.Server.JWKSMaxAge == 0 {
		c.Server.JWKSMaxAge = Duration(DefaultJWKSMaxAge)
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "json"
	}
	if c.Storage.Backend == "" {
		c.Storage.Backend = "disk"
	}
	if c.Storage.Disk.Dir == "" {
		c.Storage.Disk.Dir = firstDir(os.Getenv("STATE_DIRECTORY"), DefaultDiskDir)
	}
	if c.Storage.Disk.FileMode == "" {
		c.Storage.Disk.FileMode = "0600"
	}
	if c.Server.AdminSocket == "" {
		dir := c.Storage.Disk.Dir
		if c.Storage.Backend != "disk" {
			dir = "."
		}
		c.Server.AdminSocket = filepath.Join(firstDir(os.Getenv("RUNTIME_DIRECTORY"), dir),
			adminSocketName)
	}
	v := &c.Storage.Vault
	if v.Mount == "" {
		v.Mount = DefaultVaultMount
	}
	if v.Prefix == "" {
		v.Prefix = DefaultVaultPrefix
	}
	if v.Auth == "" {
		v.Auth = "token"
	}
	if v.Refresh == 0 {
		v.Refresh = Duration(DefaultRefresh)
	}
	if len(c.Keysets) == 0 {
		c.Keysets = []Keyset{{Name: DefaultKeyset}}
	}
	for i := range c.Keysets {
		c.Keysets[i].applyDefaults()
	}
	c.Notify.applyDefaults(&c.Storage)
}

func (k *Keyset) applyDefaults() {
	if k.Algorithm == "" {
		k.Algorithm = DefaultAlgorithm
	}
	if k.RSABits == 0 && isRSA(k.Algorithm) {
		k.RSABits = DefaultRSABits
	}
	if k.Schedule == "" {
		k.Schedule = DefaultSchedule
	}
	if k.PublishLead == 0 {
		k.PublishLead = Duration(DefaultPublishLead)
	}
	if k.TokenTTL == 0 {
		k.TokenTTL = Duration(DefaultTokenTTL)
	}
	if k.Grace == 0 {
		k.Grace = Duration(max(DefaultGrace, k.TokenTTL.D()+10*time.Minute))
	}
}

// firstDir returns the first entry of a systemd directory list ("a:b"), or fallback.
func firstDir(list, fallback string) string {
	if first, _, _ := strings.Cut(list, ":"); first != "" {
		return first
	}
	return fallback
}

// decodeError rewrites a TOML error so that it shows the line and the key.
func decodeError(err error) string {
	var perr toml.ParseError
	if errors.As(err, &perr) {
		msg := perr.Message
		if perr.LastKey != "" {
			msg = fmt.Sprintf("%s: %s", perr.LastKey, msg)
		}
		return fmt.Sprintf("line %d: %s", perr.Position.Line, msg)
	}
	return err.Error()
}

// fileError prefixes every one of err's problems with the file, one problem per line.
func fileError(path string, err error) error {
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		return fmt.Errorf("config %s: %w", path, err)
	}
	var errs []error
	for _, e := range joined.Unwrap() {
		errs = append(errs, fmt.Errorf("config %s: %w", path, e))
	}
	return errors.Join(errs...)
}
