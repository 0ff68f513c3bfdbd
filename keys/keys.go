// Package keys creates signing key pairs and encodes them as JWKs and PEM.
//
// Keys are generated with the standard library and encoded with jwx. A key's kid is its
// RFC 7638 thumbprint (SHA-256, base64url without padding), so every replica that holds
// the same key computes the same kid and the same public JWK bytes.
package keys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// ErrUnknownAlgorithm is returned for an algorithm keyd cannot create keys for.
var ErrUnknownAlgorithm = errors.New("unknown algorithm")

// Key is one signing key pair with its kid and algorithm.
type Key struct {
	KID    string
	Alg    string
	Signer crypto.Signer

	private jwk.Key
}

// Generate creates a new key pair for alg. rsaBits is used by RS* and PS* only.
func Generate(alg string, rsaBits int) (*Key, error) {
	var (
		signer crypto.Signer
		err    error
	)
	switch alg {
	case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
		if rsaBits < 2048 {
			return nil, fmt.Errorf("generate %s key: %d bits is below 2048", alg, rsaBits)
		}
		signer, err = rsa.GenerateKey(rand.Reader, rsaBits)
	case "ES256":
		signer, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ES384":
		signer, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "ES512":
		signer, err = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case "EdDSA":
		_, signer, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("generate key: %w %q", ErrUnknownAlgorithm, alg)
	}
	if err != nil {
		return nil, fmt.Errorf("generate %s key: %w", alg, err)
	}
	return fromSigner(signer, alg)
}

// ParsePrivateJWK decodes a private JWK written by PrivateJWK. It checks that the stored
// kid is the key's thumbprint, so a key file can never be served under another kid.
func ParsePrivateJWK(data []byte) (key *Key, err error) {
	defer func() {
		// A malformed key must never take the daemon down, even if the JWK library
		// panics on it.
		if r := recover(); r != nil {
			key, err = nil, fmt.Errorf("parse private JWK: malformed key: %v", r)
		}
	}()
	parsed, err := jwk.ParseKey(data)
	if err != nil {
		return nil, fmt.Errorf("parse private JWK: %w", err)
	}
	var raw any
	if err := parsed.Raw(&raw); err != nil {
		return nil, fmt.Errorf("parse private JWK: %w", err)
	}
	signer, ok := rawSigner(raw)
	if !ok {
		return nil, fmt.Errorf("parse private JWK: not a private key (kty %s)", parsed.KeyType())
	}
	if err := validate(signer); err != nil {
		return nil, fmt.Errorf("parse private JWK: %w", err)
	}
	key, err = fromSigner(signer, parsed.Algorithm().String())
	if err != nil {
		return nil, fmt.Errorf("parse private JWK: %w", err)
	}
	if parsed.KeyID() != key.KID {
		return nil, fmt.Errorf("parse private JWK: kid %q is not the key's thumbprint %q",
			parsed.KeyID(), key.KID)
	}
	return key, nil
}

// PrivateJWK returns the private key as a JWK with kid, alg and use set.
func (k *Key) PrivateJWK() ([]byte, error) {
	return json.Marshal(k.private)
}

// PublicJWK returns the public key as a JWK with kid, alg and use set. It never contains a
// private member.
func (k *Key) PublicJWK() ([]byte, error) {
	pub, err := jwk.PublicKeyOf(k.private)
	if err != nil {
		return nil, fmt.Errorf("public key of %s: %w", k.KID, err)
	}
	return json.Marshal(pub)
}

// PEM returns the private key as a PKCS#8 PEM block.
func (k *Key) PEM() ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k.Signer)
	if err != nil {
		return nil, fmt.Errorf("encode %s as PKCS#8: %w", k.KID, err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

func fromSigner(signer crypto.Signer, alg string) (*Key, error) {
	if err := checkAlgorithm(signer, alg); err != nil {
		return nil, err
	}
	priv, err := jwk.FromRaw(signer)
	if err != nil {
		return nil, fmt.Errorf("encode %s key as JWK: %w", alg, err)
	}
	pub, err := jwk.PublicKeyOf(priv)
	if err != nil {
		return nil, fmt.Errorf("encode %s key as JWK: %w", alg, err)
	}
	sum, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("thumbprint of %s key: %w", alg, err)
	}
	kid := base64.RawURLEncoding.EncodeToString(sum)
	for name, value := range map[string]any{
		jwk.KeyIDKey:     kid,
		jwk.AlgorithmKey: jwa.SignatureAlgorithm(alg),
		jwk.KeyUsageKey:  jwk.ForSignature,
	} {
		if err := priv.Set(name, value); err != nil {
			return nil, fmt.Errorf("set %s on JWK: %w", name, err)
		}
	}
	return &Key{KID: kid, Alg: alg, Signer: signer, private: priv}, nil
}

// checkAlgorithm refuses a key whose type or curve does not fit alg.
func checkAlgorithm(signer crypto.Signer, alg string) error {
	var ok bool
	switch k := signer.(type) {
	case *rsa.PrivateKey:
		switch alg {
		case "RS256", "RS384", "RS512", "PS256", "PS384", "PS512":
			ok = k.N.BitLen() >= 2048
		}
	case *ecdsa.PrivateKey:
		want := map[string]elliptic.Curve{
			"ES256": elliptic.P256(), "ES384": elliptic.P384(), "ES512": elliptic.P521(),
		}[alg]
		ok = want != nil && k.Curve == want
	case ed25519.PrivateKey:
		ok = alg == "EdDSA"
	}
	if !ok {
		return fmt.Errorf("a %T does not fit algorithm %q", signer, alg)
	}
	return nil
}

// validate checks that a decoded private key is internally consistent: the RSA primes
// multiply to the modulus, the EC scalar is in range and matches the public point, the
// Ed25519 seed gives the stored public key.
func validate(signer crypto.Signer) error {
	switch k := signer.(type) {
	case *rsa.PrivateKey:
		if err := k.Validate(); err != nil {
			return fmt.Errorf("invalid RSA key: %w", err)
		}
	case *ecdsa.PrivateKey:
		if k.D == nil || k.X == nil || k.Y == nil {
			return errors.New("invalid EC key: missing members")
		}
		priv, err := k.ECDH()
		if err != nil {
			return fmt.Errorf("invalid EC key: %w", err)
		}
		pub, err := k.PublicKey.ECDH()
		if err != nil || !priv.PublicKey().Equal(pub) {
			return errors.New("invalid EC key: public point does not match the private scalar")
		}
	case ed25519.PrivateKey:
		if len(k) != ed25519.PrivateKeySize {
			return errors.New("invalid Ed25519 key: wrong length")
		}
		derived := ed25519.NewKeyFromSeed(k.Seed())
		if !derived.Equal(k) {
			return errors.New("invalid Ed25519 key: public key does not match the seed")
		}
	}
	return nil
}

func rawSigner(raw any) (crypto.Signer, bool) {
	switch k := raw.(type) {
	case *rsa.PrivateKey:
		return k, true
	case *ecdsa.PrivateKey:
		return k, true
	case ed25519.PrivateKey:
		return k, true
	case *ed25519.PrivateKey:
		return *k, true
	}
	return nil, false
}
