"""The duty and heightened-watch pages in real headless Chromium, against the real API and
PostgreSQL.

The organisation is the hazard loop's town (tests/api/test_hazard_loop.py `build_town`: a
township with two grids, a site in each); a duty roster is kept for the township's centre and a
fire is raised at a site of its subtree through the alarm store.

1. duty.html: the township's supervisor puts the operator (operator) and himself (leader) on
   duty from now through the page's shift form and sees them "on duty now" and in the week's
   shifts; the operator writes a note in the duty log, sees the open fire the hand-over will
   list and hands over to the supervisor: the hand-over is in the log and in the hand-overs
   list, and the stored record lists the fire. The language switch relabels the page (the
   shift form too). No console or page errors.
2. watch.html: the supervisor opens a watch window through the form (heartbeat 60 s, from now,
   on the township) after a refused heartbeat of 5 s shows the API's reason; it is under the
   active windows with its two sites; a work prompt goes to the township, tied to the window.
   The grid member (a grid_member user with a grid_members record of its own) opens the page on
   a phone (390x844, nothing scrolls sideways), sees the prompt and confirms reading it; the
   supervisor's view of the prompt shows it read (1 of its receipts). The supervisor cancels
   the window and it leaves the active list.
"""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from firetower import db
from firetower.alarm_store import AlarmStore
from tests.api.conftest import World, raise_alarm
from tests.api.pipeline import CHROMIUM, CHROMIUM_ARGS
from tests.api.test_console_hazards import _login, _no_sideways_scroll, _phone
from tests.api.test_hazard_loop import Town, build_town, ok

pytestmark = [pytest.mark.integration, pytest.mark.browser,
              pytest.mark.usefixtures("chromium_installed")]  # fails, never skips

SHOTS = Path(tempfile.gettempdir())
ZONE = "Asia/Shanghai"  # the browsers' time zone: datetime-local fields are in it


async def _desk(browser: Any) -> Any:
    return await browser.new_context(viewport={"width": 1440, "height": 900}, timezone_id=ZONE,
                                     locale="en-US")


def local(t: datetime) -> str:
    """`t` as a datetime-local field takes it, in the browsers' zone."""
    return t.astimezone(ZoneInfo(ZONE)).strftime("%Y-%m-%dT%H:%M")


async def _user_id(t: Town, name: str) -> int:
    async with t.client("admin") as a:
        users = await ok(await a.get("/users"))
    return int(next(u["id"] for u in users["data"] if u["name"] == name))


def _refused(errors: list[str], status: str) -> None:
    """The browser logs a refused request as a console error: that one was meant."""
    logged = f"the server responded with a status of {status}"
    assert [e for e in errors if logged in e] == [f"Failed to load resource: {logged}"], errors
    errors[:] = [e for e in errors if logged not in e]


async def _text(page: Any, selector: str) -> str:
    return str(await page.inner_text(selector))


