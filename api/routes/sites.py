"""`/sites`: sites with address, coordinates, contacts and fire plan; floors and floor plans."""

from __future__ import annotations

from typing import Any

import asyncpg
from fastapi import APIRouter, Request, Response, status

from api.deps import Needs, PoolDep, Principal
from api.errors import ApiError, NotFound, Unprocessable, responses
from api.permissions import Permission
from api.presence import ONLINE_SQL
from api.schemas import (
    FloorCreate,
    FloorPublic,
    SiteCreate,
    SiteHealth,
    SitePublic,
    SitesPublic,
    SiteUpdate,
)

router = APIRouter(prefix="/sites", tags=["sites"])
Reader = Needs(Permission.SITE_READ)
Writer = Needs(Permission.SITE_WRITE)
FloorWriter = Needs(Permission.FLOOR_WRITE)
# Browsers render these; anything else is refused so the API never serves active content.
PLAN_TYPES = {"image/png", "image/jpeg", "image/webp", "image/svg+xml"}
PLAN_HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
                "Cache-Control": "private, max-age=300", "X-Content-Type-Options": "nosniff"}
_SITE_COLS = ("id, name, address, latitude, longitude, contacts, fire_plan, created_at, unit_id, "
              "jurisdiction_id")


def _floor(site_id: str, r: Any) -> FloorPublic:
    return FloorPublic(id=r["id"], name=r["name"], level=r["level"], has_plan=r["has_plan"],
                       plan_url=(f"/api/v1/sites/{site_id}/floors/{r['id']}/plan"
                                 if r["has_plan"] else None))


async def _floors(pool: asyncpg.Pool, site_ids: list[str]) -> dict[str, list[FloorPublic]]:
    rows = await pool.fetch(
        "SELECT site_id, id, name, level, plan_image IS NOT NULL AS has_plan FROM floors "
        "WHERE site_id = ANY($1) ORDER BY site_id, level, id", site_ids)
    out: dict[str, list[FloorPublic]] = {s: [] for s in site_ids}
    for r in rows:
        out[r["site_id"]].append(_floor(r["site_id"], r))
    return out


async def load_site(pool: asyncpg.Pool, user: Principal, site_id: str) -> SitePublic:
    row = await pool.fetchrow(f"SELECT {_SITE_COLS} FROM sites WHERE id = $1", site_id)
    if row is None or not user.sees(site_id):
        raise NotFound("site not found")
    floors = await _floors(pool, [site_id])
    return SitePublic(**dict(row), floors=floors[site_id])


@router.get("", response_model=SitesPublic)
async def list_sites(user: Reader, pool: PoolDep) -> SitesPublic:
    rows = await pool.fetch(
        f"SELECT {_SITE_COLS} FROM sites WHERE ($1::text[] IS NULL OR id = ANY($1)) ORDER BY id",
        user.site_filter)
    floors = await _floors(pool, [r["id"] for r in rows])
    data = [SitePublic(**dict(r), floors=floors[r["id"]]) for r in rows]
    return SitesPublic(data=data, count=len(data))


@router.post("", response_model=SitePublic, status_code=status.HTTP_201_CREATED)
async def create_site(body: SiteCreate, user: Writer, pool: PoolDep) -> SitePublic:
    await pool.execute(
        "INSERT INTO sites (id, name, address, latitude, longitude, contacts, fire_plan) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7)", body.id, body.name, body.address, body.latitude,
        body.longitude, [c.model_dump() for c in body.contacts], body.fire_plan.model_dump())
    return await load_site(pool, user, body.id)


@router.get("/{site_id}", response_model=SitePublic)
async def get_site(site_id: str, user: Reader, pool: PoolDep) -> SitePublic:
    return await load_site(pool, user, site_id)


@router.patch("/{site_id}", response_model=SitePublic)
async def update_site(site_id: str, body: SiteUpdate, user: Writer, pool: PoolDep) -> SitePublic:
    await load_site(pool, user, site_id)
    fields = body.model_dump(exclude_unset=True)
    if "name" in fields and fields["name"] is None:
        raise Unprocessable("name: may not be null")
    for key in ("contacts", "fire_plan", "address"):
        if key in fields and fields[key] is None:
            fields[key] = [] if key == "contacts" else {} if key == "fire_plan" else ""
    if fields:
        cols = list(fields)
        sets = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(cols))
        await pool.execute(f"UPDATE sites SET {sets} WHERE id = $1", site_id,
                           *(fields[c] for c in cols))
    return await load_site(pool, user, site_id)


