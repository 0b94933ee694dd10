"""The notification pages in real headless Chromium, against the real API and PostgreSQL.

A fire at a unit's site is resolved by the notifier's own writer (notify.outbox) into messages
to the unit's responsible person (e-mail and a DingTalk robot) with their signed links; one of
them is then dead-lettered as a refused address would be.

1. The notifications page (notify.html): the message log lists both messages with the channel
   and the redacted address (never the token), the dead one is found by the status filter with
   its error, and opening it shows its body and attempt log; a policy is added with the form.
2. The link page (link.html#ack/<token>), on a phone, not signed in: it describes the alarm
   without changing it, and its button acknowledges it once; the alarm's timeline then shows
   who acknowledged it and by which channel.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from firetower import db
from firetower.alarm_store import AlarmStore
from firetower.webhooks.secretbox import SecretBox
from notify import config_store, outbox
from notify.sender import Outcome
from org.store import Actor
from tests.api.conftest import TEST_SECRET, World, raise_alarm
from tests.api.pipeline import CHROMIUM, CHROMIUM_ARGS
from tests.api.test_console_hazards import _login, _phone

pytestmark = [pytest.mark.integration, pytest.mark.browser,
              pytest.mark.usefixtures("chromium_installed")]  # fails, never skips

TOKEN = "0123456789abcdef0123456789abcdef"


async def _messages(world: World) -> dict[str, Any]:
    box = SecretBox.of([TEST_SECRET])
    actor = Actor(None, "test")
    pool = await db.create_pool(world.db_url, max_size=2)
    try:
        async with pool.acquire() as conn:
            unit = await conn.fetchval(
                "INSERT INTO units (name, responsible_name) VALUES ('港湾大厦', '张三')"
                " RETURNING id")
            await conn.execute("UPDATE sites SET unit_id = $1 WHERE id = 's1'", unit)
            await config_store.create_contact(conn, box, actor, recipient="unit_responsible",
                                              ref_id=unit, name="张三", channel="email",
                                              address="zhang@harbour.cn")
            await config_store.create_contact(
                conn, box, actor, recipient="unit_responsible", ref_id=unit, name="张三",
                channel="dingtalk",
                address=f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}")
            await config_store.create_policy(conn, actor, {
                "name": "fire to the unit", "classes": ["fire"],
                "recipients": ["unit_responsible"]})
        alarm_id = await raise_alarm(AlarmStore(pool), "smk-1", "s1")
        async with pool.acquire() as conn:
            done = await outbox.resolve_next(conn, box, secret_key=TEST_SECRET,
                                             public_url=world.url, phone_channels=(),
                                             now=datetime.now(UTC))
            assert done is not None and done.messages == 2
            claimed = await outbox.claim(conn, box, datetime.now(UTC))
            robot = next(c for c in claimed if c.channel == "dingtalk")
            await outbox.finish(conn, robot, Outcome(False, True, "dingtalk refused the "
                                                     "message: errcode 300001", 12.0),
                                datetime.now(UTC))
            body = await conn.fetchval("SELECT body FROM notify_messages WHERE channel = 'email'")
    finally:
        await pool.close()
    link = re.search(r"/console/link\.html#ack/\S+", body)
    assert link is not None
    return {"alarm": alarm_id, "link": link.group(0)}


async def test_the_message_log_and_the_link_page(world: World) -> None:
    from playwright.async_api import async_playwright

    made = await _messages(world)
    errors: list[str] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            desk = await _login(await browser.new_context(viewport={"width": 1440, "height": 900}),
                                world.url, "admin", "/console/notify.html",
                                "#messages li[data-status]", errors)
            items = desk.locator("#messages li[data-status]")
            assert await items.count() == 2
            text = await desk.inner_text("#messages")
            assert "z***@harbour.cn" in text and "zhang@" not in text
            assert "access_token=0123…" in text and TOKEN not in text
            await desk.select_option("#status-filter", "dead")
            await desk.wait_for_selector("#messages li[data-status=pending]", state="detached")
            assert await items.count() == 1
            dead = desk.locator("#messages li[data-status=dead]")
            assert "errcode 300001" in await dead.inner_text()
            await dead.locator("button.title").click()
            await desk.wait_for_selector("#message-detail pre")
            assert "港湾大厦" in await desk.inner_text("#message-detail pre")
            assert "dead" in await desk.inner_text("#message-detail ol")
            # a policy through the form
            await desk.fill("#pol-name", "faults to the grid")
            await desk.check("#policy-form input[name=classes][value=fault]")
            await desk.check("#policy-form input[name=recipients][value=grid_member]")
            await desk.fill("#pol-window", "300")
            await desk.click("#policy-form button[type=submit]")
            await desk.wait_for_selector("#policies li:has-text('faults to the grid')")

            phone = await (await _phone(browser)).new_page()
            phone.on("pageerror", lambda e: errors.append(str(e)))
            await phone.goto(f"{world.url}{made['link']}")
            await phone.wait_for_selector("#act:not([hidden])")
            assert f"alarm #{made['alarm']}" in await phone.inner_text("#describe")
            async with world.client("admin") as a:
                assert (await a.get(f"/alarms/{made['alarm']}")).json()["state"] == "active"
            await phone.click("#act")
            await phone.wait_for_selector("#msg:not([hidden])")
            assert "acknowledged" in await phone.inner_text("#msg")
            async with world.client("admin") as a:
                alarm = (await a.get(f"/alarms/{made['alarm']}")).json()
            assert alarm["state"] == "acknowledged"
            assert alarm["acknowledged_by"] == "link:email:张三"
        finally:
            await browser.close()
    assert not errors, errors
