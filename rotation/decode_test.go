package rotation_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/keyd-io/keyd/keys"
	"github.com/keyd-io/keyd/rotation"
)

// TestDecodeKeepsPublicBytes checks that a state read back from its document holds each
// public JWK in the bytes it was created with, so that a replica that loaded the state
// serves the same JWKS bytes (and ETag) as the replica that wrote it.
func TestDecodeKeepsPublicBytes(t *testing.T) {
	var fresh []rotation.Key
	for range 2 {
		k, err := keys.Generate("ES256", 0)
		if err != nil {
			t.Fatal(err)
		}
		pub, err := k.PublicJWK()
		if err != nil {
			t.Fatal(err)
		}
		fresh = append(fresh, rotation.Key{KID: k.KID, Alg: k.Alg, Public: pub})
	}
	created, _ := rotation.Apply(nil, "api", rotation.Policy{},
		rotation.Decision{Bootstrap: true}, fresh, time.Unix(1700000000, 0).UTC())
	doc, err := created.Encode()
	if err != nil {
		t.Fatal(err)
	}
	loaded, err := rotation.Decode(doc, "api")
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range loaded.Keys {
		if !bytes.Equal(k.Public, created.Keys[i].Public) {
			t.Errorf("key %s: loaded public JWK\n%s\nwant the created bytes\n%s", k.KID,
				k.Public, created.Keys[i].Public)
		}
	}
}
