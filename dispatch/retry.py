"""What to do after one delivery attempt: delivered, retry later, rejected, or dead.

Retry on 5xx, 408, 429, timeouts and connection errors, with exponential backoff and full
jitter between half and all of the step (so a fleet of endpoints recovering together does not
retry in lock-step); `Retry-After` (seconds or an HTTP date) is honoured on 429 and 503, capped
by the horizon. Other 4xx are the receiver refusing this message: no retry (a retry would get
the same answer and block the endpoint's queue). A message still failing when its next
attempt would fall after the dead-letter horizon is dead-lettered; both can be replayed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    REJECTED = "rejected"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class Policy:
    base_s: float = 1.0
    max_s: float = 30.0
    horizon_s: float = 86_400.0


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    delay_s: float = 0.0  # for RETRY: wait this long before the next attempt


def retryable(status: int | None) -> bool:
    """None = no HTTP answer (timeout, connection refused or reset)."""
    return status is None or status >= 500 or status in (408, 429)


def retry_after(value: str | None, now: datetime) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - now).total_seconds(), 0.0)


def backoff(policy: Policy, attempts: int, rng: random.Random | None = None) -> float:
    """Delay after the `attempts`-th failed attempt (1-based)."""
    step = min(policy.max_s, policy.base_s * 2 ** min(attempts - 1, 30))
    return step * (0.5 + 0.5 * (rng or random).random())


def decide(policy: Policy, *, status: int | None, attempts: int, age_s: float,
           retry_after_header: str | None = None, now: datetime | None = None,
           rng: random.Random | None = None) -> Decision:
    """`attempts` counts this one; `age_s` is the time since the message was enqueued."""
    if status is not None and 200 <= status < 300:
        return Decision(Outcome.DELIVERED)
    if not retryable(status):
        return Decision(Outcome.REJECTED)
    delay = backoff(policy, attempts, rng)
    if status in (429, 503):
        hinted = retry_after(retry_after_header, now or datetime.now(UTC))
        if hinted is not None:
            delay = hinted
    if age_s + delay > policy.horizon_s:
        return Decision(Outcome.DEAD)
    return Decision(Outcome.RETRY, delay)
