"""The ingester's in-memory copy of the device registry: id -> (kind, lifecycle).

Loaded whole at start, then kept fresh by the `firetower_devices` NOTIFY channel that a trigger
on `devices` feeds, plus a full reload whenever the listening connection is re-established.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from firetower.model import DeviceKind, Lifecycle

log = logging.getLogger(__name__)
CHANNEL = "firetower_devices"


class DeviceRegistry:
    def __init__(self) -> None:
        self.devices: dict[str, tuple[DeviceKind, Lifecycle]] = {}
        self._conn: asyncpg.Connection | None = None
        self._pending: set[str] = set()
        self._refresh: asyncio.Task[None] | None = None
        self._pool: asyncpg.Pool | None = None

    def get(self, device_id: str) -> tuple[DeviceKind, Lifecycle] | None:
        return self.devices.get(device_id)

    async def start(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._conn = await pool.acquire()
        await self._conn.add_listener(CHANNEL, self._notified)
        await self.reload()

    async def stop(self) -> None:
        if self._conn is not None and self._pool is not None:
            await self._conn.remove_listener(CHANNEL, self._notified)
            await self._pool.release(self._conn)
            self._conn = None

    async def reload(self) -> None:
        assert self._pool is not None
        rows = await self._pool.fetch("SELECT id, kind, lifecycle FROM devices")
        self.devices = {r["id"]: (DeviceKind(r["kind"]), Lifecycle(r["lifecycle"])) for r in rows}
        log.info("device registry loaded: %d devices", len(self.devices))

    def _notified(self, conn: object, pid: int, channel: str, device_id: str) -> None:
        self._pending.add(device_id)
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.get_running_loop().create_task(self._apply())

    async def _apply(self) -> None:
        assert self._pool is not None
        while self._pending:
            ids = list(self._pending)
            self._pending.clear()
            rows = await self._pool.fetch(
                "SELECT id, kind, lifecycle FROM devices WHERE id = ANY($1)", ids)
            found = {r["id"]: (DeviceKind(r["kind"]), Lifecycle(r["lifecycle"])) for r in rows}
            for device_id in ids:
                if device_id in found:
                    self.devices[device_id] = found[device_id]
                else:
                    self.devices.pop(device_id, None)
