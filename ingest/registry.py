"""The ingester's in-memory copy of the device registry: id -> (kind, lifecycle).

Loaded whole at start, then kept fresh by the `firetower_devices` NOTIFY channel that a trigger
on `devices` feeds. If the listening connection is lost, it reconnects and reloads everything
(notifications sent meanwhile are lost with the connection). Messages from ids missing here are
looked up again when their batch is written, so a stale copy delays nothing.

Partitioned (docs/scaling.md), it holds only the devices of the partitions this worker owns,
with their partition, and tells `on_change` which devices arrived in them and which left, after
the first load, after every NOTIFY and after every reload on reconnect: the ingester subscribes
and unsubscribes their topics from that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import asyncpg

from firetower import db
from firetower.model import DeviceKind, Lifecycle
from ingest.partition import Partitioning

log = logging.getLogger(__name__)
CHANNEL = "firetower_devices"
_RECONNECT_S = 1.0
_COLUMNS = "id, kind, lifecycle, site_id"
# (devices that arrived, by partition; ids of devices that left)
ChangeListener = Callable[[dict[int, list[str]], list[str]], None]


class DeviceRegistry:
    def __init__(self, url: str, partitioning: Partitioning | None = None,
                 on_change: ChangeListener | None = None) -> None:
        self.url = url
        self.partitioning = partitioning if partitioning and partitioning.partitioned else None
        self.on_change = on_change
        self.devices: dict[str, tuple[DeviceKind, Lifecycle]] = {}
        self.partition: dict[str, int] = {}  # partitioned: device id -> its partition
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
        rows = await conn.fetch(f"SELECT {_COLUMNS} FROM devices")
        before = self.partition
        self.devices, self.partition = {}, {}
        for r in rows:
            self._put(r)
        self._changed([i for i in self.partition if before.get(i) != self.partition[i]],
                      [i for i in before if i not in self.partition])
        log.info("device registry loaded: %d devices", len(self.devices))

    def _put(self, r: asyncpg.Record) -> bool:
        """Keep a device row if this worker serves it; False if it is another worker's."""
        part = self.partitioning
        if part is not None:
            p = part.partition(r["id"], r["site_id"])
            if p not in part.owned:
                return False
            self.partition[r["id"]] = p
        self.devices[r["id"]] = (DeviceKind(r["kind"]), Lifecycle(r["lifecycle"]))
        return True

    def _changed(self, arrived: list[str], left: list[str]) -> None:
        if self.on_change is None or (not arrived and not left):
            return
        by_partition: dict[int, list[str]] = {}
        for device_id in arrived:
            by_partition.setdefault(self.partition.get(device_id, 0), []).append(device_id)
        self.on_change(by_partition, left)

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
                    f"SELECT {_COLUMNS} FROM devices WHERE id = ANY($1)", ids)
            except Exception:
                return
            before = {i: self.partition.get(i) for i in ids if i in self.devices}
            for device_id in ids:
                self.devices.pop(device_id, None)
                self.partition.pop(device_id, None)
            for r in rows:
                self._put(r)
            self._changed([i for i in ids if i in self.devices and before.get(i) != self.partition.get(i)],
                          [i for i in before if i not in self.devices])
