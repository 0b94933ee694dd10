"""`GET /alarms/stream`: Server-Sent Events. First a `snapshot` event (unfinished alarms),
then one `alarm` event per change. Reconnect with `Last-Event-ID` (or `?after=`) to receive
exactly the changes not yet seen, without a new snapshot. See `api.stream`."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from api.deps import ApiSettingsDep, Needs, PoolDep
from api.errors import ApiError
from api.metrics import STREAM_CLIENTS, STREAM_EVENTS_SENT
from api.permissions import Permission
from api.shown import mark_shown, unshown
from api.stream import BadToken, Cursor, Hub, Message, deltas, snapshot

router = APIRouter(tags=["alarms"])
Reader = Needs(Permission.ALARM_READ)
RETRY_MS = 1000  # the browser's reconnect delay


def _frame(msg: Message) -> bytes:
    return (f"id: {msg.token}\nevent: {msg.kind}\n"
            f"data: {json.dumps(msg.data, separators=(',', ':'))}\n\n").encode()


@router.get("/alarms/stream", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "SSE: `snapshot`, then `alarm` events"}})
async def stream(request: Request, user: Reader, pool: PoolDep, settings: ApiSettingsDep,
                 last_event_id: Annotated[str | None, Header(max_length=200000)] = None,
                 after: Annotated[str | None, Query(max_length=200000)] = None,
                 ) -> StreamingResponse:
    token = last_event_id or after
    try:
        resume = Cursor.parse(token) if token else None
    except BadToken as exc:
        raise ApiError(str(exc)) from None
    hub: Hub = request.state.hub
    sites = user.site_ids
    keepalive = settings.stream_keepalive_s

    async def body() -> AsyncIterator[bytes]:
        with hub.subscribe() as wake, STREAM_CLIENTS.track_inprogress():
            # listening before the snapshot is read
            yield f"retry: {RETRY_MS}\n\n".encode()
            if resume is None:
                first = await snapshot(pool, sites)
                cursor = Cursor.parse(first.token)
                sent_at = datetime.now(UTC)
                yield _frame(first)
                mark_shown(pool, unshown(first.data["alarms"]), user, sent_at)
            else:
                cursor = resume
            last = time.monotonic()
            async for msg in deltas(pool, hub, cursor, sites, wake):
                if msg is not None:
                    sent_at = datetime.now(UTC)
                    yield _frame(msg)
                    STREAM_EVENTS_SENT.inc()
                    last = time.monotonic()
                    if msg.data.get("alarm") is not None:
                        mark_shown(pool, unshown([msg.data["alarm"]]), user, sent_at)
                elif time.monotonic() - last >= keepalive:
                    yield b": keepalive\n\n"
                    last = time.monotonic()

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no",
                                      # the console calls the stream stale past a few of these
                                      "X-Keepalive-Seconds": f"{keepalive:g}"})
