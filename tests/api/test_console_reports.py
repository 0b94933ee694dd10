"""Public reports in real headless Chromium, against the real API and PostgreSQL.

1. A citizen on a phone (390x844, touch, Chinese), with no account, files a report on the
   public page (/console/report.html): a category, what was seen, where, the phone's position
   (geolocation granted to the page) and a photo from the camera input, a name and phone kept
   private. The page shows the tracking code and the report's status.
2. An operator finds it in the console's Reports tab (waiting for triage first, a second
   citizen's duplicate counted on it), sees the photo (fetched with the token) and the contact
   (only in the detail), converts it to a hazard and marks the reward; a site manager (no
   `report:triage`) sees the report but neither the contact nor a single step.
3. The citizen's status look-up then says the report was accepted, with the hazard's state and
   the reward's status, and never the contact; the duplicate's code follows the first report.
4. The page's answers to the intake's refusals: a photo over the size limit (413), a file that
   is not an image (422), a flood (429 with when to try again), an unknown code.
"""

from __future__ import annotations

import io
import random
import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.config import ApiSettings
from tests.api.conftest import World, api_settings_for, seed
from tests.api.pipeline import CHROMIUM, CHROMIUM_ARGS, png
from tests.api.server import running_api
from tests.api.test_console_hazards import _login, _no_sideways_scroll
from tests.conftest import Database

pytestmark = [pytest.mark.integration, pytest.mark.browser,
              pytest.mark.usefixtures("chromium_installed")]  # fails, never skips

SHOTS = Path(tempfile.gettempdir())
S1 = (22.5431, 114.0579)           # Harbour Tower
S2 = (22.5881, 114.0579)           # Old Mill, 5 km north
HERE = (22.54318, 114.05797)       # the citizen, about 10 m from Harbour Tower
NAME, PHONE = "Li Hua", "13800138000"
CODE = re.compile(r"^[0-9A-HJKMNP-TV-Y]{12}$")  # Crockford's base 32 without Z


async def _ok(r: httpx.Response, status: int = 201) -> Any:
    assert r.status_code == status, r.text
    return r.json()


async def _place_sites(world: World) -> dict[str, int]:
    """Coordinates for both sites, and Harbour Tower placed in a grid of a small tree."""
    ids: dict[str, int] = {}
    async with world.client("admin") as a:
        for site, (lat, lon) in (("s1", S1), ("s2", S2)):
            await _ok(await a.patch(f"/sites/{site}", json={"latitude": lat, "longitude": lon}),
                      200)
        for key, code, name, level, parent in (
                ("city", "440300", "Shenzhen", "city", None),
                ("district", "440304", "Futian", "district", "city"),
                ("township", "440304001", "Shatou", "township", "district"),
                ("grid", "G-440304001-01", "Shatou Grid 1", "grid", "township")):
            ids[key] = (await _ok(await a.post("/jurisdictions", json={
                "code": code, "name": name, "level": level,
                "parent_id": ids[parent] if parent else None})))["id"]
        ids["unit"] = (await _ok(await a.post("/units", json={
            "credit_code": "91350100M000100Y43", "name": "Harbour Tower Co.",
            "grid_id": ids["grid"]})))["id"]
        await _ok(await a.put("/sites/s1/placement", json={
            "unit_id": ids["unit"], "jurisdiction_id": ids["grid"]}), 200)
    return ids


@pytest.fixture
async def world(clean_db: Database, tmp_path: Path) -> AsyncIterator[World]:
    """The intake's limits relaxed as in test_public_reports.py: every report of the test
    comes from 127.0.0.1."""
    settings = ApiSettings(files_dir=tmp_path / "files", public_reports_per_address_hour=10_000,
                           public_report_burst=1000, public_reports_per_minute=1000,
                           public_status_per_minute=1000)
    with running_api(api_settings_for(clean_db.url), settings) as server:
        yield await seed(clean_db.url, server.url)


