package disk_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyd-io/keyd/backends"
	"github.com/keyd-io/keyd/backends/disk"
	"github.com/keyd-io/keyd/keys"
)

var ctx = context.Background()

func open(t *testing.T, dir string) *disk.Backend {
	t.Helper()
	b, err := disk.Open(dir, disk.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestPermissions(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	store := open(t, dir).Keyset("api")
	key, err := keys.Generate("ES256", 0)
	if err != nil {
		t.Fatal(err)
	}
	priv, _ := key.PrivateJWK()
	if err := store.PutKey(ctx, key.KID, priv); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Save(ctx, []byte(`{}`), 0); err != nil {
		t.Fatal(err)
	}
	if err := store.PublishCurrent(ctx, key); err != nil {
		t.Fatal(err)
	}
	want := map[string]os.FileMode{
		"":                             0o700,
		"api":                          0o700,
		"api/keys":                     0o700,
		"api/keys/" + key.KID + ".jwk": 0o600,
		"api/state.json":               0o600,
		"api/current.jwk":              0o600,
		"api/current.pem":              0o600,
		".lock":                        0o600,
	}
	for rel, mode := range want {
		info, err := os.Stat(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode().Perm(); got != mode {
			t.Errorf("%s: mode %o, want %o", rel, got, mode)
		}
	}
}

func TestIssuerFileMode(t *testing.T) {
	dir := t.TempDir()
	b, err := disk.Open(dir, disk.Options{IssuerFileMode: 0o640})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	key, _ := keys.Generate("EdDSA", 0)
	if err := b.Keyset("api").PublishCurrent(ctx, key); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(dir, "api", "current.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o640 {
		t.Fatalf("current.pem mode %o, want 640", info.Mode().Perm())
	}
}

func TestSecondInstanceRefused(t *testing.T) {
	dir := t.TempDir()
	open(t, dir)
	_, err := disk.Open(dir, disk.Options{})
	if !errors.Is(err, disk.ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), dir) {
		t.Fatalf("error %q does not name the directory", err)
	}
}

func TestAtomicReplaceAndCAS(t *testing.T) {
	store := open(t, t.TempDir()).Keyset("api")
	v1, err := store.Save(ctx, []byte(`{"n":1}`), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Save(ctx, []byte(`{"n":2}`), 0); !errors.Is(err, backends.ErrConflict) {
		t.Fatalf("create over an existing state: %v, want ErrConflict", err)
	}
	v2, err := store.Save(ctx, []byte(`{"n":2}`), v1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Save(ctx, []byte(`{"n":3}`), v1); !errors.Is(err, backends.ErrConflict) {
		t.Fatalf("save with a stale version: %v, want ErrConflict", err)
	}
	doc, v, err := store.Load(ctx)
	if err != nil || string(doc) != `{"n":2}` || v != v2 {
		t.Fatalf("Load = %s, %d, %v; want the second document at version %d", doc, v, err, v2)
	}
	entries, _ := os.ReadDir(filepath.Dir(store.Location()))
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Fatalf("temporary file %s left behind", e.Name())
		}
	}
}

func TestLoadRefusesLostState(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, dir string)
		wantErr error
		wantMsg string
	}{
		{
			name:    "empty directory is a first start",
			prepare: func(t *testing.T, dir string) {},
			wantErr: backends.ErrNotFound,
		},
		{
			name: "private keys without state",
			prepare: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, "api", "keys", "x.jwk"), "{}")
			},
			wantMsg: "state.json is missing",
		},
		{
			name: "issuer files without state",
			prepare: func(t *testing.T, dir string) {
				write(t, filepath.Join(dir, "api", "current.jwk"), "{}")
			},
			wantMsg: "refusing to create new keys",
		},
		{
			name: "unreadable state",
			prepare: func(t *testing.T, dir string) {
				// A directory where the file should be cannot be read as a file.
				if err := os.MkdirAll(filepath.Join(dir, "api", "state.json"), 0o700); err != nil {
					t.Fatal(err)
				}
			},
			wantMsg: "state.json",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.prepare(t, dir)
			_, _, err := open(t, dir).Keyset("api").Load(ctx)
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("Load: %v, want %v", err, tc.wantErr)
			}
			if tc.wantMsg != "" && (err == nil || !strings.Contains(err.Error(), tc.wantMsg)) {
				t.Fatalf("Load: %v, want an error mentioning %q", err, tc.wantMsg)
			}
		})
	}
}

func TestKeysRoundTrip(t *testing.T) {
	store := open(t, t.TempDir()).Keyset("api")
	if _, err := store.GetKey(ctx, strings.Repeat("A", 43)); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("GetKey of a missing key: %v, want ErrNotFound", err)
	}
	if err := store.PutKey(ctx, "../../etc/passwd", []byte("x")); err == nil {
		t.Fatal("PutKey accepted a kid that is a path")
	}
	key, _ := keys.Generate("ES384", 0)
	priv, _ := key.PrivateJWK()
	if err := store.PutKey(ctx, key.KID, priv); err != nil {
		t.Fatal(err)
	}
	got, err := store.GetKey(ctx, key.KID)
	if err != nil || string(got) != string(priv) {
		t.Fatalf("GetKey = %v", err)
	}
	listed, err := store.ListKeys(ctx)
	if err != nil || len(listed) != 1 || listed[0].KID != key.KID {
		t.Fatalf("ListKeys = %v, %v", listed, err)
	}
	if err := store.DeleteKey(ctx, key.KID); err != nil {
		t.Fatal(err)
	}
	if err := store.DeleteKey(ctx, key.KID); err != nil {
		t.Fatalf("deleting a deleted key: %v", err)
	}
	if listed, _ := store.ListKeys(ctx); len(listed) != 0 {
		t.Fatalf("ListKeys after delete = %v", listed)
	}
}

