package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/hashicorp/vault/api"

	"github.com/keyd-io/keyd/backends"
)

// read returns the fields of the latest version of a KV version 2 secret and that
// version. A missing secret is backends.ErrNotFound; a deleted latest version is
// errDeleted (which also matches backends.ErrNotFound). An answer with no data but with
// warnings (a wrong path, a KV version 1 mount) is an error carrying the warnings.
func (s *Store) read(ctx context.Context, path string) (map[string]any, uint64, error) {
	secret, err := s.client.Logical().ReadWithContext(ctx, path)
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", path, concise(err))
	}
	if secret == nil {
		return nil, 0, fmt.Errorf("%s: %w", path, backends.ErrNotFound)
	}
	if secret.Data == nil {
		return nil, 0, fmt.Errorf("read %s: Vault answered without data%s", path,
			warnings(secret))
	}
	meta, _ := secret.Data["metadata"].(map[string]any)
	if meta == nil {
		return nil, 0, fmt.Errorf("read %s: not a KV version 2 answer (no metadata)%s", path,
			warnings(secret))
	}
	version, err := number(meta["version"])
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: metadata.version: %w", path, err)
	}
	fields, _ := secret.Data["data"].(map[string]any)
	if fields == nil {
		if deleted, _ := meta["deletion_time"].(string); deleted != "" {
			return nil, version, fmt.Errorf("%s: %w: %w", path, errDeleted, backends.ErrNotFound)
		}
		return nil, version, fmt.Errorf("read %s: version %d has no data%s", path, version,
			warnings(secret))
	}
	return fields, version, nil
}

// list returns the names under a metadata folder; none when it does not exist.
func (s *Store) list(ctx context.Context, path string) ([]string, error) {
	secret, err := s.client.Logical().ListWithContext(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", path, concise(err))
	}
	if secret == nil {
		return nil, nil
	}
	raw, ok := secret.Data["keys"].([]any)
	if !ok {
		return nil, fmt.Errorf("list %s: Vault answered without keys%s", path, warnings(secret))
	}
	out := make([]string, 0, len(raw))
	for _, k := range raw {
		name, ok := k.(string)
		if !ok {
			return nil, fmt.Errorf("list %s: %v is not a name", path, k)
		}
		out = append(out, name)
	}
	return out, nil
}

// confirmed returns the version a KV version 2 write created, or an error when the write
// failed or Vault did not say that it happened.
func confirmed(secret *api.Secret, err error) (uint64, error) {
	if err != nil {
		return 0, concise(err)
	}
	if secret == nil || secret.Data == nil {
		return 0, fmt.Errorf("Vault did not confirm the write%s", warnings(secret))
	}
	version, err := number(secret.Data["version"])
	if err != nil || version == 0 {
		return 0, fmt.Errorf("Vault did not confirm the write with a version%s",
			warnings(secret))
	}
	return version, nil
}

// isCASMismatch reports whether err is Vault refusing a write for its cas option.
func isCASMismatch(err error) bool {
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusBadRequest {
		return false
	}
	for _, msg := range re.Errors {
		if strings.Contains(msg, "check-and-set parameter did not match") {
			return true
		}
	}
	return false
}

func number(v any) (uint64, error) {
	switch n := v.(type) {
	case json.Number:
		return strconv.ParseUint(n.String(), 10, 64)
	case float64:
		return uint64(n), nil
	case nil:
		return 0, errors.New("missing")
	}
	return 0, fmt.Errorf("%v is not a number", v)
}

// responseError is Vault's error answer on one line: status and messages, without the
// request dump the API client adds. The client's error stays reachable with errors.As.
type responseError struct{ *api.ResponseError }

func (e responseError) Error() string {
	msgs := strings.Join(e.Errors, "; ")
	if msgs == "" {
		msgs = http.StatusText(e.StatusCode)
	}
	return fmt.Sprintf("Vault answered %d: %s", e.StatusCode, msgs)
}

func (e responseError) Unwrap() error { return e.ResponseError }

// concise shortens Vault's error answers; other errors pass unchanged.
func concise(err error) error {
	var re *api.ResponseError
	if errors.As(err, &re) {
		return responseError{re}
	}
	return err
}
