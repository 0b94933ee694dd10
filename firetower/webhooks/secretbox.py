"""Webhook secrets at rest: sealed with a key derived from FIRETOWER_SECRET_KEY.

The dispatcher must recover a secret to sign with it, so secrets cannot be hashed. They are
encrypted with HMAC-SHA256 in counter mode (a PRF keystream) under a random 16-byte nonce and
authenticated with a separate HMAC-SHA256 tag (encrypt-then-MAC); both keys are derived from
the centre's secret key, which the API and the dispatcher share and the database never sees.
Standard-library only (no AES in the stdlib); the format has a version byte so it can move to
AES-GCM without a schema change. Layout: 0x01 | nonce(16) | ciphertext | tag(32).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

VERSION = b"\x01"
_NONCE, _TAG = 16, 32


class SealError(ValueError):
    pass


class SecretBox:
    def __init__(self, master_key: str) -> None:
        master = master_key.encode()
        self._enc = hmac.new(master, b"firetower/webhook-secrets/enc/v1", hashlib.sha256).digest()
        self._mac = hmac.new(master, b"firetower/webhook-secrets/mac/v1", hashlib.sha256).digest()

    def _stream(self, nonce: bytes, n: int) -> bytes:
        out = bytearray()
        counter = 0
        while len(out) < n:
            out += hmac.new(self._enc, nonce + counter.to_bytes(8, "big"), hashlib.sha256).digest()
            counter += 1
        return bytes(out[:n])

    def seal(self, plaintext: str) -> bytes:
        data = plaintext.encode()
        nonce = secrets.token_bytes(_NONCE)
        ct = bytes(a ^ b for a, b in zip(data, self._stream(nonce, len(data)), strict=True))
        tag = hmac.new(self._mac, VERSION + nonce + ct, hashlib.sha256).digest()
        return VERSION + nonce + ct + tag

    def open(self, sealed: bytes) -> str:
        if len(sealed) < 1 + _NONCE + _TAG or sealed[:1] != VERSION:
            raise SealError("not a sealed webhook secret")
        body, tag = sealed[:-_TAG], sealed[-_TAG:]
        if not hmac.compare_digest(tag, hmac.new(self._mac, body, hashlib.sha256).digest()):
            raise SealError("webhook secret does not authenticate (wrong FIRETOWER_SECRET_KEY?)")
        nonce, ct = body[1:1 + _NONCE], body[1 + _NONCE:]
        return bytes(a ^ b for a, b in zip(ct, self._stream(nonce, len(ct)), strict=True)).decode()