func TestReadOnlyRefusesWrites(t *testing.T) {
	dir := t.TempDir()
	open(t, dir)
	ro, err := disk.Open(dir, disk.Options{ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only Open beside a running keyd: %v", err)
	}
	if _, err := ro.Keyset("api").Save(ctx, []byte("{}"), 0); err == nil {
		t.Fatal("read-only store wrote a state")
	}
}

func write(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestLoadRefusesUntrustworthyFiles(t *testing.T) {
	kid := strings.Repeat("B", 43)
	tests := []struct {
		name    string
		prepare func(t *testing.T, keyset string)
		wantMsg string
	}{
		{
			name: "state readable by others",
			prepare: func(t *testing.T, keyset string) {
				chmod(t, filepath.Join(keyset, "state.json"), 0o644)
			},
			wantMsg: "state.json has mode 0644",
		},
		{
			name: "private key readable by the group",
			prepare: func(t *testing.T, keyset string) {
				chmod(t, filepath.Join(keyset, "keys", kid+".jwk"), 0o640)
			},
			wantMsg: kid + ".jwk has mode 0640",
		},
		{
			name: "keys dir open to others",
			prepare: func(t *testing.T, keyset string) {
				chmod(t, filepath.Join(keyset, "keys"), 0o755)
			},
			wantMsg: "keys has mode 0755",
		},
		{
			name: "symlinked key file",
			prepare: func(t *testing.T, keyset string) {
				path := filepath.Join(keyset, "keys", kid+".jwk")
				elsewhere := filepath.Join(t.TempDir(), "key.jwk")
				if err := os.Rename(path, elsewhere); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(elsewhere, path); err != nil {
					t.Fatal(err)
				}
			},
			wantMsg: "is a symbolic link",
		},
		{
			name: "state owned by another user",
			prepare: func(t *testing.T, keyset string) {
				if os.Geteuid() != 0 {
					t.Fatal("this case needs root to chown; CI runs as root")
				}
				if err := os.Chown(filepath.Join(keyset, "state.json"), 65534, 65534); err != nil {
					t.Fatal(err)
				}
			},
			wantMsg: "is owned by uid 65534",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			b := open(t, dir)
			store := b.Keyset("api")
			if _, err := store.Save(ctx, []byte("{}"), 0); err != nil {
				t.Fatal(err)
			}
			if err := store.PutKey(ctx, kid, []byte("{}")); err != nil {
				t.Fatal(err)
			}
			tc.prepare(t, filepath.Join(dir, "api"))
			_, _, err := store.Load(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("Load: %v, want a refusal saying %q", err, tc.wantMsg)
			}
		})
	}
}

func TestGroupReadableIssuerFiles(t *testing.T) {
	dir := t.TempDir()
	b, err := disk.Open(dir, disk.Options{IssuerFileMode: 0o640})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	store := b.Keyset("api")
	key, _ := keys.Generate("ES256", 0)
	if err := store.PublishCurrent(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Save(ctx, []byte("{}"), 0); err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(dir, "api"))
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != 0o750 {
		t.Fatalf("keyset dir %o, want 750 so the issuer group can reach current.*",
			info.Mode().Perm())
	}
	if _, _, err := store.Load(ctx); err != nil {
		t.Fatalf("configured group access refused: %v", err)
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestRootReadsKeydOwnedDirOffline(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("this test needs root to chown; CI runs as root")
	}
	dir := t.TempDir()
	b := open(t, dir)
	store := b.Keyset("api")
	if _, err := store.Save(ctx, []byte("{}"), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(dir, "api", "state.json"), 65534, 65534); err != nil {
		t.Fatal(err)
	}
	ro, err := disk.Open(dir, disk.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ro.Keyset("api").Load(ctx); err != nil {
		t.Fatalf("root could not read a dir owned by the service user offline: %v", err)
	}
	if _, _, err := store.Load(ctx); err == nil {
		t.Fatal("the daemon's own store trusted a state owned by another user")
	}
}

func TestInterruptedFirstStart(t *testing.T) {
	key, _ := keys.Generate("EdDSA", 0)
	priv, _ := key.PrivateJWK()
	tests := []struct {
		name string
		// crash leaves the keyset as a crash at some point of the first start would.
		crash   func(t *testing.T, s *disk.Store, dir string)
		wantErr error
		wantMsg string
	}{
		{
			name: "keys stored, no state yet: the first start begins again",
			crash: func(t *testing.T, s *disk.Store, dir string) {
				if err := s.PutKey(ctx, key.KID, priv); err != nil {
					t.Fatal(err)
				}
			},
			wantErr: backends.ErrNotFound,
		},
		{
			name: "state written, then lost: refused",
			crash: func(t *testing.T, s *disk.Store, dir string) {
				if err := s.PutKey(ctx, key.KID, priv); err != nil {
					t.Fatal(err)
				}
				if _, err := s.Save(ctx, []byte("{}"), 0); err != nil {
					t.Fatal(err)
				}
				if err := os.Remove(filepath.Join(dir, "api", "state.json")); err != nil {
					t.Fatal(err)
				}
			},
			wantMsg: "refusing to create new keys",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			store := open(t, dir).Keyset("api")
			tc.crash(t, store, dir)
			_, _, err := store.Load(ctx)
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("Load: %v, want %v", err, tc.wantErr)
			}
			if tc.wantMsg != "" && (err == nil || !strings.Contains(err.Error(), tc.wantMsg)) {
				t.Fatalf("Load: %v, want %q", err, tc.wantMsg)
			}
		})
	}
}
