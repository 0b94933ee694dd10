"""The notifier's side of the fault suite (tests/faults/test_notify_faults.py): a real SMTP
server that can be stopped and started again on its port, a world with one unit whose
responsible person gets every fire by e-mail, the real `firetower notify` process, and fires
raised at a steady pace through the one writer of alarms (`AlarmStore`), each raise retried
until it commits, as the rule engine's alarm writer does through a database outage.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from aiosmtpd.controller import Controller

from firetower import db
from firetower.alarm_store import AlarmKey, AlarmStore, Occurrence
from firetower.alarms import AlarmClass
from firetower.broker import free_port
from firetower.settings import DEV_SECRET
from firetower.webhooks.secretbox import SecretBox
from notify import config_store
from org.store import Actor
from tests.faults.centre import REPO, Proc
from tests.notify.test_end_to_end import Mailbox

ADDRESS = "boss@unit.cn"  # the unit's responsible person: every fire's one e-mail
SITE = "tower"
ALARM_NO = re.compile(r"报警编号 Alarm: #(\d+)")  # notify/compose.py, in every alarm's body
RAISE_TIMEOUT_S = 5.0  # one raise attempt's limit (a refused connection fails at once)


class SlowMailbox(Mailbox):
    """The tests' mailbox, with an SMTP server's own time per message when `delay_s` is set:
    half of it receiving the data, half writing it to its queue after it has it (before its
    250). A client killed in the first half leaves a message the server never had; in the
    second half, one the server has but the client never heard it accept."""

    delay_s = 0.0

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        if self.delay_s:
            await asyncio.sleep(self.delay_s / 2)  # on purpose: the server receiving
        reply = await super().handle_DATA(server, session, envelope)
        if self.delay_s:
            await asyncio.sleep(self.delay_s / 2)  # on purpose: the server's queue write
        return reply


class Smtp:
    """aiosmtpd on one fixed port, stopped and started again (a new controller, same
    mailbox): what the notifier's e-mails reached, by alarm id."""

    def __init__(self) -> None:
        self.mailbox = SlowMailbox()
        self.port = free_port()
        self._ctl: Controller | None = None
        self.stopped_at: datetime | None = None
        self.started_at: datetime | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?from=c@fire.cn&starttls=0"

    def start(self) -> None:
        ctl = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)
        ctl.start()
        self._ctl = ctl
        self.started_at = datetime.now(UTC)

    def stop(self) -> None:
        if self._ctl is not None:
            self._ctl.stop()
            self._ctl = None
            self.stopped_at = datetime.now(UTC)

    def mails(self) -> list[dict[str, Any]]:
        return self.mailbox.to(ADDRESS)

    def by_alarm(self) -> Counter[int]:
        """How many e-mails each alarm id got."""
        out: Counter[int] = Counter()
        for mail in self.mails():
            m = ALARM_NO.search(mail["body"])
            if m:
                out[int(m.group(1))] += 1
        return out

    def times(self) -> dict[int, list[datetime]]:
        """When the server accepted each alarm's e-mails, in order."""
        out: dict[int, list[datetime]] = {}
        for mail in self.mails():
            m = ALARM_NO.search(mail["body"])
            if m:
                out.setdefault(int(m.group(1)), []).append(mail["at"])
        return out

    def first_at(self) -> dict[int, datetime]:
        return {a: at[0] for a, at in self.times().items()}


async def seed(url: str) -> None:
    """A city, a unit with one site, the unit's responsible person reachable by e-mail, and a
    policy: every fire to the unit's responsible person."""
    conn = await db.connect(url)
    try:
        await conn.execute("INSERT INTO jurisdictions (id, code, name, level, path)"
                           " VALUES (1, 'city', 'City', 'city', '{1}')")
        unit = await conn.fetchval(
            "INSERT INTO units (name, responsible_name) VALUES ('Harbour Co', '张三')"
            " RETURNING id")
        await conn.execute("INSERT INTO sites (id, name, jurisdiction_id, unit_id)"
                           " VALUES ($1, 'Harbour Tower', 1, $2)", SITE, unit)
        actor = Actor(None, "faults")
        await config_store.create_contact(conn, SecretBox.of([DEV_SECRET]), actor,
                                          recipient="unit_responsible", ref_id=unit,
                                          channel="email", address=ADDRESS)
        await config_store.create_policy(conn, actor, {
            "name": "fire to the unit", "classes": ["fire"],
            "recipients": ["unit_responsible"]})
    finally:
        await conn.close()


