package interop

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// publicKeyAlgorithms are the algorithms a verifier accepts: keyd's, never "none" or HMAC.
var publicKeyAlgorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

func goJoseSign(jobs []signJob) ([]signed, error) {
	var out []signed
	for _, job := range jobs {
		token, err := goJoseSignOne(job)
		if err != nil {
			return nil, fmt.Errorf("go-jose sign %s: %w", job.ID, err)
		}
		out = append(out, signed{ID: job.ID, Token: token})
	}
	return out, nil
}

func goJoseSignOne(job signJob) (string, error) {
	data, err := os.ReadFile(job.PEM)
	if err != nil {
		return "", err
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return "", fmt.Errorf("%s: no PEM block", job.PEM)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return "", err
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{
			Algorithm: jose.SignatureAlgorithm(job.Alg),
			Key:       jose.JSONWebKey{Key: key, KeyID: job.KID, Algorithm: job.Alg},
		},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return "", err
	}
	now := time.Now()
	claims := jwt.Claims{
		Subject:  job.Sub,
		Issuer:   issuer,
		IssuedAt: jwt.NewNumericDate(now),
		Expiry:   jwt.NewNumericDate(now.Add(time.Duration(job.TTL) * time.Second)),
	}
	return jwt.Signed(signer).Claims(claims).Serialize()
}

func goJoseVerify(jobs []verifyJob) ([]verdict, error) {
	var out []verdict
	for _, job := range jobs {
		set, err := fetchKeySet(job.JWKS)
		if err != nil {
			return nil, fmt.Errorf("go-jose verify %s: %w", job.ID, err)
		}
		out = append(out, goJoseVerifyOne(job, set))
	}
	return out, nil
}

// goJoseVerifyOne picks the published key by the token's kid and accepts the token only
// with that key's own algorithm.
func goJoseVerifyOne(job verifyJob, set *jose.JSONWebKeySet) verdict {
	fail := func(err error) verdict { return verdict{ID: job.ID, Error: err.Error()} }
	token, err := jwt.ParseSigned(job.Token, publicKeyAlgorithms)
	if err != nil {
		return fail(err)
	}
	header := token.Headers[0]
	keys := set.Key(header.KeyID)
	if len(keys) == 0 {
		return verdict{ID: job.ID, UnknownKID: true,
			Error: fmt.Sprintf("no published key has kid %q", header.KeyID)}
	}
	if keys[0].Algorithm != header.Algorithm {
		return fail(fmt.Errorf("token alg %s, published key's %s", header.Algorithm,
			keys[0].Algorithm))
	}
	var claims jwt.Claims
	if err := token.Claims(keys[0].Key, &claims); err != nil {
		return fail(err)
	}
	if err := claims.Validate(jwt.Expected{Issuer: issuer, Time: time.Now()}); err != nil {
		return fail(err)
	}
	return verdict{ID: job.ID, Sub: claims.Subject}
}

func fetchKeySet(url string) (*jose.JSONWebKeySet, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	return &set, nil
}
