"""firetower/alarm_store.py against the real database: one open alarm per key under racing
writers, transitions with FOR UPDATE, the append-only event log, NOTIFY, transaction hooks."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import pytest

from firetower import db
from firetower.alarm_store import AlarmChange, AlarmKey, AlarmNotFound, AlarmStore, Occurrence
from firetower.alarms import AlarmClass, AlarmState, InvalidTransition, Trigger, Verdict

pytestmark = pytest.mark.integration
KEY = AlarmKey("smk-1", "", "smoke.threshold")
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def occ(key: AlarmKey = KEY, **kw) -> Occurrence:  # type: ignore[no-untyped-def]
    return Occurrence(key, kw.pop("cls", AlarmClass.FIRE), NOW, "s1", confidence=0.6,
                      evidence={"rule": key.type}, **kw)


@pytest.fixture
async def pool(clean_db):  # type: ignore[no-untyped-def]
    p = await db.create_pool(clean_db.url, min_size=2, max_size=12)
    yield p
    await p.close()


async def test_raise_recur_clear_and_a_new_alarm_after_clear(pool) -> None:  # type: ignore[no-untyped-def]
    store = AlarmStore(pool)
    first = await store.raise_or_recur(occ())
    again = await store.raise_or_recur(occ())
    assert (first.kind, first.to_state, again.kind, again.count) == (
        "raise", AlarmState.ACTIVE, "recur", 2)
    assert first.alarm_id == again.alarm_id
    cleared = await store.clear(KEY, at=NOW, reason="below the level")
    assert cleared is not None and cleared.to_state is AlarmState.CLEARED_UNACK
    assert await store.clear(KEY, at=NOW, reason="again") is None
    new = await store.raise_or_recur(occ())
    assert new.kind == "raise" and new.alarm_id != first.alarm_id
    kinds = [r["kind"] for r in await pool.fetch("SELECT kind FROM alarm_events ORDER BY id")]
    assert kinds == ["raise", "recur", "clear", "raise"]


async def test_two_writers_racing_the_same_raise_make_one_alarm(pool) -> None:  # type: ignore[no-untyped-def]
    stores = [AlarmStore(pool) for _ in range(2)]
    for round_ in range(20):
        key = AlarmKey(f"d{round_}", "", "panel.fire")
        changes = await asyncio.gather(*(s.raise_or_recur(occ(key)) for s in stores * 4))
        assert len({c.alarm_id for c in changes}) == 1
        assert sorted(c.kind for c in changes) == ["raise"] + ["recur"] * 7
    n = await pool.fetchval("SELECT count(*) FROM alarms")
    counts = {r["count"] for r in await pool.fetch("SELECT count FROM alarms")}
    assert (n, counts) == (20, {8})


async def test_racing_clear_and_acknowledge_serialise(pool) -> None:  # type: ignore[no-untyped-def]
    store = AlarmStore(pool)
    for i in range(10):
        key = AlarmKey(f"r{i}", "", "smoke.threshold")
        c = await store.raise_or_recur(occ(key))
        await asyncio.gather(store.clear(key, at=NOW, reason="gone"),
                             store.transition(c.alarm_id, Trigger.ACKNOWLEDGE, actor="op:wang"))
        row = await pool.fetchrow("SELECT state, acknowledged_by FROM alarms WHERE id = $1",
                                  c.alarm_id)
        assert (row["state"], row["acknowledged_by"]) == ("cleared", "op:wang")


async def test_operator_path_verdict_and_invalid_transitions(pool) -> None:  # type: ignore[no-untyped-def]
    store = AlarmStore(pool)
    c = await store.raise_or_recur(occ())
    v = await store.transition(c.alarm_id, Trigger.VERDICT, actor="op:li", reason="cooking",
                               verdict=Verdict.NUISANCE)
    assert v.to_state is AlarmState.VERIFIED
    with pytest.raises(InvalidTransition):
        await store.transition(c.alarm_id, Trigger.ACKNOWLEDGE, actor="op:li")
    with pytest.raises(AlarmNotFound):
        await store.transition(999999, Trigger.ACKNOWLEDGE, actor="op:li")
    done = await store.clear(KEY, at=NOW, reason="smoke gone")
    assert done is not None and done.to_state is AlarmState.CLOSED
    row = await pool.fetchrow("SELECT * FROM alarms WHERE id = $1", c.alarm_id)
    assert (row["verdict"], row["verdict_by"], row["acknowledged_by"]) == (
        "nuisance", "op:li", "op:li")
    assert row["closed_at"] is not None and row["cleared_at"] is not None
    events = await pool.fetch("SELECT kind, actor, from_state, to_state, reason FROM"
                              " alarm_events WHERE alarm_id = $1 ORDER BY id", c.alarm_id)
    assert [(e["kind"], e["actor"]) for e in events] == [
        ("raise", "engine"), ("verdict", "op:li"), ("clear", "engine")]


async def test_fire_cannot_be_closed_without_verdict_but_a_fault_can(pool) -> None:  # type: ignore[no-untyped-def]
    store = AlarmStore(pool)
    fire = await store.raise_or_recur(occ())
    fault_key = AlarmKey("pnl-1", "", "panel.fault")
    fault = await store.raise_or_recur(occ(fault_key, cls=AlarmClass.FAULT))
    for key, ch in ((KEY, fire), (fault_key, fault)):
        await store.clear(key, at=NOW, reason="gone")
        await store.transition(ch.alarm_id, Trigger.ACKNOWLEDGE, actor="op")
    with pytest.raises(InvalidTransition):
        await store.transition(fire.alarm_id, Trigger.CLOSE, actor="op")
    closed = await store.transition(fault.alarm_id, Trigger.CLOSE, actor="op", reason="fixed")
    assert closed.to_state is AlarmState.CLOSED


async def test_event_log_is_append_only(pool) -> None:  # type: ignore[no-untyped-def]
    await AlarmStore(pool).raise_or_recur(occ())
    with pytest.raises(asyncpg.RaiseError):
        await pool.execute("UPDATE alarm_events SET reason = 'rewritten'")
    with pytest.raises(asyncpg.RaiseError):
        await pool.execute("DELETE FROM alarm_events")


async def test_notify_carries_the_event_id_and_hooks_share_the_transaction(pool) -> None:  # type: ignore[no-untyped-def]
    await pool.execute("CREATE TABLE IF NOT EXISTS test_outbox (event_id bigint)")
    got: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(pool._connect_args[0])  # type: ignore[attr-defined]
    await listener.add_listener("firetower_alarm_events", lambda *a: got.put_nowait(a[3]))

    async def outbox(conn: asyncpg.Connection, change: AlarmChange) -> None:
        await conn.execute("INSERT INTO test_outbox VALUES ($1)", change.event_id)

    async def failing(conn: asyncpg.Connection, change: AlarmChange) -> None:
        raise RuntimeError("outbox down")

    try:
        c = await AlarmStore(pool, hooks=[outbox]).raise_or_recur(occ())
        assert await asyncio.wait_for(got.get(), 5) == str(c.event_id)
        assert await pool.fetchval("SELECT event_id FROM test_outbox") == c.event_id
        with pytest.raises(RuntimeError):
            await AlarmStore(pool, hooks=[outbox, failing]).raise_or_recur(
                occ(AlarmKey("x", "", "panel.fire")))
        assert await pool.fetchval("SELECT count(*) FROM alarms WHERE device_id = 'x'") == 0
        assert got.empty()
    finally:
        await listener.close()
        await pool.execute("DROP TABLE test_outbox")


async def test_the_writer_survives_a_decision_the_database_refuses(pool) -> None:  # type: ignore[no-untyped-def]
    import asyncio as aio

    from alerting.decision import Action, Decision
    from alerting.writer import AlarmWriter

    w = AlarmWriter(AlarmStore(pool))
    task = aio.create_task(w.run())
    try:
        bad = Decision(Action.RAISE, 1, KEY, AlarmClass.FIRE, NOW.timestamp(), confidence=7.0)
        good = Decision(Action.RAISE, 1, AlarmKey("ok", "", "panel.fire"), AlarmClass.FIRE,
                        NOW.timestamp(), confidence=0.7)
        w.put(bad)
        w.put(good)
        await aio.wait_for(w.drain(), 30)
        assert (w.failed, w.written) == (1, 1)
        assert await pool.fetchval("SELECT device_id FROM alarms") == "ok"
    finally:
        task.cancel()
        await aio.gather(task, return_exceptions=True)


async def test_notes_forwarding_and_shown_go_through_the_store(pool) -> None:  # type: ignore[no-untyped-def]
    """Comment, assign and forward are events of the one write path (an event row, the hooks
    and a NOTIFY per call, in its transaction); shown is the first-shown clock only."""
    got: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(pool._connect_args[0])  # type: ignore[attr-defined]
    await listener.add_listener("firetower_alarm_events", lambda *a: got.put_nowait(a[3]))
    seen: list[str] = []

    async def hook(conn: asyncpg.Connection, change: AlarmChange) -> None:
        seen.append(change.kind)

    store = AlarmStore(pool, hooks=[hook])
    try:
        raised = await store.raise_or_recur(occ())
        fire = raised.alarm_id
        changes = [await store.comment(fire, actor="operator:alice", text="on my way"),
                   await store.assign(fire, actor="operator:alice", assignee="bob"),
                   await store.assign(fire, actor="operator:alice", assignee=None)]
        assert await store.forward(fire, "operator", actor="dispatch", reason="r",
                                   details={}) is None  # no true_fire verdict
        changes.append(await store.forward(fire, "deadline", actor="dispatch",
                                           reason="unverified", details={"verified": False}))
        assert await store.forward(fire, "deadline", actor="dispatch", reason="again",
                                   details={}) is None  # forwarded once
        for c in [raised, *changes]:
            assert await asyncio.wait_for(got.get(), 5) == str(c.event_id)
        assert seen == ["raise", "comment", "assign", "assign", "forward"]
        rows = await pool.fetch("SELECT kind, from_state, to_state, actor, reason, details"
                                " FROM alarm_events WHERE alarm_id = $1 ORDER BY id", fire)
        assert [tuple(r.values()) for r in rows[1:]] == [
            ("comment", "active", "active", "operator:alice", "on my way", {}),
            ("assign", "active", "active", "operator:alice", "assigned to bob",
             {"assignee": "bob"}),
            ("assign", "active", "active", "operator:alice", "unassigned", {"assignee": None}),
            ("forward", "active", "active", "dispatch", "unverified", {"verified": False})]
        assert await pool.fetchval("SELECT forward_basis FROM alarms WHERE id = $1",
                                   fire) == "deadline"
        with pytest.raises(AlarmNotFound):
            await store.comment(10**9, actor="op", text="x")

        later = NOW.replace(hour=13)
        await store.mark_shown([fire], at=NOW, to="alice")
        await store.mark_shown([fire], at=later, to="bob")  # the first showing is kept
        row = await pool.fetchrow("SELECT shown_at, shown_to FROM alarms WHERE id = $1", fire)
        assert (row["shown_at"], row["shown_to"]) == (NOW, "alice")
        after = await store.comment(fire, actor="op", text="after")
        assert seen[5:] == ["comment"]  # the clock ran no hook, wrote no event
        assert await asyncio.wait_for(got.get(), 5) == str(after.event_id)  # nor a NOTIFY
    finally:
        await listener.close()
