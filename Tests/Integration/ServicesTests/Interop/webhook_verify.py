#!/usr/bin/env python3
"""Checks webhook deliveries with the verification snippet of docs/EVENTS.md ("Webhooks").

The part between the snippet markers is quoted verbatim in docs/EVENTS.md (a test checks it).

    webhook_verify.py DELIVERIES.json

DELIVERIES.json: {"secret": "...", "now": unix seconds or null,
                  "deliveries": [{"headers": {"webhook-timestamp": ..., ...}, "body_b64": "..."}]}
Prints "ok <n>" when every delivery verifies, else "FAIL <index>" for each that does not (exit 1).
"""
import base64
import json
import sys

# --- snippet begin ---
import hashlib
import hmac
import time


def verify_webhook(secret, headers, body, tolerance_seconds=300, now=None):
    """True when a Doorstep webhook request is authentic and recent.

    secret: the subscription's secret (str); headers: the request's headers, names in
    lower case; body: the raw request body (bytes), before any JSON parsing.
    """
    timestamp = headers.get("webhook-timestamp", "")
    now = time.time() if now is None else now
    if not timestamp.isdigit() or abs(now - int(timestamp)) > tolerance_seconds:
        return False  # missing, malformed, or too old/new: a replay
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    offered = [v[3:] for v in headers.get("webhook-signature", "").split() if v.startswith("v1=")]
    return any(hmac.compare_digest(expected, candidate) for candidate in offered)
# --- snippet end ---


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    failures = 0
    for index, delivery in enumerate(spec["deliveries"]):
        body = base64.b64decode(delivery["body_b64"])
        if not verify_webhook(spec["secret"], delivery["headers"], body, now=spec.get("now")):
            print(f"FAIL {index}")
            failures += 1
    if failures:
        sys.exit(1)
    print(f"ok {len(spec['deliveries'])}")


if __name__ == "__main__":
    main()