async def test_duty_roster_shifts_log_and_hand_over(world: World) -> None:
    from playwright.async_api import async_playwright, expect

    t = await build_town(world)
    sup_id = await _user_id(t, "township_sup")
    op_id = world.ids["operator"]
    async with t.client("admin") as a:
        roster = await ok(await a.post("/duty/rosters", json={
            "name": "Dongjie centre", "jurisdiction_id": t.ids["township"]}), 201)
    pool = await db.create_pool(world.db_url, max_size=2)
    try:  # a fire at s1 (Grid 1, in the township): open on the board
        fire = await raise_alarm(AlarmStore(pool), "smk-1", "s1")
    finally:
        await pool.close()
    rid = roster["id"]
    errors: list[str] = []
    now = datetime.now().astimezone()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # -- the supervisor plans the shifts ----------------------------------------------
            sup = await _login(await _desk(browser), world.url, "township_sup",
                               "/console/duty.html", "#now-list", errors)
            assert await sup.input_value("#roster-select") == str(rid)
            assert "2 sites" in await _text(sup, "#roster-info")
            assert await _text(sup, '#now-list dd[data-position="operator"]') == "nobody"
            assert await sup.is_visible("#shift-form")
            # the planner picks people by name: the roster's candidates, not the grid member
            names = await sup.locator("#shift-user option").all_inner_texts()
            assert "operator (operator)" in names and "township_sup (supervisor)" in names
            assert not any(n.startswith("gridder") for n in names)
            for user_id, position in ((op_id, "operator"), (sup_id, "leader")):
                await sup.select_option("#shift-user", str(user_id))  # picked by name
                await sup.select_option("#shift-position", position)
                await sup.fill("#shift-start", local(now - timedelta(minutes=1)))
                await sup.fill("#shift-end", local(now + timedelta(hours=8)))
                await sup.click("#shift-form button[type=submit]")
                await sup.wait_for_selector(f'#now-list dd[data-position="{position}"]'
                                            ':not(.bad)')
            await expect(sup.locator("#week tbody tr[data-shift-id]")).to_have_count(2)
            assert "operator (until" in await _text(sup, '#now-list dd[data-position="operator"]')
            assert "township_sup (until" in await _text(
                sup, '#now-list dd[data-position="leader"]')
            assert await _text(sup, '#now-list dd[data-position="officer"]') == "nobody"
            assert await _text(sup, "#msg") == ""
            # a shift that clashes with the operator's is refused with the API's reason
            await sup.select_option("#shift-user", str(op_id))
            await sup.select_option("#shift-position", "officer")
            await sup.click("#shift-form button[type=submit]")
            await sup.wait_for_selector("#msg:not(:empty)")
            assert "overlap" in (await _text(sup, "#msg")).lower()
            _refused(errors, "409 (Conflict)")
            assert await sup.locator("#week tbody tr[data-shift-id]").count() == 2
            async with t.client("admin") as a:
                shifts = (await ok(await a.get(f"/duty/rosters/{rid}/shifts")))["data"]
            assert sorted((s["user_id"], s["position"]) for s in shifts) == sorted(
                [(op_id, "operator"), (sup_id, "leader")])
            # the language switch relabels the page, the shift form with it
            await sup.select_option("#lang", "zh")
            await sup.wait_for_selector('#now-list dd[data-position="officer"]:text-is("无人")')
            assert await _text(sup, '[data-t="on_duty_now"]') == "当前值班"
            assert await _text(sup, '[data-t="handover"]') == "交接班"
            assert await _text(sup, '#shift-form [data-t="user"]') == "用户"
            assert await _text(sup, '#shift-position option[value="leader"]') == "值班长"
            assert await sup.evaluate("document.documentElement.lang") == "zh-CN"
            await sup.select_option("#lang", "en")
            await sup.wait_for_selector('#now-list dd[data-position="officer"]:text-is("nobody")')
            assert await _text(sup, '[data-t="on_duty_now"]') == "On duty now"
            assert await _text(sup, '#shift-position option[value="leader"]') == "Shift leader"
            await sup.screenshot(path=str(SHOTS / "console-duty-planned.png"), full_page=True)

            # -- the operator's log note and hand-over ----------------------------------------
            op = await _login(await _desk(browser), world.url, "operator",
                              "/console/duty.html", "#now-list", errors)
            assert not await op.is_visible("#shift-form")  # operators do not plan
            await op.wait_for_selector(f'#handover-alarms li[data-alarm-id="{fire}"]')
            listed = await _text(op, f'#handover-alarms li[data-alarm-id="{fire}"]')
            assert f"#{fire} Harbour Tower · active" in listed, listed
            assert await op.get_attribute(f'#handover-alarms li[data-alarm-id="{fire}"]',
                                          "data-class") == "fire"
            await op.fill("#log-text", "Panel at Harbour Tower reset after test by the unit.")
            await op.click("#log-form button[type=submit]")
            await op.wait_for_selector('#log li[data-kind="note"]')
            assert "Panel at Harbour Tower reset" in await _text(op, '#log li[data-kind="note"]')
            assert await op.input_value("#log-text") == ""
            # the hand-over goes to the others on this week's shifts: the supervisor only
            to = await op.eval_on_selector_all("#handover-to option",
                                               "els => els.map(e => [e.value, e.textContent])")
            assert to == [[str(sup_id), "township_sup"]], to
            await op.select_option("#handover-to", str(sup_id))
            await op.fill("#handover-note", "One fire open at Harbour Tower, unit on its way.")
            await op.click("#handover-form button[type=submit]")
            item = op.locator("#handovers li[data-handover-id]")
            await item.first.wait_for()
            assert await item.count() == 1
            text = await item.first.inner_text()
            assert "operator handed over to township_sup: 1 open alarm\n" in text, text
            assert "unit on its way" in text
            await op.wait_for_selector('#log li[data-kind="handover"]')
            log = await op.eval_on_selector_all("#log li", "els => els.map(e => e.dataset.kind)")
            assert log == ["handover", "note"], log
            assert "handed over to township_sup" in await _text(op, '#log li[data-kind="handover"]')
            assert await _text(op, "#msg") == ""
            await op.screenshot(path=str(SHOTS / "console-duty-handover.png"), full_page=True)
            async with t.client("admin") as a:
                done = (await ok(await a.get(f"/duty/rosters/{rid}/handovers")))["data"]
            assert len(done) == 1
            assert (done[0]["from_user_id"], done[0]["to_user_id"]) == (op_id, sup_id)
            assert [x["id"] for x in done[0]["open_alarms"]] == [fire]
            # the supervisor sees the hand-over once the page refreshes (here: a reload)
            await sup.reload()
            await sup.wait_for_selector("#handovers li[data-handover-id]")
        finally:
            await browser.close()
    assert errors == [], errors


