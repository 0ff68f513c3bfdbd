"""Signs and verifies JWTs with PyJWT, which shares no code with keyd.

    pyjwt_tool.py sign    stdin: one job a line {"id","pem","kid","alg","sub","ttl"}
                          stdout: one line a job {"id","token"}
    pyjwt_tool.py verify  stdin: one job a line {"id","jwks","token"}
                          stdout: one line a job {"id","sub"} or {"id","error","unknown_kid"}

verify fetches the JWKS from the job's URL with PyJWKClient, as a relying party would,
and accepts only the public-key algorithms keyd offers (never "none" or an HMAC).
"""
import json
import sys
import time

import jwt

ISSUER = "keyd-interop"
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
              "ES256", "ES384", "ES512", "EdDSA"]


def sign(job):
    with open(job["pem"], "rb") as f:
        pem = f.read()
    now = int(time.time())
    claims = {"sub": job["sub"], "iss": ISSUER, "iat": now, "exp": now + job["ttl"]}
    headers = {"kid": job["kid"], "typ": "JWT"}
    return {"id": job["id"], "token": jwt.encode(claims, pem, algorithm=job["alg"], headers=headers)}


def verify(job):
    client = jwt.PyJWKClient(job["jwks"], cache_jwk_set=False)
    try:
        key = client.get_signing_key_from_jwt(job["token"])
    except jwt.PyJWKClientError as err:
        # PyJWT raises this one error type for a missing kid and for a broken set; its
        # message tells them apart.
        return {"id": job["id"], "error": f"PyJWKClientError: {err}",
                "unknown_kid": "Unable to find a signing key" in str(err)}
    try:
        claims = jwt.decode(job["token"], key.key, algorithms=ALGORITHMS,
                            issuer=ISSUER)
    except jwt.PyJWTError as err:
        return {"id": job["id"], "error": f"{type(err).__name__}: {err}", "unknown_kid": False}
    return {"id": job["id"], "sub": claims["sub"]}


def main():
    action = {"sign": sign, "verify": verify}.get(sys.argv[1] if len(sys.argv) > 1 else "")
    if action is None:
        sys.exit("usage: pyjwt_tool.py sign|verify < jobs")
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(action(json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
