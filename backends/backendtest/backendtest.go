// Package backendtest is the conformance suite every storage backend passes: what the
// rotation engine relies on (not-found on a fresh keyset, check-and-set saves with exactly
// one winner, private keys stored, listed and destroyed, the issuers' current key
// published) is checked the same way against each of them.
package backendtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/keyd-io/keyd/backends"
	"github.com/keyd-io/keyd/keys"
	"github.com/keyd-io/keyd/rotation"
)

// concurrentWriters is how many writers race one check-and-set save.
const concurrentWriters = 8

// Issued is the current key as a backend hands it to issuers.
type Issued struct {
	KID string
	Alg string
	JWK []byte
	PEM []byte
}

// Harness adapts one backend to the suite.
type Harness struct {
	// Open returns the store of a keyset that has never been written, distinct from every
	// other store Open returned in this test.
	Open func(t *testing.T) rotation.Store
	// Current reads back what s published for issuers.
	Current func(t *testing.T, s rotation.Store) Issued
}

// Run runs the suite against h's backend.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		run  func(t *testing.T, ctx context.Context, s rotation.Store)
	}{
		{name: "fresh keyset is not found", run: testFresh},
		{name: "saved state loads back", run: testSaveLoad},
		{name: "stale version conflicts", run: testConflict},
		{name: "exactly one concurrent save wins", run: testRace},
		{name: "private key round trip", run: testKeyRoundTrip},
		{name: "missing private key is not found", run: testMissingKey},
		{name: "private keys are listed", run: testList},
		{name: "malformed kid is refused", run: testBadKID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			t.Cleanup(cancel)
			tc.run(t, ctx, h.Open(t))
		})
	}
	t.Run("current key is published", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		t.Cleanup(cancel)
		testPublish(t, ctx, h)
	})
}

func testFresh(t *testing.T, ctx context.Context, s rotation.Store) {
	if _, _, err := s.Load(ctx); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("Load on a fresh keyset: got %v, want backends.ErrNotFound", err)
	}
	if s.Location() == "" {
		t.Error("Location is empty")
	}
}

func testSaveLoad(t *testing.T, ctx context.Context, s rotation.Store) {
	doc := stateDoc(1)
	v, err := s.Save(ctx, doc, 0)
	if err != nil {
		t.Fatalf("first Save: %v", err)
	}
	if v == 0 {
		t.Fatal("first Save returned version 0")
	}
	got, gotV, err := s.Load(ctx)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !bytes.Equal(got, doc) || gotV != v {
		t.Fatalf("Load = %q, %d; want %q, %d", got, gotV, doc, v)
	}
}

func testConflict(t *testing.T, ctx context.Context, s rotation.Store) {
	v1 := mustSave(t, ctx, s, stateDoc(1), 0)
	if _, err := s.Save(ctx, stateDoc(2), 0); !errors.Is(err, backends.ErrConflict) {
		t.Fatalf("Save as if none existed: got %v, want backends.ErrConflict", err)
	}
	v2 := mustSave(t, ctx, s, stateDoc(2), v1)
	if v2 == v1 {
		t.Fatalf("second Save kept version %d", v1)
	}
	if _, err := s.Save(ctx, stateDoc(3), v1); !errors.Is(err, backends.ErrConflict) {
		t.Fatalf("Save on stale version: got %v, want backends.ErrConflict", err)
	}
	got, gotV, err := s.Load(ctx)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !bytes.Equal(got, stateDoc(2)) || gotV != v2 {
		t.Fatalf("after a lost Save, Load = %q, %d; want the winner %q, %d", got, gotV,
			stateDoc(2), v2)
	}
}

func testRace(t *testing.T, ctx context.Context, s rotation.Store) {
	base := mustSave(t, ctx, s, stateDoc(0), 0)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		wins   []int
		others []error
	)
	for i := range concurrentWriters {
		wg.Go(func() {
			_, err := s.Save(ctx, stateDoc(i+1), base)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins = append(wins, i+1)
			case !errors.Is(err, backends.ErrConflict):
				others = append(others, err)
			}
		})
	}
	wg.Wait()
	if len(others) > 0 {
		t.Fatalf("racing saves failed other than by conflict: %v", errors.Join(others...))
	}
	if len(wins) != 1 {
		t.Fatalf("%d of %d racing saves won (%v), want exactly 1", len(wins),
			concurrentWriters, wins)
	}
	got, _, err := s.Load(ctx)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !bytes.Equal(got, stateDoc(wins[0])) {
		t.Fatalf("Load = %q, want the winner's %q", got, stateDoc(wins[0]))
	}
}

