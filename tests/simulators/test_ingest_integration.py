"""Simulator -> broker -> real ingester -> database: every malformed message is recorded with
the reason it declares, duplicates are stored once, late messages are stored."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from firetower import db
from ingest.service import Ingester
from simulators.fleet import build_fleet
from simulators.publisher import publish
from simulators.registry import register_fleet
from simulators.scenarios import generate
from tests.conftest import settings_for
from tests.helpers import eventually

pytestmark = pytest.mark.integration


async def test_ingester_agrees_with_the_simulator(clean_db, clean_broker) -> None:
    broker = clean_broker
    fleet = build_fleet(31, 4, 5)
    start = datetime.now(UTC) - timedelta(hours=1)
    run = generate(fleet, 31, start, ["malformed", "duplicates_out_of_order", "cooking_steam"],
                   duration=1800)
    msgs = run.messages()
    await register_fleet(clean_db.url, fleet)
    ingester = Ingester(settings_for(clean_db.url, broker))
    await ingester.start()
    conn = await db.connect(clean_db.url)
    try:
        stats = await publish(msgs, port=broker.port, quiet=True)
        assert stats.acked == len(msgs)
        bad = [i for i in run.expectations("reject") if i.details["subscribed"]]
        assert len(bad) >= 12
        duplicates = sum(len(i.details["seqs"]) for i in run.expectations("stored_once"))
        valid = sum(1 for m in msgs if m.reject is None) - duplicates

        async def settled():  # type: ignore[no-untyped-def]
            row = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM telemetry) + (SELECT count(*) FROM events)"
                " + (SELECT count(*) FROM device_status) AS stored,"
                " (SELECT count(*) FROM rejects) AS rejected")
            return (row["stored"], row["rejected"]) == (valid, len(bad)) or None

        try:
            await eventually(settled, 30)
        except AssertionError:
            row = await conn.fetchrow(
                "SELECT (SELECT count(*) FROM telemetry) t, (SELECT count(*) FROM events) e,"
                " (SELECT count(*) FROM device_status) s, (SELECT count(*) FROM rejects) r")
            raise AssertionError(f"stored {dict(row)}, expected {valid} + {len(bad)} rejects, "
                                 f"totals {ingester.totals}") from None
        got = Counter((r["topic"], r["reason"]) for r in
                      await conn.fetch("SELECT topic, reason FROM rejects"))
        assert got == Counter((i.details["topic"], i.details["reason"]) for i in bad)
        assert ingester.totals["duplicates"] == duplicates
        for inj in run.expectations("stored_out_of_order"):
            for seq in inj.details["seqs"]:
                assert await conn.fetchval(
                    "SELECT count(*) FROM telemetry WHERE device_id = $1 AND seq = $2",
                    inj.device_ids[0], seq) == 1
    finally:
        await conn.close()
        await ingester.stop()


async def test_broker_sent_will_is_stored(clean_db, clean_broker) -> None:
    """panel_offline over a dedicated connection: the broker delivers the panel's will, and
    the ingester stores birth, will and the second birth as three distinct statuses."""
    fleet = build_fleet(32, 2, 3)
    start = datetime.now(UTC) - timedelta(hours=1)
    run = generate(fleet, 32, start, ["panel_offline"], duration=3600)
    panel = run.expectations("offline")[0].device_ids[0]
    msgs = run.messages()
    await register_fleet(clean_db.url, fleet)
    ingester = Ingester(settings_for(clean_db.url, clean_broker))
    await ingester.start()
    conn = await db.connect(clean_db.url)
    try:
        stats = await publish(msgs, port=clean_broker.port, dedicated=run.dedicated, quiet=True)
        assert stats.errors == 0

        async def three():  # type: ignore[no-untyped-def]
            rows = await conn.fetch("SELECT seq, online FROM device_status WHERE device_id = $1"
                                    " ORDER BY received_at, seq", panel)
            return len(rows) == 3 and rows

        rows = await eventually(three, 20)
        births = [m for m in msgs if m.device_id == panel and m.will_payload]
        assert [(r["seq"], r["online"]) for r in rows] == [
            (births[0].seq, True), (births[0].seq + 1, False), (births[1].seq, True)]
        assert await conn.fetchval("SELECT online FROM devices WHERE id = $1", panel) is True
    finally:
        await conn.close()
        await ingester.stop()
