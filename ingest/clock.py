"""The writer's two duties towards device clocks (docs/protocol.md, "Timestamps").

1. Store a re-stamped message once. A message whose stamp is not believed is stored with its
   receive time as `ts` (firetower/device_clock.py), and a redelivery is received at another
   time, so the table's key (device_id, ts, seq) alone would store it twice. Before the insert,
   `settle()` gives each re-stamped row the `ts` of its first copy: the earliest receipt in the
   batch, or the stored row with the same (device_id, seq, device_ts) received within
   `REDELIVERY_WINDOW`. The insert's ON CONFLICT then drops it as it drops any redelivery.
   Concurrent writers (a shared subscription may hand two copies to two ingesters) take a
   transaction-scoped advisory lock per (table, device) in one global order first, so the
   second looks only once the first has committed.
   A message whose stamp is unreadable (clock `invalid`) has no `device_ts` to match on: its
   first copy is the one with the same (device_id, seq) and the same content (every stored
   column but the two times, the unreadable stamp as sent in `extra` included), in the same
   window. A device that restarts its seq counter and sends garbled stamps may send a new
   message that looks like an old one: with any difference in content (another category,
   `active`, point, reading, garbled stamp) it is stored; only an identical one within the
   window is taken for a copy. It errs towards storing twice, never towards dropping a
   different message, and an identical one loses nothing an operator needs: its first copy
   says the same, and the rule engine evaluates every delivery of a message with a wrong
   clock (it does not skip them by seq), so a new fire still raises its alarm.
2. Measure each device's clock offset for the device API (`ClockOffsets`), from telemetry.

Both run only when needed: `settle()` for batches holding a re-stamped row, `ClockOffsets`
at most once a second per writer, so neither costs the usual batch anything.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Sequence
from datetime import timedelta

import asyncpg

# A redelivery of a stored message comes when its ingester restarts (seconds, supervised) or
# when the device reconnects; a week covers an outage of the centre over a long weekend. A
# re-stamped message redelivered later still is stored a second time, marked like the first.
REDELIVERY_WINDOW = timedelta(days=7)
# Position of the columns in the writer's rows (ingest/writer.py *_COLUMNS): ts first,
# device_id third, device_ts and clock last.
_TS, _DEVICE, _CLOCK = 0, 2, -1
_INVALID = "invalid"  # firetower.model.ClockState.INVALID
# Not part of a message's content: its two times (the receive time differs per copy).
_NOT_CONTENT = frozenset({"ts", "received_at"})
# Advisory lock namespace per table (the first key of pg_advisory_xact_lock(int, int)).
_LOCK_SPACE = {"telemetry": 0x46540001, "events": 0x46540002, "device_status": 0x46540003}


def restamped(rows: Sequence[tuple]) -> bool:
    """Does the batch hold a row whose stamp was replaced (its clock column is set)?"""
    for r in rows:
        if r[_CLOCK] is not None:
            return True
    return False


def _lock_key(device_id: str) -> int:
    """A signed 32-bit key per device (collisions only serialise two devices' writes)."""
    return zlib.crc32(device_id.encode()) - 2**31


def _content(alias: str, columns: Sequence[str], staging: bool) -> str:
    """A row's content as one comparable value (jsonb): every column but its two times; the
    staging table keeps `extra` as text, so it is cast as the INSERT casts it."""
    parts = []
    for c in columns:
        if c in _NOT_CONTENT:
            continue
        value = f"{alias}.{c}::jsonb" if staging and c == "extra" else f"{alias}.{c}"
        parts.append(f"'{c}', {value}")
    return f"jsonb_build_object({', '.join(parts)})"


async def settle(conn: asyncpg.Connection, table: str, rows: Sequence[tuple],
                 columns: Sequence[str]) -> None:
    """Give every re-stamped row in `{table}_in` the `ts` of its first copy (see above). Runs
    inside the writer's transaction, after the COPY into the staging table; `columns` are
    the rows' columns."""
    mine = [r for r in rows if r[_CLOCK] is not None]
    keys = sorted({_lock_key(r[_DEVICE]) for r in mine})
    await conn.execute("SELECT pg_advisory_xact_lock($1, k) FROM unnest($2::int4[]) AS k",
                       _LOCK_SPACE[table], keys)
    staging = f"{table}_in"
    # the same message twice in this batch: one stored time, its earliest receipt
    await conn.execute(
        f"UPDATE {staging} s SET ts = f.ts FROM ("
        f"  SELECT device_id, seq, device_ts, min(ts) AS ts FROM {staging}"
        f"  WHERE clock IS NOT NULL GROUP BY 1, 2, 3) f"
        f" WHERE s.clock IS NOT NULL AND s.device_id = f.device_id AND s.seq = f.seq"
        f"   AND s.device_ts = f.device_ts AND s.ts <> f.ts")
    unread = any(r[_CLOCK] == _INVALID for r in mine)
    content = _content("s", columns, staging=True)
    if unread:  # the same for unreadable stamps: the same content is the same message
        await conn.execute(
            f"UPDATE {staging} s SET ts = f.ts FROM ("
            f"  SELECT device_id, seq, {content} AS c, min(ts) AS ts FROM {staging} s"
            f"  WHERE clock = '{_INVALID}' GROUP BY 1, 2, 3) f"
            f" WHERE s.clock = '{_INVALID}' AND s.device_id = f.device_id AND s.seq = f.seq"
            f"   AND {content} = f.c AND s.ts <> f.ts")
    # two different messages with one seq received in the same microsecond would share the
    # key: each further one is a microsecond later (a redelivery finds it by its stamp, or
    # for an unreadable stamp by its content, below)
    await conn.execute(
        f"UPDATE {staging} s SET ts = s.ts + r.n * interval '1 microsecond' FROM ("
        f"  SELECT ctid, dense_rank() OVER (PARTITION BY device_id, ts, seq ORDER BY device_ts,"
        f"      CASE WHEN clock = '{_INVALID}' THEN {content} END) - 1 AS n"
        f"  FROM {staging} s WHERE clock IS NOT NULL) r"
        f" WHERE s.ctid = r.ctid AND r.n > 0")
    # stored before (a redelivery): its stored time, so the insert finds the conflict. The
    # first copy stored may have been received a little later than this one (another
    # writer), hence the window on both sides. One index probe per re-stamped row (LATERAL
    # ... LIMIT 1): the staging table has no statistics, and a plain join let the planner
    # sort every re-stamped row of the window instead (measured: 20,000 stored re-stamped
    # rows, 10 in the batch: 102 ms as a merge join, under 1 ms probed).
    lo = min(r[_TS] for r in mine) - REDELIVERY_WINDOW
    hi = max(r[_TS] for r in mine) + REDELIVERY_WINDOW
    await conn.execute(_FIRST_COPY.format(
        staging=staging, table=table, which="n.device_ts IS NOT NULL",
        same="o.device_ts = n.device_ts"), lo, hi)
    if unread:  # no device_ts: found by (device, seq, invalid) and the same content
        await conn.execute(_FIRST_COPY.format(
            staging=staging, table=table, which=f"n.clock = '{_INVALID}'",
            same=(f"o.clock = '{_INVALID}' AND o.device_ts IS NULL"
                  f" AND {_content('o', columns, staging=False)}"
                  f" = {_content('n', columns, staging=True)}")), lo, hi)


# The stored first copy of each re-stamped staging row `n` ({which}) that is {same}.
_FIRST_COPY = """
UPDATE {staging} s SET ts = c.ts FROM (
    SELECT n.ctid AS id, o.ts FROM {staging} n
     CROSS JOIN LATERAL (
        SELECT o.ts FROM {table} o
         WHERE o.clock IS NOT NULL AND o.device_id = n.device_id AND o.seq = n.seq
           AND o.ts BETWEEN $1 AND $2 AND {same}
         LIMIT 1) o
     WHERE n.clock IS NOT NULL AND {which}) c
 WHERE s.ctid = c.id
"""


# -- clock offsets for the device API -----------------------------------------------------------

# The offset shown is the smallest (centre receive time - device time) over this window: a
# message delivered late (a broker backlog, a redelivery) only makes the offset larger, so the
# smallest is the clock's own error plus the shortest transit.
OFFSET_WINDOW = timedelta(hours=1)
# A smaller offset within the window is written only when it is smaller by this much (a
# device's row is then written about once per window, not once per jitter of the transit).
OFFSET_STEP_S = 0.5
# Measure from at most one batch a second per writer: under load a device still falls in a
# measured batch several times an hour, and the measurement costs nothing per message.
SAMPLE_EVERY_S = 1.0

_OFFSETS_SQL = """
WITH m AS (
    SELECT device_id,
           min(extract(epoch FROM received_at - coalesce(device_ts, ts)))::float8 AS o,
           max(received_at) AS at
      FROM telemetry_in
     WHERE clock IS DISTINCT FROM 'invalid'  -- no device time: nothing to measure
     GROUP BY device_id),
mine AS (  -- rows another transaction holds (presence, the API) are skipped, never waited on
    SELECT d.id FROM devices d JOIN m ON m.device_id = d.id
     WHERE {fresh} OR m.o < d.clock_offset_s - $2
     ORDER BY d.id
       FOR UPDATE OF d SKIP LOCKED)
UPDATE devices d SET
    clock_offset_s = CASE WHEN {fresh} THEN m.o ELSE least(d.clock_offset_s, m.o) END,
    clock_window_at = CASE WHEN {fresh} THEN m.at ELSE d.clock_window_at END,
    clock_checked_at = m.at
  FROM m, mine
 WHERE d.id = mine.id AND m.device_id = mine.id
"""
# a new window: none yet, or the current one is over
_FRESH = ("(d.clock_window_at IS NULL OR d.clock_offset_s IS NULL"
          " OR m.at >= d.clock_window_at + $1::interval)")


class ClockOffsets:
    """Keeps `devices.clock_offset_s` (see migrations/0007) from telemetry: one UPDATE from the
    staging table of a batch, at most every `SAMPLE_EVERY_S`. Every kind sends telemetry (a
    panel its supervision readings), so the fire path (events and status, the priority lane)
    is spared the statement; status messages would not do anyway (a retained birth message
    carries the time its connection was made). The rows are locked in id order and rows held
    by another transaction are skipped (measured again later), so the statement never waits
    and never deadlocks with presence updates or the API."""

    def __init__(self, every_s: float = SAMPLE_EVERY_S) -> None:
        self.every_s = every_s
        self._next = 0.0

    async def record(self, conn: asyncpg.Connection, telemetry: bool) -> None:
        if not telemetry:
            return
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.every_s
        await conn.execute(_OFFSETS_SQL.format(fresh=_FRESH), OFFSET_WINDOW, OFFSET_STEP_S)
