"""The ingester's in-memory copy of the device registry: id -> (kind, lifecycle).

Loaded whole at start, then kept fresh by the `firetower_devices` NOTIFY channel that a trigger
on `devices` feeds. If the listening connection is lost, it reconnects and reloads everything
(notifications sent meanwhile are lost with the connection). Messages from ids missing here are
looked up again when their batch is written, so a stale copy delays nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from firetower import db
from firetower.model import DeviceKind, Lifecycle

log = logging.getLogger(__name__)
CHANNEL = "firetower_devices"
_RECONNECT_S = 1.0


class DeviceRegistry:
    def __init__(self, url: str) -> None:
        self.url = url
        self.devices: dict[str, tuple[DeviceKind, Lifecycle]] = {}
        self._conn: asyncpg.Connection | None = None
        self._pending: set[str] = set()
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._refresh: asyncio.Task[None] | None = None

    def get(self, device_id: str) -> tuple[DeviceKind, Lifecycle] | None:
        return self.devices.get(device_id)

    async def start(self) -> None:
        await self._connect()
        self._task = asyncio.create_task(self._supervise(), name="registry")

    async def stop(self) -> None:
        for task in (self._task, self._refresh):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None

    async def _connect(self) -> None:
        conn = await db.connect(self.url)
        conn.add_termination_listener(lambda c: self._lost.set())
        await conn.add_listener(CHANNEL, self._notified)
        self._conn = conn
        self._lost.clear()
        rows = await conn.fetch("SELECT id, kind, lifecycle FROM devices")
        self.devices = {r["id"]: (DeviceKind(r["kind"]), Lifecycle(r["lifecycle"])) for r in rows}
        log.info("device registry loaded: %d devices", len(self.devices))

    async def _supervise(self) -> None:
        while True:
            await self._lost.wait()
            log.warning("registry connection lost; reconnecting")
            while True:
                await asyncio.sleep(_RECONNECT_S)
                try:
                    await self._connect()
                    break
                except Exception as exc:
                    log.warning("registry reconnect failed: %s", exc)

    def _notified(self, conn: object, pid: int, channel: str, device_id: str) -> None:
        self._pending.add(device_id)
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.get_running_loop().create_task(self._apply())

    async def _apply(self) -> None:
        while self._pending and self._conn is not None:
            ids = list(self._pending)
            self._pending.clear()
            try:
                rows = await self._conn.fetch(
                    "SELECT id, kind, lifecycle FROM devices WHERE id = ANY($1)", ids)
            except Exception:
                return
            found = {r["id"]: (DeviceKind(r["kind"]), Lifecycle(r["lifecycle"])) for r in rows}
            for device_id in ids:
                if device_id in found:
                    self.devices[device_id] = found[device_id]
                else:
                    self.devices.pop(device_id, None)
