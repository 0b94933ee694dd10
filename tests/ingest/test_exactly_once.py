"""End to end through the real broker and database: every reading stored exactly once, by
count and by content, also when the stream is delivered twice and out of order."""

from __future__ import annotations

import random

import pytest

from firetower import db
from ingest.service import Ingester
from tests.conftest import settings_for
from tests.helpers import eventually, fleet, publish, register, telemetry_stream

pytestmark = pytest.mark.integration


async def stored_rows(url: str) -> dict[tuple[str, int], tuple]:
    conn = await db.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT device_id, seq, ts, obscuration_pct_per_m, temperature_c, pressure_kpa, "
            "mains_ok FROM telemetry")
    finally:
        await conn.close()
    return {(r["device_id"], r["seq"]): tuple(r) for r in rows}


async def count(url: str, table: str = "telemetry") -> int:
    conn = await db.connect(url)
    try:
        return await conn.fetchval(f"SELECT count(*) FROM {table}")
    finally:
        await conn.close()


def expected_content(stream: list[tuple[str, bytes]]) -> dict[tuple[str, int], dict]:
    import json

    out = {}
    for topic, payload in stream:
        body = json.loads(payload)
        out[(topic.split("/")[2], body["seq"])] = body
    return out


async def test_ten_thousand_messages_once_each_even_when_sent_twice_out_of_order(
        clean_db, broker) -> None:
    devices = fleet(4000)  # 1,000 of each kind
    stream = telemetry_stream(devices, per_device=3)  # 12,000 messages
    await register(clean_db.url, devices)
    ingester = Ingester(settings_for(clean_db.url, broker))
    await ingester.start()
    try:
        assert await publish(broker.port, stream) == len(stream)
        await eventually(lambda: _at_least(clean_db.url, len(stream)), 60)
        again = stream[:]
        random.Random(7).shuffle(again)
        assert await publish(broker.port, again) == len(stream)
        await eventually(lambda: _ingested(ingester, 2 * len(stream)), 60)
    finally:
        await ingester.stop()
    rows = await stored_rows(clean_db.url)
    assert await count(clean_db.url) == len(stream) == len(rows)
    expected = expected_content(stream)
    assert rows.keys() == expected.keys()
    for key, body in expected.items():
        _, _, ts, obsc, temp, pressure, mains = rows[key]
        assert ts == _parse(body["ts"])
        assert obsc == _approx(body.get("obscuration_pct_per_m"))
        assert temp == _approx(body.get("temperature_c"))
        assert pressure == _approx(body.get("pressure_kpa"))
        assert mains == body.get("mains_ok")
    assert ingester.totals["duplicates"] == len(stream)
    assert ingester.totals["rejected"] == 0


def _parse(text: str):  # type: ignore[no-untyped-def]
    from datetime import datetime

    return datetime.fromisoformat(text)


def _approx(value):  # type: ignore[no-untyped-def]
    return None if value is None else pytest.approx(value, rel=1e-6)


async def _at_least(url: str, n: int) -> bool:
    return await count(url) >= n


async def _ingested(ingester: Ingester, n: int) -> bool:
    t = ingester.totals
    return t["stored"] + t["duplicates"] >= n
