package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/keyd-io/keyd/internal/keydtest"
)

// mountTmpfs mounts a tmpfs of size at a new directory, so the test can fill it or make it
// read-only: faults a real disk cannot produce on demand. It needs root, as CI has.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700",
		"tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs (the fault tests need root): %v\n%s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

// mount runs mount with args, or umount when the first is "-l".
func mount(t *testing.T, args ...string) {
	t.Helper()
	cmd := "mount"
	if args[0] == "-l" {
		cmd = "umount"
	}
	if out, err := exec.Command(cmd, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", cmd, args, err, out)
	}
}

// fill writes a file until the filesystem is full, and returns its path.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return path
			}
			t.Fatal(err)
		}
	}
}

func TestStorageFaults(t *testing.T) {
	tests := []struct {
		name   string
		inject func(t *testing.T, dir string) (clear func())
		want   string
	}{
		{
			name: "disk full",
			inject: func(t *testing.T, dir string) func() {
				filler := fill(t, dir)
				return func() {
					if err := os.Remove(filler); err != nil {
						t.Fatal(err)
					}
				}
			},
			want: "no space left on device",
		},
		{
			name: "read-only state dir",
			inject: func(t *testing.T, dir string) func() {
				// A read-only bind mount over the keyset dir: the storage dir's lock file
				// stays open for writing, as it would on a real system.
				keyset := filepath.Join(dir, "default")
				mount(t, "--bind", keyset, keyset)
				mount(t, "-o", "remount,bind,ro", keyset)
				return func() { mount(t, "-l", keyset) }
			},
			want: "read-only file system",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := mountTmpfs(t, "256k")
			config := "[server]\nlisten = \"{{listen}}\"\n[log]\nlevel = \"debug\"\n" +
				"[storage.disk]\ndir = \"" + data + "\"\n[[keyset]]\nname = \"default\"\n" +
				"schedule = \"@daily\"\npublish_lead = \"1s\"\n"
			keyd := keydtest.Start(t, config, keydtest.Options{})
			_, before := keyd.Get("/.well-known/jwks.json")

			clear := tc.inject(t, data)
			keyd.Signal(syscall.SIGUSR1)
			keyd.WaitFor("the failure to show in /readyz", func() bool {
				resp, body := keyd.Get("/readyz")
				return resp.StatusCode == 503 && strings.Contains(string(body), tc.want)
			})
			keyd.WaitFor("a retry", func() bool {
				return strings.Contains(keyd.Log(), "keyset step failed again")
			})
			if resp, body := keyd.Get("/.well-known/jwks.json"); resp.StatusCode != 200 ||
				string(body) != string(before) {
				t.Fatalf("JWKS changed or stopped during the fault: %d\n%s", resp.StatusCode, body)
			}
			if n := strings.Count(keyd.Log(), "keyset step failed; will retry"); n != 1 {
				t.Fatalf("the unchanged error was logged %d times at error level, want once", n)
			}

			clear()
			keyd.WaitFor("the rotation to run once the fault clears", func() bool {
				_, body := keyd.Get("/.well-known/jwks.json")
				return len(kidsOf(t, body)) == 3
			})
			keyd.WaitReady()
			s := readState(t, filepath.Join(data, "default"))
			for _, k := range s.Keys {
				if _, err := os.Stat(filepath.Join(data, "default", "keys", k.KID+".jwk")); err != nil {
					t.Fatalf("key %s committed without its private key: %v", k.KID, err)
				}
			}
		})
	}
}
