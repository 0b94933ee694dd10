"""Delivery through a real receiver that verifies every signature: events, payload, filters,
retry policy, dead-letter and replay, failing-endpoint alarm, secret rotation."""

from __future__ import annotations

import asyncio

import pytest

from dispatch.receiver import Received, Receiver
from firetower.alarm_store import AlarmStore
from firetower.alarms import AlarmClass, Trigger, Verdict
from firetower.webhooks import delivery_log, subscriptions
from firetower.webhooks.signing import verify
from tests.conftest import Database
from tests.dispatch.common import BOX, PUBLIC_URL, endpoint, pool_for, raise_fire, running, seed
from tests.helpers import eventually

pytestmark = pytest.mark.integration


async def test_lifecycle_events_signed_with_payload(clean_db: Database) -> None:
    await seed(clean_db.url)
    async with pool_for(clean_db.url) as pool, running(clean_db.url):
        store = AlarmStore(pool)
        rx = await Receiver([]).start()
        _, secret = await endpoint(pool, rx.url)
        rx.secrets.append(secret)
        alarm = await raise_fire(store, "d0")
        await store.transition(alarm, Trigger.ACKNOWLEDGE, actor="operator:alice")
        await store.transition(alarm, Trigger.VERDICT, actor="operator:alice",
                               verdict=Verdict.FALSE_ALARM)
        await eventually(lambda: _n(rx, 3), timeout=30)
        await rx.stop()
    assert [r.type for r in rx.unique] == ["alarm.raised", "alarm.acknowledged",
                                           "alarm.verdict"]
    assert rx.bad_signatures == 0 and len(rx.requests) == 3
    raised = rx.unique[0].body
    assert raised["version"] == "1" and raised["id"].startswith("evt_")
    a = raised["data"]["alarm"]
    assert a["id"] == alarm and a["class"] == "fire" and a["confidence"] == pytest.approx(0.8)
    assert a["site"] == {"id": "s1", "name": "Harbour Tower", "address": "1 Quay Road",
                         "jurisdiction": "district-7", "latitude": None, "longitude": None,
                         # a site placed in no node of the tree and in no unit (org/)
                         "jurisdiction_path": None, "unit": None}
    assert a["device"]["id"] == "d0" and a["device"]["location"] == "floor 0 corridor"
    assert a["evidence"] == {"obscuration_pct_per_m": 4.2}
    assert raised["links"]["console"] == f"{PUBLIC_URL}/console/#alarm={alarm}"
    v = rx.unique[2].body["data"]
    assert v["alarm"]["verdict"] == "false_alarm" and v["change"]["actor"] == "operator:alice"


async def _n(rx: Receiver, n: int) -> bool:
    return len(rx.unique) >= n


async def test_filters(clean_db: Database) -> None:
    await seed(clean_db.url)
    async with pool_for(clean_db.url) as pool, running(clean_db.url):
        store = AlarmStore(pool)
        rx_all = await Receiver([]).start()
        rx_fault = await Receiver([]).start()
        rx_s2 = await Receiver([]).start()
        rx_j7_verdicts = await Receiver([]).start()
        for rx, kw in ((rx_all, {}), (rx_fault, {"classes": ["fault"]}),
                       (rx_s2, {"site_ids": ["s2"]}),
                       (rx_j7_verdicts, {"jurisdictions": ["district-7"],
                                         "event_types": ["alarm.verdict"],
                                         "verdicts": ["true_fire"]})):
            _, secret = await endpoint(pool, rx.url, **kw)
            rx.secrets.append(secret)
        a0 = await raise_fire(store, "d0", site="s1")
        a1 = await raise_fire(store, "d1", site="s2")
        await raise_fire(store, "d2", site="s1", rule="device.fault", alarm_class=AlarmClass.FAULT)
        await store.transition(a0, Trigger.VERDICT, actor="op", verdict=Verdict.TRUE_FIRE)
        await store.transition(a1, Trigger.VERDICT, actor="op", verdict=Verdict.TRUE_FIRE)
        # a0: raised, verdict, forwarded; a1 the same; the fault: raised
        await eventually(lambda: _n(rx_all, 7))
        await eventually(lambda: _n(rx_fault, 1))
        await eventually(lambda: _n(rx_s2, 3))  # a1: raised, verdict, forwarded
        await eventually(lambda: _n(rx_j7_verdicts, 1))
        await asyncio.sleep(0.3)  # on purpose: time for a delivery a filter should stop
        for rx in (rx_all, rx_fault, rx_s2, rx_j7_verdicts):
            await rx.stop()
    assert len(rx_all.unique) == 7
    a0_types = [r.type for r in rx_all.unique if r.body["data"]["alarm"]["id"] == a0]
    assert a0_types == ["alarm.raised", "alarm.verdict", "alarm.forwarded"]
    assert [r.body["data"]["alarm"]["class"] for r in rx_fault.unique] == ["fault"]
    assert {r.body["data"]["alarm"]["site"]["id"] for r in rx_s2.unique} == {"s2"}
    assert [(r.type, r.body["data"]["alarm"]["id"]) for r in rx_j7_verdicts.unique] == [
        ("alarm.verdict", a0)]
    assert all(rx.bad_signatures == 0 for rx in (rx_all, rx_fault, rx_s2, rx_j7_verdicts))