def notifier(db_url: str, smtp: Smtp, root: Path) -> Proc:
    """`firetower notify --no-migrate` as a deployment runs it (not started; nothing restarts
    it but the test)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIRETOWER_")}
    env.update({
        "PYTHONPATH": str(REPO),
        "FIRETOWER_ENV": "development",
        "FIRETOWER_DATABASE_URL": db_url,
        "FIRETOWER_SECRET_KEY": DEV_SECRET,
        "FIRETOWER_NOTIFY_SMTP_URL": smtp.url,
        "FIRETOWER_NOTIFY_TIMEOUT_S": "5",
        "FIRETOWER_PUBLIC_URL": "http://centre.test",
    })
    return Proc("notify", ["--no-migrate"], env, root / "notify.log", restart_s=None)


async def wait_ready(proc: Proc, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while "notify ready" not in proc.log.read_text(errors="replace").split(
            f"--- start {proc.starts} at")[-1]:
        if not proc.alive() or time.monotonic() > deadline:
            raise AssertionError(f"notify not ready in {timeout}s:\n{proc.log_tail()}")
        await asyncio.sleep(0.1)  # a probe's polling interval (deadline above)


@dataclass
class Fires:
    """`count` fires, one every `every_s`, each on a detector of its own at the site. A raise
    that fails (the database away) is tried again after 0.2 s until it commits; the fires
    behind it wait, then follow at once (the engine's writer keeps its decisions in order)."""

    pool: asyncpg.Pool
    count: int
    every_s: float = 0.1
    ids: dict[int, int] = field(default_factory=dict)  # fire index -> alarm id
    raised_at: dict[int, datetime] = field(default_factory=dict)  # alarm id -> committed
    failed: int = 0  # raise attempts that failed
    retried_fires: int = 0  # fires that needed more than one attempt

    async def run(self) -> None:
        store = AlarmStore(self.pool)
        start = time.monotonic()
        for i in range(self.count):
            delay = start + i * self.every_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)  # on purpose: the steady pace of the fires
            await self._raise(store, i)

    async def _raise(self, store: AlarmStore, i: int) -> None:
        attempts = 0
        while True:
            attempts += 1
            now = datetime.now(UTC)
            try:
                async with asyncio.timeout(RAISE_TIMEOUT_S):
                    change = await store.raise_or_recur(Occurrence(
                        AlarmKey(f"smk-{i:03d}", "1/1", "smoke.threshold"), AlarmClass.FIRE,
                        now, site_id=SITE, zone=1, received_at=now, reason="fault suite"))
            except Exception as exc:
                if not (db.is_transient(exc) or isinstance(exc, TimeoutError)):
                    raise
                self.failed += 1
                await asyncio.sleep(0.2)  # the writer's retry interval during an outage
                continue
            assert change is not None and change.alarm_id is not None
            self.ids[i] = change.alarm_id
            self.raised_at[change.alarm_id] = datetime.now(UTC)
            if attempts > 1:
                self.retried_fires += 1
            return


async def outbox_state(url: str) -> dict[str, Any]:
    """What the outbox says: fire alarms, jobs, messages by status, attempts by outcome."""
    conn = await asyncpg.connect(url)
    try:
        fire = [r["id"] for r in await conn.fetch(
            "SELECT id FROM alarms WHERE class = 'fire' ORDER BY id")]
        jobs = await conn.fetchrow(
            "SELECT count(*) AS all, count(*) FILTER (WHERE done_at IS NULL) AS undone,"
            " count(*) FILTER (WHERE error IS NOT NULL) AS failed,"
            " coalesce(sum(attempts), 0) AS failed_attempts FROM notify_jobs")
        status = {r["status"]: r["n"] for r in await conn.fetch(
            "SELECT status, count(*) AS n FROM notify_messages GROUP BY status")}
        outcomes = {r["outcome"]: r["n"] for r in await conn.fetch(
            "SELECT outcome, count(*) AS n FROM notify_attempts GROUP BY outcome")}
        per_alarm = {r["alarm_id"]: r["n"] for r in await conn.fetch(
            "SELECT alarm_id, count(*) AS n FROM notify_messages GROUP BY alarm_id")}
        leased = await conn.fetchval(
            "SELECT count(*) FROM notify_messages WHERE status = 'pending' AND attempts = 0"
            " AND next_attempt_at > clock_timestamp() + interval '20 seconds'")
        retried_errors = [r["error"] for r in await conn.fetch(
            "SELECT DISTINCT error FROM notify_attempts WHERE outcome = 'retry' LIMIT 5")]
    finally:
        await conn.close()
    assert jobs is not None
    return {"fire": fire, "jobs": dict(jobs), "status": status, "outcomes": outcomes,
            "per_alarm": per_alarm, "leased": leased, "retry_errors": retried_errors}


async def settle(url: str, smtp: Smtp, proc: Proc, timeout: float) -> dict[str, Any]:
    """Wait until every fire alarm's e-mail was accepted and the outbox has nothing left to
    do (no undone job, no pending message); the last state either way."""
    deadline = time.monotonic() + timeout
    while True:
        state = await outbox_state(url)
        got = smtp.by_alarm()
        missing = [a for a in state["fire"] if a not in got]
        pending = state["status"].get("pending", 0)
        if not missing and not pending and not state["jobs"]["undone"]:
            return state
        if time.monotonic() > deadline:
            return state
        await asyncio.sleep(0.25)  # a probe's polling interval (deadline above)


def report(state: dict[str, Any], smtp: Smtp, fires: Fires) -> dict[str, Any]:
    """The figures a case prints and asserts on."""
    got = smtp.by_alarm()
    fire = state["fire"]
    return {
        "fires": len(fire),
        "raised_by_test": len(fires.ids),
        "emails": sum(got.values()),
        "missing": [a for a in fire if a not in got],
        "duplicates": sum(n - 1 for a, n in got.items() if n > 1),
        "duplicated_alarms": sorted(a for a, n in got.items() if n > 1),
        "strangers": sorted(a for a in got if a not in set(fire)),
        "messages": state["status"],
        "attempts": state["outcomes"],
        "jobs": state["jobs"],
        "raise_failures": fires.failed,
        "fires_retried": fires.retried_fires,
    }


def diagnose(proc: Proc, figures: dict[str, Any]) -> str:
    return f"{figures}\n--- notify (starts {proc.starts}):\n{proc.log_tail(4000)}"
