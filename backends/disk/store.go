package disk

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/keyd-io/keyd/backends"
	"github.com/keyd-io/keyd/internal/atomicfile"
	"github.com/keyd-io/keyd/keys"
)

// kidPattern is the shape of an RFC 7638 SHA-256 thumbprint in base64url; anything else
// is refused before it can become a path.
var kidPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// Store is one keyset's directory. Its methods are safe for concurrent use.
type Store struct {
	backend *Backend
	dir     string
	mu      sync.Mutex
}

// Location returns the state file's path.
func (s *Store) Location() string { return filepath.Join(s.dir, stateName) }

// Load returns state.json and its version. A keyset directory that is missing or empty
// is backends.ErrNotFound (first start); private keys or issuer files without a state
// beside them are an error, so that keyd never mints fresh keys over lost state.
func (s *Store) Load(ctx context.Context) ([]byte, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkKeyset(); err != nil {
		return nil, 0, err
	}
	doc, err := os.ReadFile(s.Location())
	if err == nil {
		return doc, versionOf(doc), nil
	}
	if !notExist(err) {
		return nil, 0, fmt.Errorf("read state: %w", err)
	}
	leftovers, err := s.leftovers()
	if err != nil {
		return nil, 0, err
	}
	if s.unfinishedFirstStart(leftovers) {
		// A first start was cut short before its state was written: the keys it stored
		// were never named or published, so the first start begins again and the orphan
		// sweep removes them.
		return nil, 0, backends.ErrNotFound
	}
	if len(leftovers) > 0 {
		return nil, 0, fmt.Errorf("%s is missing but %s holds %s: refusing to create new keys "+
			"over a keyset whose state is lost; restore state.json or move the directory away",
			s.Location(), s.dir, strings.Join(leftovers, ", "))
	}
	return nil, 0, backends.ErrNotFound
}