@router.delete("/{site_id}", status_code=204)
async def delete_site(site_id: str, user: Writer, pool: PoolDep) -> None:
    """Only a site with no devices can be deleted (409 otherwise)."""
    await load_site(pool, user, site_id)
    await pool.execute("DELETE FROM sites WHERE id = $1", site_id)


@router.get("/{site_id}/health", response_model=SiteHealth)
async def site_health(site_id: str, user: Reader, pool: PoolDep) -> SiteHealth:
    """Device health: how many in-service devices are online (the online rate). A device with
    an open offline alarm counts as offline, whatever its last status said (api/presence.py)."""
    await load_site(pool, user, site_id)
    r = await pool.fetchrow(
        "SELECT count(*) AS devices,"
        " count(*) FILTER (WHERE lifecycle = 'in_service') AS in_service,"
        " count(*) FILTER (WHERE lifecycle = 'in_service' AND online) AS online,"
        " count(*) FILTER (WHERE lifecycle = 'in_service' AND online = false) AS offline,"
        " count(*) FILTER (WHERE lifecycle = 'in_service' AND last_seen_at IS NULL)"
        "   AS never_seen "
        f"FROM (SELECT lifecycle, last_seen_at, {ONLINE_SQL} AS online FROM devices"
        "      WHERE site_id = $1) d", site_id)
    rate = r["online"] / r["in_service"] if r["in_service"] else None
    return SiteHealth(site_id=site_id, online_rate=rate, **dict(r))


# -- floors -------------------------------------------------------------------------------
@router.post("/{site_id}/floors", response_model=FloorPublic, status_code=201)
async def create_floor(site_id: str, body: FloorCreate, user: FloorWriter,
                       pool: PoolDep) -> FloorPublic:
    await load_site(pool, user, site_id)
    row = await pool.fetchrow(
        "INSERT INTO floors (site_id, id, name, level) VALUES ($1, $2, $3, $4) "
        "RETURNING id, name, level, false AS has_plan", site_id, body.id, body.name, body.level)
    return _floor(site_id, row)


@router.delete("/{site_id}/floors/{floor_id}", status_code=204)
async def delete_floor(site_id: str, floor_id: str, user: FloorWriter, pool: PoolDep) -> None:
    await load_site(pool, user, site_id)
    if await pool.fetchval("DELETE FROM floors WHERE site_id = $1 AND id = $2 RETURNING id",
                           site_id, floor_id) is None:
        raise NotFound("floor not found")


@router.put("/{site_id}/floors/{floor_id}/plan", response_model=FloorPublic, responses=responses(400),
            openapi_extra={"requestBody": {"required": True, "content": {
                t: {"schema": {"type": "string", "format": "binary", "minLength": 1}}
                for t in PLAN_TYPES}}})
async def upload_plan(site_id: str, floor_id: str, request: Request, user: FloorWriter,
                      pool: PoolDep) -> FloorPublic:
    """Upload the floor-plan image as the raw request body (PNG, JPEG, WebP or SVG)."""
    await load_site(pool, user, site_id)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype not in PLAN_TYPES:
        raise ApiError(f"content-type must be one of {sorted(PLAN_TYPES)}")
    # At most FIRETOWER_FLOOR_PLAN_MAX_BYTES: api/limits.py refuses more (413) before any of it
    # is buffered.
    body = await request.body()
    if not body:
        raise Unprocessable("empty image")
    row = await pool.fetchrow(
        "UPDATE floors SET plan_image = $3, plan_type = $4 WHERE site_id = $1 AND id = $2 "
        "RETURNING id, name, level, true AS has_plan", site_id, floor_id, bytes(body), ctype)
    if row is None:
        raise NotFound("floor not found")
    return _floor(site_id, row)


@router.get("/{site_id}/floors/{floor_id}/plan", response_class=Response,
            responses={200: {"content": {t: {} for t in PLAN_TYPES}}})
async def get_plan(site_id: str, floor_id: str, user: Reader, pool: PoolDep) -> Response:
    await load_site(pool, user, site_id)
    row = await pool.fetchrow("SELECT plan_image, plan_type FROM floors "
                              "WHERE site_id = $1 AND id = $2", site_id, floor_id)
    if row is None or row["plan_image"] is None:
        raise NotFound("floor plan not found")
    # SVG may hold script: forbid it from running when the plan is opened directly.
    return Response(row["plan_image"], media_type=row["plan_type"], headers=PLAN_HEADERS)
