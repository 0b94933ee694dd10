"""Latency clocks on a simulated fire, through the real pipeline: a panel publishes a fire over
MQTT, the ingester and rule engine raise it, an operator's live stream shows it, the operator
gives the verdict true_fire, the dispatcher forwards it and a webhook receiver accepts it. Every
clock must be set and in order, the alarm's detail must show its stages and limits, and the
compliance report must count it (and count a fire nobody was shown as missed)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from api.latency import CLOCKS, limits, stages
from dispatch.dispatcher import Dispatcher
from dispatch.receiver import Receiver
from firetower import db
from firetower.alarm_store import AlarmKey, AlarmStore, Occurrence
from firetower.alarms import AlarmClass
from firetower.broker import Broker
from tests.api.conftest import api_settings_for
from tests.api.pipeline import pipeline
from tests.api.sse import events
from tests.conftest import Database
from tests.dispatch.common import config
from tests.helpers import eventually

pytestmark = pytest.mark.integration


async def _fire_via_stream(p, alarms: asyncio.Queue) -> None:  # type: ignore[no-untyped-def]
    async with p.world.client("operator") as c, \
            c.stream("GET", "/alarms/stream", timeout=30) as r:
        async for ev in events(r):
            if ev.event == "snapshot":
                await alarms.put(("snapshot", None))
            elif ev.event == "alarm" and ev.data["alarm"] and \
                    ev.data["alarm"]["class"] == "fire":
                await alarms.put(("fire", ev.data["alarm"]))
                return


async def test_fire_clocks_are_recorded_in_order_and_counted(clean_db: Database,
                                                             broker: Broker) -> None:
    async with pipeline(clean_db, broker, ["pnl-1"]) as p:
        settings = api_settings_for(clean_db.url, mqtt_url=broker.url)
        rx = await Receiver([]).start()
        async with p.world.client("admin") as admin:
            r = await admin.post("/webhooks", json={"url": rx.url,
                                                    "event_types": ["alarm.forwarded"]})
            assert r.status_code == 201, r.text
            rx.secrets.append(r.json()["secret"])
        dispatcher = Dispatcher(settings, config())
        await dispatcher.start()
        pool = await db.create_pool(clean_db.url, min_size=1, max_size=2)
        try:
            seen: asyncio.Queue = asyncio.Queue()
            reader = asyncio.create_task(_fire_via_stream(p, seen))
            assert (await asyncio.wait_for(seen.get(), 10))[0] == "snapshot"
            p.fire("pnl-1")
            _, shown = await asyncio.wait_for(seen.get(), 10)
            await reader
            alarm_id = shown["id"]
            async with p.world.client("operator") as op:
                r = await op.post(f"/alarms/{alarm_id}/verdict",
                                  json={"verdict": "true_fire", "reason": "CCTV shows smoke"})
                assert r.status_code == 200, r.text
            await eventually(lambda: pool.fetchval(
                "SELECT delivered_at FROM alarms WHERE id = $1", alarm_id), timeout=30)
            assert len(rx.unique) == 1 and rx.unique[0].type == "alarm.forwarded"

            async with p.world.client("operator") as op:
                detail = (await op.get(f"/alarms/{alarm_id}")).json()
            clocks = [datetime.fromisoformat(detail[c]) for c in CLOCKS]
            assert clocks == sorted(clocks), dict(zip(CLOCKS, clocks, strict=True))
            assert detail["shown_to"] == "operator" and detail["forward_basis"] == "operator"
            # The receiver accepted it before the dispatcher recorded the delivery.
            assert rx.unique[0].at <= clocks[-1].timestamp() + 0.001
            got = {s["stage"]: s["seconds"] for s in detail["latency"]}
            assert {"device->received", "received->ingested", "ingested->stored",
                    "stored->shown", "verdict->forwarded", "forwarded->delivered",
                    "device->delivered"} <= set(got)
            assert all(s >= 0 for s in got.values())
            assert {c["limit"]: c["status"] for c in detail["limits"]} == {
                "gb50440_display_20s": "met", "nfpa72_display_90s": "met",
                "gb50440_forward_3s": "met", "nfpa72_retransmit_90s": "met"}

            # A fire nobody was shown for 60 s: display missed under GB 50440, pending under
            # NFPA 72 (90 s have not passed); no verdict, so no forward limit applies yet.
            old = datetime.now(UTC) - timedelta(seconds=60)
            await AlarmStore(pool).raise_or_recur(Occurrence(
                AlarmKey("pnl-1", "z9/p9", "panel.fire"), AlarmClass.FIRE, old, site_id="s1",
                device_ts=old, received_at=old + timedelta(seconds=1)))

            async with p.world.client("supervisor") as sup:
                r = await sup.get("/stats/compliance", params={"bucket": "hour"})
                assert r.status_code == 200, r.text
                report = r.json()
                bad = await sup.get("/stats/compliance", params={"tz": "Mars/Olympus"})
                assert bad.status_code == 422
        finally:
            await dispatcher.stop()
            await rx.stop()
            await pool.close()
    totals = {s["limit"]: s for s in report["totals"]["limits"]}
    assert report["totals"]["fire_alarms"] == 2
    assert (totals["gb50440_display_20s"]["met"], totals["gb50440_display_20s"]["missed"]) \
        == (1, 1)
    assert (totals["nfpa72_display_90s"]["met"], totals["nfpa72_display_90s"]["pending"]) \
        == (1, 1)
    assert totals["gb50440_forward_3s"]["met"] == 1
    assert totals["gb50440_forward_3s"]["missed"] == 0
    assert totals["gb50440_display_20s"]["compliance"] == 0.5
    assert [r["site_id"] for r in report["rows"]] in (["s1", None], ["s1", "s1", None, None])


def test_limits_are_pure_and_judge_late_and_pending() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    s = timedelta(seconds=1)
    a = {"class": "fire", "mode": "normal", "device_ts": t0, "received_at": t0 + s,
         "shown_at": t0 + 25 * s, "verdict": "true_fire", "verdict_at": t0 + 30 * s,
         "forward_basis": "operator", "forwarded_at": t0 + 31 * s,
         "delivered_at": t0 + 34 * s}
    got = {c["limit"]: (c["status"], c["seconds"]) for c in limits(a, t0 + 100 * s)}
    assert got == {"gb50440_display_20s": ("missed", 25.0), "nfpa72_display_90s": ("met", 25.0),
                   "gb50440_forward_3s": ("missed", 4.0),
                   "nfpa72_retransmit_90s": ("met", 33.0)}
    # Before the delivery, inside the 3 s: pending; a deadline forward starts at the forward.
    b = a | {"delivered_at": None, "forward_basis": "deadline", "verdict": None}
    got = {c["limit"]: c["status"] for c in limits(b, t0 + 32 * s)}
    assert got["gb50440_forward_3s"] == "pending"
    assert limits(a | {"mode": "test"}, t0) == [] and limits(a | {"class": "fault"}, t0) == []
    assert {x["stage"] for x in stages(b)} >= {"device->received", "device->shown"}
    assert "verdict->forwarded" not in {x["stage"] for x in stages(b)}
