package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/keyd-io/keyd/backends"
	"github.com/keyd-io/keyd/keys"
)

// Fields of the stored secrets.
const (
	fieldState = "state"
	fieldJWK   = "jwk"
	fieldKID   = "kid"
	fieldAlg   = "alg"
	fieldPEM   = "pem"
)

// kidPattern is the shape of an RFC 7638 SHA-256 thumbprint in base64url; anything else
// is refused before it can become a path.
var kidPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// errDeleted marks a secret whose latest version was deleted but not destroyed.
var errDeleted = errors.New("latest version is deleted")

// Store is one keyset's secrets in Vault. Its methods are safe for concurrent use.
type Store struct {
	client *api.Client
	layout layout
	keyset string
}

// Location names the state secret and the Vault holding it.
func (s *Store) Location() string {
	return fmt.Sprintf("%s at %s", s.layout.data(s.keyset, "state"), s.client.Address())
}

// Load returns the state document and its KV version. A keyset with no state is
// backends.ErrNotFound (first start) unless an issuer key was already published for it:
// then its state was lost, and keyd refuses to create new keys over it. Private keys
// without a state are no reason to refuse: another replica may be creating the keyset
// at this very moment, and the one whose state write loses deletes its keys.
func (s *Store) Load(ctx context.Context) ([]byte, uint64, error) {
	fields, version, err := s.read(ctx, s.layout.data(s.keyset, fieldState))
	switch {
	case errors.Is(err, errDeleted):
		return nil, 0, fmt.Errorf("%s: the state's version %d is deleted; undelete it "+
			"(vault kv undelete -versions=%d %s/%s)", s.Location(), version, version,
			s.layout.mount, s.layout.logical(s.keyset, fieldState))
	case errors.Is(err, backends.ErrNotFound):
		return nil, 0, s.checkNoCurrent(ctx)
	case err != nil:
		return nil, 0, fmt.Errorf("read state: %w", err)
	}
	doc, ok := fields[fieldState].(string)
	if !ok {
		return nil, 0, fmt.Errorf("%s: version %d has no %q field", s.Location(), version,
			fieldState)
	}
	return []byte(doc), version, nil
}

// Save writes the state document with check-and-set on prev (0: none may exist yet) and
// returns the new KV version; backends.ErrConflict when another writer came first. A
// write that Vault does not confirm with a version is a failed write.
func (s *Store) Save(ctx context.Context, doc []byte, prev uint64) (uint64, error) {
	path := s.layout.data(s.keyset, fieldState)
	secret, err := s.client.Logical().WriteWithContext(ctx, path, map[string]any{
		"options": map[string]any{"cas": prev},
		"data":    map[string]any{fieldState: string(doc)},
	})
	if isCASMismatch(err) {
		return 0, fmt.Errorf("%s: %w", path, backends.ErrConflict)
	}
	version, err := confirmed(secret, err)
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", path, err)
	}
	if version <= prev {
		return 0, fmt.Errorf("write %s: Vault answered version %d after version %d", path,
			version, prev)
	}
	return version, nil
}

