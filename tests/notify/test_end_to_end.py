"""End to end with real components: PostgreSQL, an SMTP server (aiosmtpd), a DingTalk robot
receiver (real HTTP, signatures checked), the API under uvicorn and the notifier's own loops.

A fire at a unit notifies its responsible person, the grid member and the centre's operator
on duty by two channels (e-mail and DingTalk); left unacknowledged it escalates twice (shift
leader, then the county's duty officer); an acknowledgement by the e-mail's signed link stops
it, and is written to the alarm's event log with the channel it came from.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.header import decode_header, make_header
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller

from firetower import db
from firetower.alarm_store import AlarmKey, AlarmStore, Occurrence
from firetower.alarms import AlarmClass
from firetower.broker import free_port
from firetower.webhooks.secretbox import SecretBox
from notify import config_store
from notify.channels import ChannelSettings
from notify.worker import Notifier
from org.store import Actor
from tests.api.conftest import api_settings_for
from tests.api.server import running_api
from tests.conftest import Database
from tests.helpers import eventually
from tests.notify.receivers import Receiver

pytestmark = pytest.mark.integration
ADMIN = Actor(None, "test")


class Mailbox:
    """aiosmtpd handler: keeps every message it accepts, with when it accepted it."""

    def __init__(self) -> None:
        self.mails: list[dict[str, Any]] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        msg = message_from_bytes(envelope.content)
        part: Any = msg.get_payload(0) if msg.is_multipart() else msg
        body: Any = part.get_payload(decode=True)
        self.mails.append({"to": list(envelope.rcpt_tos),
                           "subject": str(make_header(decode_header(msg["Subject"] or ""))),
                           "body": (body or b"").decode("utf-8", "replace"),
                           "at": datetime.now(UTC)})
        return "250 OK"

    def to(self, address: str) -> list[dict[str, Any]]:
        return [m for m in self.mails if address in m["to"]]


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    ctl = Controller(box, hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        yield box, port
    finally:
        ctl.stop()


@pytest.fixture
def robot() -> Iterator[Receiver]:
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


async def build_city(conn: Any) -> dict[str, int]:
    """city > district (county) > township > grid; a unit in the grid with one site."""
    ids: dict[str, int] = {}
    parent: int | None = None
    path: list[int] = []
    for code, level in (("city", "city"), ("county", "district"), ("town", "township"),
                        ("grid1", "grid")):
        jid = await conn.fetchval("SELECT nextval('jurisdictions_id_seq')")
        path = [*path, jid]
        await conn.execute("INSERT INTO jurisdictions (id, parent_id, code, name, level, path)"
                           " VALUES ($1, $2, $3, $4, $5, $6)", jid, parent, code, code, level,
                           path)
        ids[code], parent = jid, jid
    ids["unit"] = await conn.fetchval(
        "INSERT INTO units (name, responsible_name, responsible_phone, grid_id)"
        " VALUES ('第一中学', '张三', '13800138000', $1) RETURNING id", ids["grid1"])
    await conn.execute("INSERT INTO sites (id, name, address, jurisdiction_id, unit_id)"
                       " VALUES ('school', '第一中学', '人民路 1 号', $1, $2)", ids["grid1"],
                       ids["unit"])
    ids["member"] = await conn.fetchval(
        "INSERT INTO grid_members (grid_id, name, phone) VALUES ($1, '李四', '13900139000')"
        " RETURNING id", ids["grid1"])
    for name in ("op1", "leader1", "officer1"):
        ids[name] = await conn.fetchval(
            "INSERT INTO users (name, role) VALUES ($1, 'operator') RETURNING id", name)
    now = datetime.now(UTC)
    city_roster = await conn.fetchval(
        "INSERT INTO duty_rosters (name, jurisdiction_id) VALUES ('城市中心', $1) RETURNING id",
        ids["city"])
    county_roster = await conn.fetchval(
        "INSERT INTO duty_rosters (name, jurisdiction_id) VALUES ('县值班', $1) RETURNING id",
        ids["county"])
    for roster, user, position in ((city_roster, "op1", "operator"),
                                   (city_roster, "leader1", "leader"),
                                   (county_roster, "officer1", "officer")):
        await conn.execute(
            "INSERT INTO duty_shifts (roster_id, user_id, position, starts_at, ends_at)"
            " VALUES ($1, $2, $3, $4, $5)", roster, ids[user], position,
            now - timedelta(hours=1), now + timedelta(hours=7))
    return ids


async def raise_fire(store: AlarmStore) -> int:
    now = datetime.now(UTC)
    change = await store.raise_or_recur(Occurrence(
        AlarmKey("smk-1", "", "smoke.threshold"), AlarmClass.FIRE, now, site_id="school",
        received_at=now, reason="test"))
    assert change is not None and change.alarm_id is not None
    return change.alarm_id


@pytest.fixture
async def world(clean_db: Database, mailbox: tuple[Mailbox, int],
                robot: Receiver) -> AsyncIterator[dict[str, Any]]:
    settings = api_settings_for(clean_db.url)
    box = SecretBox.of(settings.secret_keys)
    conn = await db.connect(clean_db.url)
    try:
        ids = await build_city(conn)
        people = {"unit_responsible": ("resp@unit.cn", ids["unit"]),
                  "grid_member": ("grid@street.cn", ids["member"]),
                  "user:op1": ("op1@centre.cn", ids["op1"]),
                  "user:leader1": ("leader1@centre.cn", ids["leader1"]),
                  "user:officer1": ("officer1@county.cn", ids["officer1"])}
        for kind, (mail, ref) in people.items():
            recipient = kind.split(":")[0]
            await config_store.create_contact(conn, box, ADMIN, recipient=recipient, ref_id=ref,
                                              name=kind, channel="email", address=mail)
            if recipient != "user" or kind == "user:op1":  # the three told at the raise
                await config_store.create_contact(
                    conn, box, ADMIN, recipient=recipient, ref_id=ref, name=kind,
                    channel="dingtalk",  # each its own group's robot
                    address=robot.dingtalk_url(prefix=f"/{recipient}"),
                    secret=robot.robots.dingtalk_secret)
        await config_store.create_policy(conn, ADMIN, {
            "name": "fire at a unit", "classes": ["fire"],
            "recipients": ["unit_responsible", "grid_member", "duty_operator"]})
        await config_store.create_chain(conn, ADMIN, {
            "name": "fire escalation", "class": "fire", "repeat_s": 60,
            "steps": [{"after_s": 2, "recipients": ["duty_leader"]},
                      {"after_s": 4, "recipients": ["duty_officer"]}]})
    finally:
        await conn.close()
    pool = await db.create_pool(clean_db.url, min_size=2, max_size=6)
    _, smtp_port = mailbox
    notifier = Notifier(pool, box, secret_key=settings.secret_keys[0],
                        public_url="http://centre.test",
                        channels=ChannelSettings(
                            smtp_url=f"smtp://127.0.0.1:{smtp_port}?from=centre@fire.cn"
                                     "&starttls=0", timeout_s=5.0))
    task = asyncio.create_task(notifier.run())
    try:
        yield {"settings": settings, "pool": pool, "ids": ids, "notifier": notifier}
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pool.close()


async def test_a_fire_is_told_escalated_twice_and_stopped_by_its_link(
        world: dict[str, Any], mailbox: tuple[Mailbox, int], robot: Receiver) -> None:
    mails, _ = mailbox
    pool = world["pool"]
    alarm_id = await raise_fire(AlarmStore(pool))
    raised = datetime.now(UTC)

    # the raise: three people, two channels each, within a second or so
    told = ("resp@unit.cn", "grid@street.cn", "op1@centre.cn")
    await eventually(lambda: all(mails.to(a) for a in told), timeout=10)
    await eventually(lambda: len([r for r in robot.robots.received if r.vendor == "dingtalk"])
                     >= 3, timeout=10)
    dings = [r for r in robot.robots.received if r.vendor == "dingtalk"]
    assert len(dings) == 3 and not any(r.problems for r in dings)
    assert {r.path for r in dings} == {"/unit_responsible/robot/send",
                                       "/grid_member/robot/send", "/user/robot/send"}
    assert all("火警" in r.body["markdown"]["title"] for r in dings)
    first = mails.to("resp@unit.cn")[0]
    assert "火警" in first["subject"] and "第一中学" in first["subject"]
    assert (first["at"] - raised).total_seconds() < 3.0

    # unacknowledged: the shift leader at 2 s, then the county's duty officer at 4 s; never
    # early (the ± 1 s precision is a benchmark figure, `firetower bench notify`: here the
    # bounds leave room for a loaded CI machine)
    await eventually(lambda: mails.to("leader1@centre.cn"), timeout=10)
    leader = mails.to("leader1@centre.cn")[0]
    assert "Escalation 1" in leader["subject"]
    assert 1.5 <= (leader["at"] - raised).total_seconds() <= 5.0
    await eventually(lambda: mails.to("officer1@county.cn"), timeout=10)
    officer = mails.to("officer1@county.cn")[0]
    assert "Escalation 2" in officer["subject"]
    assert 3.5 <= (officer["at"] - raised).total_seconds() <= 7.0
    assert officer["at"] > leader["at"]

    # the officer acknowledges with the link in the e-mail
    link = re.search(r"https?://\S+/console/link\.html#ack/(\S+)", officer["body"])
    assert link is not None
    token = link.group(1)
    with running_api(world["settings"]) as api:
        async with httpx.AsyncClient(base_url=f"{api.url}/api/v1") as client:
            described = await client.get(f"/public/links/ack/{token}")
            assert described.status_code == 200, described.text
            assert f"alarm #{alarm_id}" in described.json()["message"]
            state = await pool.fetchval("SELECT state FROM alarms WHERE id = $1", alarm_id)
            assert state == "active"  # looking at the link changed nothing
            used = await client.post(f"/public/links/ack/{token}")
            assert used.status_code == 200, used.text
            again = await client.post(f"/public/links/ack/{token}")
            assert again.status_code == 409  # one-time
            forged = await client.post(f"/public/links/ack/{token[:-3]}abc")
            assert forged.status_code == 404
    row = await pool.fetchrow("SELECT state, acknowledged_by FROM alarms WHERE id = $1",
                              alarm_id)
    assert row["state"] == "acknowledged"
    event = await pool.fetchrow("SELECT actor, reason FROM alarm_events WHERE alarm_id = $1"
                                " AND kind = 'acknowledge'", alarm_id)
    assert event["actor"] == "link:email:officer1" and "email link" in event["reason"]
    esc = await pool.fetchrow("SELECT * FROM alarm_escalations WHERE alarm_id = $1", alarm_id)
    assert esc["stopped_reason"] == "acknowledged"

    # nothing more goes out for it
    count = await pool.fetchval("SELECT count(*) FROM notify_messages WHERE alarm_id = $1",
                                alarm_id)
    await asyncio.sleep(1.5)
    assert await pool.fetchval("SELECT count(*) FROM notify_messages WHERE alarm_id = $1",
                               alarm_id) == count
    # every message has its attempt logged, and all went
    statuses = await pool.fetch("SELECT status, count(*) FROM notify_messages GROUP BY 1")
    assert {r["status"]: r["count"] for r in statuses} == {"sent": 8}
    assert await pool.fetchval("SELECT count(*) FROM notify_attempts WHERE outcome = 'sent'") == 8


async def test_an_unreachable_channel_is_retried_and_never_blocks_the_others(
        world: dict[str, Any], mailbox: tuple[Mailbox, int], robot: Receiver) -> None:
    """A contact whose robot is down (refused port) and one with an address the vendor rejects:
    the others are told at once; the first is retried with its error logged, the second is
    dead-lettered after one attempt."""
    mails, _ = mailbox
    pool = world["pool"]
    box = SecretBox.of(world["settings"].secret_keys)
    async with pool.acquire() as conn:
        await config_store.create_contact(
            conn, box, ADMIN, recipient="unit_responsible", ref_id=world["ids"]["unit"],
            name="down", channel="wecom",
            address=f"http://127.0.0.1:{free_port()}/cgi-bin/webhook/send?key=abc")
        await config_store.create_contact(
            conn, box, ADMIN, recipient="unit_responsible", ref_id=world["ids"]["unit"],
            name="wrong", channel="wecom",
            address=f"{robot.base}/cgi-bin/webhook/send?key=not-the-key")
    alarm_id = await raise_fire(AlarmStore(pool))
    await eventually(lambda: mails.to("resp@unit.cn") and mails.to("op1@centre.cn"), timeout=10)

    async def settled() -> bool:
        rows = await pool.fetch("SELECT c.name, m.status, m.attempts FROM notify_messages m"
                                " JOIN notify_contacts c ON c.id = m.contact_id"
                                " WHERE m.alarm_id = $1 AND m.channel = 'wecom'", alarm_id)
        by = {r["name"]: r for r in rows}
        return (len(by) == 2 and by["wrong"]["status"] == "dead"
                and by["down"]["attempts"] >= 2 and by["down"]["status"] == "pending")
    await eventually(settled, timeout=15)
    rows = {r["name"]: r for r in await pool.fetch(
        "SELECT c.name, m.last_error FROM notify_messages m"
        " JOIN notify_contacts c ON c.id = m.contact_id WHERE m.channel = 'wecom'")}
    assert "93000" in rows["wrong"]["last_error"] or "invalid" in rows["wrong"]["last_error"]
    assert rows["down"]["last_error"]
    assert await pool.fetchval(
        "SELECT count(*) FROM notify_attempts a JOIN notify_messages m ON m.id = a.message_id"
        " JOIN notify_contacts c ON c.id = m.contact_id WHERE c.name = 'down'") >= 2


async def test_a_flood_of_offline_devices_is_one_message_per_site_and_window(
        world: dict[str, Any], mailbox: tuple[Mailbox, int]) -> None:
    """A power cut takes 30 detectors of one site offline: with a 2 s grouping window the
    responsible person gets one e-mail listing them, not 30; a fire meanwhile is not held."""
    mails, _ = mailbox
    pool = world["pool"]
    async with pool.acquire() as conn:
        await config_store.create_policy(conn, ADMIN, {
            "name": "floods", "classes": ["offline", "fault"], "group_window_s": 2,
            "recipients": ["unit_responsible"], "channels": ["email"]})
    store = AlarmStore(pool)
    now = datetime.now(UTC)
    for i in range(30):
        await store.raise_or_recur(Occurrence(
            AlarmKey(f"smk-{i}", "", "offline"), AlarmClass.OFFLINE, now, site_id="school",
            received_at=now, reason="test"))
    await raise_fire(store)
    await eventually(lambda: any("火警" in m["subject"] for m in mails.to("resp@unit.cn")),
                     timeout=5)
    assert not any("离线" in m["subject"] for m in mails.to("resp@unit.cn"))  # still held
    await eventually(lambda: any("离线" in m["subject"] for m in mails.to("resp@unit.cn")),
                     timeout=10)
    await asyncio.sleep(0.5)
    offline = [m for m in mails.to("resp@unit.cn") if "离线" in m["subject"]]
    # one per window: the 30 raises may straddle a window's end, never more than two
    assert 1 <= len(offline) <= 2, [m["subject"] for m in offline]
    listed = [re.search(r"(\d+) 条报警", m["body"]) for m in offline]
    assert sum(int(x.group(1)) for x in listed if x is not None) == 30
    counts = {r["status"]: r["count"] for r in await pool.fetch(
        "SELECT status, count(*) FROM notify_messages m JOIN alarms a ON a.id = m.alarm_id"
        " WHERE a.class = 'offline' GROUP BY 1")}
    assert counts == {"sent": len(offline), "grouped": 30 - len(offline)}


async def test_a_work_prompt_reaches_the_grid_and_its_reading_is_confirmed_by_link(
        world: dict[str, Any], mailbox: tuple[Mailbox, int]) -> None:
    from notify.watch_store import send_prompt
    mails, _ = mailbox
    pool = world["pool"]
    async with pool.acquire() as conn:
        prompt_id = await send_prompt(conn, ADMIN, title="春节安保", body="请加强巡查。",
                                      jurisdiction_id=world["ids"]["county"])
    await eventually(lambda: mails.to("grid@street.cn") and mails.to("resp@unit.cn"),
                     timeout=10)
    mail = mails.to("grid@street.cn")[0]
    assert "工作提示" in mail["subject"] and "请加强巡查" in mail["body"]
    token = re.search(r"link\.html#read/(\S+)", mail["body"]).group(1)  # type: ignore[union-attr]
    with running_api(world["settings"]) as api:
        async with httpx.AsyncClient(base_url=f"{api.url}/api/v1") as client:
            assert (await client.post(f"/public/links/read/{token}")).status_code == 200
            assert (await client.post(f"/public/links/ack/{token}")).status_code == 404
    rows = {r["recipient"]: r for r in await pool.fetch(
        "SELECT recipient, read_at, read_via FROM prompt_receipts WHERE prompt_id = $1",
        prompt_id)}
    assert rows["grid_member"]["read_via"] == "email" and rows["grid_member"]["read_at"]
    assert rows["unit_responsible"]["read_at"] is None
