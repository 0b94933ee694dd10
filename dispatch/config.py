"""Dispatcher settings, read from FIRETOWER_DISPATCH_* environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class DispatchSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FIRETOWER_DISPATCH_", extra="ignore")

    # Verification deadline: a fire with no verdict is forwarded, unverified, this long after
    # the centre received it (NFPA 72 allows 90 s for verification).
    verification_deadline_s: float = Field(default=60.0, gt=0, le=90.0)
    # Forward a fire confirmed by coincidence (two signals in a zone) at once.
    forward_on_coincidence: bool = False
    # Unforwarded fires older than this (e.g. after a long outage) are still forwarded only if
    # younger than this; older ones are left to operators.
    forward_max_age_s: float = Field(default=86_400.0, gt=0)

    # Delivery
    timeout_s: float = Field(default=5.0, gt=0)
    backoff_base_s: float = Field(default=1.0, gt=0)
    # A receiver back after an outage waits at most this long for the next attempt.
    backoff_max_s: float = Field(default=30.0, gt=0)
    dead_letter_after_s: float = Field(default=86_400.0, gt=0)  # the retry horizon
    batch_size: int = Field(default=100, ge=1, le=10_000)
    retention_days: int = Field(default=30, ge=1)  # finished deliveries and their log
    pool_size: int = Field(default=20, ge=2, le=200)  # database connections
    # An endpoint is "failing" (operator-visible fault alarm) after this many consecutive
    # failed attempts spanning at least `failing_alarm_after_s`.
    failing_alarm_failures: int = Field(default=3, ge=1)
    failing_alarm_after_s: float = Field(default=60.0, ge=0)
    # Safety net if a NOTIFY is missed (listener reconnecting): rescan the outbox this often.
    rescan_s: float = Field(default=5.0, gt=0)
