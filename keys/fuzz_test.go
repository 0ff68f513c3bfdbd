package keys

import "testing"

// FuzzParsePrivateJWK feeds arbitrary bytes to the private key parser: any input gives a
// key whose kid is its thumbprint, or a clean error, never a panic.
func FuzzParsePrivateJWK(f *testing.F) {
	for _, alg := range []string{"ES256", "ES512", "EdDSA"} {
		k, err := Generate(alg, 0)
		if err != nil {
			f.Fatal(err)
		}
		data, err := k.PrivateJWK()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"kty":"oct","k":"AAAA"}`))
	f.Add([]byte(`{"kty":"EC","crv":"P-256","x":"","y":"","d":""}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := ParsePrivateJWK(data)
		if err != nil {
			return
		}
		again, err := fromSigner(k.Signer, k.Alg)
		if err != nil || again.KID != k.KID {
			t.Fatalf("parsed key's kid %s is not its thumbprint (%v)", k.KID, err)
		}
	})
}
