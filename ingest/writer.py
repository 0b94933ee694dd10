"""Writes a batch in one transaction: COPY into session-local staging tables, then one
INSERT ... ON CONFLICT DO NOTHING per table, so a (device, seq, ts) is stored once however often
the broker delivers it. Retries the same batch until it commits, across database outages
(`firetower.db.is_transient` says which errors are outages; the others are data errors)."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable

import asyncpg
import msgspec

from firetower import db
from firetower.db import is_transient
from firetower.model import DeviceKind, Event, Lifecycle, Reject, RejectReason, Status, Telemetry
from firetower.protocol import ProtocolError, decode, reject
from ingest.batch import Batch, Unknown, WriteResult
from ingest.clock import ClockOffsets, restamped, settle

log = logging.getLogger(__name__)
# a batch's lists -> the message type in the topic (docs/protocol.md)
_TOPIC_OF = {"telemetry": "telemetry", "events": "event", "statuses": "status"}

_RETRY_MIN_S = 0.1
_RETRY_MAX_S = 5.0
_encode = msgspec.json.Encoder().encode

TELEMETRY_COLUMNS = (
    "ts", "received_at", "device_id", "seq", "obscuration_pct_per_m", "temperature_c", "co_ppm",
    "battery_v", "pressure_kpa", "flow_lps", "mains_ok", "battery_ok", "extra", "device_ts", "clock",
)
EVENT_COLUMNS = (
    "ts", "received_at", "device_id", "seq", "category", "active", "zone", "point", "component",
    "location", "extra", "device_ts", "clock",
)
STATUS_COLUMNS = ("ts", "received_at", "device_id", "seq", "online", "extra", "device_ts",
                  "clock")
REJECT_COLUMNS = ("received_at", "topic", "payload", "payload_size", "reason", "detail")

# Staging tables have the target's columns, except `extra` as text (cast on insert).
_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS telemetry_in (LIKE telemetry) ON COMMIT DELETE ROWS;
ALTER TABLE telemetry_in ALTER COLUMN extra TYPE text;
CREATE TEMP TABLE IF NOT EXISTS events_in (LIKE events) ON COMMIT DELETE ROWS;
ALTER TABLE events_in ALTER COLUMN extra TYPE text;
CREATE TEMP TABLE IF NOT EXISTS device_status_in (LIKE device_status) ON COMMIT DELETE ROWS;
ALTER TABLE device_status_in ALTER COLUMN extra TYPE text;
"""
# After this many failures of the same batch with a data error, store it message by message
# and reject only the ones the database refuses.
_ISOLATE_AFTER = 3


def _extra(value: dict | None) -> str | None:
    return None if value is None else _encode(value).decode()


def telemetry_row(t: Telemetry) -> tuple:
    return (t.ts, t.received_at, t.device_id, t.seq, t.obscuration_pct_per_m, t.temperature_c,
            t.co_ppm, t.battery_v, t.pressure_kpa, t.flow_lps, t.mains_ok, t.battery_ok,
            _extra(t.extra), t.device_ts, t.clock)


def event_row(e: Event) -> tuple:
    return (e.ts, e.received_at, e.device_id, e.seq, e.category.value, e.active, e.zone, e.point,
            e.component, e.location, _extra(e.extra), e.device_ts, e.clock)


def status_row(s: Status) -> tuple:
    return (s.ts, s.received_at, s.device_id, s.seq, s.online, _extra(s.extra), s.device_ts,
            s.clock)


def reject_row(r: Reject) -> tuple:
    return (r.received_at, r.topic, r.payload, len(r.payload), r.reason.value, r.detail)


def _inserted(status: str) -> int:
    return int(status.rsplit(" ", 1)[-1])


