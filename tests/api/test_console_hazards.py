"""The hazard loop's pages in real headless Chromium, against the real API and PostgreSQL.

A city is built through the API (a district, a township, a grid with a unit and two sites), a
grid member is attached to the grid and a supervisor to the township, and hazards are recorded
through `POST /hazards`. Two of them are made overdue by short deadlines; the older one is
escalated once to the township by the loop's own writer (hazards.store.escalate_due).

1. The grid member's phone page (390x844, touch): the overdue hazard is at the top, marked; the
   grid member opens it, takes the rectification step with a note and a photo (uploaded to
   /files), and sees it become "submitted"; nothing scrolls sideways.
2. The supervisor's board in the desktop console: the lists (清单) with the grid's and the
   township's rows, counts and ageing; the overdue board with the listed major hazard and the
   escalated one (owner level, escalation count); the submitted hazard with the grid member's
   photo, verified and then closed, after which the grid's row counts it closed.
3. The maintenance company's queue on the phone and the work-order tab: a fault alarm opens an
   order through the loop's writer; the company responds on the phone; the console shows who.
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from firetower import db
from hazards import store as hazard_store
from hazards.policy import DEFAULT_POLICY
from tests.api.conftest import PASSWORD, World
from tests.api.pipeline import CHROMIUM, CHROMIUM_ARGS, png

pytestmark = [pytest.mark.integration, pytest.mark.browser,
              pytest.mark.usefixtures("chromium_installed")]  # fails, never skips

SHOTS = Path(tempfile.gettempdir())


@dataclasses.dataclass
class City:
    world: World
    ids: dict[str, int] = dataclasses.field(default_factory=dict)
    hazards: dict[str, int] = dataclasses.field(default_factory=dict)

    def client(self, token: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=f"{self.world.url}/api/v1", timeout=10,
                                 headers={"Authorization": f"Bearer {token}"})


async def _ok(r: httpx.Response, status: int = 201) -> Any:
    assert r.status_code == status, r.text
    return r.json()


async def _city(world: World) -> City:
    c = City(world)
    async with world.client("admin") as a:
        for key, code, name, level, parent in (
                ("city", "350100", "Fuzhou", "city", None),
                ("d1", "350102", "Gulou", "district", "city"),
                ("t1", "350102001", "Dongjie", "township", "d1"),
                ("g1", "G-350102001-01", "Dongjie Grid 1", "grid", "t1")):
            c.ids[key] = (await _ok(await a.post("/jurisdictions", json={
                "code": code, "name": name, "level": level,
                "parent_id": c.ids[parent] if parent else None})))["id"]
        c.ids["u1"] = (await _ok(await a.post("/units", json={
            "credit_code": "91350100M000100Y43", "name": "Harbour Tower Co.",
            "responsible_name": "Lin Wei", "grid_id": c.ids["g1"]})))["id"]
        for site in ("s1", "s2"):
            await _ok(await a.put(f"/sites/{site}/placement", json={
                "unit_id": c.ids["u1"], "jurisdiction_id": c.ids["g1"]}), 200)
        c.ids["k"] = (await _ok(await a.post("/companies", json={
            "credit_code": "91440300708461136T", "name": "Minjiang Fire Maintenance"})))["id"]
        await _ok(await a.post("/contracts", json={
            "company_id": c.ids["k"], "site_id": "s1",
            "starts_on": str(date.today() - timedelta(days=1)),
            "ends_on": str(date.today() + timedelta(days=300))}))
        for name, role, kind, target in (("gridder", "grid_member", "jurisdiction", "g1"),
                                         ("township", "supervisor", "jurisdiction", "t1"),
                                         ("fixer", "installer", "company", "k")):
            await _ok(await a.post("/users", json={
                "name": name, "role": role, "password": PASSWORD, "scope_kind": kind,
                "scope_id": c.ids[target]}))
    return c


async def _hazards(c: City) -> None:
    """B (found, overdue, escalated once to the township), A (notified, overdue, owned by the
    grid), C (major: listed at once), D (general, due in 15 days)."""
    soon = datetime.now(UTC) + timedelta(seconds=1.5)
    async with c.world.client("admin") as a:
        for key, body in (
                ("B", {"title": "Extinguishers expired on 2F", "site_id": "s1", "deadline":
                       soon.isoformat(), "category": "fire_equipment"}),
                ("A", {"title": "Blocked fire exit, east stair", "site_id": "s1", "deadline":
                       (soon + timedelta(seconds=0.3)).isoformat(), "category": "evacuation",
                       "legal_basis": "《消防法》第二十八条"}),
                ("C", {"title": "Sprinkler valve closed in B1", "site_id": "s1",
                       "severity": "major"}),
                ("D", {"title": "Cluttered corridor", "site_id": "s2"})):
            c.hazards[key] = (await _ok(await a.post("/hazards", json=body)))["id"]
        await _ok(await a.post(f"/hazards/{c.hazards['A']}/steps",
                               json={"trigger": "notify", "note": "notice served"}), 200)
        deadline = time.monotonic() + 10
        while True:  # both deadlines pass (a short wait: 1.8 s at most)
            r = await _ok(await a.get("/hazards", params={"overdue": "true"}), 200)
            if {h["id"] for h in r["data"]} == {c.hazards["A"], c.hazards["B"]}:
                break
            assert time.monotonic() < deadline, r
            await asyncio.sleep(0.2)
    # The loop's sweep escalates the earliest overdue hazard (B) one level; with no extension
    # it stays overdue, now owned by the township.
    pool = await db.create_pool(c.world.db_url, max_size=1)
    try:
        async with pool.acquire() as conn:
            done = await hazard_store.escalate_due(
                conn, policy=dataclasses.replace(DEFAULT_POLICY, escalation_extension_s=0.0),
                limit=1)
    finally:
        await pool.close()
    assert done == [c.hazards["B"]]


async def _login(context: Any, url: str, user: str, path: str, ready: str,
                 errors: list[str]) -> Any:
    page = await context.new_page()

    def logged(m: Any) -> None:
        if m.type in ("error", "warning"):
            errors.append(m.text)

    page.on("console", logged)
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(f"{url}{path}")
    await page.fill("#login-user", user)
    await page.fill("#login-password", PASSWORD)
    await page.click("#login-submit")
    await page.wait_for_selector(ready, timeout=10_000)
    return page


async def _phone(browser: Any) -> Any:
    return await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                     has_touch=True)


async def _no_sideways_scroll(page: Any) -> None:
    assert await page.evaluate(
        "document.documentElement.scrollWidth <= window.innerWidth + 1"), await page.evaluate(
        "[document.documentElement.scrollWidth, window.innerWidth]")


async def test_grid_member_rectifies_on_the_phone_supervisor_verifies_and_closes(
        world: World) -> None:
    from playwright.async_api import async_playwright

    c = await _city(world)
    await _hazards(c)
    a_id, b_id, c_id = c.hazards["A"], c.hazards["B"], c.hazards["C"]
    errors: list[str] = []
    photo = SHOTS / "firetower-rectified.png"
    photo.write_bytes(png(320, 200))
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # -- 1. the grid member's phone ------------------------------------------------
            phone = await _login(await _phone(browser), world.url, "gridder",
                                 "/console/phone.html", "#hazard-list", errors)
            cards = await phone.eval_on_selector_all(
                "#hazard-list li", "els => els.map(e => [Number(e.dataset.hazardId),"
                " e.dataset.overdue])")
            # the grid's four open hazards, most urgent first: the two overdue ones (the older
            # deadline on top), then the general one (15 days), then the major one (30 days)
            assert cards == [[a_id, "true"], [b_id, "true"], [c.hazards["D"], "false"],
                             [c_id, "false"]], cards
            top = phone.locator("#hazard-list li").first
            assert "Blocked fire exit" in await top.inner_text()
            assert await top.locator(".pill.overdue").is_visible()
            assert "2 overdue" in await phone.inner_text("#hazard-count")
            await _no_sideways_scroll(phone)
            await phone.screenshot(path=str(SHOTS / "phone-hazards.png"))

            await top.locator("a").tap()
            await phone.wait_for_selector(f'#hazard[data-hazard-id="{a_id}"][data-state="notified"]')
            assert await phone.is_visible(".overdue-line")
            steps = await phone.eval_on_selector_all("#steps [data-trigger]",
                                                     "els => els.map(e => e.dataset.trigger)")
            # notified: the unit's receipt or the rectification (the grid member may rectify
            # with the unit); nothing a supervisor does
            assert steps == ["receipt", "submit"], steps
            # the submit button is a real touch target
            box = await phone.locator('#steps [data-trigger="submit"]').bounding_box()
            assert box is not None and box["height"] >= 48 and box["width"] >= 300, box
            await phone.tap('#steps [data-trigger="submit"]')
            camera = phone.locator("#step-photo")
            assert await camera.get_attribute("accept") == "image/*"
            assert await camera.get_attribute("capture") == "environment"
            # a note without a photo is refused on the page (the policy wants a photo)
            await phone.fill("#step-note", "Stair cleared, door unlocked and signed.")
            await phone.tap("#step-send")
            await phone.wait_for_selector("#msg:not([hidden])")
            assert await phone.get_attribute(f'#hazard[data-hazard-id="{a_id}"]',
                                             "data-state") == "notified"
            await camera.set_input_files(str(photo))
            await phone.wait_for_selector("#step-preview img")
            await _no_sideways_scroll(phone)
            await phone.tap("#step-send")
            await phone.wait_for_selector(
                f'#hazard[data-hazard-id="{a_id}"][data-state="submitted"]', timeout=10_000)
            assert await phone.inner_text('#hazard [data-field="state"]') == "Submitted"
            await phone.wait_for_selector('#event-log li[data-kind="submit"]')
            assert await phone.evaluate("window.firetowerPhone.uploads") == 1
            # the photo of the result is shown back, fetched with the token
            await phone.wait_for_function(
                "() => [...document.querySelectorAll('.photos img')]"
                ".some(i => i.complete && i.naturalWidth === 320)")
            assert await phone.is_visible("#no-steps")  # nothing more for the grid member
            await _no_sideways_scroll(phone)
            await phone.screenshot(path=str(SHOTS / "phone-submitted.png"), full_page=True)
            async with c.world.client("admin") as a:
                stored = await _ok(await a.get(f"/hazards/{a_id}"), 200)
            assert stored["state"] == "submitted" and len(stored["files_after"]) == 1
            assert stored["submitted_by"] == "user:gridder"
            assert stored["events"][-1]["note"] == "Stair cleared, door unlocked and signed."
            # back to the list: the submitted one is no longer overdue, B is on top
            await phone.tap("a.back")
            await phone.wait_for_selector(f'#hazard-list li[data-hazard-id="{a_id}"]'
                                          '[data-state="submitted"][data-overdue="false"]')
            first = await phone.get_attribute("#hazard-list li:first-child", "data-hazard-id")
            assert first == str(b_id)

            # -- 2. the township supervisor's board ------------------------------------------
            desk = await _login(await browser.new_context(viewport={"width": 1440, "height": 900}),
                                world.url, "township", "/console/", "#live.on", errors)
            await desk.click('.tab[data-view="hazards"]')
            grid_row = f'#hz-lists tr[data-key="{c.ids["g1"]}"]'
            await desk.wait_for_selector(grid_row)
            cells = await desk.eval_on_selector(grid_row, "r => ({...r.dataset})")
            assert cells == {"key": str(c.ids["g1"]), "name": "Dongjie Grid 1", "total": "3",
                             "open": "3", "closed": "0", "overdue": "0", "listed": "1"}, cells
            ageing = await desk.eval_on_selector_all(
                f"{grid_row} td[data-age]", "els => els.map(e => [e.dataset.age, e.innerText])")
            assert ageing == [["0-7d", "3"], ["7-30d", "0"], ["30-90d", "0"], ["90d+", "0"]]
            township_row = f'#hz-lists tr[data-key="{c.ids["t1"]}"]'
            assert await desk.get_attribute(township_row, "data-overdue") == "1"
            assert "Dongjie township" in await desk.inner_text(township_row)
            # the overdue board: the escalated overdue hazard first, then the listed major one
            await desk.wait_for_selector(f'#hz-board li[data-hazard-id="{b_id}"]')
            board = await desk.eval_on_selector_all(
                "#hz-board li", "els => els.map(e => [Number(e.dataset.hazardId),"
                " e.dataset.overdue, e.dataset.listed, e.dataset.escalations])")
            assert board == [[b_id, "true", "false", "1"], [c_id, "false", "true", "0"]], board
            b_item = f'#hz-board li[data-hazard-id="{b_id}"]'
            assert await desk.inner_text(f'{b_item} [data-field="owner"]') == "Owner: Dongjie"
            assert await desk.inner_text(f'{b_item} [data-field="level"]') == " (township)"
            assert await desk.inner_text(f'{b_item} [data-field="escalations"]') == "Escalated \u00d71"
            # a list row narrows the hazards below to its owner
            await desk.click(township_row)
            await desk.wait_for_function(
                "() => [...document.querySelectorAll('#hz-table tr[data-hazard-id]')]"
                f".map(r => r.dataset.hazardId).join() === '{b_id}'")
            await desk.click("#hz-owner-filter button")
            # the filters: submitted ones only
            await desk.select_option("#hz-f-state", "submitted")
            await desk.wait_for_function(
                "() => [...document.querySelectorAll('#hz-table tr[data-hazard-id]')]"
                f".map(r => r.dataset.hazardId).join() === '{a_id}'")
            await desk.click(f'#hz-table tr[data-hazard-id="{a_id}"]')
            await desk.wait_for_selector(f'#hz-title[data-hazard-id="{a_id}"][data-state="submitted"]')
            kinds = await desk.eval_on_selector_all("#hz-events li",
                                                    "els => els.map(e => e.dataset.kind)")
            assert kinds == ["found", "notify", "submit"], kinds
            await desk.wait_for_function(  # the grid member's photo, seen by the township
                "() => [...document.querySelectorAll('#hz-detail .hz-photos img')]"
                ".some(i => i.complete && i.naturalWidth === 320)")
            steps = await desk.eval_on_selector_all("#hz-steps [data-hz-step]",
                                                    "els => els.map(e => e.dataset.hzStep)")
            assert steps == ["verify", "reject"], steps
            await desk.click('[data-hz-step="verify"]')
            await desk.wait_for_selector(f'#hz-title[data-hazard-id="{a_id}"][data-state="verified"]')
            assert await desk.inner_text('#hz-pills [data-field="state"]') == "Verified"
            await desk.fill("#hz-note", "Checked on site: exit clear.")
            await desk.click('[data-hz-step="close"]')
            await desk.wait_for_selector(f'#hz-title[data-hazard-id="{a_id}"][data-state="closed"]')
            assert not await desk.query_selector("#hz-steps [data-hz-step]")
            kinds = await desk.eval_on_selector_all("#hz-events li",
                                                    "els => els.map(e => e.dataset.kind)")
            assert kinds == ["found", "notify", "submit", "verify", "close"], kinds
            # the grid's list row counts it closed: one of three, a third done
            await desk.wait_for_selector(f'{grid_row}[data-closed="1"][data-open="2"]')
            assert (await desk.inner_text(f'{grid_row} [data-field="progress"]')).strip() == "33 %"
            await desk.screenshot(path=str(SHOTS / "console-hazards.png"), full_page=True)
            async with c.world.client("admin") as a:
                stored = await _ok(await a.get(f"/hazards/{a_id}"), 200)
            assert stored["state"] == "closed"
            assert [e["actor"] for e in stored["events"][-2:]] == ["user:township"] * 2
        finally:
            await browser.close()
    assert errors == [], errors


async def test_grid_member_patrols_and_checks_in_from_a_qr_code(world: World) -> None:
    """The patrol list on the phone (due now, missed yesterday) and the check-in a checkpoint's
    QR code opens: GPS from the phone, the plan's checklist with one item failed, a photo; the
    failed item becomes a hazard, and the checkpoint is no longer due."""
    from playwright.async_api import async_playwright

    c = await _city(world)
    today = datetime.now(UTC).date()
    async with world.client("admin") as a:
        await _ok(await a.patch("/sites/s1", json={"latitude": 26.09, "longitude": 119.295}), 200)
        plan = await _ok(await a.post("/patrol-plans", json={
            "jurisdiction_id": c.ids["g1"], "name": "Daily round", "every": 1, "unit": "days",
            "starts_on": str(today - timedelta(days=1)), "checklist": [
                {"id": "exits", "text": "Exits and stairs clear"},
                {"id": "ext", "text": "Extinguishers in date", "category": "fire_equipment"}]}))
        cps = [await _ok(await a.post(f"/patrol-plans/{plan['id']}/checkpoints", json={
            "site_id": site, "name": name})) for site, name in (("s1", "Lobby"),
                                                                ("s2", "Store room"))]
    errors: list[str] = []
    photo = SHOTS / "firetower-patrol.png"
    photo.write_bytes(png(200, 120))
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(
                viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True,
                geolocation={"latitude": 26.0901, "longitude": 119.2951, "accuracy": 15},
                permissions=["geolocation"])
            phone = await _login(context, world.url, "gridder", "/console/phone.html#patrols",
                                 "#patrol-due", errors)
            due = await phone.eval_on_selector_all(
                "#patrol-due li", "els => els.map(e => Number(e.dataset.checkpoint))")
            assert sorted(due) == sorted(cp["id"] for cp in cps), due
            missed = await phone.eval_on_selector_all(
                "#patrol-missed li", "els => els.map(e => Number(e.dataset.checkpoint))")
            assert sorted(missed) == sorted(cp["id"] for cp in cps), missed  # yesterday's round
            await _no_sideways_scroll(phone)
            # the Lobby's QR code opens the check-in form
            await phone.goto(f"{world.url}{cps[0]['qr_url']}")
            await phone.wait_for_selector('#checkin-gps[data-state="ok"]')
            items = await phone.eval_on_selector_all("#checklist li",
                                                     "els => els.map(e => e.dataset.item)")
            assert items == ["exits", "ext"], items
            await phone.check('#checklist li[data-item="ext"] input[value="fail"]')
            await phone.fill('#checklist li[data-item="ext"] input:not([type])',
                             "two extinguishers expired 2023")
            await phone.locator("#checkin-photo").set_input_files(str(photo))
            await _no_sideways_scroll(phone)
            await phone.tap("#checkin-send")
            done = await phone.wait_for_selector("#checkin-done", timeout=10_000)
            assert await done.get_attribute("data-flags") == ""  # on site, in the period
            await phone.tap("#checkin-hazards a")
            await phone.wait_for_selector('#hazard[data-state="found"]')
            assert "Extinguishers in date" in await phone.inner_text("#hazard h2")
            # back to the round: the Lobby is done, the Store room still due
            await phone.goto(f"{world.url}/console/phone.html#patrols")
            await phone.wait_for_function(
                "() => [...document.querySelectorAll('#patrol-due li')]"
                f".map(e => e.dataset.checkpoint).join() === '{cps[1]['id']}'")
            assert "[object" not in await phone.inner_text("#main")
            await phone.screenshot(path=str(SHOTS / "phone-patrols.png"), full_page=True)
        finally:
            await browser.close()
    async with world.client("admin") as a:
        visits = (await _ok(await a.get("/patrol-checkins"), 200))["data"]
    assert len(visits) == 1 and visits[0]["checkpoint_id"] == cps[0]["id"]
    assert visits[0]["lat"] == pytest.approx(26.0901) and len(visits[0]["photos"]) == 1
    assert [r["passed"] for r in visits[0]["results"]] == [True, False]
    assert len(visits[0]["hazard_ids"]) == 1
    assert errors == [], errors
