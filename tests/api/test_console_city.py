"""The console's city view in real headless Chromium: the jurisdiction tree, a unit's page with
its contacts and maintenance company, and the city map, whose marker of a site turns red when a
fire is raised there through the real alarm store (the rule engine's write path)."""

from __future__ import annotations

import tempfile
from datetime import date, timedelta
from pathlib import Path

import pytest

from firetower import db
from firetower.alarm_store import AlarmStore
from tests.api.conftest import World, raise_alarm
from tests.api.pipeline import CHROMIUM, CHROMIUM_ARGS
from tests.api.test_console_browser import ERRORS, login

pytestmark = [pytest.mark.integration, pytest.mark.browser,
              pytest.mark.usefixtures("chromium_installed")]  # fails, never skips

SHOTS = Path(tempfile.gettempdir())
SQUARE = {"type": "Polygon", "coordinates": [[[119.28, 26.08], [119.31, 26.08], [119.31, 26.1],
                                              [119.28, 26.1], [119.28, 26.08]]]}


async def _city(world: World) -> None:
    async with world.client("admin") as a:
        ids: dict[str, int] = {}
        for key, code, name, level, parent in (
                ("city", "350100", "Fuzhou", "city", None),
                ("d1", "350102", "Gulou", "district", "city"),
                ("t1", "350102001", "Dongjie", "township", "d1"),
                ("g1", "G-1", "Dongjie Grid 1", "grid", "t1")):
            body: dict[str, object] = {"code": code, "name": name, "level": level,
                                       "parent_id": ids.get(parent) if parent else None}
            if key == "g1":
                body["boundary"] = SQUARE
            r = await a.post("/jurisdictions", json=body)
            assert r.status_code == 201, r.text
            ids[key] = r.json()["id"]
        r = await a.post("/units", json={
            "credit_code": "91350100M000100Y43", "name": "Harbour Tower Co.",
            "responsible_name": "Lin Wei", "responsible_phone": "+86 591 1234 5678",
            "grid_id": ids["g1"]})
        unit = r.json()["id"]
        r = await a.post("/companies", json={"credit_code": "91440300708461136T",
                                             "name": "Minjiang Fire Maintenance",
                                             "phone": "0591-8888"})
        company = r.json()["id"]
        for site, lat in (("s1", 26.09), ("s2", 26.095)):
            r = await a.patch(f"/sites/{site}", json={"latitude": lat, "longitude": 119.295})
            assert r.status_code == 200, r.text
            r = await a.put(f"/sites/{site}/placement",
                            json={"unit_id": unit, "jurisdiction_id": ids["g1"]})
            assert r.status_code == 200, r.text
        today = date.today()
        r = await a.post("/contracts", json={
            "company_id": company, "site_id": "s1", "starts_on": str(today - timedelta(days=1)),
            "ends_on": str(today + timedelta(days=300))})
        assert r.status_code == 201, r.text


async def test_tree_unit_page_and_a_marker_turning_red(world: World) -> None:
    from playwright.async_api import async_playwright

    await _city(world)
    pool = await db.create_pool(world.db_url, max_size=2)
    ERRORS.clear()
    try:
        await pool.execute("INSERT INTO devices (id, kind, site_id, location) VALUES "
                           "('smk-1', 'smoke_detector', 's1', '3F east')")
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = await login(await browser.new_context(), world.url, "admin")
                await page.click('.tab[data-view="city"]')
                # the tree: the city, its district, township and grid (a small tree opens
                # whole), the grid with its two sites
                await page.wait_for_selector('#city-tree .node-link:has-text("Dongjie Grid 1")')
                assert "Gulou" in await page.inner_text("#city-tree")
                await page.click('#city-tree .node-link:has-text("Dongjie Grid 1")')
                await page.click('#city-panel button:has-text("Harbour Tower Co.")')
                await page.wait_for_selector("#unit-name")
                assert "Lin Wei" in await page.inner_text("#unit-responsible")
                assert "Minjiang Fire Maintenance" in await page.inner_text("#unit-company")
                # the map: the grid's boundary, both sites green
                await page.wait_for_selector("#city-map path.boundary")
                marker = 'path[data-site="s1"]'
                await page.wait_for_selector(f'{marker}[data-worst="ok"]', timeout=10_000)
                await page.wait_for_selector('path[data-site="s2"][data-worst="ok"]')
                # a fire at s1: its marker turns red live, s2's stays green
                await raise_alarm(AlarmStore(pool), "smk-1", "s1")
                await page.wait_for_selector(f'{marker}[data-worst="fire"]', timeout=10_000)
                assert await page.get_attribute('path[data-site="s2"]', "data-worst") == "ok"
                # the open unit page lists the fire now
                await page.wait_for_selector('#city-panel li.fire')
                await page.screenshot(path=str(SHOTS / "city-fire.png"))
                fill = await page.eval_on_selector(marker, "el => getComputedStyle(el).fill")
                assert fill == "rgb(229, 50, 45)", fill  # --fire
                # zoomed out: one circle for the district, red, with its counts
                await page.evaluate("window.firetowerCity.map.setZoom(10)")
                cluster = await page.wait_for_selector('path.cluster-marker[data-worst="fire"]')
                assert cluster is not None
                label = await page.inner_text(".cluster-label")
                assert label == "Gulou: 2 Sites, 1 open alarms", label
                await page.screenshot(path=str(SHOTS / "city-zoomed-out.png"))
                # the site page: its unit, place in the city, maintenance company, history
                await page.click("#fire-ack")  # the fire's pop-up covers the tabs until then
                await page.wait_for_selector("#fire-popup", state="hidden")
                await page.click('.tab[data-view="sites"]')
                await page.select_option("#site-select", "s1")
                await page.wait_for_selector('#site-unit:has-text("Harbour Tower Co.")')
                assert "Minjiang Fire Maintenance" in await page.inner_text("#site-company")
                path = "Fuzhou \u203a Gulou \u203a Dongjie \u203a Dongjie Grid 1"
                assert path in await page.inner_text("#site-org")
                await page.wait_for_selector("#site-history li.fire")
            finally:
                await browser.close()
    finally:
        await pool.close()
    assert not [e for e in ERRORS if "favicon" not in e], ERRORS