def _watch(page: Any, errors: list[str]) -> Any:
    def logged(m: Any) -> None:
        if m.type in ("error", "warning"):
            errors.append(m.text)

    page.on("console", logged)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page


async def _citizen(browser: Any, errors: list[str], **extra: Any) -> Any:
    context = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                        has_touch=True, **extra)
    return _watch(await context.new_page(), errors)


async def _status_fields(page: Any) -> dict[str, str]:
    return dict(await page.eval_on_selector_all(
        "#rp-status dd[data-field]", "els => els.map(e => [e.dataset.field, e.innerText])"))


async def test_a_citizen_reports_on_a_phone_and_an_operator_converts_it(world: World) -> None:
    from playwright.async_api import async_playwright

    ids = await _place_sites(world)
    errors: list[str] = []
    photo = SHOTS / "firetower-report-exit.png"
    photo.write_bytes(png(320, 200))
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            # -- 1. the citizen files a report on the phone, in Chinese ---------------------
            phone = await _citizen(
                browser, errors, locale="zh-CN",
                geolocation={"latitude": HERE[0], "longitude": HERE[1], "accuracy": 12},
                permissions=["geolocation"])
            await phone.goto(f"{world.url}/console/report.html")
            await phone.wait_for_selector('#rp-category option[value="ebike_charging"]', state="attached")
            assert await phone.inner_text("h1") == "举报火灾隐患"  # the browser's language
            assert await phone.get_attribute("html", "lang") == "zh-CN"
            options = await phone.eval_on_selector_all(
                "#rp-category option", "els => els.map(e => e.value)")
            assert options == ["", "blocked_exit", "fire_lane", "fire_equipment", "electrical",
                               "ebike_charging", "flammables", "other"], options
            camera = phone.locator("#rp-photos")
            assert await camera.get_attribute("accept") == "image/*"
            assert await camera.get_attribute("capture") == "environment"
            assert await camera.get_attribute("multiple") is not None
            assert "仅中心受理人员可见" in await phone.inner_text("#rp-privacy")
            # nothing is sent without a category: the page says so and marks it
            await phone.fill("#rp-description", "B 座安全出口被铁链锁住")
            await phone.tap("#rp-send")
            await phone.wait_for_selector("#msg:not([hidden])")
            assert await phone.get_attribute("#rp-category", "class") == "need"
            assert await phone.evaluate("window.firetowerReport.sent") == 0
            # the form, filled in
            await phone.select_option("#rp-category", "blocked_exit")
            await phone.fill("#rp-address", "Harbour Tower, exit B")
            await phone.tap("#rp-locate")
            await phone.wait_for_selector('#rp-gps[data-state="ok"]')
            assert "22.54318" in await phone.inner_text("#rp-gps")
            await camera.set_input_files(str(photo))
            await phone.wait_for_selector("#rp-preview img")
            await phone.fill("#rp-name", NAME)
            await phone.fill("#rp-phone", PHONE)
            await _no_sideways_scroll(phone)
            box = await phone.locator("#rp-send").bounding_box()
            assert box is not None and box["height"] >= 48 and box["width"] >= 300, box
            await phone.screenshot(path=str(SHOTS / "report-form.png"), full_page=True)
            await phone.tap("#rp-send")
            await phone.wait_for_selector("#rp-receipt:not([hidden])", timeout=10_000)
            assert await phone.is_hidden("#report-form")
            code = await phone.get_attribute("#rp-code", "data-code")
            assert code and CODE.match(code), code
            assert (await phone.inner_text("#rp-code")).replace("-", "") == code
            # its status right away, and the code remembered on this phone
            await phone.wait_for_selector('#rp-status[data-status="received"]')
            assert await phone.inner_text("#rp-headline") == "已受理\uff0c中心将尽快核查。"
            assert await phone.get_attribute(f'#rp-mine [data-code="{code}"]', "data-code") == code
            await _no_sideways_scroll(phone)
            await phone.screenshot(path=str(SHOTS / "report-receipt.png"), full_page=True)

            # what the intake stored: the place, the photo, the contact (read by triage)
            async with world.client("operator") as op:
                listed = await _ok(await op.get("/reports"), 200)
                assert listed["count"] == 1
                first = await _ok(await op.get(f"/reports/{listed['data'][0]['id']}"), 200)
            assert first["tracking_code"] == code and first["channel"] == "web"
            assert (first["latitude"], first["longitude"]) == pytest.approx(HERE)
            assert first["site_id"] == "s1" and first["jurisdiction_id"] == ids["grid"]
            assert first["contact"] == f"{NAME} · {PHONE}" and len(first["photos"]) == 1
            assert first["address"] == "Harbour Tower, exit B"

            # a second citizen reports the same exit through the JSON intake (a duplicate),
            # and a third something without a place
            async with httpx.AsyncClient(base_url=f"{world.url}/api/v1") as public:
                dup = await _ok(await public.post("/public/reports", json={
                    "category": "blocked_exit", "description": "Exit B locked again",
                    "latitude": HERE[0] + 0.0002, "longitude": HERE[1]}))
                assert dup["status"] == "merged"
                await _ok(await public.post("/public/reports", json={
                    "category": "fire_lane", "description": "Van parked in the fire lane",
                    "address": "Old Mill, north gate"}))
                # the same exit from the hotline, with no place: only triage can merge it
                await _ok(await public.post("/public/reports", json={
                    "category": "blocked_exit", "description": "Harbour Tower exit B chained",
                    "channel": "hotline", "external_ref": "12345-2026-000871"}))

            # -- 2. the operator's triage in the console ------------------------------------
            desk = await _login(await browser.new_context(viewport={"width": 1440, "height": 900}),
                                world.url, "operator", "/console/", "#live.on", errors)
            assert await desk.is_visible('.tab[data-view="reports"]')
            await desk.click('.tab[data-view="reports"]')
            await desk.wait_for_selector(f'#rp-table tr[data-report-id="{first["id"]}"]')
            rows = await desk.eval_on_selector_all(
                "#rp-table tr[data-report-id]",
                "els => els.map(e => [Number(e.dataset.reportId), e.dataset.status,"
                " Number(e.dataset.duplicates)])")
            # waiting for triage first (the newest on top), the merged duplicate after them
            van, hotline = first["id"] + 2, first["id"] + 3
            assert rows == [[hotline, "received", 0], [van, "received", 0],
                            [first["id"], "received", 1], [first["id"] + 1, "merged", 0]], rows
            table = await desk.inner_text("#rp-table")
            assert PHONE not in table and NAME not in table  # never in a list
            await desk.check("#rp-f-open")  # to triage only
            await desk.wait_for_function(
                "() => document.querySelectorAll('#rp-table tr[data-report-id]').length === 3")
            await desk.click(f'#rp-table tr[data-report-id="{first["id"]}"]')
            await desk.wait_for_selector(
                f'#rp-title[data-report-id="{first["id"]}"][data-status="received"]')
            assert await desk.inner_text('#rp-detail [data-field="contact"]') == f"{NAME} · {PHONE}"
            assert await desk.inner_text('#rp-detail [data-field="code"]') == code
            assert await desk.inner_text('#rp-pills [data-field="duplicates"]') == "+1 duplicates"
            await desk.wait_for_function(  # the citizen's photo, fetched with the token
                "() => [...document.querySelectorAll('#rp-photos img')]"
                ".some(i => i.complete && i.naturalWidth === 320 && i.src.startsWith('blob:'))")
            kinds = await desk.eval_on_selector_all("#rp-events li",
                                                    "els => els.map(e => e.dataset.kind)")
            assert kinds == ["received"], kinds
            forms = await desk.eval_on_selector_all("#rp-actions form", "els => els.map(e => e.id)")
            assert forms == ["rp-convert-form", "rp-merge-form", "rp-dismiss-form",
                             "rp-reward-form"], forms
            # a reward only once it is a hazard: for now it can only be refused
            assert await desk.eval_on_selector_all(
                "#rp-rw-status option", "els => els.map(e => e.value)") == ["refused"]
            # the merge offers the other open reports: the same kind first, the nearest first
            merge_to = await desk.eval_on_selector_all(
                "#rp-mg-into option", "els => els.map(e => e.value)")
            assert merge_to == ["", str(hotline), str(van)], merge_to
            # convert: the title is needed; the site defaults to the matched one
            assert await desk.input_value("#rp-cv-site") == "s1"
            assert await desk.input_value("#rp-cv-node") == str(ids["grid"])
            await desk.fill("#rp-cv-title", "")
            await desk.click("#rp-convert")
            assert await desk.inner_text("#rp-error") == "The hazard needs a title."
            await desk.fill("#rp-cv-title", "Exit B chained shut")
            await desk.select_option("#rp-cv-severity", "major")
            await desk.fill("#rp-cv-note", "Confirmed by phone with the reporter")
            await desk.click("#rp-convert")
            await desk.wait_for_selector(
                f'#rp-title[data-report-id="{first["id"]}"][data-status="converted"]')
            hazard_text = await desk.inner_text('#rp-detail [data-field="hazard"]')
            hazard_id = int(hazard_text.lstrip("#"))
            kinds = await desk.eval_on_selector_all("#rp-events li",
                                                    "els => els.map(e => e.dataset.kind)")
            assert kinds == ["received", "converted"], kinds
            assert not await desk.query_selector("#rp-convert-form")
            # the reward: eligible, then granted with its amount
            await desk.select_option("#rp-rw-status", "eligible")
            assert await desk.is_hidden("#rp-rw-amount")
            await desk.click("#rp-reward")
            await desk.wait_for_function("() => (document.querySelector("
                                         "'#rp-detail dd[data-field=reward]') || {}).innerText"
                                         " === 'Eligible'")
            await desk.select_option("#rp-rw-status", "granted")
            await desk.fill("#rp-rw-amount", "200")
            await desk.fill("#rp-rw-note", "first report of a locked exit")
            await desk.click("#rp-reward")
            await desk.wait_for_function("() => (document.querySelector("
                                         "'#rp-detail dd[data-field=reward]') || {}).innerText"
                                         " === 'Granted · ¥200 · first report of a locked exit'")
            assert not await desk.query_selector("#rp-reward-form")  # granted is final
            # the hotline's report of the same exit joins the converted one, by hand
            await desk.click(f'#rp-table tr[data-report-id="{hotline}"]')
            await desk.wait_for_selector(f'#rp-title[data-report-id="{hotline}"]')
            merge_to = await desk.eval_on_selector_all(
                "#rp-mg-into option", "els => els.map(e => e.value)")
            assert merge_to == ["", str(first["id"]), str(van)], merge_to
            await desk.click("#rp-merge")
            assert await desk.inner_text("#rp-error") == "Choose the report it duplicates."
            await desk.select_option("#rp-mg-into", str(first["id"]))
            await desk.click("#rp-merge")
            await desk.wait_for_selector(f'#rp-title[data-report-id="{hotline}"][data-status="merged"]')
            assert await desk.inner_text('#rp-detail [data-field="merged-into"]') == f"#{first['id']}"
            # the van: dismissed, with the reason required
            await desk.click(f'#rp-table tr[data-report-id="{van}"]')
            await desk.wait_for_selector(f'#rp-title[data-report-id="{van}"]')
            await desk.click("#rp-dismiss")
            assert await desk.inner_text("#rp-error") == "Why it is not a hazard (required)"
            await desk.fill("#rp-ds-reason", "Loading bay, not a fire lane")
            await desk.click("#rp-dismiss")
            await desk.wait_for_selector(f'#rp-title[data-report-id="{van}"][data-status="dismissed"]')
            assert await desk.inner_text('#rp-detail [data-field="dismiss-reason"]') == (
                "Loading bay, not a fire lane")
            await desk.wait_for_selector("#rp-empty")  # nothing left to triage
            await desk.uncheck("#rp-f-open")
            await desk.wait_for_selector(f'#rp-table tr[data-report-id="{first["id"]}"]'
                                         '[data-status="converted"][data-duplicates="2"]')
            await desk.click(f'#rp-table tr[data-report-id="{first["id"]}"]')
            await desk.wait_for_selector(f'#rp-title[data-report-id="{first["id"]}"]')
            await desk.screenshot(path=str(SHOTS / "console-reports.png"), full_page=True)
            async with world.client("operator") as op:
                hazard = await _ok(await op.get(f"/hazards/{hazard_id}"), 200)
                stored = await _ok(await op.get(f"/reports/{first['id']}"), 200)
            assert hazard["source"] == "public_report" and hazard["site_id"] == "s1"
            assert hazard["title"] == "Exit B chained shut" and hazard["severity"] == "major"
            assert hazard["files_before"] == first["photos"]
            assert (stored["reward_status"], stored["reward_amount"]) == ("granted", 200.0)
            assert stored["events"][1]["note"] == "Confirmed by phone with the reporter"
            assert stored["duplicates"] == 2

            # a site manager of Harbour Tower reads the report, without the contact or a step
            manager = await _login(await browser.new_context(viewport={"width": 1280, "height": 800}),
                                   world.url, "manager", "/console/", "#live.on", errors)
            await manager.click('.tab[data-view="reports"]')
            await manager.click(f'#rp-table tr[data-report-id="{first["id"]}"]')
            await manager.wait_for_selector(f'#rp-title[data-report-id="{first["id"]}"]')
            assert await manager.inner_text('#rp-detail [data-field="contact"]') == (
                "given, not shown to your role")
            assert not await manager.query_selector("#rp-actions")
            assert PHONE not in await manager.inner_text("#rp-detail")

            # -- 3. the citizen checks again ------------------------------------------------
            await phone.reload()
            await phone.fill("#rp-status-code", f"{code[:4].lower()} {code[4:8]}-{code[8:]}")
            await phone.tap("#rp-check")
            await phone.wait_for_selector('#rp-status[data-status="converted"]')
            assert await phone.get_attribute("#rp-status", "data-hazard-state") == "found"
            fields = await _status_fields(phone)
            assert fields == {"code": f"{code[:4]}-{code[4:8]}-{code[8:]}",
                              "category": "疏散通道、安全出口堵塞", "status": "已立案为隐患",
                              "hazard-state": "已发现", "reward": "已发放"}, fields
            assert await phone.inner_text("#rp-headline") == "已立案\uff1a隐患已转交整改。"
            history = await phone.eval_on_selector_all("#rp-history li",
                                                       "els => els.map(e => e.dataset.kind)")
            assert history == ["received", "updated"], history
            page_text = await phone.inner_text("body")
            for private in (PHONE, NAME, "Confirmed by phone", "200", "operator"):
                assert private not in page_text, private
            # the second citizen's code follows the report it joined; in English this time
            await phone.select_option("#lang", "en")
            await phone.fill("#rp-status-code", dup["tracking_code"])
            await phone.tap("#rp-check")
            await phone.wait_for_selector('#rp-status[data-status="merged"]')
            fields = await _status_fields(phone)
            assert (fields["status"], fields["outcome"], fields["hazard-state"]) == (
                "Joined to an earlier report", "Accepted as a hazard", "Found"), fields
            assert "reward" not in fields  # that reporter was not the first
            assert await phone.inner_text("#rp-headline") == (
                "Someone reported the same place first. "
                "Accepted: the hazard has been passed on to be fixed.")
            await _no_sideways_scroll(phone)
            await phone.screenshot(path=str(SHOTS / "report-status.png"), full_page=True)
        finally:
            await browser.close()
    assert errors == [], errors


