"""The writer and device clocks, on a real database: a message stamped with a wrong clock is
stored once with the receive time as `ts` however often it is delivered (in one batch, in
later batches, by two writers at the same moment), and `devices.clock_offset_s` keeps the
smallest offset of the window."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from firetower import db
from firetower.model import DeviceKind, Event, MessageType, Telemetry
from firetower.protocol import decode
from ingest.batch import Batch
from ingest.clock import OFFSET_WINDOW, REDELIVERY_WINDOW, ClockOffsets
from ingest.writer import BatchWriter

pytestmark = pytest.mark.integration

RX = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
AHEAD = "2027-12-01T08:00:00.125Z"  # about a year ahead of RX
RESET = "1970-01-01T00:00:07.5Z"


def fire(ts: str, seq: int, rx: datetime) -> Event:
    m = decode("pnl-1", MessageType.EVENT, DeviceKind.ALARM_PANEL, json.dumps(
        {"seq": seq, "ts": ts, "category": "fire", "active": True, "zone": 2, "point": 4}
    ).encode(), rx)
    assert type(m) is Event
    return m


def reading(ts: str, seq: int, rx: datetime, device: str = "smk-1") -> Telemetry:
    m = decode(device, MessageType.TELEMETRY, DeviceKind.SMOKE_DETECTOR, json.dumps(
        {"seq": seq, "ts": ts, "obscuration_pct_per_m": 0.4, "temperature_c": 21.0}).encode(), rx)
    assert type(m) is Telemetry
    return m


async def rows(url: str, table: str) -> list[dict]:
    conn = await db.connect(url)
    try:
        return [dict(r) for r in await conn.fetch(
            f"SELECT device_id, seq, ts, received_at, device_ts, clock FROM {table} "
            "ORDER BY seq, ts")]
    finally:
        await conn.close()


@pytest.fixture
async def writer(clean_db):  # type: ignore[no-untyped-def]
    w = BatchWriter(clean_db.url)
    yield w
    await w.close()


async def test_a_wrong_clock_fire_is_stored_with_its_receive_time_and_marked(
        clean_db, writer) -> None:
    r = await writer.write(Batch(events=[fire(AHEAD, 1, RX), fire(RESET, 2, RX)]))
    assert r.events == 2
    got = await rows(clean_db.url, "events")
    assert [(g["seq"], g["ts"], g["device_ts"], g["clock"]) for g in got] == [
        (1, RX, datetime.fromisoformat(AHEAD), "ahead"),
        (2, RX, datetime.fromisoformat(RESET), "reset")]


async def test_a_redelivered_restamped_message_is_stored_once(clean_db, writer) -> None:
    """Redelivered in the same batch, and again in later batches received later: one row,
    stamped with the first receipt."""
    later = RX + timedelta(seconds=3)
    first = await writer.write(Batch(events=[fire(AHEAD, 1, later), fire(AHEAD, 1, RX)],
                                     telemetry=[reading(RESET, 1, RX), reading(RESET, 1, later)]))
    assert (first.events, first.telemetry, first.duplicates) == (1, 1, 2)
    for delay in (timedelta(seconds=40), timedelta(hours=5), REDELIVERY_WINDOW):
        again = await writer.write(Batch(events=[fire(AHEAD, 1, RX + delay)],
                                         telemetry=[reading(RESET, 1, RX + delay)]))
        assert (again.events, again.telemetry, again.duplicates) == (0, 0, 2), delay
    for table in ("events", "telemetry"):
        got = await rows(clean_db.url, table)
        assert len(got) == 1 and got[0]["ts"] == RX and got[0]["received_at"] == RX, table


async def test_distinct_messages_of_a_wrong_clock_are_all_stored(clean_db, writer) -> None:
    """Same stamp, other seq; same seq, other stamp; another device: all different."""
    batch = Batch(telemetry=[reading(RESET, 1, RX), reading(RESET, 2, RX),
                             reading("1970-01-01T00:00:08Z", 1, RX),
                             reading(RESET, 1, RX, device="smk-2")])
    assert (await writer.write(batch)).telemetry == 4
    assert len(await rows(clean_db.url, "telemetry")) == 4


async def test_a_redelivery_after_the_window_is_stored_again_and_marked(clean_db, writer) -> None:
    """The documented limit (ingest/clock.py): beyond REDELIVERY_WINDOW a copy is new."""
    await writer.write(Batch(events=[fire(RESET, 1, RX - REDELIVERY_WINDOW - timedelta(1))]))
    await writer.write(Batch(events=[fire(RESET, 1, RX)]))
    got = await rows(clean_db.url, "events")
    assert len(got) == 2 and {g["clock"] for g in got} == {"reset"}


async def test_two_writers_storing_the_same_restamped_messages_at_once_store_each_once(
        clean_db) -> None:
    """Two ingesters handed the same messages at the same moment (a shared subscription):
    the advisory lock makes the second see the first's row."""
    writers = [BatchWriter(clean_db.url) for _ in range(2)]
    try:
        for w in writers:  # connect first, so the writes themselves race
            await w.write(Batch())
        for seq in range(1, 31):
            copies = [Batch(events=[fire(AHEAD, seq, RX + timedelta(milliseconds=i))],
                            telemetry=[reading(AHEAD, seq, RX + timedelta(milliseconds=i))])
                      for i in range(2)]
            results = await asyncio.gather(*(w.write(b) for w, b in zip(writers, copies,
                                                                         strict=True)))
            assert sum(r.events for r in results) == 1, seq
            assert sum(r.telemetry for r in results) == 1, seq
    finally:
        for w in writers:
            await w.close()
    assert len(await rows(clean_db.url, "events")) == 30
    assert len(await rows(clean_db.url, "telemetry")) == 30


