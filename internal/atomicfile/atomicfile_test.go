package atomicfile_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/keyd-io/keyd/internal/atomicfile"
)

func TestWriteReplacesAndLeavesNoTemp(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	for _, content := range []string{"first", "second"} {
		if err := atomicfile.Write(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(path)
		if err != nil || string(got) != content {
			t.Fatalf("read %q, %v; want %q", got, err, content)
		}
	}
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v; want 0600", info.Mode(), err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("%d entries, want only the file", len(entries))
	}
}

func TestIsTemp(t *testing.T) {
	tests := []struct {
		name string
		want bool
	}{
		{name: ".state.json.tmp-123", want: true},
		{name: "state.json", want: false},
		{name: "1-evt.json", want: false},
		{name: ".first-start", want: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := atomicfile.IsTemp(tc.name); got != tc.want {
				t.Fatalf("IsTemp(%q) = %v", tc.name, got)
			}
		})
	}
}
