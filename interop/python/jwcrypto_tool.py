"""Signs and verifies JWTs with jwcrypto, which shares no code with keyd.

    jwcrypto_tool.py sign    stdin: one job a line {"id","pem","kid","alg","sub","ttl"}
                             stdout: one line a job {"id","token"}
    jwcrypto_tool.py verify  stdin: one job a line {"id","jwks","token"}
                             stdout: one line a job {"id","sub"} or {"id","error","unknown_kid"}

verify fetches the JWKS from the job's URL, lets jwcrypto pick the key by the token's kid,
and accepts only the public-key algorithms keyd offers (never "none" or an HMAC).
"""
import json
import sys
import time
import urllib.request

from jwcrypto import common, jwk, jwt

ISSUER = "keyd-interop"
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
              "ES256", "ES384", "ES512", "EdDSA"]


def sign(job):
    with open(job["pem"], "rb") as f:
        key = jwk.JWK.from_pem(f.read())
    now = int(time.time())
    token = jwt.JWT(header={"alg": job["alg"], "kid": job["kid"], "typ": "JWT"},
                    claims={"sub": job["sub"], "iss": ISSUER, "iat": now,
                            "exp": now + job["ttl"]})
    token.make_signed_token(key)
    return {"id": job["id"], "token": token.serialize()}


def verify(job):
    with urllib.request.urlopen(job["jwks"], timeout=10) as resp:
        keyset = jwk.JWKSet.from_json(resp.read())
    try:
        token = jwt.JWT(jwt=job["token"], key=keyset, algs=ALGORITHMS,
                        check_claims={"iss": ISSUER, "exp": None})
    except jwt.JWTMissingKey as err:
        return {"id": job["id"], "error": f"JWTMissingKey: {err}", "unknown_kid": True}
    except (common.JWException, ValueError) as err:
        return {"id": job["id"], "error": f"{type(err).__name__}: {err}", "unknown_kid": False}
    return {"id": job["id"], "sub": json.loads(token.claims)["sub"]}


def main():
    action = {"sign": sign, "verify": verify}.get(sys.argv[1] if len(sys.argv) > 1 else "")
    if action is None:
        sys.exit("usage: jwcrypto_tool.py sign|verify < jobs")
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(action(json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
