"""Rule state is saved by the path production runs: the alerting service's own save loop
(`AlertingService.save_states`, every `state_flush_s`, and once more on stop), with the
production alarm writer (its own thread), fed by the real ingester through the real broker and
database. The stored state is never ahead of the stored alarms: while a decision is not
committed nothing is saved; once every decision is, the state is. A save the database refuses
keeps the state for the next save."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import pytest

from alerting.device import DeviceState
from alerting.writer_thread import WriterThread
from firetower import db
from firetower.protocol import encode, format_ts, topic_for
from tests.helpers import eventually

from .common import register, running_centre

pytestmark = pytest.mark.integration
DEVICES: list[tuple[str, str, str | None, int | None]] = [
    ("pnl-1", "alarm_panel", None, None), ("smk-1", "smoke_detector", None, None)]
OVERRIDES = [("kind", "smoke_detector", "smoke", {"for_s": 60.0, "unconfirmed_for_s": 60.0}),
             ("kind", "smoke_detector", "supervision", {"heartbeat_s": 600.0}),
             ("kind", "alarm_panel", "supervision", {"heartbeat_s": 600.0})]


async def test_rule_state_is_saved_only_once_every_decision_is_committed(
        clean_db, broker, caplog) -> None:  # type: ignore[no-untyped-def]
    await register(clean_db.url, DEVICES, OVERRIDES)
    blocker = await db.connect(clean_db.url)
    async with running_centre(clean_db.url, broker) as run:
        svc, conn = run.svc, run.conn
        assert isinstance(svc.writer, WriterThread)  # production's writer, as cli/ingest.py
        assert svc.engine is not None
        tx = blocker.transaction()
        await tx.start()
        try:
            await blocker.execute("LOCK TABLE alarms IN ACCESS EXCLUSIVE MODE")  # no commit
            now = format_ts(datetime.now(UTC))
            run.pub.publish(topic_for("pnl-1", "event"), encode(
                {"seq": 1, "ts": now, "category": "fire", "active": True, "zone": 1,
                 "point": 1}))
            run.pub.publish(topic_for("smk-1", "telemetry"), encode(
                {"seq": 1, "ts": now, "obscuration_pct_per_m": 9.0, "temperature_c": 21.0}))
            engine = svc.engine

            async def pending() -> float | None:
                st = engine.devices.get("smk-1")
                c = None if st is None else st.conds.get("smoke.threshold")
                return None if c is None else c.pending_since

            async def decided_not_committed() -> bool:
                assert svc.writer is not None
                return svc.writer.enqueued > svc.writer.done

            since = await eventually(pending, what="smk-1's smoke condition pending")
            await eventually(decided_not_committed, what="the fire decided, its write waiting")
            # Let several saves of the loop come and go on purpose: none may store a state
            # that is ahead of the stored alarms.
            await asyncio.sleep(4 * svc.state_flush_s)  # on purpose: four save periods
            assert await conn.fetchval("SELECT count(*) FROM rule_state") == 0
            assert await decided_not_committed()
            # The next save is refused by the database (the table is away) ...
            await conn.execute("ALTER TABLE rule_state RENAME TO rule_state_away")
        finally:
            await tx.rollback()  # the alarm writer commits now
        try:
            async def alarm_committed() -> bool:
                assert svc.writer is not None
                return (svc.writer.done == svc.writer.enqueued and
                        await conn.fetchval("SELECT count(*) FROM alarms") == 1)

            await eventually(alarm_committed, what="the fire alarm committed")

            async def refused_logged() -> bool:
                return any("rule state of" in r.getMessage() and "not saved" in r.getMessage()
                           for r in caplog.records)

            with caplog.at_level(logging.ERROR, logger="alerting.service"):
                await eventually(refused_logged, what="a refused rule-state save logged")
        finally:
            await conn.execute("ALTER TABLE rule_state_away RENAME TO rule_state")

        # ... and the state it could not save is saved by a later one, nothing sent meanwhile.
        async def saved() -> bytes | None:
            return await conn.fetchval("SELECT state FROM rule_state WHERE device_id = 'smk-1'")

        blob = await eventually(saved, what="smk-1's rule state saved after the refusal")
        stored = DeviceState(engine.devices["smk-1"].info, engine.devices["smk-1"].params)
        stored.load(blob)
        assert stored.conds["smoke.threshold"].pending_since == since
    await blocker.close()