func testKeyRoundTrip(t *testing.T, ctx context.Context, s rotation.Store) {
	k, jwk := newKey(t)
	if err := s.PutKey(ctx, k.KID, jwk); err != nil {
		t.Fatalf("PutKey: %v", err)
	}
	got, err := s.GetKey(ctx, k.KID)
	if err != nil {
		t.Fatalf("GetKey: %v", err)
	}
	if !bytes.Equal(got, jwk) {
		t.Fatal("GetKey returned other bytes than PutKey stored")
	}
	if err := s.DeleteKey(ctx, k.KID); err != nil {
		t.Fatalf("DeleteKey: %v", err)
	}
	if _, err := s.GetKey(ctx, k.KID); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("GetKey after DeleteKey: got %v, want backends.ErrNotFound", err)
	}
	if err := s.DeleteKey(ctx, k.KID); err != nil {
		t.Fatalf("DeleteKey of a deleted key: %v, want success", err)
	}
	if listed := kids(t, ctx, s); slices.Contains(listed, k.KID) {
		t.Fatalf("ListKeys after DeleteKey still lists %s", k.KID)
	}
}

func testMissingKey(t *testing.T, ctx context.Context, s rotation.Store) {
	k, _ := newKey(t)
	if _, err := s.GetKey(ctx, k.KID); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("GetKey of a key never stored: got %v, want backends.ErrNotFound", err)
	}
	if listed := kids(t, ctx, s); len(listed) != 0 {
		t.Fatalf("ListKeys on a fresh keyset = %v, want none", listed)
	}
}

func testList(t *testing.T, ctx context.Context, s rotation.Store) {
	before := time.Now().Add(-time.Minute)
	var want []string
	for range 3 {
		k, jwk := newKey(t)
		if err := s.PutKey(ctx, k.KID, jwk); err != nil {
			t.Fatalf("PutKey: %v", err)
		}
		want = append(want, k.KID)
	}
	stored, err := s.ListKeys(ctx)
	if err != nil {
		t.Fatalf("ListKeys: %v", err)
	}
	var got []string
	for _, sk := range stored {
		got = append(got, sk.KID)
		if sk.CreatedAt.Before(before) || sk.CreatedAt.After(time.Now().Add(time.Minute)) {
			t.Errorf("key %s: CreatedAt %s is not about now", sk.KID, sk.CreatedAt)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("ListKeys = %v, want %v", got, want)
	}
}

func testBadKID(t *testing.T, ctx context.Context, s rotation.Store) {
	for _, kid := range []string{"", "../state", "a/b", "short"} {
		if err := s.PutKey(ctx, kid, []byte("{}")); err == nil {
			t.Errorf("PutKey(%q) succeeded, want an error", kid)
		}
		if _, err := s.GetKey(ctx, kid); err == nil || errors.Is(err, backends.ErrNotFound) {
			t.Errorf("GetKey(%q) = %v, want an error other than not found", kid, err)
		}
	}
}

func testPublish(t *testing.T, ctx context.Context, h Harness) {
	s := h.Open(t)
	// The engine publishes a key only once a state naming it is committed.
	mustSave(t, ctx, s, stateDoc(1), 0)
	for range 2 {
		k, jwk := newKey(t)
		if err := s.PublishCurrent(ctx, k); err != nil {
			t.Fatalf("PublishCurrent: %v", err)
		}
		got := h.Current(t, s)
		if got.KID != k.KID || got.Alg != k.Alg {
			t.Fatalf("published kid, alg = %s, %s; want %s, %s", got.KID, got.Alg, k.KID, k.Alg)
		}
		parsed, err := keys.ParsePrivateJWK(got.JWK)
		if err != nil {
			t.Fatalf("published JWK does not parse: %v", err)
		}
		if parsed.KID != k.KID {
			t.Fatalf("published JWK is key %s, want %s", parsed.KID, k.KID)
		}
		if !bytes.Equal(got.JWK, jwk) {
			t.Fatal("published JWK differs from the key's private JWK")
		}
		pem, err := k.PEM()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.PEM, pem) {
			t.Fatal("published PEM differs from the key's PKCS#8 PEM")
		}
	}
}

func mustSave(t *testing.T, ctx context.Context, s rotation.Store, doc []byte, prev uint64,
) uint64 {
	t.Helper()
	v, err := s.Save(ctx, doc, prev)
	if err != nil {
		t.Fatalf("Save on version %d: %v", prev, err)
	}
	return v
}

func kids(t *testing.T, ctx context.Context, s rotation.Store) []string {
	t.Helper()
	stored, err := s.ListKeys(ctx)
	if err != nil {
		t.Fatalf("ListKeys: %v", err)
	}
	var out []string
	for _, sk := range stored {
		out = append(out, sk.KID)
	}
	return out
}

func newKey(t *testing.T) (*keys.Key, []byte) {
	t.Helper()
	k, err := keys.Generate("ES256", 0)
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := k.PrivateJWK()
	if err != nil {
		t.Fatal(err)
	}
	return k, jwk
}

// stateDoc returns a distinct state-like document for each n.
func stateDoc(n int) []byte {
	return fmt.Appendf(nil, `{"version":1,"keyset":"conformance","n":%d}`, n)
}
