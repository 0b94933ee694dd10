"""What the loop's routes share: the refusals of its writers as answers, and the files a
request body names.

Files named in a request body (a hazard's photos, a work order's report): each must exist
and be one the caller may attach, else 422 naming it. A file is the caller's to attach when it
uploaded it, or when it sees the site the file documents (docs/hazards-files-and-reports.md);
another's file is refused exactly as a missing one, so ids do not leak."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import asyncpg

from api.deps import Principal
from api.errors import Conflict, NotFound, Unprocessable
from hazards.refusal import Refused


async def check_attachable(pool: asyncpg.Pool, user: Principal, file_ids: Sequence[str]) -> None:
    if not file_ids:
        return
    rows = await pool.fetch("SELECT id, site_id, uploaded_by FROM files WHERE id = ANY($1::text[])",
                            list(file_ids))
    mine = {r["id"] for r in rows
            if r["uploaded_by"] == f"user:{user.name}" or (r["site_id"] is not None
                                                           and user.sees(r["site_id"]))
            or user.site_ids is None}
    missing = [f for f in file_ids if f not in mine]
    if missing:
        raise Unprocessable(f"file {missing[0]} not found: upload it first (POST /files)")


@asynccontextmanager
async def refusals() -> AsyncIterator[None]:
    """hazards' refusals as answers: not there 404, not in this state 409, else 422."""
    try:
        yield
    except Refused as exc:
        if exc.missing:
            raise NotFound(str(exc)) from None
        if exc.conflict:
            raise Conflict(str(exc)) from None
        raise Unprocessable(str(exc)) from None
