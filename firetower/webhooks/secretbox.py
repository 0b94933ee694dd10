"""Webhook secrets at rest: sealed with AES-256-GCM under a key derived from the centre's secret.

The dispatcher must recover a secret to sign with it, so secrets cannot be hashed. Each is
encrypted with AES-256-GCM (`cryptography`) under a random 96-bit nonce; the AES key is derived
from a `FIRETOWER_SECRET_KEY` by HKDF-SHA256, and the API and the dispatcher share that key,
which the database never sees. Layout (version 2):

    0x02 | key id (4) | nonce (12) | ciphertext | GCM tag (16)

The key id is the first 4 bytes of HMAC-SHA256(key, "firetower/key-id"): it names which key
sealed the blob (without revealing it), so the secret key can rotate. `SecretBox` takes the
current key and the previous ones (`Settings.secret_keys`): `seal` always uses the current key;
`open` uses the key the blob names. Version and key id are authenticated as associated data.

Version 1 (before AES-GCM: HMAC-SHA256 counter-mode keystream, encrypt-then-MAC,
0x01 | nonce(16) | ciphertext | tag(32)) still opens, with any known key. Migration: the
dispatcher re-seals every stored secret that is version 1 or sealed with a previous key
(`stale`, `subscriptions.reseal`) when it takes leadership, so after one start with the new
key set every row is under the current key and the previous keys can be dropped.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

VERSION = b"\x02"
LEGACY_VERSION = b"\x01"
_KEY_ID, _NONCE, _TAG = 4, 12, 16
_HEADER = 1 + _KEY_ID + _NONCE
_LEGACY_NONCE, _LEGACY_TAG = 16, 32


class SealError(ValueError):
    pass


def key_id(master_key: str) -> bytes:
    return hmac.new(master_key.encode(), b"firetower/key-id", hashlib.sha256).digest()[:_KEY_ID]


def _aes_key(master_key: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                info=b"firetower/webhook-secrets/aes-256-gcm/v2").derive(master_key.encode())


class _LegacyKey:
    """Version 1: opening only (nothing is sealed this way any more)."""

    def __init__(self, master_key: str) -> None:
        master = master_key.encode()
        self._enc = hmac.new(master, b"firetower/webhook-secrets/enc/v1", hashlib.sha256).digest()
        self._mac = hmac.new(master, b"firetower/webhook-secrets/mac/v1", hashlib.sha256).digest()

    def open(self, sealed: bytes) -> str | None:
        """The plaintext, or None when the tag does not verify with this key."""
        body, tag = sealed[:-_LEGACY_TAG], sealed[-_LEGACY_TAG:]
        if not hmac.compare_digest(tag, hmac.new(self._mac, body, hashlib.sha256).digest()):
            return None
        nonce, ct = body[1:1 + _LEGACY_NONCE], body[1 + _LEGACY_NONCE:]
        stream = bytearray()
        counter = 0
        while len(stream) < len(ct):
            stream += hmac.new(self._enc, nonce + counter.to_bytes(8, "big"),
                               hashlib.sha256).digest()
            counter += 1
        return bytes(a ^ b for a, b in zip(ct, stream, strict=False)).decode()


class SecretBox:
    def __init__(self, current_key: str, previous_keys: Sequence[str] = ()) -> None:
        keys = [current_key, *(k for k in previous_keys if k != current_key)]
        self._current = key_id(current_key)
        self._aead = {key_id(k): AESGCM(_aes_key(k)) for k in reversed(keys)}
        self._legacy = [_LegacyKey(k) for k in keys]

    @classmethod
    def of(cls, keys: Sequence[str]) -> SecretBox:
        """From `Settings.secret_keys`: the current key first, then the previous ones."""
        return cls(keys[0], keys[1:])

    def seal(self, plaintext: str) -> bytes:
        nonce = secrets.token_bytes(_NONCE)
        header = VERSION + self._current + nonce
        return header + self._aead[self._current].encrypt(nonce, plaintext.encode(),
                                                          header[:1 + _KEY_ID])

    def open(self, sealed: bytes) -> str:
        sealed = bytes(sealed)
        if sealed[:1] == LEGACY_VERSION and len(sealed) >= 1 + _LEGACY_NONCE + _LEGACY_TAG:
            for legacy in self._legacy:
                plaintext = legacy.open(sealed)
                if plaintext is not None:
                    return plaintext
            raise SealError("webhook secret (version 1) does not authenticate with any known "
                            "key (FIRETOWER_SECRET_KEY / FIRETOWER_PREVIOUS_SECRET_KEYS)")
        if sealed[:1] != VERSION or len(sealed) < _HEADER + _TAG:
            raise SealError("not a sealed webhook secret")
        aead = self._aead.get(sealed[1:1 + _KEY_ID])
        if aead is None:
            raise SealError("webhook secret sealed with a key that is neither "
                            "FIRETOWER_SECRET_KEY nor in FIRETOWER_PREVIOUS_SECRET_KEYS")
        try:
            return aead.decrypt(sealed[1 + _KEY_ID:_HEADER], sealed[_HEADER:],
                                sealed[:1 + _KEY_ID]).decode()
        except InvalidTag:
            raise SealError("webhook secret does not authenticate (altered?)") from None

    def stale(self, sealed: bytes) -> bool:
        """Whether `sealed` should be re-sealed: version 1, or sealed with a previous key."""
        sealed = bytes(sealed)
        return sealed[:1] != VERSION or sealed[1:1 + _KEY_ID] != self._current
