"""`GET /alarms/stream`: Server-Sent Events. First a `snapshot` event (unfinished alarms),
then one `alarm` event per change. Reconnect with `Last-Event-ID` (or `?after=`) to receive
exactly the changes not yet seen, without a new snapshot. See `api.stream`.

An open stream is a session that ends: it checks its caller again, as a new request would,
every `FIRETOWER_STREAM_RECHECK_S` (5 s), at once when this process changes a user, and when
the bearer token expires. A disabled user, a token from before a password, role or sites
change (token version), an expired token, a revoked API key, or a changed role or sites ends
the stream with an `end` event (`{"reason": ...}`); a reconnect is then authenticated and
filtered afresh."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Header, Query, Request, Security
from fastapi.responses import StreamingResponse

from api.deps import (
    ApiSettingsDep,
    Needs,
    PoolDep,
    Principal,
    SettingsDep,
    api_key_header,
    authenticate,
    oauth2,
)
from api.errors import Unauthorized, Unprocessable
from api.metrics import STREAM_CLIENTS, STREAM_EVENTS_SENT
from api.permissions import Permission
from api.shown import mark_shown, unshown
from api.stream import BadToken, Cursor, Hub, Message, deltas, snapshot
from firetower import db
from firetower.settings import Settings

router = APIRouter(tags=["alarms"])
Reader = Needs(Permission.ALARM_READ)
RETRY_MS = 1000  # the browser's reconnect delay
# api.stream.Cursor's token, or empty (no resume)
RESUME_PATTERN = r"^([0-9]{1,18}(:[0-9]{1,18}(,[0-9]{1,18})*)?)?$"
RESUME_MAX = 4000  # characters: the header and the query together within the HTTP server's 16 KiB


def _frame(msg: Message) -> bytes:
    return (f"id: {msg.token}\nevent: {msg.kind}\n"
            f"data: {json.dumps(msg.data, separators=(',', ':'))}\n\n").encode()


def _end(reason: str) -> bytes:
    return f"event: end\ndata: {json.dumps({'reason': reason})}\n\n".encode()


async def revoked(pool: asyncpg.Pool, settings: Settings, token: str | None,
                  api_key: str | None, user: Principal) -> str | None:
    """Why the stream's caller may no longer read it, or None. The database being briefly
    unavailable is not a reason: the next check decides."""
    if user.expires_at is not None and datetime.now(UTC) >= user.expires_at:
        return "token expired"
    try:
        now = await authenticate(pool, settings, token, api_key)
    except Unauthorized:
        return "credentials no longer valid"
    except Exception as exc:
        if db.is_transient(exc):
            return None
        raise
    if now.role != user.role or now.site_ids != user.site_ids:
        return "role or sites changed"
    return None


@router.get("/alarms/stream", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}},
                             "description": "SSE: `snapshot`, then `alarm` events"}})
async def stream(request: Request, user: Reader, pool: PoolDep, settings: ApiSettingsDep,
                 app_settings: SettingsDep,
                 token: Annotated[str | None, Security(oauth2)],
                 api_key: Annotated[str | None, Security(api_key_header)],
                 last_event_id: Annotated[str, Header(max_length=RESUME_MAX,
                                                      pattern=RESUME_PATTERN)] = "",
                 after: Annotated[str, Query(max_length=RESUME_MAX, pattern=RESUME_PATTERN)] = "",
                 ) -> StreamingResponse:
    resume_id = last_event_id or after  # not `token`: that is the caller's bearer token
    try:
        resume = Cursor.parse(resume_id) if resume_id else None
    except BadToken as exc:
        raise Unprocessable(str(exc)) from None
    hub: Hub = request.state.hub
    sites = user.site_ids
    keepalive = settings.stream_keepalive_s
    recheck_s = settings.stream_recheck_s

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
            checked, epoch = last, hub.users_epoch
            async for msg in deltas(pool, hub, cursor, sites, wake):
                if (time.monotonic() - checked >= recheck_s or hub.users_epoch != epoch
                        or (user.expires_at is not None
                            and datetime.now(UTC) >= user.expires_at)):
                    checked, epoch = time.monotonic(), hub.users_epoch
                    reason = await revoked(pool, app_settings, token, api_key, user)
                    if reason is not None:
                        yield _end(reason)
                        return
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