// PutKey stores a private key under kid.
func (s *Store) PutKey(ctx context.Context, kid string, privateJWK []byte) error {
	path, err := s.keyPath(kid)
	if err != nil {
		return err
	}
	secret, err := s.client.Logical().WriteWithContext(ctx, path, map[string]any{
		"data": map[string]any{fieldJWK: string(privateJWK)},
	})
	if _, err := confirmed(secret, err); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// GetKey returns the private key stored under kid; backends.ErrNotFound if there is none.
func (s *Store) GetKey(ctx context.Context, kid string) ([]byte, error) {
	path, err := s.keyPath(kid)
	if err != nil {
		return nil, err
	}
	fields, _, err := s.read(ctx, path)
	if errors.Is(err, errDeleted) {
		return nil, fmt.Errorf("%s: %w", path, backends.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	jwk, ok := fields[fieldJWK].(string)
	if !ok {
		return nil, fmt.Errorf("%s has no %q field", path, fieldJWK)
	}
	return []byte(jwk), nil
}

// DeleteKey destroys every version of the private key stored under kid; deleting a
// missing key succeeds.
func (s *Store) DeleteKey(ctx context.Context, kid string) error {
	if _, err := s.keyPath(kid); err != nil {
		return err
	}
	path := s.layout.metadata(s.keyset, "keys", kid)
	if _, err := s.client.Logical().DeleteWithContext(ctx, path); err != nil {
		return fmt.Errorf("destroy %s: %w", path, err)
	}
	return nil
}

// ListKeys lists the stored private keys with the time their first version was written.
func (s *Store) ListKeys(ctx context.Context) ([]backends.StoredKey, error) {
	names, err := s.list(ctx, s.layout.metadata(s.keyset, "keys"))
	if err != nil {
		return nil, err
	}
	var out []backends.StoredKey
	for _, kid := range names {
		if !kidPattern.MatchString(kid) {
			// Not a name keyd writes (a folder, or someone else's secret): not ours to sweep.
			continue
		}
		path := s.layout.metadata(s.keyset, "keys", kid)
		meta, err := s.client.Logical().ReadWithContext(ctx, path)
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		if meta == nil || meta.Data == nil {
			// Destroyed between the listing and now.
			continue
		}
		created, err := time.Parse(time.RFC3339Nano, fmt.Sprint(meta.Data["created_time"]))
		if err != nil {
			return nil, fmt.Errorf("read %s: created_time: %w", path, err)
		}
		out = append(out, backends.StoredKey{KID: kid, CreatedAt: created})
	}
	return out, nil
}

// PublishCurrent writes the current key for issuers: kid, alg, the private JWK and PKCS#8 PEM.
func (s *Store) PublishCurrent(ctx context.Context, k *keys.Key) error {
	jwk, err := k.PrivateJWK()
	if err != nil {
		return err
	}
	pem, err := k.PEM()
	if err != nil {
		return err
	}
	path := s.layout.data(s.keyset, "current")
	secret, err := s.client.Logical().WriteWithContext(ctx, path, map[string]any{
		"data": map[string]any{
			fieldKID: k.KID,
			fieldAlg: k.Alg,
			fieldJWK: string(jwk),
			fieldPEM: string(pem),
		},
	})
	if _, err := confirmed(secret, err); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// CurrentPath returns the logical path issuers read the current key from.
func (s *Store) CurrentPath() string {
	return s.layout.mount + "/" + s.layout.logical(s.keyset, "current")
}

// checkNoCurrent returns backends.ErrNotFound when the keyset has never committed a
// state, and an error when it has published a current key whose state is gone.
func (s *Store) checkNoCurrent(ctx context.Context) error {
	path := s.layout.data(s.keyset, "current")
	_, _, err := s.read(ctx, path)
	switch {
	case errors.Is(err, backends.ErrNotFound) && !errors.Is(err, errDeleted):
		return fmt.Errorf("%s: %w", s.Location(), backends.ErrNotFound)
	case err != nil && !errors.Is(err, errDeleted):
		return fmt.Errorf("read %s: %w", path, err)
	}
	return fmt.Errorf("%s is missing but %s exists: refusing to create new keys over a "+
		"keyset whose state is lost; restore the state or delete the keyset's secrets",
		s.Location(), path)
}

// read returns the fields of the latest version of a KV version 2 secret and that
// version. A missing secret is backends.ErrNotFound; a deleted latest version is
// errDeleted (which also matches backends.ErrNotFound). An answer with no data but with
// warnings (a wrong path, a KV version 1 mount) is an error carrying the warnings.
func (s *Store) read(ctx context.Context, path string) (map[string]any, uint64, error) {
	secret, err := s.client.Logical().ReadWithContext(ctx, path)
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", path, err)
	}
	if secret == nil {
		return nil, 0, fmt.Errorf("%s: %w", path, backends.ErrNotFound)
	}
	if secret.Data == nil {
		return nil, 0, fmt.Errorf("read %s: Vault answered without data%s", path,
			warnings(secret))
	}
	meta, _ := secret.Data["metadata"].(map[string]any)
	if meta == nil {
		return nil, 0, fmt.Errorf("read %s: not a KV version 2 answer (no metadata)%s", path,
			warnings(secret))
	}
	version, err := number(meta["version"])
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: metadata.version: %w", path, err)
	}
	fields, _ := secret.Data["data"].(map[string]any)
	if fields == nil {
		if deleted, _ := meta["deletion_time"].(string); deleted != "" {
			return nil, version, fmt.Errorf("%s: %w: %w", path, errDeleted, backends.ErrNotFound)
		}
		return nil, version, fmt.Errorf("read %s: version %d has no data%s", path, version,
			warnings(secret))
	}
	return fields, version, nil
}

// list returns the names under a metadata folder; none when it does not exist.
func (s *Store) list(ctx context.Context, path string) ([]string, error) {
	secret, err := s.client.Logical().ListWithContext(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", path, err)
	}
	if secret == nil {
		return nil, nil
	}
	raw, ok := secret.Data["keys"].([]any)
	if !ok {
		return nil, fmt.Errorf("list %s: Vault answered without keys%s", path, warnings(secret))
	}
	out := make([]string, 0, len(raw))
	for _, k := range raw {
		name, ok := k.(string)
		if !ok {
			return nil, fmt.Errorf("list %s: %v is not a name", path, k)
		}
		out = append(out, name)
	}
	return out, nil
}

func (s *Store) keyPath(kid string) (string, error) {
	if !kidPattern.MatchString(kid) {
		return "", fmt.Errorf("kid %q is not a base64url SHA-256 thumbprint", kid)
	}
	return s.layout.data(s.keyset, "keys", kid), nil
}

// confirmed returns the version a KV version 2 write created, or an error when the write
// failed or Vault did not say that it happened.
func confirmed(secret *api.Secret, err error) (uint64, error) {
	if err != nil {
		return 0, err
	}
	if secret == nil || secret.Data == nil {
		return 0, fmt.Errorf("Vault did not confirm the write%s", warnings(secret))
	}
	version, err := number(secret.Data["version"])
	if err != nil || version == 0 {
		return 0, fmt.Errorf("Vault did not confirm the write with a version%s",
			warnings(secret))
	}
	return version, nil
}

// isCASMismatch reports whether err is Vault refusing a write for its cas option.
func isCASMismatch(err error) bool {
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusBadRequest {
		return false
	}
	for _, msg := range re.Errors {
		if strings.Contains(msg, "check-and-set") {
			return true
		}
	}
	return false
}

func number(v any) (uint64, error) {
	switch n := v.(type) {
	case json.Number:
		return strconv.ParseUint(n.String(), 10, 64)
	case float64:
		return uint64(n), nil
	case nil:
		return 0, errors.New("missing")
	}
	return 0, fmt.Errorf("%v is not a number", v)
}