class BatchWriter:
    """One dedicated connection; `write` returns only once the batch is committed."""

    def __init__(self, url: str, *, reject_cap: int = 1024,
                 on_retry: Callable[[BaseException], None] | None = None) -> None:
        self.url = url
        self.reject_cap = reject_cap
        self.on_retry = on_retry
        self._conn: asyncpg.Connection | None = None
        self.clock_offsets = ClockOffsets()  # devices.clock_offset_s (ingest/clock.py)

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            conn = await db.connect(self.url)
            await conn.execute(_STAGING)
            self._conn = conn
        return self._conn

    async def write(self, batch: Batch) -> WriteResult:
        """Commit the batch, retrying until it is stored; never drops a message."""
        delay = _RETRY_MIN_S
        data_errors = 0
        while True:
            try:
                conn = await self._connection()
                if data_errors >= _ISOLATE_AFTER:
                    return await self._write_isolated(conn, batch)
                return await self._write_once(conn, batch)
            except Exception as exc:
                if is_transient(exc):
                    log.warning("database unavailable (%s); retrying in %.1fs", exc, delay)
                else:
                    data_errors += 1
                    log.exception("batch write failed (%d); retrying in %.1fs", data_errors, delay)
                if self.on_retry is not None:
                    self.on_retry(exc)
                if self._conn is not None:
                    self._conn.terminate()
                    self._conn = None
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX_S)

    async def _write_isolated(self, conn: asyncpg.Connection, batch: Batch) -> WriteResult:
        """Slow path for a batch the database keeps refusing: a savepoint per message; the
        messages it still refuses become rejects with reason storage_error."""
        totals = {"telemetry": 0, "events": 0, "statuses": 0, "duplicates": 0}
        refused: list[Reject] = []
        async with conn.transaction():
            for attr in ("telemetry", "events", "statuses"):
                for item in getattr(batch, attr):
                    try:
                        r = await self._write_once(conn, Batch(**{attr: [item]}))
                    except (asyncpg.PostgresError, ValueError) as exc:
                        if is_transient(exc):
                            raise
                        # the raw bytes are gone after decoding: keep the message as
                        # decoded (JSON, first 1,024 bytes) under its own topic
                        refused.append(Reject(
                            f"fire/v1/{item.device_id}/{_TOPIC_OF[attr]}",
                            msgspec.json.encode(item)[:1024], item.received_at,
                            RejectReason.STORAGE_ERROR, str(exc)[:500]))
                        continue
                    totals[attr] += getattr(r, attr)
                    totals["duplicates"] += r.duplicates
            rest = await self._write_once(conn, Batch(rejects=batch.rejects + refused,
                                                      unknown=batch.unknown))
        return WriteResult(totals["telemetry"], totals["events"], totals["statuses"],
                           totals["duplicates"], rest.rejects, rest.unregistered,
                           rest.late_registered)

    async def _write_once(self, conn: asyncpg.Connection, batch: Batch) -> WriteResult:
        async with conn.transaction():
            telemetry, events, statuses, rejects = (batch.telemetry, batch.events,
                                                    batch.statuses, batch.rejects)
            late = 0
            unregistered = 0
            if batch.unknown:
                resolved, still_unknown, more_rejects = await self._resolve(conn, batch.unknown)
                late = len(resolved)
                if resolved:
                    telemetry = telemetry + [m for m in resolved if type(m) is Telemetry]
                    events = events + [m for m in resolved if type(m) is Event]
                    statuses = statuses + [m for m in resolved if type(m) is Status]
                if more_rejects:
                    rejects = rejects + more_rejects
                unregistered = len(still_unknown)
                if still_unknown:
                    await self._record_unregistered(conn, still_unknown)
            stored_t = await self._insert(conn, "telemetry", TELEMETRY_COLUMNS,
                                          [telemetry_row(t) for t in telemetry])
            stored_e = await self._insert(conn, "events", EVENT_COLUMNS,
                                          [event_row(e) for e in events])
            stored_s = await self._insert(conn, "device_status", STATUS_COLUMNS,
                                          [status_row(s) for s in statuses])
            if statuses:
                await self._update_presence(conn, statuses)
            await self.clock_offsets.record(conn, bool(telemetry))
            if rejects:
                await conn.copy_records_to_table("rejects", columns=REJECT_COLUMNS,
                                                 records=[reject_row(r) for r in rejects])
        offered = len(telemetry) + len(events) + len(statuses)
        return WriteResult(stored_t, stored_e, stored_s, offered - stored_t - stored_e - stored_s,
                           len(rejects), unregistered, late)

    async def _insert(self, conn: asyncpg.Connection, table: str, columns: tuple[str, ...],
                      rows: list[tuple]) -> int:
        if not rows:
            return 0
        await conn.copy_records_to_table(f"{table}_in", columns=columns, records=rows)
        if restamped(rows):  # a clock not believed: one stored copy however often it comes
            await settle(conn, table, rows, columns)
        cols = ", ".join(columns)
        select = cols.replace("extra", "extra::jsonb")
        status = await conn.execute(
            f"INSERT INTO {table} ({cols}) SELECT {select} FROM {table}_in "
            f"ON CONFLICT DO NOTHING")
        return _inserted(status)

    async def _resolve(self, conn: asyncpg.Connection, unknown: list[Unknown]
                       ) -> tuple[list[Telemetry | Event | Status], list[Unknown], list[Reject]]:
        """Look ids up again: a device registered after the cache was filled is not unknown."""
        ids = list({u.device_id for u in unknown})
        rows = await conn.fetch("SELECT id, kind, lifecycle FROM devices WHERE id = ANY($1)", ids)
        known = {r["id"]: (DeviceKind(r["kind"]), Lifecycle(r["lifecycle"])) for r in rows}
        resolved: list[Telemetry | Event | Status] = []
        still: list[Unknown] = []
        rejects: list[Reject] = []
        for u in unknown:
            entry = known.get(u.device_id)
            if entry is None:
                still.append(u)
                continue
            kind, lifecycle = entry
            if lifecycle is Lifecycle.DECOMMISSIONED:
                rejects.append(Reject(u.topic, u.payload[: self.reject_cap], u.received_at,
                                      RejectReason.DECOMMISSIONED,
                                      f"device {u.device_id} is decommissioned"))
                continue
            try:
                resolved.append(decode(u.device_id, u.message_type, kind, u.payload,
                                       u.received_at))
            except ProtocolError as exc:
                rejects.append(reject(u.topic, u.payload, u.received_at, exc, self.reject_cap))
        return resolved, still, rejects

    async def _record_unregistered(self, conn: asyncpg.Connection, unknown: list[Unknown]) -> None:
        agg: dict[str, list] = defaultdict(lambda: [None, None, 0, ""])
        for u in unknown:
            a = agg[u.device_id]
            a[0] = u.received_at if a[0] is None else min(a[0], u.received_at)
            if a[1] is None or u.received_at >= a[1]:
                a[1], a[3] = u.received_at, u.topic
            a[2] += 1
        ids = sorted(agg)  # a fixed order avoids deadlocks between concurrent writers
        await conn.execute(
            """
            INSERT INTO unregistered_devices AS u
                (device_id, first_seen_at, last_seen_at, message_count, last_topic)
            SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[],
                                 $4::bigint[], $5::text[])
            ON CONFLICT (device_id) DO UPDATE SET
                first_seen_at = least(u.first_seen_at, excluded.first_seen_at),
                last_seen_at = greatest(u.last_seen_at, excluded.last_seen_at),
                message_count = u.message_count + excluded.message_count,
                last_topic = CASE WHEN excluded.last_seen_at >= u.last_seen_at
                                  THEN excluded.last_topic ELSE u.last_topic END
            """,
            ids, [agg[i][0] for i in ids], [agg[i][1] for i in ids], [agg[i][2] for i in ids],
            [agg[i][3] for i in ids])

    async def _update_presence(self, conn: asyncpg.Connection, statuses: list[Status]) -> None:
        latest: dict[str, Status] = {}
        for s in statuses:
            cur = latest.get(s.device_id)
            if cur is None or (s.ts, s.seq) >= (cur.ts, cur.seq):
                latest[s.device_id] = s
        ids = sorted(latest)
        await conn.execute(
            """
            UPDATE devices d SET online = v.online, last_seen_at = v.received_at
            FROM unnest($1::text[], $2::boolean[], $3::timestamptz[]) AS v(id, online, received_at)
            WHERE d.id = v.id AND (d.last_seen_at IS NULL OR d.last_seen_at <= v.received_at)
            """,
            ids, [latest[i].online for i in ids], [latest[i].received_at for i in ids])


