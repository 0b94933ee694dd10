"""Standard Webhooks signatures: HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{body}`.

A secret is `whsec_` + base64 of the key bytes. `webhook-signature` is a space-separated list
of `v1,<base64 signature>`, one per active secret (several during a rotation); a receiver
accepts the message when any of them verifies with any secret it knows.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable, Mapping

PREFIX = "whsec_"
TOLERANCE_S = 300  # receivers reject timestamps further than this from their clock


class InvalidSignature(ValueError):
    pass


def new_secret(nbytes: int = 32) -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(nbytes)).decode()


def secret_key(secret: str) -> bytes:
    if not secret.startswith(PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    return base64.b64decode(secret[len(PREFIX):], validate=True)


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def sign_headers(keys: Iterable[bytes], msg_id: str, body: bytes,
                 timestamp: int | None = None) -> dict[str, str]:
    """The three headers for one attempt (the timestamp is the attempt's, the id the event's)."""
    ts = int(time.time()) if timestamp is None else timestamp
    sigs = " ".join(signature(k, msg_id, ts, body) for k in keys)
    if not sigs:
        raise ValueError("no active secret to sign with")
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": sigs}


def verify(secrets_: Iterable[str], headers: Mapping[str, str], body: bytes, *,
           now: float | None = None, tolerance_s: int = TOLERANCE_S) -> str:
    """Receiver side (tests, docs): the webhook-id if valid, else InvalidSignature."""
    try:
        msg_id = headers["webhook-id"]
        ts = int(headers["webhook-timestamp"])
        offered = headers["webhook-signature"].split()
    except (KeyError, ValueError) as exc:
        raise InvalidSignature(f"missing or malformed header: {exc}") from None
    if abs((time.time() if now is None else now) - ts) > tolerance_s:
        raise InvalidSignature("timestamp outside the tolerance")
    for s in secrets_:
        expected = signature(secret_key(s), msg_id, ts, body)
        if any(hmac.compare_digest(expected, o) for o in offered):
            return msg_id
    raise InvalidSignature("no signature matches")
