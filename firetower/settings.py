"""Configuration: one pydantic-settings root read from FIRETOWER_* environment variables.

Defaults point at the local PostgreSQL and Mosquitto on their standard ports, so every command
works here with no configuration. Outside `env=development`, default secrets are refused.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "development-only-secret-change-me"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FIRETOWER_", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/firetower"
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    # Credentials of the centre's own MQTT account (ingester, rule engine). The password may
    # instead be read from a file (`mqtt_password_secret_file`, e.g. a systemd credential).
    # With broker authentication every persistent session is its own service account, named
    # by its client id (see `mqtt_session_credentials`), with this password.
    mqtt_username: str | None = None
    mqtt_password: SecretStr | None = None
    mqtt_password_secret_file: Path | None = None

    # Ingest: a batch is written when it reaches batch_size messages or is flush_ms old.
    ingest_client_id: str = "firetower-ingest"
    ingest_batch_size: int = Field(default=5000, ge=1, le=100_000)
    ingest_flush_ms: float = Field(default=50.0, ge=0.0, le=10_000.0)
    # Confirm each stored event to its device (centre/v1/{id}/confirm) once its alarm decisions
    # are committed; devices resend unconfirmed events (docs/protocol.md, Event confirmation).
    ingest_confirm_events: bool = True
    ingest_shared_group: str | None = None  # MQTT shared subscription group for scale-out
    # Device-partitioned scale-out (docs/scaling.md): devices are hashed into `partitions`;
    # a worker serves the partitions listed in `ingest_owned_partitions` ("0,2" ; None = all).
    ingest_partitions: int = Field(default=1, ge=1, le=1024)
    ingest_owned_partitions: str | None = None
    reject_payload_cap: int = Field(default=1024, ge=0, le=65536)
    # Prometheus /metrics of each process, on 127.0.0.1 (None = not served).
    metrics_port: int | None = 9464  # ingest (with the rule engine in the same process)
    api_metrics_port: int | None = 9465
    dispatch_metrics_port: int | None = 9466

    # API
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    secret_key: SecretStr = SecretStr(DEV_SECRET)
    public_url: str = "http://127.0.0.1:8000"

    @model_validator(mode="after")
    def _no_default_secrets(self) -> Settings:
        if self.env != "development" and self.secret_key.get_secret_value() == DEV_SECRET:
            raise ValueError("FIRETOWER_SECRET_KEY must be set outside development")
        return self

    @property
    def mqtt_host(self) -> str:
        return urlsplit(self.mqtt_url).hostname or "127.0.0.1"

    @property
    def mqtt_port(self) -> int:
        return urlsplit(self.mqtt_url).port or 1883

    @property
    def mqtt_service_password(self) -> str | None:
        """The service accounts' password: `mqtt_password`, else the secret file's content,
        else the password in `mqtt_url`."""
        if self.mqtt_password is not None:
            return self.mqtt_password.get_secret_value()
        if self.mqtt_password_secret_file is not None:
            return self.mqtt_password_secret_file.read_text().strip() or None
        return urlsplit(self.mqtt_url).password

    def mqtt_session_credentials(self, client_id: str) -> tuple[str, str | None] | None:
        """Credentials of one of the centre's persistent sessions. The authenticated broker
        makes a client's id its username (`use_username_as_clientid`), so a session logs in
        as the service account named by its client id; without a service password, the
        shared credentials (none: anonymous, development only)."""
        password = self.mqtt_service_password
        if password is None:
            return self.mqtt_credentials
        return client_id, password

    @property
    def mqtt_credentials(self) -> tuple[str, str | None] | None:
        """Username and password from the settings, else from the URL's user part."""
        if self.mqtt_username:
            return self.mqtt_username, self.mqtt_service_password
        parts = urlsplit(self.mqtt_url)
        if parts.username:
            return parts.username, parts.password
        return None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
