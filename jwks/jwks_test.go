package jwks_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keyd-io/keyd/jwks"
	"github.com/keyd-io/keyd/keys"
	"github.com/keyd-io/keyd/rotation"
)

// publicMembers lists, per key type, every member a public JWK may carry.
var publicMembers = map[string][]string{
	"EC":  {"kty", "use", "alg", "kid", "crv", "x", "y"},
	"RSA": {"kty", "use", "alg", "kid", "n", "e"},
	"OKP": {"kty", "use", "alg", "kid", "crv", "x"},
}

// thumbprintMembers are the RFC 7638 required members, in lexicographic order.
var thumbprintMembers = map[string][]string{
	"EC":  {"crv", "kty", "x", "y"},
	"RSA": {"e", "kty", "n"},
	"OKP": {"crv", "kty", "x"},
}

func TestJWKSConformance(t *testing.T) {
	tests := []struct {
		alg     string
		rsaBits int
		count   int
		// coord is the byte length of EC/OKP coordinates, or of the RSA modulus.
		coord int
		crv   string
	}{
		// Many EC keys: a coordinate with a leading zero byte shows up about once in 128
		// keys, and P-521's top byte is zero in about half of them.
		{alg: "ES256", count: 400, coord: 32, crv: "P-256"},
		{alg: "ES384", count: 300, coord: 48, crv: "P-384"},
		{alg: "ES512", count: 100, coord: 66, crv: "P-521"},
		{alg: "EdDSA", count: 50, coord: 32, crv: "Ed25519"},
		{alg: "RS256", rsaBits: 2048, count: 3, coord: 256},
		{alg: "RS384", rsaBits: 3072, count: 1, coord: 384},
		{alg: "RS512", rsaBits: 4096, count: 1, coord: 512},
		{alg: "PS256", rsaBits: 2048, count: 2, coord: 256},
		{alg: "PS384", rsaBits: 2048, count: 1, coord: 256},
		{alg: "PS512", rsaBits: 2048, count: 1, coord: 256},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s-%d", tc.alg, tc.rsaBits), func(t *testing.T) {
			s := stateOf(t, tc.alg, tc.rsaBits, tc.count)
			doc := jwks.Encode(s, time.Minute)
			var set struct {
				Keys []map[string]any `json:"keys"`
			}
			if err := json.Unmarshal(doc.Body, &set); err != nil {
				t.Fatalf("JWKS is not JSON: %v", err)
			}
			if len(set.Keys) != tc.count {
				t.Fatalf("%d keys served, want %d", len(set.Keys), tc.count)
			}
			want := s.Published()
			seen := map[string]bool{}
			for i, k := range set.Keys {
				kid := checkKey(t, k, tc.alg, tc.crv, tc.coord)
				if seen[kid] {
					t.Fatalf("kid %s served twice", kid)
				}
				seen[kid] = true
				if kid != want[i].KID {
					t.Fatalf("key %d is %s, want %s (%s)", i, kid, want[i].KID, want[i].Phase)
				}
			}
			if set.Keys[0]["kid"] != s.InPhase(rotation.Current).KID {
				t.Fatal("the current key is not first")
			}
		})
	}
}

// checkKey checks one served JWK and returns its kid.
func checkKey(t *testing.T, k map[string]any, alg, crv string, size int) string {
	t.Helper()
	kty, _ := k["kty"].(string)
	allowed := publicMembers[kty]
	if allowed == nil {
		t.Fatalf("unexpected kty %q", kty)
	}
	for member := range k {
		if !contains(allowed, member) {
			t.Fatalf("%s key has member %q, which a public JWK must not have", kty, member)
		}
	}
	for _, member := range allowed {
		if _, ok := k[member]; !ok {
			t.Fatalf("%s key lacks %q", kty, member)
		}
	}
	if k["use"] != "sig" || k["alg"] != alg {
		t.Fatalf("use %v alg %v, want sig %s", k["use"], k["alg"], alg)
	}
	switch kty {
	case "EC", "OKP":
		if k["crv"] != crv {
			t.Fatalf("crv %v, want %s", k["crv"], crv)
		}
		for _, c := range []string{"x", "y"} {
			if v, ok := k[c]; ok {
				if n := len(decode(t, c, v)); n != size {
					t.Fatalf("%s %s is %d bytes, want %d (full length, leading zeros kept)",
						crv, c, n, size)
				}
			}
		}
	case "RSA":
		n := decode(t, "n", k["n"])
		if len(n) != size || n[0] == 0 {
			t.Fatalf("n is %d bytes starting %#x, want %d bytes with no leading zero",
				len(n), n[0], size)
		}
		if k["e"] != "AQAB" {
			t.Fatalf("e = %v, want AQAB", k["e"])
		}
	}
	kid, _ := k["kid"].(string)
	if want := thumbprint(t, k); kid != want {
		t.Fatalf("kid %s is not the RFC 7638 thumbprint %s", kid, want)
	}
	return kid
}

// thumbprint computes RFC 7638 by hand: the required members, sorted, no whitespace.
func thumbprint(t *testing.T, k map[string]any) string {
	t.Helper()
	var parts []string
	for _, m := range thumbprintMembers[k["kty"].(string)] {
		parts = append(parts, fmt.Sprintf("%q:%q", m, k[m]))
	}
	sum := sha256.Sum256([]byte("{" + strings.Join(parts, ",") + "}"))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func decode(t *testing.T, name string, v any) []byte {
	t.Helper()
	s, ok := v.(string)
	if !ok || strings.ContainsAny(s, "=+/") {
		t.Fatalf("%s = %v is not unpadded base64url", name, v)
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return b
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// stateOf builds a state with n fresh keys: a current, a next, and retired ones.
func stateOf(t testing.TB, alg string, rsaBits, n int) rotation.State {
	t.Helper()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := rotation.State{Version: rotation.StateVersion, Keyset: "test"}
	// Retired keys are added oldest first, so serving them newest first is a real reorder.
	for i := range n {
		k, err := keys.Generate(alg, rsaBits)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := k.PublicJWK()
		if err != nil {
			t.Fatal(err)
		}
		key := rotation.Key{KID: k.KID, Alg: alg, Public: pub, Phase: rotation.Retired,
			PublishedAt: base, RetiredAt: base.Add(time.Duration(i) * time.Minute),
			ExpiresAt: base.Add(time.Hour)}
		switch i {
		case 0:
			key.Phase, key.RetiredAt, key.ExpiresAt = rotation.Current, time.Time{}, time.Time{}
		case 1:
			key.Phase, key.RetiredAt, key.ExpiresAt = rotation.Next, time.Time{}, time.Time{}
		}
		s.Keys = append(s.Keys, key)
	}
	return s
}
