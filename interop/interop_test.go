package interop

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keyd-io/keyd/config"
	"github.com/keyd-io/keyd/internal/keydtest"
)

// lifetimes are the token_ttl and grace of every keyset in a test's configuration.
type lifetimes struct {
	tokenTTL time.Duration
	grace    time.Duration
}

// configFor is a keyd configuration with one keyset per algorithm, named after it in
// lower case. RSA keysets get each size keyd offers: 2048 bits for *256, 3072 for *384
// and 4096 for *512. publish_lead is one second, so SIGUSR1 promotes soon after start.
func configFor(data string, life lifetimes, algorithms ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[server]\nlisten = %q\n[storage.disk]\ndir = %q\n", "{{listen}}", data)
	for _, alg := range algorithms {
		fmt.Fprintf(&b, "\n[[keyset]]\nname = %q\nalgorithm = %q\n", keysetName(alg), alg)
		if strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS") {
			bits := map[string]int{"256": 2048, "384": 3072, "512": 4096}[alg[2:]]
			fmt.Fprintf(&b, "rsa_bits = %d\n", bits)
		}
		fmt.Fprintf(&b, "schedule = \"@daily\"\npublish_lead = \"1s\"\n")
		fmt.Fprintf(&b, "token_ttl = %q\ngrace = %q\n", life.tokenTTL, life.grace)
	}
	return b.String()
}

func keysetName(alg string) string { return strings.ToLower(alg) }

// currentKey reads the kid and alg that issuers find in <data>/<keyset>/current.jwk.
func currentKey(t *testing.T, data, keyset string) (kid, alg string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(data, keyset, "current.jwk"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct{ KID, Alg string }
	if err := json.Unmarshal(raw, &k); err != nil {
		t.Fatalf("current.jwk of %s: %v", keyset, err)
	}
	return k.KID, k.Alg
}

// servedKIDs returns the kids in keyset's served JWKS, in the order served.
func servedKIDs(t *testing.T, keyd *keydtest.Process, keyset string) []string {
	t.Helper()
	resp, body := keyd.Get(jwksPath(keyset))
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", jwksPath(keyset), resp.StatusCode)
	}
	var set struct{ Keys []struct{ KID string } }
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatalf("JWKS of %s: %v", keyset, err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.KID)
	}
	return kids
}

func jwksPath(keyset string) string { return "/keysets/" + keyset + "/jwks.json" }

// token is one signed token and what it was made from.
type token struct {
	signer, alg, kid, keyset string
	value                    string
}

// sub is the subject a token carries and a verifier must give back.
func (tk token) sub() string { return tk.signer + "/" + tk.alg }

// signEverywhere has every library sign one token with each keyset's current.pem.
func signEverywhere(t *testing.T, data string, ttl time.Duration, keysets []string) []token {
	t.Helper()
	var tokens []token
	for _, lib := range libraries {
		var jobs []signJob
		for _, keyset := range keysets {
			kid, alg := currentKey(t, data, keyset)
			jobs = append(jobs, signJob{ID: keyset, KID: kid, Alg: alg,
				PEM: filepath.Join(data, keyset, "current.pem"), Sub: lib.name + "/" + alg,
				TTL: int(ttl.Seconds())})
		}
		answers, err := lib.sign(jobs)
		if err != nil {
			t.Fatalf("sign with %s: %v", lib.name, err)
		}
		for i, a := range answers {
			if a.ID != jobs[i].ID || a.Token == "" {
				t.Fatalf("%s signed %q for job %q", lib.name, a.Token, jobs[i].ID)
			}
			tokens = append(tokens, token{signer: lib.name, alg: jobs[i].Alg,
				kid: jobs[i].KID, keyset: jobs[i].ID, value: a.Token})
		}
	}
	return tokens
}

