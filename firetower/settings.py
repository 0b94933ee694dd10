"""Configuration: one pydantic-settings root read from FIRETOWER_* environment variables.

Defaults point at the local PostgreSQL and Mosquitto on their standard ports. Secrets fail
closed: the default environment is `production`, and outside an explicit
`FIRETOWER_ENV=development` the settings refuse to load without a strong `FIRETOWER_SECRET_KEY`
(or `FIRETOWER_SECRET_KEY_FILE`); see `secret_key_problem` and docs/security.md.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# Used only with an explicit FIRETOWER_ENV=development and no key of one's own: public, so
# anyone can forge tokens with it; refused everywhere else.
DEV_SECRET = "development-only-secret-change-me"
# The strength rule for secret keys (the token signing key and the webhook-secret sealing key):
# at least this many bytes (UTF-8) and this many different characters. 32 random bytes encoded
# (`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`, 43 characters) pass; a
# short word, a repeated character or the development key do not.
SECRET_KEY_MIN_BYTES = 32
SECRET_KEY_MIN_DISTINCT = 8



class SettingsError(ValueError):
    """The configuration may not be used (a weak secret key, an unreadable key file, ...)."""


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def secret_key_problem(key: str) -> str | None:
    """Why `key` may not be used as a secret key outside development, or None if it may."""
    if not key:
        return "is empty"
    if key == DEV_SECRET:
        return "is the public development key"
    if len(key.encode()) < SECRET_KEY_MIN_BYTES:
        return f"is shorter than {SECRET_KEY_MIN_BYTES} bytes"
    if len(set(key)) < SECRET_KEY_MIN_DISTINCT:
        return f"has fewer than {SECRET_KEY_MIN_DISTINCT} different characters"
    return None


def parse_networks(value: str) -> tuple[IPNetwork, ...]:
    """"10.20.0.0/16, 127.0.0.1" -> networks (a bare address is a /32 or /128)."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False)
                 for part in value.replace(";", ",").split(",") if part.strip())


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FIRETOWER_", extra="ignore")

    # Development (the public default key allowed) only when asked for explicitly.
    env: Literal["development", "test", "production"] = "production"
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
    notify_metrics_port: int | None = 9467

    # API
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # The centre's secret key: signs bearer tokens and seals the webhook secrets. Unset, it is
    # read from `secret_key_file` (e.g. a systemd credential); unset both, the public
    # DEV_SECRET, which only an explicit development environment accepts. Empty = unset.
    secret_key: SecretStr = SecretStr("")
    secret_key_file: Path | None = None
    # Key rotation: the keys used before, comma-separated, newest first. Tokens signed and
    # webhook secrets sealed with them are still accepted; new ones use `secret_key`, and the
    # dispatcher re-seals stored secrets with it (docs/security.md, Rotating the secret key).
    previous_secret_keys: SecretStr = SecretStr("")
    public_url: str = "http://127.0.0.1:8000"
    # Webhook targets in these networks are allowed even where the address policy refuses
    # them (loopback, private, link-local, ...): comma-separated CIDRs, e.g.
    # "10.20.0.0/16,127.0.0.1/32" (firetower/webhooks/targets.py).
    webhook_allow_networks: str = ""

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        # Checked here, not in a pydantic validator: its error would quote the input, the
        # secret key included, in logs and on the terminal.
        self._no_weak_secrets()

    def _no_weak_secrets(self) -> None:
        if not self.secret_key.get_secret_value() and self.secret_key_file is not None:
            try:
                key = self.secret_key_file.read_text().strip()
            except OSError as exc:
                raise SettingsError(f"FIRETOWER_SECRET_KEY_FILE cannot be read: {exc}") from None
            self.secret_key = SecretStr(key)
        if not self.secret_key.get_secret_value():
            if self.env != "development":
                raise SettingsError("FIRETOWER_SECRET_KEY (or FIRETOWER_SECRET_KEY_FILE) must be "
                                 "set unless FIRETOWER_ENV=development is set explicitly")
            self.secret_key = SecretStr(DEV_SECRET)
        if self.env != "development":
            for name, key in (("FIRETOWER_SECRET_KEY", self.secret_key.get_secret_value()),
                              *(("a key in FIRETOWER_PREVIOUS_SECRET_KEYS", k)
                                for k in self._previous_keys())):
                problem = secret_key_problem(key)
                if problem is not None:
                    raise SettingsError(
                        f"{name} {problem}: use at least {SECRET_KEY_MIN_BYTES} random bytes "
                        "(e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(32))'),"
                        " or set FIRETOWER_ENV=development on a development machine")
        try:
            parse_networks(self.webhook_allow_networks)
        except ValueError as exc:
            raise SettingsError(f"FIRETOWER_WEBHOOK_ALLOW_NETWORKS: {exc}") from None

    def _previous_keys(self) -> list[str]:
        return [k.strip() for k in self.previous_secret_keys.get_secret_value().split(",")
                if k.strip()]

    @property
    def secret_keys(self) -> list[str]:
        """The current secret key first, then the previous ones (rotation)."""
        current = self.secret_key.get_secret_value()
        return [current, *(k for k in self._previous_keys() if k != current)]

    @property
    def webhook_allowed_networks(self) -> tuple[IPNetwork, ...]:
        return parse_networks(self.webhook_allow_networks)

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
