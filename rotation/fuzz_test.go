package rotation

import "testing"

// FuzzDecode feeds arbitrary bytes to the state decoder: any input gives a state that
// passes every check, or a clean error, never a panic.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"version":1,"keyset":"test","keys":[]}`))
	f.Add([]byte(`{"version":1,"keyset":"test","keys":[{"kid":"x","alg":"ES256",` +
		`"state":"current","public":{"kty":"EC"}}]}`))
	f.Add([]byte(`{"version":1,"keyset":"test","keys":[{"kid":"x","state":"retired",` +
		`"public":{"kty":"oct","k":"AAAA"}}]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		st, err := Decode(data, "test")
		if err != nil {
			return
		}
		if st.InPhase(Current) == nil {
			t.Fatal("decoded a state without a current key")
		}
		for _, k := range st.Keys {
			if err := checkPublic(k); err != nil {
				t.Fatalf("decoded a state with a bad key: %v", err)
			}
		}
	})
}
