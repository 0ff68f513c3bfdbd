package vault_test

import (
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/keyd-io/keyd/backends/vault"
	"github.com/keyd-io/keyd/internal/vaulttest"
)

// narrowPolicy lets a token read the state but do nothing else keyd needs.
const narrowPolicy = `path "secret/data/keyd/default/state" { capabilities = ["read"] }`

func TestOpenRefuses(t *testing.T) {
	srv := vaulttest.StartDev(t)
	root := srv.Client()
	if err := root.Sys().Mount("kv1", &api.MountInput{
		Type: "kv", Options: map[string]string{"version": "1"},
	}); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().Mount("transit", &api.MountInput{Type: "transit"}); err != nil {
		t.Fatal(err)
	}
	if err := root.Sys().PutPolicy("narrow", narrowPolicy); err != nil {
		t.Fatal(err)
	}
	narrow, err := root.Auth().Token().Create(&api.TokenCreateRequest{
		Policies: []string{"narrow"},
	})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		opts    vault.Options
		env     map[string]string
		wantErr []string
	}{
		{
			name:    "KV version 1 mount",
			opts:    vault.Options{Mount: "kv1"},
			wantErr: []string{"storage.vault.mount", `"kv1" is a kv secrets engine (version 1)`},
		},
		{
			name:    "not a KV mount",
			opts:    vault.Options{Mount: "transit"},
			wantErr: []string{"storage.vault.mount", "transit secrets engine"},
		},
		{
			name:    "no such mount",
			opts:    vault.Options{Mount: "nothing-here"},
			wantErr: []string{"storage.vault.mount", "nothing-here"},
		},
		{
			name:    "path inside a mount",
			opts:    vault.Options{Mount: "secret/keyd"},
			wantErr: []string{"storage.vault.mount", `lies inside mount "secret"`},
		},
		{
			name:    "prefix holding the API path",
			opts:    vault.Options{Prefix: "secret/data/keyd"},
			wantErr: []string{"storage.vault.prefix", `(prefix = "keyd")`},
		},
		{
			name:    "unreachable",
			opts:    vault.Options{Address: "http://" + unusedAddr(t)},
			wantErr: []string{"storage.vault.address", "cannot reach Vault"},
		},
		{
			name: "invalid token",
			opts: vault.Options{Auth: "token",
				TokenFile: writeFile(t, "bad-token", "hvs.not-a-token")},
			wantErr: []string{"storage.vault.auth", "storage.vault.token_file is not valid"},
		},
		{
			name:    "no token at all",
			opts:    vault.Options{Auth: "token"},
			env:     map[string]string{"VAULT_TOKEN": ""},
			wantErr: []string{"storage.vault.auth", "token_file or the VAULT_TOKEN"},
		},
		{
			name: "token lacking capabilities",
			opts: vault.Options{Auth: "token",
				TokenFile: writeFile(t, "narrow-token", narrow.Auth.ClientToken)},
			wantErr: []string{"storage.vault.auth", "secret/data/keyd/default/state: missing " +
				"create, update", "secret/metadata/keyd/default/keys: missing list"},
		},
		{
			name: "approle without files",
			opts: vault.Options{Auth: "approle", RoleIDFile: "/nonexistent/role-id",
				SecretIDFile: "/nonexistent/secret-id"},
			wantErr: []string{"storage.vault.role_id_file"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			b, err := vault.Open(t.Context(), fill(t, srv, tc.opts))
			if err == nil {
				b.Close()
				t.Fatalf("Open succeeded, want an error containing %q", tc.wantErr)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Open error:\n%v\nwant it to contain %q", err, want)
				}
			}
			if strings.Contains(err.Error(), srv.RootToken) ||
				strings.Contains(err.Error(), narrow.Auth.ClientToken) {
				t.Errorf("Open error shows a token: %v", err)
			}
		})
	}
}

func TestOpenRefusesSealed(t *testing.T) {
	srv := vaulttest.StartFile(t)
	srv.Seal()
	b, err := vault.Open(t.Context(), fill(t, srv, vault.Options{}))
	if err == nil {
		b.Close()
		t.Fatal("Open on a sealed Vault succeeded")
	}
	if want := "storage.vault.address: Vault at " + srv.Addr + " is sealed"; !strings.Contains(
		err.Error(), want) {
		t.Fatalf("Open error = %v, want it to contain %q", err, want)
	}
}

// TestOpenTLS checks that ca_cert is what makes Vault's certificate trusted.
func TestOpenTLS(t *testing.T) {
	srv := vaulttest.StartDevTLS(t)
	tests := []struct {
		name    string
		caCert  string
		wantErr string
	}{
		{name: "trusted with ca_cert", caCert: srv.CACert},
		{name: "untrusted without", wantErr: "certificate"},
		{name: "missing file", caCert: "/nonexistent/ca.pem", wantErr: "storage.vault.ca_cert"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("VAULT_CACERT", "")
			b, err := vault.Open(t.Context(), fill(t, srv, vault.Options{CACert: tc.caCert}))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				b.Close()
				return
			}
			if err == nil {
				b.Close()
				t.Fatalf("Open succeeded, want an error containing %q", tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Open error = %v, want it to contain %q", err, tc.wantErr)
			}
		})
	}
}
