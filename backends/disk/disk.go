// Package disk stores keysets on local disk:
//
//	<dir>/.lock                        held by the one keyd using dir
//	<dir>/<keyset>/state.json          the keyset's state document
//	<dir>/<keyset>/keys/<kid>.jwk      one private JWK per key
//	<dir>/<keyset>/current.jwk         the current private key for issuers (with kid, alg)
//	<dir>/<keyset>/current.pem         the same key as PKCS#8
//
// Directories are 0700 and files 0600 (current.* may be configured up to 0640). Every
// write goes to a temporary file that is synced, renamed over the target, and followed by
// a sync of the directory, so a crash leaves either the old or the new file, never half.
package disk

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

const (
	lockName  = ".lock"
	dirMode   = 0o700
	fileMode  = 0o600
	stateName = "state.json"
	// firstStartName marks a keyset whose first start stored keys but has no state yet.
	firstStartName = ".first-start"
	keysDir        = "keys"
)

// ErrLocked means another keyd holds the storage directory.
var ErrLocked = errors.New("storage dir is in use by another keyd")

// Backend is an opened storage directory.
type Backend struct {
	dir       string
	issueMode os.FileMode
	// dirMode is 0700, or 0750 when issuers in keyd's group may read current.*.
	dirMode os.FileMode
	lock    *os.File
	// anyOwner lets root read a dir owned by keyd's own user in offline commands: root
	// controls that user's files anyway, and the daemon itself never runs this way.
	anyOwner bool
}

// Options tunes a Backend.
type Options struct {
	// IssuerFileMode is the mode of current.jwk and current.pem; 0600 when zero.
	IssuerFileMode os.FileMode
	// ReadOnly opens dir without creating it or taking the lock, for offline commands
	// that only read. A read-only Backend refuses every write.
	ReadOnly bool
}

// Open opens (and creates) the storage directory dir and takes its exclusive lock, so
// that a second keyd on the same dir fails here with ErrLocked.
func Open(dir string, opts Options) (*Backend, error) {
	b := &Backend{dir: dir, issueMode: opts.IssuerFileMode}
	if b.issueMode == 0 {
		b.issueMode = fileMode
	}
	b.dirMode = dirMode
	if b.issueMode&0o040 != 0 {
		b.dirMode |= 0o050
	}
	if opts.ReadOnly {
		b.anyOwner = os.Geteuid() == 0
		if _, err := os.Stat(dir); err != nil {
			return nil, fmt.Errorf("open storage dir: %w", err)
		}
		return b, nil
	}
	if err := os.MkdirAll(dir, b.dirMode); err != nil {
		return nil, fmt.Errorf("create storage dir: %w", err)
	}
	if err := checkRoot(dir); err != nil {
		return nil, err
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(lock.Name())
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is locked by pid %s", ErrLocked, dir,
				strings.TrimSpace(string(holder)))
		}
		return nil, fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	if err := lock.Truncate(0); err == nil {
		_, _ = lock.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	b.lock = lock
	return b, nil
}

// Close releases the directory's lock.
func (b *Backend) Close() error {
	if b.lock == nil {
		return nil
	}
	return b.lock.Close()
}

// Dir returns the storage directory.
func (b *Backend) Dir() string { return b.dir }

// Keyset returns the store of one keyset. Nothing is created until the first write.
func (b *Backend) Keyset(name string) *Store {
	return &Store{backend: b, dir: filepath.Join(b.dir, name)}
}

// mkdirs creates dir and its parents with mode.
func mkdirs(dir string, mode os.FileMode) error {
	return os.MkdirAll(dir, mode)
}

// checkRoot refuses a storage dir owned by another user. Its mode is the operator's
// choice (it holds only keyset dirs, each 0700 or 0750), and it may be a symbolic link to
// a mount elsewhere; what it points to is checked.
func checkRoot(dir string) error {
	target, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("storage dir: %w", err)
	}
	return checkEntry(target, true, os.ModePerm, false)
}

func notExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
