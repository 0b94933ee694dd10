"""Secrets fail closed (firetower/settings.py) and webhook secrets sealed with AES-GCM, with key
rotation and the old format still opening (firetower/webhooks/secretbox.py)."""

from __future__ import annotations

import secrets
from pathlib import Path

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.security import create_token, decode_token
from firetower.settings import DEV_SECRET, Settings, SettingsError, secret_key_problem
from firetower.webhooks.secretbox import SealError, SecretBox, key_id

STRONG = "q7Rk2vX9pL4mZ8nB3cW6yT1hJ5gF0dSa"  # 32 bytes, 30 different characters
OLD = "Vb8Nc3Xz5Lk1Jh7Gf2Ds9Aq4Wp6Eo0Ri"

# Sealed by the previous construction (HMAC-SHA256 counter mode + HMAC tag, version byte 1)
# under DEV_SECRET, before AES-GCM: stored rows like it must still open.
LEGACY_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
LEGACY_BLOB = bytes.fromhex(
    "01301602f88813bbb5b51d4b804fffc660a6277068985b5c08990307253fa236229eba186bdaf6481a6640de"
    "7d4bbc7fb9d0fdd477854889eb3aebcb443d9da1fc711628902523ee83a2e5dba6ca5d608f8b3084d5fda4")


@pytest.fixture
def default_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment of a deployment that set nothing (the suite itself runs with
    FIRETOWER_ENV=development, tests/conftest.py)."""
    for name in ("FIRETOWER_ENV", "FIRETOWER_SECRET_KEY", "FIRETOWER_SECRET_KEY_FILE",
                 "FIRETOWER_PREVIOUS_SECRET_KEYS"):
        monkeypatch.delenv(name, raising=False)


# -- settings -------------------------------------------------------------------------------

@pytest.mark.usefixtures("default_env")
def test_default_environment_refuses_to_load_without_a_key() -> None:
    with pytest.raises(SettingsError, match="FIRETOWER_SECRET_KEY"):
        Settings()


@pytest.mark.usefixtures("default_env")
def test_forged_admin_token_with_the_public_key_in_a_default_environment() -> None:
    """The attack of issue 13: a token forged with the key anyone can read. Either the
    settings refuse to load, or the token does not verify; today's answer: they refuse."""
    forged = jwt.encode({"sub": "1", "role": "admin", "typ": "access", "exp": 2**40},
                        DEV_SECRET, algorithm="HS256")
    with pytest.raises(SettingsError):
        settings = Settings(secret_key=DEV_SECRET)
        assert decode_token(forged, settings.secret_keys) is None


@pytest.mark.usefixtures("default_env")
@pytest.mark.parametrize("key", ["", "k", DEV_SECRET, "x" * 32, "short-but-varied-0123",
                                 "abcdefg" * 10], ids=["empty", "one-char", "dev-key",
                                                       "repeated", "31-bytes", "7-distinct"])
@pytest.mark.parametrize("env", ["production", "test"])
def test_weak_keys_refused_outside_development(key: str, env: str) -> None:
    with pytest.raises(SettingsError, match="FIRETOWER_SECRET_KEY"):
        Settings(env=env, secret_key=key)  # type: ignore[arg-type]


@pytest.mark.usefixtures("default_env")
def test_a_weak_previous_key_is_refused_too() -> None:
    with pytest.raises(SettingsError, match="FIRETOWER_PREVIOUS_SECRET_KEYS"):
        Settings(secret_key=STRONG, previous_secret_keys=f"{OLD},{DEV_SECRET}")


