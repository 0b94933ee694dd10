"""The verification deadline, with a short deadline: unverified fires are forwarded at it, a
verdict before it decides, test mode is never forwarded, coincidence may forward at once."""

from __future__ import annotations

import asyncio
import time

import pytest

from dispatch.forwarding import plan
from dispatch.receiver import Receiver
from firetower.alarm_store import AlarmStore
from firetower.alarms import Mode, Trigger, Verdict
from tests.conftest import Database
from tests.dispatch.common import endpoint, pool_for, raise_fire, running, seed, verdict
from tests.helpers import eventually

pytestmark = pytest.mark.integration
DEADLINE = 1.5


async def _forwarded(pool, alarm_id):  # type: ignore[no-untyped-def]
    return await pool.fetchrow("SELECT forwarded_at, forward_basis, received_at FROM alarms"
                               " WHERE id = $1 AND forwarded_at IS NOT NULL", alarm_id)


async def test_deadline_forwards_unverified_and_verdicts_decide(clean_db: Database) -> None:
    await seed(clean_db.url, devices=8)
    async with pool_for(clean_db.url) as pool, \
            running(clean_db.url, verification_deadline_s=DEADLINE):
        store = AlarmStore(pool)
        rx = await Receiver([]).start()
        _, secret = await endpoint(pool, rx.url, event_types=["alarm.forwarded"])
        rx.secrets.append(secret)
        t0 = time.monotonic()
        silent = await raise_fire(store, "d0")                # nobody answers
        acked = await raise_fire(store, "d2")                 # acknowledged only
        false_alarm = await raise_fire(store, "d4")           # false alarm before the deadline
        true_fire = await raise_fire(store, "d6")             # confirmed by an operator
        in_test = await raise_fire(store, "d1", site="s2", mode=Mode.TEST)
        await store.transition(acked, Trigger.ACKNOWLEDGE, actor="operator:alice")
        await verdict(store, false_alarm, Verdict.FALSE_ALARM)
        await verdict(store, true_fire, Verdict.TRUE_FIRE)
        row = await eventually(lambda: _forwarded(pool, true_fire), timeout=DEADLINE)
        assert row["forward_basis"] == "operator"
        assert time.monotonic() - t0 < DEADLINE  # at once, not at the deadline
        row = await eventually(lambda: _forwarded(pool, silent), timeout=DEADLINE + 3)
        waited = (row["forwarded_at"] - row["received_at"]).total_seconds()
        assert row["forward_basis"] == "deadline" and DEADLINE <= waited < DEADLINE + 0.5
        assert (await eventually(lambda: _forwarded(pool, acked)))["forward_basis"] == "deadline"
        await eventually(lambda: _count(rx, 3))
        await asyncio.sleep(DEADLINE)  # on purpose: long past every deadline
        assert await _forwarded(pool, false_alarm) is None
        assert await _forwarded(pool, in_test) is None
        events = await pool.fetch("SELECT alarm_id, actor, details FROM alarm_events"
                                  " WHERE kind = 'forward' ORDER BY id")
        await rx.stop()
    assert [e["alarm_id"] for e in events] == [true_fire, silent, acked]
    assert events[1]["details"]["verified"] is False and events[0]["details"]["verified"]
    got = {r.body["data"]["alarm"]["id"]: r.body["data"]["alarm"] for r in rx.unique}
    assert set(got) == {true_fire, silent, acked}
    assert got[silent]["verified"] is False and got[silent]["forward_basis"] == "deadline"
    assert got[true_fire]["verified"] is True and got[true_fire]["verdict"] == "true_fire"
    assert rx.bad_signatures == 0 and len(rx.requests) == 3  # forwarded exactly once each


async def _count(rx: Receiver, n: int) -> bool:
    return len(rx.unique) >= n


async def test_coincidence_forwards_at_once_when_configured(clean_db: Database) -> None:
    await seed(clean_db.url)
    evidence = {"coincidence": [{"device_id": "d2", "point": "", "type": "smoke.threshold"}],
                "confirmed": True}
    async with pool_for(clean_db.url) as pool:
        store = AlarmStore(pool)
        async with running(clean_db.url, verification_deadline_s=30,
                           forward_on_coincidence=True):
            confirmed = await raise_fire(store, "d0", evidence=evidence)
            single = await raise_fire(store, "d2")
            # well inside the 30 s deadline, whose forwarding would say basis 'deadline'
            row = await eventually(lambda: _forwarded(pool, confirmed), timeout=20)
            assert row["forward_basis"] == "coincidence"
            await asyncio.sleep(0.3)  # on purpose: time to forward it wrongly
            assert await _forwarded(pool, single) is None
        async with running(clean_db.url, verification_deadline_s=30):  # default: off
            other = await raise_fire(store, "d1", site="s2", evidence=evidence)
            await asyncio.sleep(0.5)  # on purpose: time to forward it wrongly
            assert await _forwarded(pool, other) is None


def test_plan_is_pure() -> None:
    rows = [{"id": 1, "verdict": None, "coincidence": False, "age_s": 61.0},
            {"id": 2, "verdict": None, "coincidence": False, "age_s": 10.0},
            {"id": 3, "verdict": "true_fire", "coincidence": False, "age_s": 0.0},
            {"id": 4, "verdict": None, "coincidence": True, "age_s": 0.0}]
    p = plan(rows, 60.0, on_coincidence=False)  # type: ignore[arg-type]
    assert p.due == [(1, "deadline"), (3, "operator")]
    assert p.next_in_s == 50.0
    assert plan(rows, 60.0, on_coincidence=True).due[-1] == (4, "coincidence")  # type: ignore[arg-type]
