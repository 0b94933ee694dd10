"""API settings that the shared `firetower.settings.Settings` does not carry.

Read from the same FIRETOWER_* environment. Secrets stay in the shared root (`secret_key`).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FIRETOWER_", extra="ignore")

    # Bearer tokens are short-lived; the console logs in again when one expires.
    api_token_minutes: int = Field(default=30, ge=1, le=24 * 60)
    # Mosquitto files the API rewrites when device credentials change (None: not managed).
    mqtt_password_file: Path | None = None
    mqtt_acl_file: Path | None = None
    # Group given read access to both files (the broker's user group, e.g. "mosquitto").
    mqtt_files_group: str | None = None
    # PID file of the broker to SIGHUP after a rewrite (None: the operator reloads it).
    mqtt_broker_pid_file: Path | None = None
    # Largest floor-plan image accepted, bytes.
    floor_plan_max_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    # Largest bulk-import CSV accepted, bytes.
    import_max_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    # The console's city map: a tile URL template ({z}/{x}/{y}, optionally {s}) of the base
    # map, e.g. the government network's own tile server; unset, the map draws boundaries and
    # markers on a blank ground. Its origin is added to the console's img-src.
    map_tile_url: str | None = Field(default=None, max_length=500,
                                     pattern=r"^https?://[^\s\"'<>]+\{z\}[^\s\"'<>]*$")
    map_attribution: str = Field(default="", max_length=300)
    # Largest organisation import (CSV or XLSX: a city's jurisdictions, units, sites...), bytes.
    org_import_max_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    # Live stream: keep-alive comment interval, seconds.
    stream_keepalive_s: float = Field(default=15.0, gt=0)
    # Largest request body of every other route, bytes (api/limits.py): refused with 413
    # before it is parsed and before authentication.
    body_max_bytes: int = Field(default=64 * 1024, ge=1024)
    # argon2id computations at once (each takes api.security.ARGON2_MEMORY_KIB, 64 MiB);
    # further logins and password changes wait their turn.
    password_hash_concurrency: int = Field(default=2, ge=1, le=64)
    # Login throttling (api/throttle.py, in the memory of this API process): failed logins
    # within `login_window_s` per account and per client address before 429 + Retry-After.
    login_account_failures: int = Field(default=5, ge=1)
    login_address_failures: int = Field(default=20, ge=1)
    login_window_s: float = Field(default=300.0, gt=0)
    # Live stream: how often an open stream re-checks its user and credentials, seconds.
    stream_recheck_s: float = Field(default=5.0, gt=0)
