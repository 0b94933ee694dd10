"""The operator of `firetower bench e2e`, in its own process: signs in to the API, reads the
live alarm stream (SSE) and gives a `true_fire` verdict to every new fire alarm the moment its
frame arrives, as a duty operator who trusts every fire would. Time-stamps (wall clock, same
machine as every other clock of the run) each fire's arrival and the verdict's request and
answer, and counts the other alarm changes it was shown by class."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from typing import Any

import httpx


async def _operate(api_url: str, user: str, password: str, ready: Any, stop: Any
                   ) -> dict[str, Any]:
    seen: dict[int, dict[str, Any]] = {}
    shown_by_class: Counter[str] = Counter()
    errors: list[str] = []
    tasks: set[asyncio.Task[None]] = set()
    frames = 0
    async with httpx.AsyncClient(base_url=api_url, timeout=httpx.Timeout(30.0, read=None)) as c:
        r = await c.post("/api/v1/auth/token", data={"username": user, "password": password})
        r.raise_for_status()
        auth = {"Authorization": f"Bearer {r.json()['access_token']}"}

        async def verdict(alarm_id: int, rec: dict[str, Any]) -> None:
            rec["verdict_sent"] = time.time()
            try:
                resp = await c.post(f"/api/v1/alarms/{alarm_id}/verdict", headers=auth,
                                    json={"verdict": "true_fire", "reason": "bench e2e"})
                rec["verdict_status"] = resp.status_code
            except httpx.HTTPError as exc:
                errors.append(f"verdict {alarm_id}: {exc!r}")
            rec["verdict_done"] = time.time()

        def on_alarm(alarm: dict[str, Any], event: dict[str, Any] | None, at: float) -> None:
            shown_by_class[alarm.get("class", "?")] += 1
            if alarm.get("class") != "fire" or alarm["id"] in seen:
                return
            if event is not None and event.get("kind") not in ("raise", None):
                return
            rec = {"alarm_id": alarm["id"], "device_id": alarm.get("device_id"),
                   "point": alarm.get("point", ""), "type": alarm.get("type"), "shown": at}
            seen[alarm["id"]] = rec
            t = asyncio.create_task(verdict(alarm["id"], rec))
            tasks.add(t)
            t.add_done_callback(tasks.discard)

        async def read() -> None:
            nonlocal frames
            async with c.stream("GET", "/api/v1/alarms/stream", headers=auth) as resp:
                resp.raise_for_status()
                kind, data = "", []
                async for line in resp.aiter_lines():
                    if line:
                        if line.startswith("event:"):
                            kind = line[6:].strip()
                        elif line.startswith("data:"):
                            data.append(line[5:].lstrip())
                        continue
                    if not data:
                        continue
                    at = time.time()
                    frames += 1
                    doc = json.loads("\n".join(data))
                    if kind == "snapshot":
                        for a in doc.get("alarms", []):
                            on_alarm(a, None, at)
                        ready.set()
                    elif kind == "alarm" and doc.get("alarm"):
                        on_alarm(doc["alarm"], doc.get("event"), at)
                    kind, data = "", []

        reader = asyncio.create_task(read())
        while not stop.is_set() and not reader.done():
            await asyncio.sleep(0.1)
        reader.cancel()
        try:
            await reader
        except asyncio.CancelledError:
            pass
        except Exception as exc:  # the stream broke: report it, keep what was seen
            errors.append(f"stream: {exc!r}")
        if tasks:
            await asyncio.wait(tasks, timeout=30)
    return {"fires": list(seen.values()), "shown_by_class": dict(shown_by_class),
            "frames": frames, "errors": errors}


def operator_main(api_url: str, user: str, password: str, ready: Any, stop: Any,
                  out: Any) -> None:
    try:
        out.put(asyncio.run(_operate(api_url, user, password, ready, stop)))
    except Exception as exc:
        out.put({"fires": [], "shown_by_class": {}, "frames": 0, "errors": [repr(exc)]})
        ready.set()
