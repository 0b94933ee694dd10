"""The live stream against the real API and database while alarms change concurrently:
a client that disconnects and resumes from its last event id gets every change exactly once;
a client that joins mid-way gets a snapshot plus exactly the changes not in it."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import httpx
import pytest

from api.stream import Cursor
from firetower import db
from firetower.alarm_store import AlarmStore
from firetower.alarms import InvalidTransition, Trigger, Verdict
from tests.api.conftest import World, raise_alarm
from tests.api.sse import SseEvent, events
from tests.helpers import eventually

pytestmark = pytest.mark.integration
DEVICES = [f"smk-{i}" for i in range(12)]
WRITERS = 4
CHANGES_PER_WRITER = 40


@pytest.fixture
async def pool(world: World) -> AsyncIterator[object]:
    p = await db.create_pool(world.db_url, max_size=WRITERS + 2)
    await p.executemany("INSERT INTO devices (id, kind, site_id) VALUES ($1, 'smoke_detector', "
                        "'s1')", [(d,) for d in DEVICES])
    yield p
    await p.close()


async def churn(store: AlarmStore, seed: int) -> None:
    """Raise, re-occur, acknowledge and give verdicts at random, from several writers."""
    rng = random.Random(seed)
    for _ in range(CHANGES_PER_WRITER):
        device = rng.choice(DEVICES)
        alarm_id = await raise_alarm(store, device, "s1", rng.choice(["fire", "fault"]),
                                     rng.choice(["a", "b"]))
        trigger = rng.choice([Trigger.ACKNOWLEDGE, Trigger.VERDICT, None])
        if trigger is not None:
            try:
                await store.transition(alarm_id, trigger, actor="operator:test",
                                       verdict=Verdict.FALSE_ALARM
                                       if trigger is Trigger.VERDICT else None)
            except InvalidTransition:
                pass
        await asyncio.sleep(rng.random() * 0.01)  # pacing: the writers interleave at random


async def read(client: httpx.AsyncClient, headers: dict[str, str], stop_after: int | None,
               sink: list[SseEvent], done: asyncio.Event) -> str | None:
    """Read the stream into `sink` until `stop_after` alarm events (or `done`); return the
    last id seen."""
    last: str | None = None
    count = 0
    async with client.stream("GET", "/alarms/stream", headers=headers) as r:
        assert r.status_code == 200, await r.aread()
        async for ev in events(r):
            sink.append(ev)
            last = ev.id
            if ev.event == "alarm":
                count += 1
            if stop_after is not None and count >= stop_after:
                return last
    return last


async def seen(sink: list[SseEvent], kind: str, event_id: int | None = None) -> bool:
    """The stream has sent a `kind` event (an alarm event: the one with `event_id`)."""
    return any(e.event == kind and (event_id is None or e.data["event"]["id"] == event_id)
               for e in sink)


async def all_event_ids(pool) -> list[int]:  # type: ignore[no-untyped-def]
    return [r["id"] for r in await pool.fetch("SELECT id FROM alarm_events ORDER BY id")]


async def test_reconnect_loses_and_duplicates_nothing(world: World, pool) -> None:  # type: ignore[no-untyped-def]
    store = AlarmStore(pool)
    done = asyncio.Event()
    first: list[SseEvent] = []
    async with world.client("operator") as c:
        c.timeout = httpx.Timeout(30)
        # Client A: from the start, drops the connection three times mid-churn.
        writers = [asyncio.create_task(churn(store, seed)) for seed in range(WRITERS)]
        last = await read(c, {}, 25, first, done)
        for _ in range(2):
            last = await read(c, {"Last-Event-ID": last or "0"}, 40, first, done)
        # Client B joins mid-way: snapshot, then changes.
        joined: list[SseEvent] = []
        b_task = asyncio.create_task(read(c, {}, None, joined, done))
        await asyncio.gather(*writers)
        done.set()
        expected = await all_event_ids(pool)
        rest: list[SseEvent] = []

        a_snap = Cursor.parse(first[0].id or "0")
        a_expected = {i for i in expected if i > a_snap.low and i not in a_snap.seen}

        async def a_has_all() -> bool:
            ids = [e.data["event"]["id"] for e in first + rest if e.event == "alarm"]
            return set(ids) >= a_expected

        resume = asyncio.create_task(read(c, {"Last-Event-ID": last or "0"}, None, rest, done))
        await eventually(a_has_all, what="client A has every event it missed")
        await asyncio.sleep(0.3)  # on purpose: time for a duplicate to arrive (there must be none)
        resume.cancel()
        b_task.cancel()
        await asyncio.gather(resume, b_task, return_exceptions=True)

    a_ids = [e.data["event"]["id"] for e in first + rest if e.event == "alarm"]
    assert sorted(a_ids) == sorted(a_expected), "client A: lost or duplicated events"
    assert len(a_expected) > 100  # most changes happened while A was connected or away
    assert sum(1 for e in first if e.event == "snapshot") == 1  # resumes take no snapshot

    snap = joined[0]
    assert snap.event == "snapshot"
    covered = Cursor.parse(snap.id or "0")
    in_snapshot = {i for i in expected if i <= covered.low or i in covered.seen}
    b_ids = [e.data["event"]["id"] for e in joined[1:] if e.event == "alarm"]
    assert len(b_ids) == len(set(b_ids)), "client B: duplicated events"
    assert not in_snapshot & set(b_ids), "client B: an event both in the snapshot and sent"
    assert in_snapshot | set(b_ids) == set(expected), "client B: lost events"
    # B's board (snapshot + deltas) ends equal to the database.
    board = {a["id"]: a for a in snap.data["alarms"]}
    for e in joined[1:]:
        if e.event == "alarm" and e.data["alarm"]:
            board[e.data["alarm"]["id"]] = e.data["alarm"]
    db_state = {r["id"]: r["state"] for r in await pool.fetch("SELECT id, state FROM alarms")}
    assert {i: a["state"] for i, a in board.items()} == \
        {i: s for i, s in db_state.items() if s != "closed" or i in board}


async def test_late_commit_of_a_lower_id_is_not_skipped(world: World, pool) -> None:  # type: ignore[no-untyped-def]
    store = AlarmStore(pool)
    alarm_id = await raise_alarm(store, "smk-1", "s1")
    got: list[SseEvent] = []
    async with world.client("operator") as c:
        c.timeout = httpx.Timeout(30)
        reader = asyncio.create_task(read(c, {}, 2, got, asyncio.Event()))
        await eventually(lambda: seen(got, "snapshot"), what="the stream's snapshot")
        slow = await pool.acquire()
        tx = slow.transaction()
        await tx.start()
        low = await slow.fetchval(  # takes the lower id, commits last (a mode change: no
            # alarm row, so it does not key-share-lock the alarm the other writer updates)
            "INSERT INTO alarm_events (alarm_id, kind, actor) VALUES (NULL, 'mode', 'slow') "
            "RETURNING id")
        await slow.execute("SELECT pg_notify('firetower_alarm_events', $1)", str(low))
        high = (await asyncio.wait_for(store.transition(
            alarm_id, Trigger.ACKNOWLEDGE, actor="operator:fast"), 5)).event_id
        # the higher id is on the stream before the lower one commits
        await eventually(lambda: seen(got, "alarm", high), what=f"event {high} on the stream")
        await tx.commit()
        await pool.release(slow)
        last = await asyncio.wait_for(reader, 10)
    ids = [e.data["event"]["id"] for e in got if e.event == "alarm"]
    assert ids == [high, low]
    assert Cursor.parse(last or "").low == high


async def test_scoped_user_streams_only_its_sites(world: World, pool) -> None:  # type: ignore[no-untyped-def]
    await pool.execute("INSERT INTO devices (id, kind, site_id) VALUES "
                       "('far-1', 'smoke_detector', 's2')")
    store = AlarmStore(pool)
    got: list[SseEvent] = []
    async with world.client("installer") as c:
        c.timeout = httpx.Timeout(30)
        reader = asyncio.create_task(read(c, {}, 2, got, asyncio.Event()))
        await eventually(lambda: seen(got, "snapshot"), what="the stream's snapshot")
        await raise_alarm(store, "far-1", "s2")
        own = await raise_alarm(store, "smk-1", "s1")
        await raise_alarm(store, "far-1", "s2", rule="other")
        await store.transition(own, Trigger.ACKNOWLEDGE, actor="operator:x")
        await asyncio.wait_for(reader, 10)
    alarms = [e.data["alarm"]["device_id"] for e in got if e.event == "alarm"]
    assert alarms == ["smk-1", "smk-1"]
