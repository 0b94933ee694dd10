"""The operator console in real headless Chromium, fed by the whole pipeline: a panel's fire
event goes MQTT -> ingester -> rule engine -> alarm store -> NOTIFY -> API stream -> console.

Two operators are signed in; the first sees the fire within 1 s, acknowledges it and gives a
verdict, and the second sees the state change. A phone-sized screen shows the board without
horizontal scrolling."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.api.conftest import PASSWORD
from tests.api.pipeline import CHROMIUM, CHROMIUM_ARGS, pipeline

pytestmark = [pytest.mark.integration, pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium not installed")]


ERRORS: list[str] = []


async def login(context, url: str, user: str):  # type: ignore[no-untyped-def]
    page = await context.new_page()
    page.on("console", lambda m: m.type in ("error", "warning") and ERRORS.append(m.text))
    page.on("pageerror", lambda e: ERRORS.append(str(e)))
    await page.goto(f"{url}/console/")
    await page.fill("#login-user", user)
    await page.fill("#login-password", PASSWORD)
    await page.click("#login-submit")
    await page.wait_for_selector("#live.on", timeout=10_000)
    return page


async def test_fire_acknowledge_verdict_seen_by_second_operator(clean_db, broker) -> None:  # type: ignore[no-untyped-def]
    from playwright.async_api import async_playwright

    async with pipeline(clean_db, broker, ["pnl-1"]) as p, async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            first = await login(await browser.new_context(), p.world.url, "operator")
            second = await login(await browser.new_context(), p.world.url, "admin")
            phone_ctx = await browser.new_context(viewport={"width": 390, "height": 844},
                                                  is_mobile=True, has_touch=True)
            phone = await login(phone_ctx, p.world.url, "manager")

            sent_ms = time.time() * 1000
            p.fire("pnl-1", zone=3, point=12)
            row = await first.wait_for_selector('#board [data-class="fire"]', timeout=5000)
            alarm_id = await row.get_attribute("data-alarm-id")
            seen_ms = await first.evaluate(f"window.firetower.seenAt[{alarm_id}]")
            latency = seen_ms - sent_ms
            print(f"fire visible in the console {latency:.0f} ms after the MQTT publish")
            assert latency < 1000

            # The pop-up is up on both operator screens (and the site manager's phone).
            for page in (first, second, phone):
                await page.wait_for_selector("#fire-popup:not([hidden])", timeout=2000)
            assert "pnl-1" in await first.inner_text("#fire-what")
            assert await first.evaluate("window.firetower.beeps") >= 1  # the sound started

            await first.click("#fire-open")
            await first.click('[data-action="Acknowledge"]')
            await first.wait_for_selector(f'#board [data-alarm-id="{alarm_id}"]'
                                          '[data-state="acknowledged"]', timeout=3000)
            await first.select_option("#verdict-select", "true_fire")
            await first.click('[data-action="Verdict"]')
            await first.wait_for_selector(f'#board [data-alarm-id="{alarm_id}"]'
                                          '[data-state="verified"]', timeout=3000)

            # The second operator sees the change live, and the pop-up went away.
            await second.wait_for_selector(f'#board [data-alarm-id="{alarm_id}"]'
                                           '[data-state="verified"]', timeout=3000)
            await second.wait_for_selector("#fire-popup", state="hidden", timeout=3000)
            await second.click(f'#board [data-alarm-id="{alarm_id}"]')
            await second.wait_for_selector('#timeline [data-kind="verdict"]', timeout=3000)
            kinds = await second.eval_on_selector_all("#timeline li",
                                                      "els => els.map(e => e.dataset.kind)")
            assert kinds == ["raise", "acknowledge", "verdict"]

            # Phone: the board fits the screen; the site view shows the plan with the marker.
            await phone.wait_for_selector(f'#board [data-alarm-id="{alarm_id}"]'
                                          '[data-state="verified"]', timeout=3000)
            assert await phone.evaluate(
                "document.documentElement.scrollWidth <= window.innerWidth + 1")
            assert await phone.is_hidden('[data-action="Acknowledge"]')  # may not handle
            await second.click('.tab[data-view="sites"]')
            await second.wait_for_selector('#plan .marker[data-device-id="pnl-1"].alarm',
                                           timeout=5000)
            assert ERRORS == []
        finally:
            await browser.close()
