"""The promise, checked after a fault: every acknowledged message stored once (by device and
seq), every fire event an alarm, every fire alarm delivered to the fire brigade's receiver.

Each check waits for its condition up to a deadline (the centre may still be catching up
after the fault) and then fails with the figures and examples of what is missing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from tests.faults.centre import Centre
from tests.faults.stream import Stream

TABLE = {"telemetry": "telemetry", "event": "events", "status": "device_status"}


async def _fetch(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def _until(check: Callable[[], Awaitable[str | None]], timeout: float) -> str | None:
    """Run `check` (None = satisfied, else what is wrong) until satisfied or timed out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            problem = await check()
        except (OSError, asyncpg.PostgresError) as exc:  # the database may still be recovering
            problem = f"database not reachable: {exc!r}"
        if problem is None or time.monotonic() > deadline:
            return problem
        await asyncio.sleep(0.25)  # a probe's polling interval (deadline above)


async def stored_once(centre: Centre, stream: Stream, timeout: float = 60) -> str | None:
    acked = stream.acked()
    devices = sorted({s.device for s in stream.sent})

    async def check() -> str | None:
        missing: list[str] = []
        for mtype, table in TABLE.items():
            want = {(s.device, s.seq) for s in acked if s.mtype == mtype}
            if not want:
                continue
            rows = await _fetch(centre.db_url,
                                f"SELECT device_id, seq FROM {table} WHERE device_id = ANY($1)",
                                devices)
            have = {(r["device_id"], r["seq"]) for r in rows}
            missing += [f"{table} {d}#{q}" for d, q in sorted(want - have)]
        if missing:
            return (f"{len(missing)} of {len(acked)} acknowledged messages not stored "
                    f"(e.g. {', '.join(missing[:8])})")
        return None

    problem = await _until(check, timeout)
    if problem is not None:
        return problem
    dups: list[str] = []
    for table in TABLE.values():
        rows = await _fetch(centre.db_url,
                            f"SELECT device_id, seq, count(*) AS n FROM {table} "
                            "GROUP BY device_id, seq HAVING count(*) > 1 ORDER BY 1, 2")
        dups += [f"{table} {r['device_id']}#{r['seq']} x{r['n']}" for r in rows]
    if dups:
        return f"{len(dups)} messages stored more than once (e.g. {', '.join(dups[:8])})"
    return None


async def fires_alarmed(centre: Centre, stream: Stream, timeout: float = 60) -> str | None:
    """Every fire event the centre stored or the broker acknowledged has its alarm (key:
    device, "zone/point", panel.fire)."""
    acked = {(s.device, s.seq): s for s in stream.acked() if s.mtype == "event"}
    sent = {(s.device, s.seq): s for s in stream.fires()}

    async def check() -> str | None:
        rows = await _fetch(centre.db_url,
                            "SELECT device_id, seq FROM events WHERE category = 'fire' AND active")
        stored = {(r["device_id"], r["seq"]) for r in rows}
        want = {k: sent[k] for k in stored if k in sent} | acked
        alarms = await _fetch(centre.db_url,
                              "SELECT device_id, point FROM alarms WHERE type = 'panel.fire'")
        have = {(r["device_id"], r["point"]) for r in alarms}
        missing = [f"{d}#{q} ({s.zone}/{s.point})" for (d, q), s in sorted(want.items())
                   if (d, f"{s.zone}/{s.point}") not in have]
        if missing:
            return (f"{len(missing)} of {len(want)} fire events have no alarm "
                    f"(e.g. {', '.join(missing[:8])})")
        return None

    return await _until(check, timeout)


async def fires_delivered(centre: Centre, timeout: float = 60) -> str | None:
    """Every fire alarm in normal mode reached the receiver as a signed `alarm.forwarded`."""

    async def check() -> str | None:
        rows = await _fetch(centre.db_url,
                            "SELECT id, device_id, point FROM alarms "
                            "WHERE class = 'fire' AND mode = 'normal' ORDER BY id")
        got = {r.body["data"]["alarm"]["id"] for r in centre.receiver.unique
               if r.type == "alarm.forwarded"}
        missing = [f"{r['id']} ({r['device_id']} {r['point']})" for r in rows
                   if r["id"] not in got]
        if missing:
            return (f"{len(missing)} of {len(rows)} fire alarms not delivered to the receiver "
                    f"(e.g. {', '.join(missing[:8])})")
        return None

    return await _until(check, timeout)


def fires_confirmed(stream: Stream) -> str | None:
    """Every fire event the broker acknowledged was confirmed to its panel by the centre
    (`centre/v1/{id}/confirm`): the panel no longer holds it, so it must be the centre's."""
    confirmed = getattr(stream, "confirmed", None)
    if confirmed is None or getattr(stream, "resend_s", 1) == 0:
        return None
    missing = [f"{s.device}#{s.seq}" for s in stream.acked()
               if s.mtype == "event" and (s.device, s.seq) not in confirmed]
    if missing:
        return (f"{len(missing)} fire events never confirmed to their panel "
                f"(e.g. {', '.join(missing[:8])})")
    return None


async def assert_nothing_lost(centre: Centre, stream: Stream, *, timeout: float = 60,
                              min_fires: int = 10) -> None:
    """All four checks; one failure message with every problem, the figures and the logs."""
    fires = sum(1 for s in stream.acked() if s.mtype == "event")
    problems = []
    if fires < min_fires:
        problems.append(f"only {fires} fire events acknowledged (the case needs {min_fires})")
    for check in (stored_once(centre, stream, timeout), fires_alarmed(centre, stream, timeout),
                  fires_delivered(centre, timeout)):
        problem = await check
        if problem is not None:
            problems.append(problem)
            timeout = 5  # the first wait already gave the centre its time
    unconfirmed = fires_confirmed(stream)
    if unconfirmed is not None:
        problems.append(unconfirmed)
    if centre.receiver.bad_signatures:
        problems.append(f"{centre.receiver.bad_signatures} webhooks with a bad signature")
    if problems:
        raise AssertionError(f"{stream.summary()}\n- " + "\n- ".join(problems)
                             + f"\n{centre.logs()}")