async def _register(url: str, *ids: str) -> None:
    conn = await db.connect(url)
    try:
        await conn.execute("INSERT INTO sites (id, name) VALUES ('s1', 'Site 1')")
        for i in ids:
            await conn.execute("INSERT INTO devices (id, kind, site_id) VALUES ($1, $2, 's1')",
                               i, "smoke_detector" if i.startswith("smk") else "alarm_panel")
    finally:
        await conn.close()


async def offset(url: str, device: str) -> tuple[float | None, datetime | None]:
    conn = await db.connect(url)
    try:
        r = await conn.fetchrow("SELECT clock_offset_s, clock_window_at FROM devices "
                                "WHERE id = $1", device)
    finally:
        await conn.close()
    return r["clock_offset_s"], r["clock_window_at"]


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="milliseconds")


async def test_the_offset_is_the_smallest_of_the_window(clean_db, writer) -> None:
    await _register(clean_db.url, "smk-1", "pnl-1")
    writer.clock_offsets = ClockOffsets(every_s=0.0)
    seq = iter(range(1, 100))

    async def deliver(rx: datetime, behind_s: float) -> None:
        await writer.write(Batch(telemetry=[
            reading(_iso(rx - timedelta(seconds=behind_s)), next(seq), rx)]))

    await deliver(RX, 2.5)
    assert await offset(clean_db.url, "smk-1") == (pytest.approx(2.5), RX)
    await deliver(RX + timedelta(minutes=1), 9.0)  # a late delivery: not the clock
    await deliver(RX + timedelta(minutes=2), 1.0)
    await deliver(RX + timedelta(minutes=3), 0.8)  # smaller by less than the step: kept
    assert await offset(clean_db.url, "smk-1") == (pytest.approx(1.0), RX)
    new_window = RX + OFFSET_WINDOW + timedelta(seconds=1)
    await deliver(new_window, 30.0)  # the clock went wrong: a new window starts
    assert await offset(clean_db.url, "smk-1") == (pytest.approx(30.0), new_window)
    # a re-stamped reading measures the device's own stamp: a year ahead is a negative offset
    await writer.write(Batch(telemetry=[reading(AHEAD, 50, RX + OFFSET_WINDOW * 3)]))
    o, _ = await offset(clean_db.url, "smk-1")
    assert o is not None and o < -300 * 86_400
    # events are not measured (the fire path is spared the statement)
    await writer.write(Batch(events=[fire(AHEAD, 51, RX + OFFSET_WINDOW * 3)]))
    assert await offset(clean_db.url, "pnl-1") == (None, None)


async def test_the_offset_never_waits_for_a_device_row_held_elsewhere(clean_db, writer) -> None:
    """Presence updates and the API lock device rows: the measurement skips them."""
    await _register(clean_db.url, "smk-1", "smk-2")
    writer.clock_offsets = ClockOffsets(every_s=0.0)
    other = await db.connect(clean_db.url)
    try:
        tx = other.transaction()
        await tx.start()
        await other.execute("SELECT 1 FROM devices WHERE id = 'smk-1' FOR UPDATE")
        batch = Batch(telemetry=[reading(_iso(RX - timedelta(seconds=3)), 1, RX),
                                 reading(_iso(RX - timedelta(seconds=4)), 1, RX, "smk-2")])
        result = await asyncio.wait_for(writer.write(batch), 5)
        await tx.rollback()
    finally:
        await other.close()
    assert result.telemetry == 2
    assert await offset(clean_db.url, "smk-1") == (None, None)
    assert await offset(clean_db.url, "smk-2") == (pytest.approx(4.0), RX)


# -- unreadable stamps (clock `invalid`): no device time to match a copy on -------------------

def garbled(seq: int, rx: datetime, ts: object = "garbage", device: str = "pnl-1",
            **change: object) -> Event:
    body = {"seq": seq, "category": "fire", "active": True, "zone": 2, "point": 4, **change}
    if ts is not None:
        body["ts"] = ts
    m = decode(device, MessageType.EVENT, DeviceKind.ALARM_PANEL, json.dumps(body).encode(), rx)
    assert type(m) is Event and m.clock == "invalid" and m.ts == rx
    return m


def garbled_reading(seq: int, rx: datetime, **change: object) -> Telemetry:
    body = {"seq": seq, "ts": "2026-02-30T10:00:00+08:00", "obscuration_pct_per_m": 0.4,
            "temperature_c": 21.0, **change}
    m = decode("smk-1", MessageType.TELEMETRY, DeviceKind.SMOKE_DETECTOR,
               json.dumps(body).encode(), rx)
    assert type(m) is Telemetry and m.clock == "invalid"
    return m


