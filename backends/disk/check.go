package disk

import (
	"fmt"
	"github.com/keyd-io/keyd/internal/atomicfile"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// checkEntry refuses a path keyd would trust with key material when it is a symbolic link,
// is owned by another user (unless anyOwner), or grants others more than allowed (mode
// bits outside allowed). A missing path passes: there is nothing to trust yet.
func checkEntry(path string, wantDir bool, allowed os.FileMode, anyOwner bool) error {
	info, err := os.Lstat(path)
	if notExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check %s: %w", path, err)
	}
	switch {
	case info.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%s is a symbolic link: keyd does not follow links for key material; "+
			"replace it with the file itself", path)
	case wantDir && !info.IsDir():
		return fmt.Errorf("%s is not a directory", path)
	case !wantDir && !info.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file", path)
	}
	if st, ok := info.Sys().(*syscall.Stat_t); ok && !anyOwner && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s is owned by uid %d but keyd runs as uid %d: refusing key material "+
			"another user controls; chown it to keyd's user", path, st.Uid, os.Geteuid())
	}
	if extra := info.Mode().Perm() &^ allowed; extra != 0 {
		return fmt.Errorf("%s has mode %04o, which gives others access (%04o); "+
			"chmod it to %04o", path, info.Mode().Perm(), extra, info.Mode().Perm()&allowed)
	}
	return nil
}

// checkKeyset checks a keyset directory and everything in it before keyd trusts it.
func (s *Store) checkKeyset() error {
	issuer := s.backend.issueMode | 0o600
	checks := []struct {
		path    string
		dir     bool
		allowed os.FileMode
	}{
		{path: s.dir, dir: true, allowed: s.backend.dirMode},
		{path: filepath.Join(s.dir, stateName), allowed: fileMode},
		{path: filepath.Join(s.dir, keysDir), dir: true, allowed: dirMode},
		{path: filepath.Join(s.dir, "current.jwk"), allowed: issuer},
		{path: filepath.Join(s.dir, "current.pem"), allowed: issuer},
	}
	for _, c := range checks {
		if err := checkEntry(c.path, c.dir, c.allowed, s.backend.anyOwner); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(filepath.Join(s.dir, keysDir))
	if notExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", filepath.Join(s.dir, keysDir), err)
	}
	for _, e := range entries {
		if atomicfile.IsTemp(e.Name()) {
			continue
		}
		path := filepath.Join(s.dir, keysDir, e.Name())
		if err := checkEntry(path, false, fileMode, s.backend.anyOwner); err != nil {
			return err
		}
	}
	return nil
}