// Save replaces state.json if its version is still prev (0: no state yet).
func (s *Store) Save(ctx context.Context, doc []byte, prev uint64) (uint64, error) {
	if err := s.writable(); err != nil {
		return 0, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var stored uint64
	old, err := os.ReadFile(s.Location())
	switch {
	case err == nil:
		stored = versionOf(old)
	case !notExist(err):
		return 0, fmt.Errorf("read state: %w", err)
	}
	if stored != prev {
		return 0, fmt.Errorf("%s: %w", s.Location(), backends.ErrConflict)
	}
	if err := mkdirs(s.dir, s.backend.dirMode); err != nil {
		return 0, fmt.Errorf("create keyset dir: %w", err)
	}
	if err := atomicfile.Write(s.Location(), doc, fileMode); err != nil {
		return 0, fmt.Errorf("write %s: %w", s.Location(), err)
	}
	if prev == 0 {
		// The first state exists now; keys without it would again mean lost state.
		if err := os.Remove(s.firstStartMark()); err != nil && !notExist(err) {
			return 0, fmt.Errorf("remove first-start mark: %w", err)
		}
	}
	return versionOf(doc), nil
}

// PutKey stores a private key under kid.
func (s *Store) PutKey(ctx context.Context, kid string, privateJWK []byte) error {
	path, err := s.keyPath(kid)
	if err != nil {
		return err
	}
	if err := s.writable(); err != nil {
		return err
	}
	if err := mkdirs(filepath.Dir(path), dirMode); err != nil {
		return fmt.Errorf("create keys dir: %w", err)
	}
	if _, err := os.Stat(s.Location()); notExist(err) {
		// Keys stored before the first state are marked as a first start in progress, so
		// a crash now does not read as lost state at the next start.
		if err := atomicfile.Write(s.firstStartMark(), nil, fileMode); err != nil {
			return fmt.Errorf("write first-start mark: %w", err)
		}
	}
	if err := atomicfile.Write(path, privateJWK, fileMode); err != nil {
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
	data, err := os.ReadFile(path)
	if notExist(err) {
		return nil, fmt.Errorf("%s: %w", path, backends.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read private key: %w", err)
	}
	return data, nil
}

// DeleteKey destroys the private key stored under kid; deleting a missing key succeeds.
func (s *Store) DeleteKey(ctx context.Context, kid string) error {
	path, err := s.keyPath(kid)
	if err != nil {
		return err
	}
	if err := s.writable(); err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !notExist(err) {
		return fmt.Errorf("delete private key: %w", err)
	}
	return atomicfile.SyncDir(filepath.Dir(path))
}

// ListKeys lists the stored private keys with their file times, and removes temporary
// files left by interrupted writes.
func (s *Store) ListKeys(ctx context.Context) ([]backends.StoredKey, error) {
	dir := filepath.Join(s.dir, keysDir)
	entries, err := os.ReadDir(dir)
	if notExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list private keys: %w", err)
	}
	var out []backends.StoredKey
	for _, e := range entries {
		if atomicfile.IsTemp(e.Name()) && s.backend.lock != nil {
			_ = os.Remove(filepath.Join(dir, e.Name()))
			continue
		}
		kid, ok := strings.CutSuffix(e.Name(), ".jwk")
		if !ok || !kidPattern.MatchString(kid) {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, fmt.Errorf("list private keys: %w", err)
		}
		out = append(out, backends.StoredKey{KID: kid, CreatedAt: info.ModTime()})
	}
	return out, nil
}

// PublishCurrent replaces current.jwk and current.pem with k, each atomically.
func (s *Store) PublishCurrent(ctx context.Context, k *keys.Key) error {
	if err := s.writable(); err != nil {
		return err
	}
	jwk, err := k.PrivateJWK()
	if err != nil {
		return err
	}
	pem, err := k.PEM()
	if err != nil {
		return err
	}
	if err := mkdirs(s.dir, s.backend.dirMode); err != nil {
		return fmt.Errorf("create keyset dir: %w", err)
	}
	// An issuer group given access later (file_mode 0640) must be able to enter the dir.
	if err := os.Chmod(s.dir, s.backend.dirMode); err != nil {
		return fmt.Errorf("chmod keyset dir: %w", err)
	}
	for name, data := range map[string][]byte{"current.jwk": jwk, "current.pem": pem} {
		path := filepath.Join(s.dir, name)
		if err := atomicfile.Write(path, data, s.backend.issueMode); err != nil {
			return fmt.Errorf("write %s: %w", path, err)
		}
	}
	return nil
}

// IssuedIs reports whether current.jwk names kid and current.pem is there.
func (s *Store) IssuedIs(ctx context.Context, kid string) bool {
	data, err := os.ReadFile(filepath.Join(s.dir, "current.jwk"))
	if err != nil {
		return false
	}
	var named struct {
		KID string `json:"kid"`
	}
	if json.Unmarshal(data, &named) != nil || named.KID != kid {
		return false
	}
	_, err = os.Stat(filepath.Join(s.dir, "current.pem"))
	return err == nil
}

// CurrentPath returns the path of current.jwk.
func (s *Store) CurrentPath() string { return filepath.Join(s.dir, "current.jwk") }

func (s *Store) keyPath(kid string) (string, error) {
	if !kidPattern.MatchString(kid) {
		return "", fmt.Errorf("kid %q is not a base64url SHA-256 thumbprint", kid)
	}
	return filepath.Join(s.dir, keysDir, kid+".jwk"), nil
}

func (s *Store) writable() error {
	if s.backend.lock == nil {
		return errors.New("storage dir opened read-only")
	}
	return nil
}

// firstStartMark is the file that says a first start stored keys but wrote no state yet.
func (s *Store) firstStartMark() string { return filepath.Join(s.dir, firstStartName) }

// unfinishedFirstStart reports whether leftovers are only what an interrupted first start
// leaves: its mark and private keys, never a state or an issuer's current key.
func (s *Store) unfinishedFirstStart(leftovers []string) bool {
	marked := false
	for _, l := range leftovers {
		switch {
		case l == filepath.Join(filepath.Base(s.dir), firstStartName):
			marked = true
		case strings.HasPrefix(l, keysDir+string(filepath.Separator)):
		default:
			return false
		}
	}
	return marked
}

// leftovers lists what a keyset dir holds besides temporary files.
func (s *Store) leftovers() ([]string, error) {
	var found []string
	for _, dir := range []string{s.dir, filepath.Join(s.dir, keysDir)} {
		entries, err := os.ReadDir(dir)
		if notExist(err) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", dir, err)
		}
		for _, e := range entries {
			if !e.IsDir() && !atomicfile.IsTemp(e.Name()) {
				found = append(found, filepath.Join(filepath.Base(dir), e.Name()))
			}
		}
	}
	return found, nil
}

// versionOf derives a document's version from its bytes: equal bytes, equal version.
func versionOf(doc []byte) uint64 {
	sum := sha256.Sum256(doc)
	return binary.BigEndian.Uint64(sum[:8]) | 1
}
