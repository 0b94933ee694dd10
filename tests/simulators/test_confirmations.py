"""The simulator as a device that keeps its events until the centre confirms them
(docs/protocol.md, "Event confirmation"): the bookkeeping as a pure unit, and the publisher
against the real broker, ingester, rule engine and database, with the centre away at first."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firetower.mqtt import AsyncMqtt
from firetower.protocol import encode, format_ts, topic_for
from simulators.confirmations import Pending
from simulators.publisher import publish
from simulators.stream import Outgoing
from tests.alerting.common import register, running_centre
from tests.helpers import eventually, start_subscribed


def event(device: str, seq: int, when: datetime | None = None) -> Outgoing:
    ts = when or datetime.now(UTC)
    body = {"seq": seq, "ts": format_ts(ts), "category": "fire", "active": True, "zone": seq,
            "point": 1, "component": "smoke_detector", "location": f"zone {seq}"}
    return Outgoing(topic_for(device, "event"), encode(body), 1, False, device, seq, ts)


def reading(device: str, seq: int) -> Outgoing:
    ts = datetime.now(UTC)
    return Outgoing(topic_for(device, "telemetry"),
                    encode({"seq": seq, "ts": format_ts(ts), "temperature_c": 21.0}),
                    1, False, device, seq, ts)


def test_only_events_are_kept_and_a_confirmation_ends_them() -> None:
    p = Pending()
    p.sent(reading("smk-1", 1), 0.0)
    p.sent(event("pnl-1", 2), 0.0)
    p.sent(event("pnl-1", 2), 0.5)  # the same event handed out again: one entry
    assert len(p) == 1
    assert list(p.due(1.9)) == []
    assert [o.seq for o in p.due(2.0)] == [2]
    assert p.confirm("pnl-1", 2) and not p.confirm("pnl-1", 2)
    assert (len(p), p.confirmed, p.resent) == (0, 1, 1)
    assert list(p.due(100.0)) == []


@given(st.lists(st.floats(min_value=0.0, max_value=5.0), min_size=1, max_size=40))
def test_resends_double_up_to_the_cap_and_stop_after_the_last_try(steps: list[float]) -> None:
    p = Pending(first_s=2.0, max_s=8.0, max_tries=5)
    p.sent(event("pnl-1", 1), 0.0)
    now, sends = 0.0, [0.0]
    for step in steps:
        now += step
        sends += [now for _ in p.due(now)]
    gaps = [b - a for a, b in itertools.pairwise(sends)]
    waits = [2.0, 4.0, 8.0, 8.0]
    assert len(sends) <= 5  # max_tries, the first send included
    assert all(g >= w - 1e-9 for g, w in zip(gaps, waits, strict=False))  # never sooner than the backoff
    assert p.abandoned + len(p) == 1  # kept, or given up: never dropped otherwise
    if p.abandoned:  # given up only after its last try
        assert len(sends) == 5
    assert p.resent == len(sends) - 1


@pytest.mark.integration
async def test_events_sent_while_the_centre_is_away_are_resent_confirmed_and_stored_once(
        clean_db, own_broker) -> None:  # type: ignore[no-untyped-def]
    """The broker takes the events while no ingester has subscribed yet (with no session to
    queue for, it acknowledges and drops them, as it drops what a crash loses after its last
    save): only the resends reach the centre, and every event becomes an alarm."""
    await register(clean_db.url, [("pnl-c2", "alarm_panel", None, None)])
    events = [event("pnl-c2", seq) for seq in range(1, 6)]
    taken: set[bytes] = set()  # first sends the broker took (and, with no session, dropped)
    watcher = AsyncMqtt("127.0.0.1", own_broker.port)
    watcher.set_on_message(lambda c, u, m: taken.add(bytes(m.payload)))
    watcher.subscribe(topic_for("pnl-c2", "event"), 1)
    await start_subscribed(watcher)

    async def centre_later() -> int:
        await eventually(lambda: len(taken) >= 5, what="the broker took all five events")
        await watcher.stop()
        async with running_centre(clean_db.url, own_broker) as run:
            async def all_alarmed() -> bool:
                return await run.conn.fetchval(
                    "SELECT count(*) FROM alarms WHERE device_id = 'pnl-c2'") == 5
            await eventually(all_alarmed, 30)
            await asyncio.sleep(0.5)  # on purpose: time for a late resend (stored once too)
            return await run.conn.fetchval("SELECT count(*) FROM events")

    stored, stats = await asyncio.gather(
        centre_later(), publish(iter(events), port=own_broker.port, confirm=True, quiet=True))
    assert stored == 5
    assert (stats.confirmed, stats.unconfirmed) == (5, 0), stats
    assert stats.resent >= 5, stats  # every event went out again at least once
