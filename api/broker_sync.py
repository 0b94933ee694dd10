"""Keeps Mosquitto's password and ACL files in step with the device registry.

After any change to device credentials or lifecycle the API rewrites both files from the
database (the source of truth) and sends the broker SIGHUP. Without `mqtt_password_file`
configured this does nothing: the broker then runs without per-device authentication
(development only).

The centre's service accounts are written with the devices: one per ingest session, named by
its client id (the broker makes every client's id its username, so no device can open a
service session), all with the service password. Outside development, managing the files
without a service password is refused at start: the ingester could not log in.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from fastapi.concurrency import run_in_threadpool

from api.config import ApiSettings
from firetower import mqtt_auth
from firetower.settings import Settings

log = logging.getLogger(__name__)


class BrokerSync:
    def __init__(self, settings: Settings, api_settings: ApiSettings) -> None:
        self.password_file = api_settings.mqtt_password_file
        self.acl_file = api_settings.mqtt_acl_file
        self.pid_file = api_settings.mqtt_broker_pid_file
        self.group = api_settings.mqtt_files_group
        self.ingest_client_id = settings.ingest_client_id
        self.service_names = mqtt_auth.service_account_names(
            settings.mqtt_username, settings.ingest_client_id, settings.ingest_partitions)
        password = settings.mqtt_service_password
        if self.enabled and not password and settings.env != "development":
            raise ValueError("broker credentials are managed (FIRETOWER_MQTT_PASSWORD_FILE) but "
                             "no service password is set (FIRETOWER_MQTT_PASSWORD or "
                             "FIRETOWER_MQTT_PASSWORD_SECRET_FILE): the ingester could not "
                             "log in")
        self.service_accounts: list[tuple[str, str]] = (
            [(name, mqtt_auth.hash_password(password)) for name in self.service_names]
            if password else [])
        self._lock = asyncio.Lock()

    @property
    def enabled(self) -> bool:
        return self.password_file is not None

    def reserved(self, name: str) -> bool:
        """Device ids that would collide with a service account's MQTT username."""
        return mqtt_auth.reserved_device_id(name, self.service_names, self.ingest_client_id)

    async def sync(self, pool: asyncpg.Pool) -> None:
        if self.password_file is None:
            return
        async with self._lock:
            rows = await pool.fetch(
                "SELECT id, mqtt_password_hash FROM devices "
                "WHERE lifecycle <> 'decommissioned' AND mqtt_password_hash IS NOT NULL")
            devices = [(r["id"], r["mqtt_password_hash"]) for r in rows
                       if not self.reserved(r["id"])]
            await run_in_threadpool(lambda: mqtt_auth.write_files(
                self.password_file, self.acl_file, devices, self.service_accounts,
                group=self.group))
            reloaded = mqtt_auth.reload_broker(self.pid_file)
            log.info("broker credentials written: %d devices (reload %s)", len(devices),
                     "sent" if reloaded else "not sent")
