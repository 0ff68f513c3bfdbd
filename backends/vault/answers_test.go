package vault

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/keyd-io/keyd/backends"
)

// TestAnswers checks how the store reads Vault's answers that are not plain successes,
// on a stand-in server that answers every request the same way.
func TestAnswers(t *testing.T) {
	const kid = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	tests := []struct {
		name     string
		status   int
		body     string
		op       func(ctx context.Context, s *Store) error
		wantErr  string
		notFound bool
		conflict bool
	}{
		{
			name:   "warnings without data are an error on load",
			status: http.StatusNotFound,
			body:   `{"data":null,"warnings":["Invalid path for a versioned K/V secrets engine."]}`,
			op: func(ctx context.Context, s *Store) error {
				_, _, err := s.Load(ctx)
				return err
			},
			wantErr: "Invalid path for a versioned K/V secrets engine",
		},
		{
			name:   "warnings without data are an error on get",
			status: http.StatusOK,
			body:   `{"data":null,"warnings":["no such mount"]}`,
			op: func(ctx context.Context, s *Store) error {
				_, err := s.GetKey(ctx, kid)
				return err
			},
			wantErr: "no such mount",
		},
		{
			name:   "a KV version 1 answer is an error",
			status: http.StatusOK,
			body:   `{"data":{"state":"{}"}}`,
			op: func(ctx context.Context, s *Store) error {
				_, _, err := s.Load(ctx)
				return err
			},
			wantErr: "not a KV version 2 answer",
		},
		{
			name:   "nothing at all is not found",
			status: http.StatusNotFound,
			body:   `{"errors":[]}`,
			op: func(ctx context.Context, s *Store) error {
				_, err := s.GetKey(ctx, kid)
				return err
			},
			notFound: true,
		},
		{
			name:   "a deleted version is not found",
			status: http.StatusNotFound,
			body: `{"data":{"data":null,"metadata":{"version":3,` +
				`"deletion_time":"2026-01-02T03:04:05Z","destroyed":false}}}`,
			op: func(ctx context.Context, s *Store) error {
				_, err := s.GetKey(ctx, kid)
				return err
			},
			notFound: true,
		},
		{
			name:   "an unconfirmed state write failed",
			status: http.StatusNoContent,
			op: func(ctx context.Context, s *Store) error {
				_, err := s.Save(ctx, []byte("{}"), 4)
				return err
			},
			wantErr: "Vault did not confirm the write",
		},
		{
			name:   "an unconfirmed key write failed",
			status: http.StatusOK,
			body:   `{"data":{},"warnings":["something odd"]}`,
			op: func(ctx context.Context, s *Store) error {
				return s.PutKey(ctx, kid, []byte("{}"))
			},
			wantErr: "something odd",
		},
		{
			name:   "a check-and-set mismatch is a conflict",
			status: http.StatusBadRequest,
			body:   `{"errors":["check-and-set parameter did not match the current version"]}`,
			op: func(ctx context.Context, s *Store) error {
				_, err := s.Save(ctx, []byte("{}"), 4)
				return err
			},
			conflict: true,
		},
		{
			name:   "a version going back is refused",
			status: http.StatusOK,
			body:   `{"data":{"version":2}}`,
			op: func(ctx context.Context, s *Store) error {
				_, err := s.Save(ctx, []byte("{}"), 4)
				return err
			},
			wantErr: "answered version 2 after version 4",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			t.Cleanup(srv.Close)
			cfg := api.DefaultConfig()
			cfg.Address, cfg.MaxRetries = srv.URL, 0
			client, err := api.NewClient(cfg)
			if err != nil {
				t.Fatal(err)
			}
			client.SetToken("test")
			s := &Store{client: client, layout: layout{mount: "secret", prefix: "keyd"},
				keyset: "api"}

			err = tc.op(t.Context(), s)
			switch {
			case tc.notFound:
				if !errors.Is(err, backends.ErrNotFound) {
					t.Fatalf("got %v, want backends.ErrNotFound", err)
				}
			case tc.conflict:
				if !errors.Is(err, backends.ErrConflict) {
					t.Fatalf("got %v, want backends.ErrConflict", err)
				}
			default:
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want an error containing %q", err, tc.wantErr)
				}
				if errors.Is(err, backends.ErrNotFound) || errors.Is(err, backends.ErrConflict) {
					t.Fatalf("got %v, which must be neither not found nor a conflict", err)
				}
			}
		})
	}
}
