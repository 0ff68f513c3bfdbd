package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
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

// publishAttempts bounds the retries of a current-key write that keeps losing its
// check-and-set to other replicas.
const publishAttempts = 5

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
		return nil, 0, err
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
//
// The write only creates (check-and-set 0), which also suits mounts with cas_required: a
// kid is the thumbprint of its key, so a kid already stored must hold the same key, as it
// does after a retried write whose first answer was lost.
func (s *Store) PutKey(ctx context.Context, kid string, privateJWK []byte) error {
	path, err := s.keyPath(kid)
	if err != nil {
		return err
	}
	secret, err := s.client.Logical().WriteWithContext(ctx, path, map[string]any{
		"options": map[string]any{"cas": 0},
		"data":    map[string]any{fieldJWK: string(privateJWK)},
	})
	if isCASMismatch(err) {
		stored, getErr := s.GetKey(ctx, kid)
		if getErr != nil {
			return fmt.Errorf("write %s: already stored, and %w", path, getErr)
		}
		if !sameKey(stored, privateJWK) {
			return fmt.Errorf("write %s: a different key is stored under this kid", path)
		}
		return nil
	}
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
		return nil, err
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
		return fmt.Errorf("destroy %s: %w", path, concise(err))
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
			return nil, fmt.Errorf("read %s: %w", path, concise(err))
		}
		if meta != nil && meta.Data == nil {
			return nil, fmt.Errorf("read %s: Vault answered without data%s", path,
				warnings(meta))
		}
		if meta == nil {
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

// PublishCurrent writes the current key for issuers: kid, alg, the private JWK and PKCS#8
// PEM. A replica working from an older state never overwrites what a newer one published:
// when the stored state names another current key, nothing is written (the replica that
// committed that state publishes its key), and the write is a check-and-set on the
// version read before the state was.
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
	for range publishAttempts {
		// The current secret's version is read before the state: any commit the state read
		// misses happened after it, so that commit's publication makes this write lose.
		_, version, err := s.read(ctx, path)
		if err != nil && !errors.Is(err, backends.ErrNotFound) {
			return err
		}
		committed, err := s.committedCurrent(ctx)
		if err != nil {
			return err
		}
		if committed != "" && committed != k.KID {
			return nil
		}
		secret, err := s.client.Logical().WriteWithContext(ctx, path, map[string]any{
			"options": map[string]any{"cas": version},
			"data": map[string]any{
				fieldKID: k.KID,
				fieldAlg: k.Alg,
				fieldJWK: string(jwk),
				fieldPEM: string(pem),
			},
		})
		if isCASMismatch(err) {
			continue
		}
		if _, err := confirmed(secret, err); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
		return nil
	}
	return fmt.Errorf("write %s: changed under every one of %d attempts", path, publishAttempts)
}

// committedCurrent returns the kid the stored state names current; "" when there is no
// state or it names none.
func (s *Store) committedCurrent(ctx context.Context) (string, error) {
	fields, _, err := s.read(ctx, s.layout.data(s.keyset, fieldState))
	if errors.Is(err, backends.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	doc, _ := fields[fieldState].(string)
	// Only the phases are needed here; the rotation engine decodes and checks the rest.
	var st struct {
		Keys []struct {
			KID   string `json:"kid"`
			Phase string `json:"state"`
		} `json:"keys"`
	}
	if err := json.Unmarshal([]byte(doc), &st); err != nil {
		return "", nil
	}
	for _, key := range st.Keys {
		if key.Phase == "current" {
			return key.KID, nil
		}
	}
	return "", nil
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
		return err
	}
	return fmt.Errorf("%s is missing but %s exists: refusing to create new keys over a "+
		"keyset whose state is lost; restore the state or delete the keyset's secrets",
		s.Location(), path)
}

func (s *Store) keyPath(kid string) (string, error) {
	if !kidPattern.MatchString(kid) {
		return "", fmt.Errorf("kid %q is not a base64url SHA-256 thumbprint", kid)
	}
	return s.layout.data(s.keyset, "keys", kid), nil
}

// sameKey reports whether two private JWKs are the same key: their kids, the RFC 7638
// thumbprints, agree.
func sameKey(a, b []byte) bool {
	ka, err := keys.ParsePrivateJWK(a)
	if err != nil {
		return false
	}
	kb, err := keys.ParsePrivateJWK(b)
	return err == nil && ka.KID == kb.KID
}
