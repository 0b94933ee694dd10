"""Signed one-time links: acknowledge an alarm or confirm reading a work prompt from any channel.

A token is `<id>.<nonce>.<mac>`: the link row's id, 16 random bytes, and an HMAC-SHA256 over
purpose, id and nonce under a key derived from the centre's secret key (so a forged or altered
token is refused before the database is asked). Only the SHA-256 of the whole token is stored
(`notify_links.token_hash`); `used_at` makes it one-time; `expires_at` bounds it. Keys rotate
with the centre's secret key: tokens made with a previous key still verify.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

PURPOSES = ("ack", "read")
_LABEL = b"firetower notify links v1"
MAX_TOKEN_LEN = 200


class LinkError(ValueError):
    """A token that is malformed or not signed by this centre."""


def _key(secret_key: str) -> bytes:
    return hmac.new(secret_key.encode(), _LABEL, hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _mac(key: bytes, purpose: str, link_id: int, nonce: str) -> str:
    msg = f"{purpose}:{link_id}:{nonce}".encode()
    return _b64(hmac.new(key, msg, hashlib.sha256).digest())


def make(secret_key: str, purpose: str, link_id: int) -> str:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown link purpose {purpose!r}")
    nonce = _b64(secrets.token_bytes(16))
    return f"{link_id}.{nonce}.{_mac(_key(secret_key), purpose, link_id, nonce)}"


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True, slots=True)
class Verified:
    link_id: int
    hash: bytes


def verify(secret_keys: Sequence[str], purpose: str, token: str) -> Verified:
    """The link id of a token signed by one of the keys (current first); LinkError otherwise."""
    if len(token) > MAX_TOKEN_LEN or token.count(".") != 2:
        raise LinkError("not a link token")
    raw_id, nonce, mac = token.split(".")
    if not raw_id.isdigit() or len(raw_id) > 18 or not nonce or not mac:
        raise LinkError("not a link token")
    link_id = int(raw_id)
    for key in secret_keys:
        if hmac.compare_digest(_mac(_key(key), purpose, link_id, nonce), mac):
            return Verified(link_id, token_hash(token))
    raise LinkError("the link is not signed by this centre")


def url(public_url: str, purpose: str, token: str) -> str:
    """The page that shows what the link does and does it on a press (a GET changes nothing:
    mail scanners and chat previews open links). The token rides in the fragment, which
    browsers do not send, so it stays out of proxy and server logs."""
    return f"{public_url.rstrip('/')}/console/link.html#{purpose}/{token}"
