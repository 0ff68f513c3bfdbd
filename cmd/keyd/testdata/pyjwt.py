"""Signs and verifies JWTs with PyJWT, a JWT library independent of keyd.

    pyjwt.py sign PEM_FILE KID ALG       prints a token for {"sub": "e2e"}
    pyjwt.py verify JWKS_FILE TOKEN      prints the verified claims' sub, or fails
"""
import json
import sys
import time

import jwt


def sign(pem_file, kid, alg):
    with open(pem_file, "rb") as f:
        pem = f.read()
    now = int(time.time())
    claims = {"sub": "e2e", "iat": now, "exp": now + 600}
    print(jwt.encode(claims, pem, algorithm=alg, headers={"kid": kid}))


def verify(jwks_file, token):
    with open(jwks_file) as f:
        keys = json.load(f)["keys"]
    kid = jwt.get_unverified_header(token)["kid"]
    matches = [k for k in keys if k["kid"] == kid]
    if not matches:
        sys.exit("kid not found: " + kid)
    # The algorithm comes from the published key, never from the token.
    key = jwt.PyJWK(matches[0])
    claims = jwt.decode(token, key.key, algorithms=[matches[0]["alg"]])
    print(claims["sub"])


if __name__ == "__main__":
    {"sign": sign, "verify": verify}[sys.argv[1]](*sys.argv[2:])