def _noise_png(side: int) -> bytes:
    """A PNG that does not compress: random grey pixels."""
    from PIL import Image

    rng = random.Random(side)
    img = Image.frombytes("L", (side, side), bytes(rng.randrange(256) for _ in range(side * side)))
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


async def test_the_report_page_explains_the_intakes_refusals(clean_db: Database,
                                                             tmp_path: Path) -> None:
    """Photos of at most 2 KiB and two reports a burst from one address: a larger photo is
    refused (413), a file that is no image too (422), and the third try is throttled (429):
    each refusal in the API's words, the last with when to try again."""
    from playwright.async_api import async_playwright

    settings = ApiSettings(files_dir=tmp_path / "files", public_report_photo_max_bytes=2048,
                           public_report_burst=2, public_reports_per_address_hour=10)
    big, fake = tmp_path / "big.png", tmp_path / "fake.png"
    big.write_bytes(_noise_png(64))
    assert len(big.read_bytes()) > 2048
    fake.write_bytes(b"this is no picture")
    errors: list[str] = []
    with running_api(api_settings_for(clean_db.url), settings) as server:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = await _citizen(browser, errors, locale="en-GB")
                await page.goto(f"{server.url}/console/report.html")
                await page.wait_for_selector('#rp-category option[value="other"]', state="attached")
                assert await page.inner_text("h1") == "Report a fire hazard"
                await page.select_option("#rp-category", "electrical")
                await page.fill("#rp-description", "Cables strung across the corridor")
                # no location: the citizen did not add one
                assert await page.get_attribute("#rp-gps", "data-state") == "none"
                await page.locator("#rp-photos").set_input_files(str(big))
                await page.tap("#rp-send")
                await page.wait_for_selector("#msg:not([hidden])")
                assert await page.inner_text("#msg") == "Too large: file larger than 2048 bytes"
                assert await page.get_attribute("#rp-photos", "class") == "need"
                await page.locator("#rp-photos").set_input_files(str(fake))
                await page.tap("#rp-send")
                await page.wait_for_function(
                    "() => document.getElementById('msg').innerText.startsWith('Please check')")
                message = await page.inner_text("#msg")
                assert message.startswith("Please check the report: ") and "image" in message, \
                    message
                # the third try within the burst: throttled, with when to try again
                await page.locator("#rp-photos").set_input_files([])
                await page.tap("#rp-send")
                await page.wait_for_function(
                    "() => document.getElementById('msg').innerText.startsWith('Too many')")
                message = await page.inner_text("#msg")
                assert re.fullmatch(r"Too many reports or look-ups from this connection\. "
                                    r"Try again in 6 min \(at \d\d:\d\d\)\.", message), message
                assert await page.is_disabled("#rp-send")
                assert await page.inner_text("#rp-send") == "Please wait…"
                assert await page.is_visible("#report-form")  # what was typed is kept
                assert await page.input_value("#rp-description") == (
                    "Cables strung across the corridor")
                # a code that was never given
                await page.fill("#rp-status-code", "0000-0000-0000")
                await page.tap("#rp-check")
                await page.wait_for_selector("#rp-unknown")
                assert await page.inner_text("#rp-unknown") == (
                    "No report has this code. Check it and try again.")
                await _no_sideways_scroll(page)
            finally:
                await browser.close()
        async with httpx.AsyncClient(base_url=f"{server.url}/api/v1") as public:
            r = await public.post("/public/reports", json={"category": "other",
                                                          "description": "still throttled"})
            assert r.status_code == 429 and int(r.headers["Retry-After"]) > 60
    # the browser logs the refused requests (4xx) as console errors: those and nothing else
    assert all("status of 4" in e for e in errors), errors
    assert len(errors) == 4, errors