async def test_an_unreadable_stamp_is_stored_with_its_receive_time_and_what_was_sent(
        clean_db, writer) -> None:
    r = await writer.write(Batch(events=[garbled(1, RX), garbled(2, RX, ts=None)]))
    assert r.events == 2
    conn = await db.connect(clean_db.url)
    try:
        got = [dict(g) for g in await conn.fetch(
            "SELECT seq, ts, device_ts, clock, extra FROM events ORDER BY seq")]
    finally:
        await conn.close()
    assert got == [
        {"seq": 1, "ts": RX, "device_ts": None, "clock": "invalid", "extra": {"ts": "garbage"}},
        {"seq": 2, "ts": RX, "device_ts": None, "clock": "invalid", "extra": None}]


async def test_a_redelivered_unreadable_stamp_is_stored_once(clean_db, writer) -> None:
    """Redelivered in the same batch and in later batches received later (up to the window),
    missing and garbled stamps alike: one row each, at the first receipt."""
    later = RX + timedelta(seconds=3)
    first = await writer.write(Batch(
        events=[garbled(1, later), garbled(1, RX), garbled(2, RX, ts=None),
                garbled(2, later, ts=None)],
        telemetry=[garbled_reading(1, RX), garbled_reading(1, later)]))
    assert (first.events, first.telemetry, first.duplicates) == (2, 1, 3)
    for delay in (timedelta(seconds=40), timedelta(hours=5), REDELIVERY_WINDOW):
        again = await writer.write(Batch(
            events=[garbled(1, RX + delay), garbled(2, RX + delay, ts=None)],
            telemetry=[garbled_reading(1, RX + delay)]))
        assert (again.events, again.telemetry, again.duplicates) == (0, 0, 3), delay
    assert [(g["seq"], g["ts"]) for g in await rows(clean_db.url, "events")] == [(1, RX), (2, RX)]
    assert [g["ts"] for g in await rows(clean_db.url, "telemetry")] == [RX]


async def test_different_messages_with_unreadable_stamps_are_all_stored(clean_db,
                                                                         writer) -> None:
    """The documented limit errs towards storing twice: a seq used again (a counter that
    restarted) with any other content is another message, even received in the same
    microsecond; so is another garbled stamp, and a copy after the window."""
    same_rx = [garbled(1, RX), garbled(1, RX, active=False), garbled(1, RX, point=5),
               garbled(1, RX, ts="rubbish"), garbled(1, RX, ts=None), garbled(1, RX, ts=17),
               garbled(1, RX, device="pnl-2"), garbled(2, RX)]
    assert (await writer.write(Batch(events=same_rx))).events == 8
    later = [garbled(1, RX + timedelta(minutes=1), category="fault"),
             garbled(1, RX + timedelta(minutes=1), location="B1")]
    assert (await writer.write(Batch(events=later))).events == 2
    # the same content as a stored row of another clock mark is not its copy either
    assert (await writer.write(Batch(events=[fire(RESET, 1, RX + timedelta(minutes=2))]))
            ).events == 1
    await writer.write(Batch(events=[garbled(3, RX - REDELIVERY_WINDOW - timedelta(1))]))
    assert (await writer.write(Batch(events=[garbled(3, RX)]))).events == 1
    got = await rows(clean_db.url, "events")
    assert len(got) == 8 + 2 + 1 + 2
    assert len({(g["device_id"], g["ts"], g["seq"]) for g in got}) == len(got)


async def test_two_writers_storing_the_same_unreadable_stamps_at_once_store_each_once(
        clean_db) -> None:
    writers = [BatchWriter(clean_db.url) for _ in range(2)]
    try:
        for w in writers:
            await w.write(Batch())
        for seq in range(1, 21):
            copies = [Batch(events=[garbled(seq, RX + timedelta(milliseconds=i))],
                            telemetry=[garbled_reading(seq, RX + timedelta(milliseconds=i))])
                      for i in range(2)]
            results = await asyncio.gather(*(w.write(b) for w, b in zip(writers, copies,
                                                                         strict=True)))
            assert sum(r.events for r in results) == 1, seq
            assert sum(r.telemetry for r in results) == 1, seq
    finally:
        for w in writers:
            await w.close()
    assert len(await rows(clean_db.url, "events")) == 20


async def test_an_unreadable_stamp_measures_no_clock_offset(clean_db, writer) -> None:
    """The receive time is no device time: the offset keeps what real stamps measured."""
    await _register(clean_db.url, "smk-1")
    writer.clock_offsets = ClockOffsets(every_s=0.0)
    await writer.write(Batch(telemetry=[reading(_iso(RX - timedelta(seconds=7)), 1, RX)]))
    await writer.write(Batch(telemetry=[garbled_reading(2, RX + timedelta(seconds=1))]))
    assert await offset(clean_db.url, "smk-1") == (pytest.approx(7.0), RX)