// verifyEverywhere has every library, at once, verify every token against the JWKS its
// keyset serves. It returns each library's verdicts in the order of tokens.
func verifyEverywhere(t *testing.T, keyd *keydtest.Process, tokens []token) map[string][]verdict {
	t.Helper()
	var jobs []verifyJob
	for i, tk := range tokens {
		jobs = append(jobs, verifyJob{ID: fmt.Sprint(i), JWKS: keyd.URL(jwksPath(tk.keyset)),
			Token: tk.value})
	}
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		verdicts = map[string][]verdict{}
	)
	for _, lib := range libraries {
		wg.Go(func() {
			answers, err := lib.verify(jobs)
			if err != nil {
				t.Errorf("verify with %s: %v", lib.name, err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			verdicts[lib.name] = answers
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return verdicts
}

func TestEveryLibraryVerifiesEveryAlgorithm(t *testing.T) {
	data := t.TempDir()
	life := lifetimes{tokenTTL: 10 * time.Minute, grace: 15 * time.Minute}
	keyd := keydtest.Start(t, configFor(data, life, config.Algorithms...), keydtest.Options{})

	var keysets []string
	for _, alg := range config.Algorithms {
		keysets = append(keysets, keysetName(alg))
	}
	tokens := signEverywhere(t, data, life.tokenTTL, keysets)
	for _, tk := range tokens {
		if kids := servedKIDs(t, keyd, tk.keyset); len(kids) != 2 || kids[0] != tk.kid {
			t.Fatalf("%s serves %v, want the current kid %s first and a next key",
				tk.keyset, kids, tk.kid)
		}
	}

	verdicts := verifyEverywhere(t, keyd, tokens)
	for _, lib := range libraries {
		t.Run(lib.name, func(t *testing.T) {
			for i, v := range verdicts[lib.name] {
				if tk := tokens[i]; v.Sub != tk.sub() {
					t.Errorf("%s token signed by %s: sub %q, error %q", tk.alg, tk.signer,
						v.Sub, v.Error)
				}
			}
		})
	}
}

func TestRetiredKeyVerifiesUntilGraceEnds(t *testing.T) {
	data := t.TempDir()
	// token_ttl leaves the verifiers time to run between retirement and expiry on a busy
	// machine; grace is one second longer, so the key outlives every token it signed.
	life := lifetimes{tokenTTL: 8 * time.Second, grace: 9 * time.Second}
	keyd := keydtest.Start(t, configFor(data, life, "ES256", "EdDSA"), keydtest.Options{})
	keysets := []string{"es256", "eddsa"}

	tokens := signEverywhere(t, data, life.tokenTTL, keysets)
	retiring := map[string]string{} // keyset → kid
	for _, tk := range tokens {
		retiring[tk.keyset] = tk.kid
	}

	// The next key is younger than publish_lead right after start: the rotation waits
	// for it and then runs by itself.
	keyd.Signal(syscall.SIGUSR1)
	for keyset, kid := range retiring {
		keyd.WaitFor(keyset+" to retire "+kid, func() bool {
			kids := servedKIDs(t, keyd, keyset)
			return kids[0] != kid && slices.Contains(kids, kid)
		})
	}
	for lib, vs := range verifyEverywhere(t, keyd, tokens) {
		for i, v := range vs {
			if tk := tokens[i]; v.Sub != tk.sub() {
				t.Errorf("%s rejects a %s token signed by %s with the retired key: %s",
					lib, tk.alg, tk.signer, v.Error)
			}
		}
	}

	removedAt := map[string]time.Time{}
	for keyset, kid := range retiring {
		keyd.WaitFor(keyset+" to remove "+kid+" after its grace", func() bool {
			return !slices.Contains(servedKIDs(t, keyd, keyset), kid)
		})
		removedAt[keyset] = time.Now()
	}
	for _, tk := range tokens {
		if exp := expiry(t, tk.value); removedAt[tk.keyset].Before(exp) {
			t.Errorf("%s removed its key at %s, before a token it signed expired at %s",
				tk.keyset, removedAt[tk.keyset].Format(time.RFC3339Nano), exp)
		}
	}
	for lib, vs := range verifyEverywhere(t, keyd, tokens) {
		for i, v := range vs {
			if tk := tokens[i]; !v.UnknownKID {
				t.Errorf("%s on a %s token signed by %s with a removed key: sub %q, error %q;"+
					" want an unknown-kid error", lib, tk.alg, tk.signer, v.Sub, v.Error)
			}
		}
	}
}

// expiry reads a token's exp claim without verifying it.
func expiry(t *testing.T, tok string) time.Time {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a compact JWS: %q", tok)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("token payload: %v", err)
	}
	var claims struct{ Exp int64 }
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatalf("token payload: %v", err)
	}
	return time.Unix(claims.Exp, 0)
}
