"""Pure parts: the signature scheme (with the published Standard Webhooks test vector),
sealed secrets, the retry policy (with property tests)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatch.retry import Outcome, Policy, backoff, decide, retry_after, retryable
from firetower.webhooks.secretbox import SealError, SecretBox
from firetower.webhooks.signing import InvalidSignature, new_secret, secret_key, sign_headers, signature, verify

# From the Standard Webhooks reference libraries' tests.
VECTOR = ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
          b'{"test": 2432232314}', "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")


def test_standard_webhooks_vector() -> None:
    secret, msg_id, ts, body, expected = VECTOR
    assert signature(secret_key(secret), msg_id, ts, body) == expected
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": expected}
    assert verify([secret], headers, body, now=ts + 10) == msg_id
    with pytest.raises(InvalidSignature):
        verify([secret], headers, body, now=ts + 301)  # outside the 5-minute tolerance
    with pytest.raises(InvalidSignature):
        verify([secret], headers, body + b" ", now=ts)  # body changed


def test_rotation_signs_with_every_secret() -> None:
    old, new = new_secret(), new_secret()
    h = sign_headers([secret_key(new), secret_key(old)], "evt_1", b"{}")
    assert len(h["webhook-signature"].split()) == 2
    assert verify([old], h, b"{}") == verify([new], h, b"{}") == "evt_1"
    with pytest.raises(InvalidSignature):
        verify([new_secret()], h, b"{}")
    with pytest.raises(ValueError):
        sign_headers([], "evt_1", b"{}")


def test_secretbox_round_trip_and_tamper() -> None:
    box = SecretBox("k1")
    secret = new_secret()
    sealed = box.seal(secret)
    assert secret.encode() not in sealed and box.open(sealed) == secret
    assert box.seal(secret) != sealed  # fresh nonce
    with pytest.raises(SealError):
        SecretBox("k2").open(sealed)
    tampered = bytearray(sealed)
    tampered[20] ^= 1
    with pytest.raises(SealError):
        box.open(bytes(tampered))


def test_retry_classification() -> None:
    assert retryable(None) and retryable(500) and retryable(503) and retryable(408)
    assert retryable(429) and not retryable(400) and not retryable(404)
    assert not retryable(410) and not retryable(301)
    p = Policy(1.0, 300.0, 3600.0)
    assert decide(p, status=204, attempts=1, age_s=0).outcome is Outcome.DELIVERED
    assert decide(p, status=401, attempts=1, age_s=0).outcome is Outcome.REJECTED
    assert decide(p, status=500, attempts=1, age_s=3599.9).outcome is Outcome.DEAD
    d = decide(p, status=429, attempts=1, age_s=0, retry_after_header="120")
    assert d.outcome is Outcome.RETRY and d.delay_s == 120


def test_retry_after_http_date() -> None:
    now = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    when = (now + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert retry_after(when, now) == 30
    assert retry_after("garbage", now) is None and retry_after(None, now) is None


@given(attempts=st.integers(1, 200), base=st.floats(0.01, 10), cap=st.floats(0.1, 600),
       seed=st.integers(0, 2**32))
def test_backoff_bounds(attempts: int, base: float, cap: float, seed: int) -> None:
    p = Policy(base, cap, 1e9)
    step = min(cap, base * 2 ** min(attempts - 1, 30))
    assert step / 2 <= backoff(p, attempts, random.Random(seed)) <= step


@given(status=st.one_of(st.none(), st.integers(100, 599)), attempts=st.integers(1, 50),
       age=st.floats(0, 1e5))
def test_decide_never_retries_past_the_horizon(status: int | None, attempts: int,
                                               age: float) -> None:
    p = Policy(1.0, 300.0, 86_400.0)
    d = decide(p, status=status, attempts=attempts, age_s=age)
    if d.outcome is Outcome.RETRY:
        assert age + d.delay_s <= p.horizon_s and retryable(status)
    if status is not None and 200 <= status < 300:
        assert d.outcome is Outcome.DELIVERED