async def test_retry_policy(clean_db: Database) -> None:
    """503 with Retry-After and 429 are retried (order kept); 400 is not, and the queue moves
    on; 408 is retried."""
    await seed(clean_db.url)
    # per device: the answers to its successive attempts
    answers = {"d0": [(503, {"retry-after": "1"}), 204], "d1": [400], "d2": [429, 408, 204],
               "d3": [204]}
    seen: dict[str, int] = {}

    def answer(rec: Received) -> int | tuple[int, dict[str, str]]:
        dev = rec.body["data"]["alarm"]["device"]["id"]
        k = seen[dev] = seen.get(dev, 0) + 1
        return answers[dev][min(k, len(answers[dev])) - 1]

    async with pool_for(clean_db.url) as pool, running(clean_db.url):
        store = AlarmStore(pool)
        rx = Receiver([], answer=answer)
        eid, secret = await endpoint(pool, rx.url, event_types=["alarm.raised"])
        rx.secrets.append(secret)
        await rx.start()
        for i in range(4):
            await raise_fire(store, f"d{i}", site="s1" if i % 2 == 0 else "s2")
        await eventually(lambda: _n(rx, 3))

        async def settled() -> bool:  # delivered or rejected, none left to retry
            rows = await pool.fetch("SELECT status FROM webhook_deliveries"
                                    " WHERE endpoint_id = $1", eid)
            return len(rows) == 4 and all(r["status"] != "pending" for r in rows)

        await eventually(settled, what="every delivery delivered or rejected")
        await rx.stop()
        async with pool.acquire() as conn:
            rows = await delivery_log.deliveries(conn, eid)
            log1 = await delivery_log.attempts(conn, eid, rows[-1]["id"])
    by_dev = [r.body["data"]["alarm"]["device"]["id"] for r in rx.unique]
    assert by_dev == ["d0", "d2", "d3"]  # d1 was refused with 400: not retried, not blocking
    status = {r["alarm_id"]: r["status"] for r in rows}
    assert sorted(status.values()) == ["delivered", "delivered", "delivered", "rejected"]
    assert [a["outcome"] for a in log1] == ["retry", "delivered"]
    assert [a["status_code"] for a in log1] == [503, 204]
    assert (log1[1]["at"] - log1[0]["at"]).total_seconds() >= 0.9  # Retry-After: 1 honoured
    assert seen == {"d0": 2, "d1": 1, "d2": 3, "d3": 1}



