"""A decision the database refuses for itself (not an outage) is not retried forever, and the
engine's view of which alarms are open follows the table again: a smoke detector whose raise
was refused is raised by its next readings, not believed open forever (issue 11)."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from alerting.service import AlertingService
from firetower import db
from firetower.alarm_store import AlarmChange
from firetower.model import Telemetry
from tests.conftest import settings_for
from tests.helpers import eventually

from .common import alarms, register

pytestmark = pytest.mark.integration


class RefuseWhile:
    """A transaction hook (it runs inside the alarm change's transaction) that refuses the
    changes of one device while `on`: what a constraint or a bug looks like to the writer."""

    def __init__(self, device_id: str) -> None:
        self.device_id = device_id
        self.on = True
        self.refused = 0

    async def __call__(self, conn: asyncpg.Connection, change: AlarmChange) -> None:
        if not self.on or change.alarm_id is None:
            return
        device = await conn.fetchval("SELECT device_id FROM alarms WHERE id = $1",
                                     change.alarm_id)
        if device == self.device_id:
            self.refused += 1
            raise asyncpg.CheckViolationError("refused by the test's constraint")


@pytest.mark.parametrize("writer_thread", [True, False], ids=["thread", "in-loop"])
async def test_a_refused_raise_is_raised_again_by_the_next_readings(
        clean_db, broker, writer_thread: bool) -> None:  # type: ignore[no-untyped-def]
    await register(clean_db.url, [("smk-1", "smoke_detector", None, 1)],
                   [("kind", "smoke_detector", "smoke", {"for_s": 1.0, "unconfirmed_for_s": 1.0})])
    hook = RefuseWhile("smk-1")
    svc = AlertingService(settings_for(clean_db.url, broker), hooks=[hook],
                          writer_thread=writer_thread)
    await svc.start()
    conn = await db.connect(clean_db.url)
    seq = 0

    def reading() -> None:
        nonlocal seq
        seq += 1
        now = datetime.now(UTC)
        svc.on_message(Telemetry("smk-1", seq, now, now, obscuration_pct_per_m=9.0,
                                 temperature_c=21.0))

    try:
        async def refused() -> bool:
            reading()
            return hook.refused > 0

        await eventually(refused, 30, 0.25)  # smoke held 1 s: raised, and refused
        hook.on = False
        assert svc.writer is not None

        async def raised_again() -> list[asyncpg.Record]:
            reading()  # the smoke is still there
            return [r for r in await alarms(conn) if r["type"] == "smoke.threshold"]

        try:
            rows = await eventually(raised_again, 30, 0.25)
        except AssertionError:
            raise AssertionError("the engine still believes the refused alarm is open") from None
        assert len(rows) == 1 and rows[0]["state"] == "active"
        async def caught_up() -> bool:
            assert svc.writer is not None
            return svc.writer.done == svc.writer.enqueued

        await eventually(caught_up, what="every decision written or refused")
    finally:
        await conn.close()
        await svc.stop()
