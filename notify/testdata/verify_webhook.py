#!/usr/bin/python3
"""Checks one webhook request against the Standard Webhooks specification.

Reads a JSON object on stdin: {"secret": "whsec_...", "headers": {name: value},
"body": "<raw body>", "now": <unix seconds>}. Exits 0 when a v1 signature matches and the
timestamp is within five minutes of now; otherwise prints why and exits 1. Written from the
specification alone, so that it checks keyd rather than repeating keyd's own code.
"""
import base64
import hashlib
import hmac
import json
import sys

TOLERANCE_SECONDS = 5 * 60


def fail(reason):
    print(reason)
    sys.exit(1)


def main():
    req = json.load(sys.stdin)
    headers = {k.lower(): v for k, v in req["headers"].items()}
    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        if name not in headers:
            fail("missing header " + name)
    msg_id = headers["webhook-id"]
    timestamp = headers["webhook-timestamp"]
    if not timestamp.isdigit():
        fail("timestamp is not integer seconds: " + timestamp)
    if abs(int(req["now"]) - int(timestamp)) > TOLERANCE_SECONDS:
        fail("timestamp outside the tolerance")

    secret = req["secret"]
    if secret.startswith("whsec_"):
        secret = secret[len("whsec_"):]
    key = base64.b64decode(secret)
    signed = (msg_id + "." + timestamp + ".").encode() + req["body"].encode()
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()

    for candidate in headers["webhook-signature"].split(" "):
        version, _, signature = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(signature, expected):
            return
    fail("no v1 signature matches")


if __name__ == "__main__":
    main()
