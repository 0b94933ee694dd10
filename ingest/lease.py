"""The partition lease of a worker (docs/scaling.md, "Takeover"): PostgreSQL advisory locks
that let one live worker run a partition's sessions at a time, and a standby take over."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import Sequence

import asyncpg

log = logging.getLogger(__name__)


class PartitionLease:
    """At most one live worker per partition: a PostgreSQL session advisory lock on
    (hash of the client-id base, partition) for every partition the worker runs, all held on
    one connection for the worker's life (docs/scaling.md, "Takeover").

    `acquire()` returns once every lock is held; while another worker holds one, it waits, so a
    second worker started for the same partitions is a standby that takes over when the first
    dies (the database drops a dead worker's locks with its connection). A worker that loses
    its lease connection must stop consuming at once (`lost` is set; `firetower ingest` exits
    and its supervisor restarts it, into acquire() again): a standby may already hold the lock.
    The connection is checked every `check_s` (a check may take as long), and the server drops
    a silent client only after about 25 s (TCP keepalive), so a worker cut off from the
    database notices (within 2 x check_s) before its locks can be taken over.
    """

    def __init__(self, url: str, base_client_id: str, partitions: Sequence[int], *,
                 poll_s: float = 0.5, check_s: float = 3.0) -> None:
        self.url = url
        self.partitions = tuple(partitions)
        key = zlib.crc32(f"firetower-ingest:{base_client_id}".encode())
        self.key_oid = key  # as pg_locks shows it
        self.key = key - 2**32 if key >= 2**31 else key  # as pg_try_advisory_lock(int4, int4) takes it
        self.poll_s, self.check_s = poll_s, check_s
        self.app_name = f"{base_client_id} lease p{','.join(map(str, self.partitions))}"[:63]
        self.held: set[int] = set()
        self.lost = asyncio.Event()
        self._conn: asyncpg.Connection | None = None
        self._check: asyncio.Task[None] | None = None

    async def acquire(self) -> None:
        waited_since: float | None = None
        logged = 0.0
        while True:
            try:
                if self._conn is None or self._conn.is_closed():
                    self.held.clear()
                    self._conn = await asyncpg.connect(self.url, server_settings={
                        "application_name": self.app_name,
                        # the server drops a silent client (and its locks) after 10 + 3 x 5 s
                        "tcp_keepalives_idle": "10", "tcp_keepalives_interval": "5",
                        "tcp_keepalives_count": "3"})
                for p in self.partitions:
                    if p not in self.held and await self._conn.fetchval(
                            "SELECT pg_try_advisory_lock($1::int4, $2::int4)", self.key, p):
                        self.held.add(p)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                await self._close()
                why = f"database not reachable ({exc})"
            else:
                if len(self.held) == len(self.partitions):
                    break
                why = ""
            now = time.monotonic()
            waited_since = waited_since or now
            if now - logged >= 60:
                logged = now
                if not why:
                    why = f"held by {await self._holders()}"
                log.info("standing by for partition(s) %s: %s", ",".join(
                    str(p) for p in self.partitions if p not in self.held), why)
            await asyncio.sleep(self.poll_s)
        assert self._conn is not None
        self._conn.add_termination_listener(lambda c: self._lose("connection closed"))
        self._check = asyncio.create_task(self._keep(), name="partition-lease")
        log.info("partition lease: holding partition(s) %s%s", ",".join(map(str, self.partitions)),
                 f" after standing by {time.monotonic() - waited_since:.1f} s"
                 if waited_since else "")

    async def _holders(self) -> str:
        assert self._conn is not None
        with contextlib.suppress(Exception):
            rows = await self._conn.fetch(
                "SELECT l.objid::int AS p, a.pid, a.application_name, a.client_addr"
                " FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
                " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2"
                " AND l.classid = $1::oid", self.key_oid)
            return "; ".join(f"p{r['p']}: pid {r['pid']} {r['application_name']!r}"
                             f" from {r['client_addr'] or 'local'}" for r in rows) or "?"
        return "?"

    async def _keep(self) -> None:
        while self._conn is not None:
            await asyncio.sleep(self.check_s)
            try:
                await self._conn.fetchval("SELECT 1", timeout=self.check_s)
            except Exception as exc:
                self._lose(f"check failed: {exc!r}")
                return

    def _lose(self, why: str) -> None:
        if not self.lost.is_set():
            log.error("partition lease of %s lost (%s): stopping, another worker may take over",
                      ",".join(map(str, self.partitions)), why)
            self.lost.set()

    async def release(self) -> None:
        if self._check is not None:
            self._check.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._check
        self.lost.set()  # what follows is not a loss; nobody waits for it any more
        await self._close()

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        self.held.clear()
        if conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), 2)
            conn.terminate()