async def test_dead_letter_failing_alarm_and_replay(clean_db: Database) -> None:
    """An endpoint answering 500 past the horizon: the message is dead-lettered, the queue
    moves on, a FAULT alarm tells operators; once the endpoint answers again the alarm clears,
    and a manual replay delivers the dead message with its original id."""
    await seed(clean_db.url)
    down = True
    rx = Receiver([], answer=lambda _r: 500 if down else 204)
    async with pool_for(clean_db.url) as pool, running(clean_db.url, dead_letter_after_s=1.0):
        store = AlarmStore(pool)
        eid, secret = await endpoint(pool, rx.url, event_types=["alarm.raised"])
        rx.secrets.append(secret)
        await rx.start()
        await raise_fire(store, "d0")

        async def dead() -> bool:
            return await pool.fetchval("SELECT count(*) FROM webhook_deliveries"
                                       " WHERE status = 'dead'") == 1
        await eventually(dead, timeout=30)
        failing = await pool.fetchrow("SELECT * FROM alarms WHERE type = 'webhook.failing'")
        assert failing is not None and failing["class"] == "fault"
        assert failing["device_id"] == f"webhook:{eid}" and failing["state"] == "active"
        down = False
        await raise_fire(store, "d2")
        await eventually(lambda: _n(rx, 1), timeout=30)

        async def cleared() -> bool:
            return await pool.fetchval("SELECT state FROM alarms WHERE type = 'webhook.failing'"
                                       ) == "cleared_unack"
        await eventually(cleared, timeout=30)
        async with pool.acquire() as conn:
            replayed = await delivery_log.replay(conn, eid)
        assert len(replayed) == 1
        await eventually(lambda: _n(rx, 2), timeout=30)
        await rx.stop()
        attempts = await pool.fetchval(
            "SELECT count(*) FROM webhook_attempts a JOIN webhook_deliveries d"
            " ON d.id = a.delivery_id WHERE d.status = 'dead'")
    assert attempts >= 2
    assert [r.body["data"]["alarm"]["device"]["id"] for r in rx.unique] == ["d2", "d0"]
    assert rx.bad_signatures == 0


async def test_secret_rotation(clean_db: Database) -> None:
    """During the overlap every message carries a signature per secret, so receivers holding
    either the old or the new secret verify it; after the overlap only the new one signs."""
    await seed(clean_db.url)
    async with pool_for(clean_db.url) as pool, running(clean_db.url) as dispatcher:
        store = AlarmStore(pool)
        rx_old = await Receiver([]).start()
        eid, old = await endpoint(pool, rx_old.url, event_types=["alarm.raised"])
        rx_old.secrets.append(old)
        await raise_fire(store, "d0")
        await eventually(lambda: _n(rx_old, 1), timeout=30)
        async with pool.acquire() as conn:
            new, _ = await subscriptions.rotate(conn, BOX, eid, overlap_s=1.5)
        rx_new = await Receiver([new]).start()
        async with pool.acquire() as conn:  # both receivers: same secret set, old url swapped
            await subscriptions.update(conn, eid, {"url": rx_new.url})

        async def swapped() -> bool:  # the dispatcher's worker has the new url and both keys
            worker = dispatcher._workers.get(eid)
            return (worker is not None and worker.endpoint.url == rx_new.url
                    and len(worker.endpoint.keys) == 2)

        await eventually(swapped, what="the dispatcher delivering to the new url")
        await raise_fire(store, "d2")
        await eventually(lambda: _n(rx_new, 1), timeout=30)
        first = rx_new.unique[0]
        both = first.headers["webhook-signature"].split()
        assert verify([old], first.headers, first.raw) == verify([new], first.headers, first.raw)
        await asyncio.sleep(1.5)  # on purpose: past the 1.5 s overlap
        await raise_fire(store, "d4")
        await eventually(lambda: _n(rx_new, 2), timeout=30)
        only_new = rx_new.unique[1].headers["webhook-signature"].split()
        await rx_old.stop()
        await rx_new.stop()
    assert len(both) == 2 and len(only_new) == 1
    assert rx_new.bad_signatures == 0


