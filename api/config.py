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
    # Live stream: keep-alive comment interval, seconds.
    stream_keepalive_s: float = Field(default=15.0, gt=0)
