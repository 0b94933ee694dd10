"""Credentials: argon2id password hashes, HS256 bearer tokens and API keys.

Password hashes are argon2id with the parameters below (RFC 9106's second recommended
profile, argon2-cffi's defaults, spelled out so a library upgrade cannot change them
silently): 64 MiB of memory, 3 passes, 4 lanes. Each verification takes that memory for
about a tenth of a second, so the API runs at most `FIRETOWER_PASSWORD_HASH_CONCURRENCY` (2) at
once (`Hashing`); others wait for a slot instead of taking 64 MiB more each.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import anyio
import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

ARGON2_MEMORY_KIB = 64 * 1024  # per hash or verification
ARGON2_TIME_COST = 3
ARGON2_PARALLELISM = 4
_hasher = PasswordHasher(time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_KIB,
                         parallelism=ARGON2_PARALLELISM)
# Verified when the user does not exist, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("firetower-dummy-password")
JWT_ALGORITHM = "HS256"
API_KEY_PREFIX = "ftk"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str | None) -> bool:
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


class Hashing:
    """Argon2 work on worker threads, at most `concurrency` at once: peak memory for hashing is
    `concurrency` x ARGON2_MEMORY_KIB however many logins arrive together. Made in the
    application's lifespan (the limiter belongs to its event loop)."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self.limiter = anyio.CapacityLimiter(concurrency)

    async def verify(self, password: str, password_hash: str | None) -> bool:
        return await anyio.to_thread.run_sync(verify_password, password, password_hash,
                                              limiter=self.limiter)

    async def hash(self, password: str) -> str:
        return await anyio.to_thread.run_sync(hash_password, password, limiter=self.limiter)


@dataclass(frozen=True, slots=True)
class TokenClaims:
    user_id: int
    version: int  # the user's token_version when the token was issued
    expires_at: datetime


def create_token(user_id: int, role: str, secret: str, minutes: int,
                 version: int = 1) -> tuple[str, int]:
    """A signed access token for the user at its current `token_version`."""
    now = datetime.now(UTC)
    claims = {"sub": str(user_id), "role": role, "ver": version, "iat": now,
              "exp": now + timedelta(minutes=minutes), "typ": "access"}
    return jwt.encode(claims, secret, algorithm=JWT_ALGORITHM), minutes * 60


def read_token(token: str, secret: str | Sequence[str]) -> TokenClaims | None:
    """The claims of a valid, unexpired access token, else None. `secret`: the current key,
    or the current key and then the previous ones (`Settings.secret_keys`): during a key
    rotation, tokens signed with a previous key stay valid until they expire. A token without
    a version (issued before versions existed) reads as version 0, which no user has."""
    claims = None
    for key in [secret] if isinstance(secret, str) else secret:
        try:
            claims = jwt.decode(token, key, algorithms=[JWT_ALGORITHM],
                                options={"require": ["exp", "sub"]})
            break
        except jwt.PyJWTError:
            continue
    if claims is None or claims.get("typ") != "access":
        return None
    try:
        version = claims.get("ver", 0)
        if not isinstance(version, int) or isinstance(version, bool):
            return None
        return TokenClaims(int(claims["sub"]), version,
                           datetime.fromtimestamp(claims["exp"], UTC))
    except (TypeError, ValueError, OverflowError):
        return None


def decode_token(token: str, secret: str | Sequence[str]) -> int | None:
    """The user id in a valid, unexpired access token, else None (see `read_token`)."""
    claims = read_token(token, secret)
    return None if claims is None else claims.user_id


def new_api_key() -> tuple[str, str, bytes]:
    """-> (full key shown once, lookup prefix, SHA-256 of the full key)."""
    prefix = secrets.token_hex(6)
    key = f"{API_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    return key, prefix, api_key_digest(key)


def split_api_key(key: str) -> str | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX or len(parts[1]) != 12:
        return None
    return parts[1]


def api_key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()
