"""The live alarm stream: snapshot, then every change, with no gap and no duplicate.

`alarm_events` ids come from a sequence, so a transaction can take id 41, another take 42 and
commit first: "send everything above the last id sent" would skip 41 for good. The stream
therefore keeps a *cursor* (every id <= cursor has been delivered, or was hidden from this
subscriber, or never committed) plus the set of ids above it already delivered. A gap below a
delivered id is waited for until `GAP_TIMEOUT_S` after the id above it was written; longer, it
is a rolled-back transaction (sequence values are never reused) and the cursor moves past it.

The resume token, sent as the SSE `id:` and accepted back as `Last-Event-ID` or `?after=`,
is `"<cursor>"` or `"<cursor>:<id>,<id>"` (ids above the cursor already delivered), so a
reconnecting client gets exactly the events it has not seen.

Order of work on connect (STYLE rule 13): subscribe to the NOTIFY hub (already LISTENing),
then read the snapshot and the log position in one REPEATABLE READ transaction, then send
deltas. NOTIFY only wakes subscribers; the log table is what they read, so a missed or
coalesced notification loses nothing (a periodic wake covers a lost listener connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from api.alarm_queries import alarms_by_id, event, unfinished_alarms
from firetower import db
from firetower.alarm_store import CHANNEL

log = logging.getLogger(__name__)
# A gap this long after the next event was written is a transaction that never committed.
GAP_TIMEOUT_S = 5.0
# Subscribers re-read the log at least this often even without a notification.
IDLE_WAKE_S = 1.0
# How far below the snapshot's newest id to look for gaps (bounds concurrent writers).
SNAPSHOT_WINDOW = 1000
BATCH = 500


class BadToken(ValueError):
    pass


@dataclass
class Cursor:
    """Every id <= `low` is done; `seen` are ids above it already delivered or hidden."""

    low: int = 0
    seen: set[int] = field(default_factory=set)

    @classmethod
    def parse(cls, token: str) -> Cursor:
        try:
            low_text, _, rest = token.strip().partition(":")
            low = int(low_text)
            seen = {int(x) for x in rest.split(",") if x}
        except ValueError:
            raise BadToken(f"bad resume id {token[:40]!r}") from None
        if not 0 <= low <= 2**62 or any(i > 2**62 for i in seen) or len(seen) > 10_000:
            raise BadToken(f"bad resume id {token[:40]!r}")
        return cls(low, {i for i in seen if i > low})  # ids <= low are done anyway

    def token(self) -> str:
        if not self.seen:
            return str(self.low)
        return f"{self.low}:{','.join(str(i) for i in sorted(self.seen))}"

    def fresh(self, ids: list[int]) -> list[int]:
        """The ids (as read from the log) not delivered yet; decide before marking any."""
        return [i for i in ids if i > self.low and i not in self.seen]

    def mark(self, event_id: int) -> None:
        if event_id > self.low:
            self.seen.add(event_id)
        while self.low + 1 in self.seen:
            self.low += 1
            self.seen.discard(self.low)

    def skip_gaps(self, rows: list[Any], now: datetime) -> bool:
        """Move past gaps whose next written event is older than GAP_TIMEOUT_S."""
        moved = False
        by_id = {r["id"]: r for r in rows}
        limit = now - timedelta(seconds=GAP_TIMEOUT_S)
        while self.seen:
            nxt = min(self.seen)
            above = by_id.get(nxt)
            if above is None or above["at"] > limit:
                break
            self.low = nxt - 1  # ids between low and nxt never committed
            self.mark(nxt)
            moved = True
        return moved


class Hub:
    """One LISTEN connection for the process; wakes every subscriber on each notification."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.subscribers: set[asyncio.Event] = set()
        self._task: asyncio.Task[None] | None = None
        # Bumped when this process changes a user (role, sites, password, active): open
        # streams re-check their user at once instead of at their next periodic check.
        self.users_epoch = 0

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="alarm-stream-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def wake_all(self, *_: object) -> None:
        for ev in self.subscribers:
            ev.set()

    def users_changed(self) -> None:
        self.users_epoch += 1
        self.wake_all()

    @contextlib.contextmanager
    def subscribe(self) -> Any:
        ev = asyncio.Event()
        self.subscribers.add(ev)
        try:
            yield ev
        finally:
            self.subscribers.discard(ev)

    async def _run(self) -> None:
        """Keep one LISTEN connection; re-open it with backoff whenever it is lost (a database
        restart or crash). Subscribers are woken every IDLE_WAKE_S meanwhile, and read the log
        table, so nothing committed while the listener was down is missed."""
        backoff = db.Backoff(0.2, 5.0)
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await db.connect(self.url)
                await conn.add_listener(CHANNEL, self.wake_all)
                if backoff.failures:
                    log.info("alarm stream listener back after %d attempt(s)", backoff.failures)
                backoff.reset()
                self.wake_all()  # anything committed while we were not listening
                while not conn.is_closed():
                    await asyncio.sleep(IDLE_WAKE_S)
                    self.wake_all()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the hub must outlive any outage
                delay = backoff.next()
                if backoff.failures % 10 == 1:
                    log.warning("alarm stream listener lost (%s: %s); reconnecting in %.1f s",
                                type(exc).__name__, exc, delay)
                await asyncio.sleep(delay)
            finally:
                if conn is not None:
                    conn.terminate()