async def _grid_member(t: Town) -> int:
    """The grid member's record in Grid 1, with the gridder's account; the unit's responsible
    person (so a prompt to the township has two receipts in Grid 1's view)."""
    uid = await _user_id(t, "gridder")
    async with t.client("admin") as a:
        member = await ok(await a.post("/grid-members", json={
            "grid_id": t.ids["grid"], "name": "Wang Fang", "user_id": uid}), 201)
        await ok(await a.patch(f"/units/{t.ids['unit']}", json={"responsible_name": "Chen"}))
    return int(member["id"])


async def test_watch_window_prompt_read_and_cancel(world: World) -> None:
    from playwright.async_api import async_playwright

    t = await build_town(world)
    member = await _grid_member(t)
    errors: list[str] = []
    now = datetime.now().astimezone()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            sup = await _login(await _desk(browser), world.url, "township_sup",
                               "/console/watch.html", "#window-form #w-name", errors)
            assert await _text(sup, "#active") == "None."
            # the township's supervisor may open windows in the township's subtree only: the
            # nodes above it are not offered, its own node is the default
            nodes = await sup.eval_on_selector_all("#w-node option",
                                                   "els => els.map(e => Number(e.value))")
            assert sorted(nodes) == sorted(t.ids[k] for k in ("township", "grid", "other_grid"))
            assert await sup.input_value("#w-node") == str(t.ids["township"])
            assert await sup.input_value("#p-node") == str(t.ids["township"])
            # from now (the default) for three days
            start = await sup.input_value("#w-start")
            assert start in {local(now + timedelta(minutes=m)) for m in (-1, 0, 1)}, start
            await sup.fill("#w-name", "Spring Festival")
            await sup.fill("#w-reason", "fireworks over the old town")
            await sup.fill("#w-end", local(now + timedelta(days=3)))
            # a heartbeat the watch does not take: refused with the API's reason
            await sup.fill("#w-heartbeat_s", "5")
            await sup.click("#window-form button[type=submit]")
            await sup.wait_for_selector("#msg:not(:empty)")
            assert "heartbeat_s must be between 10" in await _text(sup, "#msg")
            _refused(errors, "422 (Unprocessable Entity)")
            assert await _text(sup, "#active") == "None."
            await sup.fill("#w-heartbeat_s", "60")
            await sup.click("#window-form button[type=submit]")
            win = sup.locator("#active li[data-window-id]")
            await win.first.wait_for()
            assert await win.count() == 1
            wid = int(await win.first.get_attribute("data-window-id") or 0)
            assert await win.first.get_attribute("data-state") == "active"
            assert await _text(sup, f'#active li[data-window-id="{wid}"] [data-field="sites"]') \
                == "2 sites"
            assert "Spring Festival" in await win.first.inner_text()
            assert "Heartbeat (s) 60" in await win.first.inner_text()
            assert await _text(sup, "#msg") == ""
            async with t.client("admin") as a:
                stored = await ok(await a.get(f"/watch/windows/{wid}"))
            assert stored["settings"] == {"heartbeat_s": 60.0}
            assert stored["jurisdiction_id"] == t.ids["township"] and stored["reason"]
            assert abs(datetime.fromisoformat(stored["starts_at"]) - now) < timedelta(minutes=2)
            # a work prompt to the township, tied to the window
            await sup.fill("#p-title", "Fireworks tonight")
            await sup.fill("#p-body", "Check the fire lanes and the extinguishers of your sites.")
            await sup.select_option("#p-node", str(t.ids["township"]))
            await sup.select_option("#p-watch", str(wid))
            await sup.click("#prompt-form button[type=submit]")
            head = sup.locator("#prompt-detail h2[data-prompt-id]")
            await head.wait_for()
            pid = int(await head.get_attribute("data-prompt-id") or 0)
            await sup.wait_for_selector(f'#prompts li[data-prompt-id="{pid}"]')
            async with t.client("township_sup") as c:
                sent = await ok(await c.get(f"/watch/prompts/{pid}"))
            total = sent["receipts_total"]
            assert sent["watch_id"] == wid and total >= 2, sent
            assert f"0/{total} read" in await _text(sup, "#prompt-detail")
            assert await sup.locator("#prompt-detail tr[data-receipt-id]").count() == total
            assert not await sup.is_visible("#confirm-read")  # the supervisor has no receipt
            await sup.screenshot(path=str(SHOTS / "console-watch.png"), full_page=True)

            # -- the grid member, on a phone ---------------------------------------------------
            phone_ctx = await _phone(browser)
            phone = await _login(phone_ctx, world.url, "gridder", "/console/watch.html",
                                 f'#prompts li[data-prompt-id="{pid}"]', errors)
            assert not await phone.is_visible("#window-form")
            assert await _text(phone, f'#active li[data-window-id="{wid}"] [data-field="sites"]') \
                == "1 site"  # of the window's two, the one in the grid member's grid
            assert await phone.locator(f'#active li[data-window-id="{wid}"]').is_visible()
            await _no_sideways_scroll(phone)
            await phone.tap(f'#prompts li[data-prompt-id="{pid}"]')
            await phone.wait_for_selector(f'#prompt-detail h2[data-prompt-id="{pid}"]')
            assert "Check the fire lanes" in await _text(phone, "#prompt-detail")
            await _no_sideways_scroll(phone)
            await phone.tap("#confirm-read")
            await phone.wait_for_selector("#prompt-detail td.ok")
            # confirmed once: the button is gone, the lists count the reading at once
            await phone.wait_for_selector("#confirmed")
            assert not await phone.is_visible("#confirm-read")
            await phone.wait_for_selector(f'#prompts li[data-prompt-id="{pid}"]'
                                          f':has-text("1/{total} read")')
            assert await _text(phone, "#msg") == ""
            await _no_sideways_scroll(phone)
            await phone.screenshot(path=str(SHOTS / "phone-watch.png"), full_page=True)
            await phone.select_option("#lang", "zh")
            await phone.wait_for_selector('#confirmed:text-is("您已确认阅读。")')
            assert await _text(phone, '[data-t="prompts"]') == "工作提示"
            await _no_sideways_scroll(phone)
            async with t.client("admin") as a:
                read = await ok(await a.get(f"/watch/prompts/{pid}"))
            mine = next(r for r in read["receipts"]
                        if r["recipient"] == "grid_member" and r["ref_id"] == member)
            assert mine["read_via"] == "console" and mine["read_at"]
            assert read["receipts_read"] == 1

            # -- the supervisor sees it read, then cancels the window --------------------------
            await sup.click(f'#prompts li[data-prompt-id="{pid}"]')
            await sup.wait_for_selector(f'#prompt-detail :text("1/{total} read")')
            assert await sup.locator("#prompt-detail td.ok").count() == 1
            assert "Wang Fang" in await _text(sup, "#prompt-detail td.ok >> xpath=..")
            await sup.click(f'#active li[data-window-id="{wid}"] [data-cancel="{wid}"]')
            await sup.wait_for_selector(f'#active li[data-window-id="{wid}"]', state="detached")
            assert await _text(sup, "#active") == "None."
            assert await _text(sup, "#msg") == ""
            async with t.client("admin") as a:
                gone = await ok(await a.get(f"/watch/windows/{wid}"))
            assert gone["state"] == "ended" and gone["cancelled_by"]
        finally:
            await browser.close()
    assert errors == [], errors