async def test_second_dispatcher_is_a_standby(clean_db: Database) -> None:
    """One sender per endpoint: a second dispatcher waits for the leader lock and takes over
    when the leader goes away."""
    from dispatch.dispatcher import Dispatcher
    from tests.dispatch.common import config, settings

    await seed(clean_db.url)
    async with pool_for(clean_db.url) as pool:
        store = AlarmStore(pool)
        rx = await Receiver([]).start()
        _, secret = await endpoint(pool, rx.url, event_types=["alarm.raised"])
        rx.secrets.append(secret)
        leader = Dispatcher(settings(clean_db.url), config())
        await leader.start()
        standby = Dispatcher(settings(clean_db.url), config())
        waiting = asyncio.create_task(standby.start())
        await asyncio.sleep(0.5)  # on purpose: 0.5 s in which the standby must not lead
        assert not standby.leader.is_set()
        await raise_fire(store, "d0")
        await eventually(lambda: _n(rx, 1), timeout=30)
        await leader.stop()
        await asyncio.wait_for(waiting, 10)
        assert standby.leader.is_set()
        await raise_fire(store, "d2")
        await eventually(lambda: _n(rx, 2), timeout=30)
        await standby.stop()
        await rx.stop()
    assert len(rx.requests) == 2 and rx.bad_signatures == 0


async def test_unreadable_secret_keeps_messages_queued(clean_db: Database) -> None:
    """A dispatcher with another FIRETOWER_SECRET_KEY cannot unseal the endpoint's secret: it
    keeps the messages queued (retried), and a dispatcher with the right key delivers them."""
    await seed(clean_db.url)
    async with pool_for(clean_db.url) as pool:
        store = AlarmStore(pool)
        rx = await Receiver([]).start()
        eid, secret = await endpoint(pool, rx.url, event_types=["alarm.raised"])
        rx.secrets.append(secret)
        async with running(clean_db.url, secret_key="another-key-entirely"):
            await raise_fire(store, "d0")

            async def tried() -> bool:
                return bool(await pool.fetchval(
                    "SELECT attempts FROM webhook_deliveries WHERE endpoint_id = $1", eid))
            await eventually(tried, timeout=30)
            row = await pool.fetchrow("SELECT status, last_error FROM webhook_deliveries")
            assert row["status"] == "pending" and "signing secret" in row["last_error"]
            assert rx.requests == []
        async with running(clean_db.url):
            await eventually(lambda: _n(rx, 1), timeout=30)
        await rx.stop()
    assert rx.bad_signatures == 0


async def test_failing_alarm_cleared_when_endpoint_deleted_and_prune(clean_db: Database) -> None:
    from dispatch.dispatcher import prune

    await seed(clean_db.url)
    async with pool_for(clean_db.url) as pool, running(clean_db.url):
        store = AlarmStore(pool)
        ok = await Receiver([]).start()
        _, s = await endpoint(pool, ok.url, event_types=["alarm.raised"])
        ok.secrets.append(s)
        eid_bad, _ = await endpoint(pool, "http://127.0.0.1:9/refused",
                                    event_types=["alarm.raised"])
        await raise_fire(store, "d0")
        await raise_fire(store, "d2")

        async def alarm_state() -> str | None:
            return await pool.fetchval("SELECT state FROM alarms WHERE device_id = $1",
                                       f"webhook:{eid_bad}")
        await eventually(alarm_state, timeout=30)
        await eventually(lambda: _n(ok, 2), timeout=30)
        await pool.execute("DELETE FROM webhook_endpoints WHERE id = $1", eid_bad)

        async def cleared() -> bool:
            return await alarm_state() == "cleared_unack"
        await eventually(cleared, timeout=30)
        await ok.stop()
        assert await prune(pool, 30) == 0  # nothing old enough
        oldest = await pool.fetchrow("SELECT id, event_id FROM webhook_deliveries ORDER BY id"
                                     " LIMIT 1")
        await pool.execute("UPDATE webhook_deliveries SET finished_at = now() - interval '31 days'"
                           " WHERE id = $1", oldest["id"])
        await pool.execute("UPDATE webhook_events SET occurred_at = now() - interval '31 days'"
                           " WHERE id = $1", oldest["event_id"])
        assert await prune(pool, 30) == 1
        left = await pool.fetch("SELECT status FROM webhook_deliveries")
        assert [r["status"] for r in left] == ["delivered"]
        assert await pool.fetchval("SELECT count(*) FROM webhook_events") == 1