_LOG_SQL = """
SELECT e.*, a.site_id AS alarm_site FROM alarm_events e LEFT JOIN alarms a ON a.id = e.alarm_id
WHERE e.id > $1 ORDER BY e.id LIMIT $2"""


def _visible(row: Any, sites: frozenset[str] | None) -> bool:
    if sites is None:
        return True
    return row["alarm_id"] is not None and row["alarm_site"] in sites


@dataclass
class Message:
    kind: str  # "snapshot" | "alarm"
    token: str
    data: dict[str, Any]


async def snapshot(pool: asyncpg.Pool, sites: frozenset[str] | None) -> Message:
    """Unfinished alarms and the log position they reflect, read in one snapshot."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read",
                                                        readonly=True):
        top = await conn.fetchval("SELECT coalesce(max(id), 0) FROM alarm_events")
        cur = Cursor(max(0, top - SNAPSHOT_WINDOW))
        for r in await conn.fetch("SELECT id FROM alarm_events WHERE id > $1", cur.low):
            cur.mark(r["id"])
        alarms = await unfinished_alarms(conn, None if sites is None else sorted(sites))
    data = {"alarms": [a.model_dump(mode="json", by_alias=True) for a in alarms],
            "high_water": top}
    return Message("snapshot", cur.token(), data)


async def deltas(pool: asyncpg.Pool, hub: Hub, cur: Cursor, sites: frozenset[str] | None,
                 wake: asyncio.Event) -> AsyncIterator[Message | None]:
    """Every event not yet delivered, as it commits; runs until the client goes away.
    Yields None when idle, so the caller can send keep-alives. While the database is
    unavailable it keeps the stream open (keep-alives) and reads again with backoff."""
    backoff = db.Backoff(0.2, 5.0)
    while True:
        wake.clear()
        try:
            rows = await pool.fetch(_LOG_SQL, cur.low, BATCH)
            new_ids = set(cur.fresh([r["id"] for r in rows]))
            fresh = [r for r in rows if r["id"] in new_ids]
            shown = [r for r in fresh if _visible(r, sites)]
            current = await alarms_by_id(pool, sorted({r["alarm_id"] for r in shown
                                                       if r["alarm_id"] is not None}))
        except Exception as exc:
            if not db.is_transient(exc):
                raise
            delay = backoff.next()
            if backoff.failures == 1:
                log.warning("alarm stream: database unavailable (%s: %s); waiting",
                            type(exc).__name__, exc)
            yield None
            await asyncio.sleep(delay)
            continue
        backoff.reset()
        for r in fresh:
            cur.mark(r["id"])
            if _visible(r, sites):
                alarm = current.get(r["alarm_id"]) if r["alarm_id"] is not None else None
                yield Message("alarm", cur.token(), {
                    "event": event(r).model_dump(mode="json"),
                    "alarm": alarm.model_dump(mode="json", by_alias=True) if alarm else None})
        if cur.skip_gaps(rows, datetime.now(UTC)) or len(rows) == BATCH:
            continue
        if not fresh:
            # Idle (the hub also wakes every IDLE_WAKE_S, so the wait below seldom times
            # out): let the caller send its keep-alive when one is due.
            yield None
        try:
            await asyncio.wait_for(wake.wait(), IDLE_WAKE_S)
        except TimeoutError:
            yield None