@pytest.mark.usefixtures("default_env")
def test_strong_key_from_the_environment_or_a_file(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:
    monkeypatch.setenv("FIRETOWER_SECRET_KEY", STRONG)
    monkeypatch.setenv("FIRETOWER_PREVIOUS_SECRET_KEYS", f" {OLD} ,")
    s = Settings()
    assert s.env == "production" and s.secret_keys == [STRONG, OLD]
    monkeypatch.delenv("FIRETOWER_SECRET_KEY")
    key_file = tmp_path / "secret_key"
    key_file.write_text(STRONG + "\n")
    monkeypatch.setenv("FIRETOWER_SECRET_KEY_FILE", str(key_file))
    assert Settings().secret_keys[0] == STRONG
    monkeypatch.setenv("FIRETOWER_SECRET_KEY_FILE", str(tmp_path / "missing"))
    with pytest.raises(SettingsError, match="FIRETOWER_SECRET_KEY_FILE"):
        Settings()


@pytest.mark.usefixtures("default_env")
def test_the_error_does_not_quote_the_key() -> None:
    key = "Zz" * 10  # weak: 20 bytes
    with pytest.raises(SettingsError) as err:
        Settings(secret_key=key)
    assert "Zz" not in str(err.value)


@pytest.mark.usefixtures("default_env")
def test_development_only_when_asked_for() -> None:
    assert Settings(env="development").secret_keys == [DEV_SECRET]
    assert Settings(env="development", secret_key="k").secret_keys == ["k"]


@given(st.binary(min_size=32, max_size=64))
def test_random_keys_pass_the_rule(raw: bytes) -> None:
    """Keys made the documented way (token_urlsafe of 32+ random bytes) are never refused."""
    key = secrets.token_urlsafe(len(raw))
    assert secret_key_problem(key) is None


# -- token signing with rotation ------------------------------------------------------------

def test_tokens_signed_with_a_previous_key_verify_during_rotation() -> None:
    old_token, _ = create_token(7, "admin", OLD, 5)
    new_token, _ = create_token(7, "admin", STRONG, 5)
    assert decode_token(old_token, [STRONG, OLD]) == 7
    assert decode_token(new_token, [STRONG, OLD]) == 7
    assert decode_token(old_token, [STRONG]) is None  # rotation finished: the old key is gone
    assert decode_token(new_token, STRONG) == 7


# -- sealed webhook secrets -----------------------------------------------------------------

def test_aes_gcm_round_trip_and_tamper() -> None:
    box = SecretBox(STRONG)
    secret = "whsec_" + secrets.token_urlsafe(24)
    sealed = box.seal(secret)
    assert sealed[:1] == b"\x02" and sealed[1:5] == key_id(STRONG)
    assert secret.encode() not in sealed and box.open(sealed) == secret
    assert box.seal(secret) != sealed  # a fresh nonce each time
    assert len(sealed) == 1 + 4 + 12 + len(secret) + 16
    for i in range(len(sealed)):  # any changed byte: refused (header bytes included)
        tampered = bytearray(sealed)
        tampered[i] ^= 0x01
        with pytest.raises(SealError):
            box.open(bytes(tampered))
    with pytest.raises(SealError):
        SecretBox(OLD).open(sealed)
    with pytest.raises(SealError):
        box.open(b"")


def test_rotation_opens_old_blobs_and_seals_with_the_current_key() -> None:
    before = SecretBox(OLD)
    sealed_old = before.seal("whsec_old")
    after = SecretBox.of([STRONG, OLD])
    assert after.open(sealed_old) == "whsec_old"
    assert after.stale(sealed_old)
    sealed_new = after.seal("whsec_new")
    assert sealed_new[1:5] == key_id(STRONG) and not after.stale(sealed_new)
    assert SecretBox(STRONG).open(sealed_new) == "whsec_new"  # no previous key needed
    with pytest.raises(SealError):
        SecretBox(STRONG).open(sealed_old)  # once the old key is dropped


def test_legacy_blob_opens_with_any_known_key() -> None:
    assert SecretBox(DEV_SECRET).open(LEGACY_BLOB) == LEGACY_SECRET
    box = SecretBox(STRONG, [OLD, DEV_SECRET])
    assert box.open(LEGACY_BLOB) == LEGACY_SECRET and box.stale(LEGACY_BLOB)
    tampered = bytearray(LEGACY_BLOB)
    tampered[-1] ^= 1
    with pytest.raises(SealError):
        box.open(bytes(tampered))
    with pytest.raises(SealError):
        SecretBox(STRONG).open(LEGACY_BLOB)


@given(st.text(max_size=200), st.lists(st.text(min_size=1, max_size=40), min_size=1,
                                       max_size=4, unique=True))
def test_seal_open_property(plaintext: str, keys: list[str]) -> None:
    """Whatever the key set, a blob sealed by any box opens with a box that knows its key."""
    box = SecretBox.of(keys)
    assert box.open(box.seal(plaintext)) == plaintext
    older = SecretBox(keys[-1])
    assert box.open(older.seal(plaintext)) == plaintext
