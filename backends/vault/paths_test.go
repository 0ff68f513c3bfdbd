package vault

import (
	"strings"
	"testing"
)

func TestLayout(t *testing.T) {
	tests := []struct {
		name      string
		mount     string
		prefix    string
		wantState string
		wantMeta  string
		wantErr   string
	}{
		{name: "plain", mount: "secret", prefix: "keyd",
			wantState: "secret/data/keyd/api/state", wantMeta: "secret/metadata/keyd/api/keys"},
		{name: "slashes trimmed", mount: "/secret/", prefix: "/keyd/prod/",
			wantState: "secret/data/keyd/prod/api/state",
			wantMeta:  "secret/metadata/keyd/prod/api/keys"},
		{name: "nested mount", mount: "teams/auth", prefix: "keyd",
			wantState: "teams/auth/data/keyd/api/state",
			wantMeta:  "teams/auth/metadata/keyd/api/keys"},
		{name: "empty prefix", mount: "secret", prefix: "",
			wantState: "secret/data/api/state", wantMeta: "secret/metadata/api/keys"},
		{name: "prefix with mount and data", mount: "secret", prefix: "secret/data/keyd",
			wantErr: `storage.vault.prefix: "secret/data/keyd" starts with the mount "secret"; ` +
				`write it relative to the mount (prefix = "keyd")`},
		{name: "prefix with mount", mount: "secret", prefix: "secret/keyd",
			wantErr: `(prefix = "keyd")`},
		{name: "prefix with data", mount: "secret", prefix: "data/keyd",
			wantErr: `storage.vault.prefix: "data/keyd" starts with data/`},
		{name: "prefix with metadata", mount: "secret", prefix: "metadata/keyd/",
			wantErr: `(prefix = "keyd")`},
		{name: "mount with data", mount: "secret/data", prefix: "keyd",
			wantErr: `storage.vault.mount: "secret/data" ends in data/`},
		{name: "empty mount", mount: "/", prefix: "keyd",
			wantErr: "storage.vault.mount: must not be empty"},
		{name: "dot dot", mount: "secret", prefix: "keyd/../other",
			wantErr: `storage.vault.prefix: "keyd/../other" holds ".."`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := newLayout(tc.mount, tc.prefix)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("newLayout(%q, %q) error = %v, want one containing %q",
						tc.mount, tc.prefix, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("newLayout(%q, %q): %v", tc.mount, tc.prefix, err)
			}
			if got := l.data("api", "state"); got != tc.wantState {
				t.Errorf("data path = %q, want %q", got, tc.wantState)
			}
			if got := l.metadata("api", "keys"); got != tc.wantMeta {
				t.Errorf("metadata path = %q, want %q", got, tc.wantMeta)
			}
		})
	}
}
