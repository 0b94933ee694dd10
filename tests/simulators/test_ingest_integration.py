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
from tests.conftest import settings_for, wait_for

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
            await wait_for(settled, 30)
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
