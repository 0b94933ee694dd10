"""The files a request body names (the hazard loop's routes).

Files named in a request body (a hazard's photos, a work order's report): each must exist
and be one the caller may attach, else 422 naming it. A file is the caller's to attach when it
uploaded it, or when it sees the site the file documents (docs/hazards-files-and-reports.md);
another's file is refused exactly as a missing one, so ids do not leak."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from api.deps import Principal
from api.errors import Unprocessable


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
