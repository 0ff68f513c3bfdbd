package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// issuer is the iss claim every library writes and every verifier requires.
const issuer = "keyd-interop"

// toolTimeout bounds one run of a foreign library over a batch of jobs.
const toolTimeout = 2 * time.Minute

// signJob asks a library to sign a token for sub with the private key in PEM.
type signJob struct {
	ID  string `json:"id"`
	PEM string `json:"pem"`
	KID string `json:"kid"`
	Alg string `json:"alg"`
	Sub string `json:"sub"`
	TTL int    `json:"ttl"` // seconds until exp
}

type signed struct {
	ID    string `json:"id"`
	Token string `json:"token"`
}

// verifyJob asks a library to verify Token against the JWKS it fetches from URL JWKS.
type verifyJob struct {
	ID    string `json:"id"`
	JWKS  string `json:"jwks"`
	Token string `json:"token"`
}

// verdict is a library's answer to a verifyJob: the verified sub, or an error.
// UnknownKID is set when the library reports that no published key has the token's kid.
type verdict struct {
	ID         string `json:"id"`
	Sub        string `json:"sub"`
	Error      string `json:"error"`
	UnknownKID bool   `json:"unknown_kid"`
}

// library signs and verifies batches of jobs; answers come in the order of the jobs.
type library struct {
	name   string
	sign   func(jobs []signJob) ([]signed, error)
	verify func(jobs []verifyJob) ([]verdict, error)
}

// libraries are the verifiers keyd must satisfy. Each runs as its users run it.
var libraries = []library{
	foreign("jose (node)", "node", "node/jose.mjs"),
	foreign("PyJWT", "/usr/bin/python3", "python/pyjwt_tool.py"),
	foreign("jwcrypto", "/usr/bin/python3", "python/jwcrypto_tool.py"),
	{name: "go-jose", sign: goJoseSign, verify: goJoseVerify},
}

// foreign is a library driven through a script that reads jobs as JSON lines on stdin
// and answers with one JSON line per job.
func foreign(name string, argv ...string) library {
	return library{
		name: name,
		sign: func(jobs []signJob) ([]signed, error) {
			return runTool[signJob, signed](name, argv, "sign", jobs)
		},
		verify: func(jobs []verifyJob) ([]verdict, error) {
			return runTool[verifyJob, verdict](name, argv, "verify", jobs)
		},
	}
}

func runTool[J, A any](name string, argv []string, action string, jobs []J) ([]A, error) {
	var in bytes.Buffer
	enc := json.NewEncoder(&in)
	for _, j := range jobs {
		if err := enc.Encode(j); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], append(argv[1:], action)...)
	cmd.Stdin = &in
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s %s: %w\n%s\n(interop/INSTALL.sh installs the libraries)",
			name, action, err, strings.TrimSpace(stderr.String()))
	}

	var answers []A
	dec := json.NewDecoder(&out)
	for dec.More() {
		var a A
		if err := dec.Decode(&a); err != nil {
			return nil, fmt.Errorf("%s %s: read answer: %w", name, action, err)
		}
		answers = append(answers, a)
	}
	if len(answers) != len(jobs) {
		return nil, fmt.Errorf("%s %s: %d answers to %d jobs\n%s", name, action,
			len(answers), len(jobs), strings.TrimSpace(stderr.String()))
	}
	return answers, nil
}
