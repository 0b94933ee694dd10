"""The live stream's keep-alives come at their interval even while the hub wakes every
subscriber each second, and the interval is announced, so the console can call the stream
stale when they stop."""

from __future__ import annotations

import time

import httpx
import pytest

from api.config import ApiSettings
from tests.api.conftest import api_settings_for, seed
from tests.api.server import running_api

pytestmark = pytest.mark.integration


async def test_keepalives_at_the_announced_interval(clean_db) -> None:  # type: ignore[no-untyped-def]
    with running_api(api_settings_for(clean_db.url), ApiSettings(stream_keepalive_s=0.5)) as srv:
        world = await seed(clean_db.url, srv.url)
        headers = {"Authorization": f"Bearer {world.tokens['operator']}"}
        async with httpx.AsyncClient(base_url=f"{srv.url}/api/v1", timeout=10) as c, \
                c.stream("GET", "/alarms/stream", headers=headers) as r:
            assert r.headers["x-keepalive-seconds"] == "0.5"
            gaps, last = [], None
            async for line in r.aiter_lines():
                if line == ": keepalive":
                    now = time.monotonic()
                    if last is not None:
                        gaps.append(now - last)
                    last = now
                    if len(gaps) == 6:
                        break
    # Each comes 0.5 s after the last frame at the earliest, and within one idle wake (1 s).
    assert all(0.45 <= g <= 1.6 for g in gaps), gaps


async def test_a_valid_caller_stays_connected_across_rechecks(clean_db) -> None:  # type: ignore[no-untyped-def]
    """The periodic re-check of the caller authenticates with the caller's bearer token, not
    the stream's resume id: a valid session is not ended (it was, every recheck, so every
    console reconnected every 5 s and a fire in that second waited for the reconnect)."""
    with running_api(api_settings_for(clean_db.url),
                     ApiSettings(stream_keepalive_s=0.2, stream_recheck_s=0.3)) as srv:
        world = await seed(clean_db.url, srv.url)
        headers = {"Authorization": f"Bearer {world.tokens['operator']}"}
        for resume in (None, "0"):  # a fresh stream, and one resumed with Last-Event-ID
            h = headers if resume is None else {**headers, "Last-Event-ID": resume}
            t0 = time.monotonic()
            async with httpx.AsyncClient(base_url=f"{srv.url}/api/v1", timeout=10) as c, \
                    c.stream("GET", "/alarms/stream", headers=h) as r:
                lines = []
                async for line in r.aiter_lines():
                    lines.append(line)
                    if time.monotonic() - t0 > 2.0:
                        break
            assert "event: end" not in lines, lines
            assert time.monotonic() - t0 > 2.0  # still open after several re-checks
            assert lines.count(": keepalive") >= 1
