"""Patrol plans, checkpoints, check-ins and double-random inspections
(docs/patrols-and-inspections.md). Decisions are hazards/patrols.py's and
hazards/inspections.py's; writes go through hazards/patrol_store.py. Scope is org.scope's:
a plan is seen through its grid (`visible_nodes`), a checkpoint and a check-in through their
site, an inspection task through its unit; anything else answers 404.

(No `from __future__ import annotations`: FastAPI reads the body and query types below.)
"""

import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Query, Response, status
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, BaseModel, Field, StrictBool, StringConstraints

from api.deps import PoolDep, Principal, require
from api.errors import ApiError, Conflict, NotFound, Unprocessable, responses
from api.hazard_schemas import HazardCategory
from api.org_schemas import Absent, Day, Page, Partial
from api.permissions import Permission
from api.routes.stats import TIME_ZONES
from api.schemas import MAX_ID, Latitude, Longitude, Name, NotBool, Strict, Timestamp
from hazards import inspections as ins
from hazards import patrol_store as store
from hazards import patrols as pt
from hazards.store import HazardRefused
from org.scope import visible_ids, visible_nodes

router = APIRouter(tags=["patrols"])
Reader = Annotated[Principal, require(Permission.PATROL_READ)]
Planner = Annotated[Principal, require(Permission.PATROL_PLAN)]
Patroller = Annotated[Principal, require(Permission.PATROL_CHECKIN)]
Drawer = Annotated[Principal, require(Permission.INSPECTION_DRAW)]
Limit = Annotated[int, Query(ge=1, le=1000)]
NodeQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
PHONE_PAGE = "/console/phone.html#checkin/"
MAX_WINDOW = timedelta(days=92)  # due/missed/coverage look back at most this far
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)  # ... and not before this

ItemId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
ItemText = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
Category = HazardCategory  # a failed item becomes a hazard of this category
Basis = Annotated[str, StringConstraints(max_length=500, pattern=r"^[^\x00]*$")]
Note = Annotated[str, StringConstraints(max_length=1000, pattern=r"^[^\x00]*$")]
LongText = Annotated[str, StringConstraints(max_length=2000, pattern=r"^[^\x00]*$")]
FileId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Photos = Annotated[list[FileId], Field(max_length=20)]
_ZONES = frozenset(TIME_ZONES)


def _zone(name: str) -> str:
    if name not in _ZONES:
        raise ValueError("an IANA time zone name is required, e.g. Asia/Shanghai")
    return name


TimeZone = Annotated[str, StringConstraints(max_length=64), AfterValidator(_zone), Field(
    json_schema_extra={"enum": TIME_ZONES})]
Every = Annotated[int, Field(ge=1, le=pt.MAX_EVERY), NotBool]
# Field before NotBool: after a validator, pydantic drops ge/le from the JSON schema
RefId = Annotated[int, Field(ge=1, le=MAX_ID), NotBool]
Token = Annotated[str, StringConstraints(min_length=1, max_length=128,
                                         pattern=r"^[A-Za-z0-9_-]+$")]


class ChecklistItem(Strict):
    id: ItemId
    text: ItemText
    category: Category = ""
    legal_basis: Basis = ""


Checklist = Annotated[list[ChecklistItem], Field(max_length=pt.MAX_CHECKLIST_ITEMS)]


class PlanCreate(Strict):
    jurisdiction_id: RefId  # a grid
    name: Name
    every: Every
    unit: pt.Unit
    time_zone: TimeZone = "UTC"
    starts_on: Day
    ends_on: Day | None = None
    checklist: Checklist = Field(default_factory=list)
    active: StrictBool = True


class PlanUpdate(Partial):
    jurisdiction_id: RefId | Absent = None
    name: Name | Absent = None
    every: Every | Absent = None
    unit: pt.Unit | Absent = None
    time_zone: TimeZone | Absent = None
    starts_on: Day | Absent = None
    ends_on: Day | None = None
    checklist: Checklist | Absent = None
    active: StrictBool | Absent = None


class CheckpointPublic(BaseModel):
    id: int
    plan_id: int
    site_id: str
    name: str
    location: str
    active: bool
    token_set_at: datetime
    created_at: datetime


class CheckpointIssued(CheckpointPublic):
    """Shown once: the token is kept only as a hash (a lost code gets a new token)."""
    token: str
    qr_url: str


class PlanPublic(BaseModel):
    id: int
    jurisdiction_id: int
    name: str
    every: int
    unit: pt.Unit
    time_zone: str
    starts_on: date
    ends_on: date | None
    checklist: list[ChecklistItem]
    active: bool
    created_by: str
    created_at: datetime
    updated_at: datetime
    checkpoints: list[CheckpointPublic] = Field(default_factory=list)


class CheckpointCreate(Strict):
    site_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
    name: Name
    location: Annotated[str, StringConstraints(max_length=500, pattern=r"^[^\x00]*$")] = ""


class CheckpointUpdate(Partial):
    name: Name | Absent = None
    location: Annotated[str, StringConstraints(max_length=500,
                                               pattern=r"^[^\x00]*$")] | Absent = None
    active: StrictBool | Absent = None


class ItemResult(Strict):
    item_id: ItemId
    passed: StrictBool
    note: Note = ""


class CheckinCreate(Strict):
    token: Token
    lat: Latitude | None = None
    lon: Longitude | None = None
    accuracy_m: Annotated[float, Field(ge=0, le=1_000_000), NotBool] | None = None
    photos: Photos = Field(default_factory=list)
    results: Annotated[list[ItemResult], Field(max_length=pt.MAX_CHECKLIST_ITEMS)] = Field(
        default_factory=list)
    note: LongText = ""
    # the phone's own id for this visit: sending it again answers the first visit
    client_ref: Annotated[str, StringConstraints(max_length=64,
                                                 pattern=r"^[A-Za-z0-9_.:-]*$")] = ""


class CheckinPublic(BaseModel):
    id: int
    checkpoint_id: int
    plan_id: int
    site_id: str
    at: datetime
    period_start: datetime
    period_end: datetime
    actor: str
    lat: float | None
    lon: float | None
    accuracy_m: float | None
    distance_m: float | None
    photos: list[str]
    results: list[ItemResult]
    note: str
    flags: list[str]
    hazard_ids: list[int] = Field(default_factory=list)


class DueCheckpoint(BaseModel):
    checkpoint_id: int
    name: str
    site_id: str
    site_name: str
    location: str


class DuePlan(BaseModel):
    plan_id: int
    plan_name: str
    jurisdiction_id: int
    period_start: datetime
    period_end: datetime
    checkpoints: list[DueCheckpoint]


class Missed(BaseModel):
    plan_id: int
    jurisdiction_id: int
    checkpoint_id: int
    site_id: str
    period_start: datetime
    period_end: datetime


class MissedPage(BaseModel):
    since: datetime
    until: datetime
    data: list[Missed]
    count: int
    truncated: bool


class GridCoverage(BaseModel):
    jurisdiction_id: int
    name: str
    plans: int
    expected: int      # checkpoint visits due in the periods that ended in the window
    visited: int
    missed: int
    coverage: float | None  # visited / expected
    flagged_checkins: int


class Coverage(BaseModel):
    since: datetime
    until: datetime
    grids: list[GridCoverage]


@asynccontextmanager
async def _refusals() -> AsyncIterator[None]:
    try:
        yield
    except store.PatrolError as exc:
        cls: type[ApiError] = {404: NotFound, 409: Conflict}.get(exc.status, Unprocessable)
        raise cls(str(exc)) from None
    except HazardRefused as exc:
        raise (Conflict if exc.conflict else Unprocessable)(str(exc)) from None


async def _nodes(pool: asyncpg.Pool, user: Principal) -> frozenset[int] | None:
    return await visible_nodes(pool, user.scope, user.site_ids)


async def _under(pool: asyncpg.Pool, user: Principal, table: str,
                 jurisdiction_id: int | None, limit: int, *, columns: str = "x.*",
                 order: str = "x.id") -> tuple[frozenset[int] | None, list[Any]]:
    """Rows of `table` (alias x) whose node the caller sees, under `jurisdiction_id` if given;
    with the nodes the caller sees."""
    nodes = await _nodes(pool, user)
    rows = await pool.fetch(
        f"SELECT {columns} FROM {table} x JOIN jurisdictions j ON j.id = x.jurisdiction_id "
        "WHERE ($1::bigint[] IS NULL OR x.jurisdiction_id = ANY($1)) AND ($2::bigint IS NULL "
        f"OR j.path @> ARRAY[$2]::bigint[]) ORDER BY {order} LIMIT $3",
        None if nodes is None else sorted(nodes), jurisdiction_id, limit)
    return nodes, list(rows)


def _aware(*times: datetime | None) -> None:
    if any(t is not None and t.tzinfo is None for t in times):
        raise Unprocessable("times need their UTC offset")


def _plan_public(row: Any, checkpoints: list[Any]) -> PlanPublic:
    return PlanPublic(**{**{k: row[k] for k in PlanPublic.model_fields if k != "checkpoints"},
                         "checklist": [ChecklistItem(**i)
                                       for i in store._jsonish(row["checklist"])]},
                      checkpoints=[CheckpointPublic(**{k: c[k] for k in
                                                       CheckpointPublic.model_fields})
                                   for c in checkpoints])


async def _load_plan(pool: asyncpg.Pool, user: Principal, plan_id: int) -> PlanPublic:
    row = await pool.fetchrow("SELECT * FROM patrol_plans WHERE id = $1", plan_id)
    nodes = await _nodes(pool, user)
    if row is None or (nodes is not None and row["jurisdiction_id"] not in nodes):
        raise NotFound("patrol plan not found")
    cps = await pool.fetch("SELECT * FROM patrol_checkpoints WHERE plan_id = $1 AND "
                           "($2::text[] IS NULL OR site_id = ANY($2)) ORDER BY id",
                           plan_id, user.site_filter)
    return _plan_public(row, list(cps))


async def _node_visible(pool: asyncpg.Pool, user: Principal, jurisdiction_id: int,
                        what: str = "jurisdiction") -> None:
    """404 unless the node exists and the caller sees it."""
    nodes = await _nodes(pool, user)
    if (nodes is not None and jurisdiction_id not in nodes) or not await pool.fetchval(
            "SELECT 1 FROM jurisdictions WHERE id = $1", jurisdiction_id):
        raise NotFound(f"{what} {jurisdiction_id} not found")


def _plan_values(body: BaseModel, *, partial: bool) -> dict[str, Any]:
    values = body.model_dump(exclude_unset=partial)
    if "checklist" in values:
        values["checklist"] = [dict(i) for i in values["checklist"]]
    if "unit" in values:
        values["unit"] = pt.Unit(values["unit"]).value
    return values


# -- plans and checkpoints -------------------------------------------------------------------

@router.get("/patrol-plans", response_model=Page[PlanPublic])
async def list_plans(user: Reader, pool: PoolDep, jurisdiction_id: NodeQuery = None,
                     limit: Limit = 200) -> Page[PlanPublic]:
    """The plans of the grids the caller sees (each with its checkpoints at the caller's
    sites); `jurisdiction_id` narrows to a node's subtree."""
    _, rows = await _under(pool, user, "patrol_plans", jurisdiction_id, limit)
    cps = await pool.fetch("SELECT * FROM patrol_checkpoints WHERE plan_id = ANY($1) AND "
                           "($2::text[] IS NULL OR site_id = ANY($2)) ORDER BY id",
                           [r["id"] for r in rows], user.site_filter)
    data = [_plan_public(r, [c for c in cps if c["plan_id"] == r["id"]]) for r in rows]
    return Page[PlanPublic](data=data, count=len(data))


@router.post("/patrol-plans", response_model=PlanPublic, status_code=status.HTTP_201_CREATED,
             responses=responses(409))
async def create_plan(body: PlanCreate, user: Planner, pool: PoolDep) -> PlanPublic:
    """A grid's plan (404 for a node that is not a grid the caller sees; 409 when it ends
    before it starts or names a checklist item twice)."""
    await _node_visible(pool, user, body.jurisdiction_id, "grid")
    if body.ends_on is not None and body.ends_on < body.starts_on:
        raise Conflict("ends_on lies before starts_on")
    _unique_items(body.checklist)
    async with _refusals(), pool.acquire() as conn:
        row = await store.create_plan(conn, f"user:{user.name}",
                                      _plan_values(body, partial=False))
    return await _load_plan(pool, user, row["id"])


def _unique_items(items: list[ChecklistItem] | None) -> None:
    ids = [i.id for i in items or []]
    twice = sorted({i for i in ids if ids.count(i) > 1})
    if twice:
        raise Conflict(f"checklist: item ids given twice: {', '.join(twice)}")


@router.get("/patrol-plans/{plan_id}", response_model=PlanPublic)
async def get_plan(plan_id: int, user: Reader, pool: PoolDep) -> PlanPublic:
    return await _load_plan(pool, user, plan_id)


@router.patch("/patrol-plans/{plan_id}", response_model=PlanPublic, responses=responses(409))
async def update_plan(plan_id: int, body: PlanUpdate, user: Planner, pool: PoolDep) -> PlanPublic:
    """Any field; a change of frequency or zone applies to the periods from now on and to
    every later count (check-ins keep the period they were recorded in)."""
    await _load_plan(pool, user, plan_id)
    if body.jurisdiction_id is not None:
        await _node_visible(pool, user, body.jurisdiction_id, "grid")
    _unique_items(body.checklist)
    async with _refusals(), pool.acquire() as conn:
        await store.update_plan(conn, plan_id, _plan_values(body, partial=True))
    return await _load_plan(pool, user, plan_id)


@router.delete("/patrol-plans/{plan_id}", status_code=status.HTTP_204_NO_CONTENT,
               responses=responses(409))
async def delete_plan(plan_id: int, user: Planner, pool: PoolDep) -> Response:
    """Only a plan without check-ins (409 otherwise: switch it off instead)."""
    await _load_plan(pool, user, plan_id)
    async with _refusals(), pool.acquire() as conn:
        await store.delete_plan(conn, plan_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _issued(row: Any, token: str) -> CheckpointIssued:
    return CheckpointIssued(**{k: row[k] for k in CheckpointPublic.model_fields}, token=token,
                            qr_url=PHONE_PAGE + token)


@router.post("/patrol-plans/{plan_id}/checkpoints", response_model=CheckpointIssued,
             status_code=status.HTTP_201_CREATED, responses=responses(409))
async def add_checkpoint(plan_id: int, body: CheckpointCreate, user: Planner,
                         pool: PoolDep) -> CheckpointIssued:
    """A checkpoint at a site of the plan's grid (409 for a site elsewhere). The answer holds
    its token and the QR code's URL, `/console/phone.html#checkin/<token>`, once."""
    await _load_plan(pool, user, plan_id)
    if not user.sees(body.site_id):
        raise NotFound("site not found")
    async with _refusals(), pool.acquire() as conn:
        row, token = await store.add_checkpoint(conn, plan_id, body.site_id, body.name,
                                                body.location)
    return _issued(row, token)


async def _load_checkpoint(pool: asyncpg.Pool, user: Principal, checkpoint_id: int) -> Any:
    row = await pool.fetchrow("SELECT c.*, p.jurisdiction_id FROM patrol_checkpoints c JOIN "
                              "patrol_plans p ON p.id = c.plan_id WHERE c.id = $1",
                              checkpoint_id)
    if row is None or not user.sees(row["site_id"]):
        raise NotFound("checkpoint not found")
    return row


@router.patch("/patrol-checkpoints/{checkpoint_id}", response_model=CheckpointPublic,
              responses=responses(409))
async def update_checkpoint(checkpoint_id: int, body: CheckpointUpdate, user: Planner,
                            pool: PoolDep) -> CheckpointPublic:
    await _load_checkpoint(pool, user, checkpoint_id)
    async with _refusals(), pool.acquire() as conn:
        row = await store.update_checkpoint(conn, checkpoint_id,
                                            body.model_dump(exclude_unset=True))
    return CheckpointPublic(**{k: row[k] for k in CheckpointPublic.model_fields})


@router.post("/patrol-checkpoints/{checkpoint_id}/token", response_model=CheckpointIssued,
             responses=responses(409))
async def replace_token(checkpoint_id: int, user: Planner, pool: PoolDep) -> CheckpointIssued:
    """A new token and QR URL (a code lost, copied or worn out); the old one stops working."""
    await _load_checkpoint(pool, user, checkpoint_id)
    async with _refusals(), pool.acquire() as conn:
        row, token = await store.replace_token(conn, checkpoint_id)
    return _issued(row, token)


# -- check-ins --------------------------------------------------------------------------------

def _checkin_public(row: Any, site_id: str, hazard_ids: list[int]) -> CheckinPublic:
    return CheckinPublic(**{k: row[k] for k in CheckinPublic.model_fields
                            if k not in ("site_id", "hazard_ids", "results")},
                         results=[ItemResult(**r) for r in store._jsonish(row["results"])],
                         site_id=site_id, hazard_ids=hazard_ids)


@router.post("/patrol-checkins", response_model=CheckinPublic,
             status_code=status.HTTP_201_CREATED,
             responses={200: {"model": CheckinPublic,
                              "description": "the same client_ref again: the first visit"},
                        **responses(409)})
async def check_in(body: CheckinCreate, user: Patroller, pool: PoolDep) -> Any:
    """A visit to the checkpoint whose QR/NFC token the phone read (404 for a token that
    names no checkpoint at the caller's sites). Time is the centre's. Recorded with its flags
    (`gps_far`, `repeat`, `before_start`, `after_end`, `plan_inactive`), never refused for
    them; a failed checklist item becomes a hazard (`hazard_ids`), in the same transaction."""
    if (body.lat is None) != (body.lon is None):
        raise Conflict("lat and lon come together")
    gps = None if body.lat is None or body.lon is None else pt.Gps(body.lat, body.lon,
                                                                   body.accuracy_m)
    if body.photos:
        known = {r["id"] for r in await pool.fetch("SELECT id FROM files WHERE id = ANY($1)",
                                                    body.photos)}
        if set(body.photos) - known:
            raise NotFound(f"file not found: {sorted(set(body.photos) - known)[0]}")
    data = store.CheckinInput(body.token, gps, tuple(body.photos),
                              tuple(pt.ItemResult(r.item_id, r.passed, r.note)
                                    for r in body.results), body.note, body.client_ref)
    async with _refusals(), pool.acquire() as conn:
        out = await store.check_in(conn, f"user:{user.name}", data, sites=user.site_ids)
    site = await pool.fetchval("SELECT site_id FROM patrol_checkpoints WHERE id = $1",
                               out.checkin["checkpoint_id"])
    public = _checkin_public(out.checkin, site, out.hazard_ids)
    if out.repeated:
        return JSONResponse(public.model_dump(mode="json"), status_code=200)
    return public


@router.get("/patrol-checkins", response_model=Page[CheckinPublic])
async def list_checkins(user: Reader, pool: PoolDep,
                        plan_id: NodeQuery = None, checkpoint_id: NodeQuery = None,
                        since: Timestamp | None = None, flagged: bool | None = None,
                        limit: Limit = 200) -> Page[CheckinPublic]:
    """Visits at the caller's sites, newest first; `flagged=true`: only those with a flag."""
    _aware(since)
    if since is not None:  # within the centre's years (an offset at year 9999 is valid JSON)
        since = min(max(since, EARLIEST), datetime.now(UTC))
    rows = await pool.fetch(
        "SELECT k.*, c.site_id FROM patrol_checkins k JOIN patrol_checkpoints c ON "
        "c.id = k.checkpoint_id WHERE ($1::text[] IS NULL OR c.site_id = ANY($1)) AND "
        "($2::bigint IS NULL OR k.plan_id = $2) AND ($3::bigint IS NULL OR "
        "k.checkpoint_id = $3) AND ($4::timestamptz IS NULL OR k.at >= $4) AND "
        "($5::boolean IS NULL OR (cardinality(k.flags) > 0) = $5) ORDER BY k.id DESC LIMIT $6",
        user.site_filter, plan_id, checkpoint_id, since, flagged, limit)
    hazards = await pool.fetch(
        "SELECT id, split_part(split_part(source_ref, ':', 2), '/', 1) AS checkin FROM hazards "
        "WHERE source = 'patrol' AND source_ref = ANY(SELECT 'checkin:' || k || '/' || "
        "i FROM unnest($1::bigint[]) k, unnest($2::text[]) i)",
        [r["id"] for r in rows], _failed_ids(rows)) if rows else []
    by_checkin: dict[str, list[int]] = {}
    for h in hazards:
        by_checkin.setdefault(h["checkin"], []).append(h["id"])
    data = [_checkin_public(r, r["site_id"], sorted(by_checkin.get(str(r["id"]), [])))
            for r in rows]
    return Page[CheckinPublic](data=data, count=len(data))


def _failed_ids(rows: list[Any]) -> list[str]:
    return sorted({str(i["item_id"]) for r in rows for i in store._jsonish(r["results"])
                   if not i["passed"]})


# -- due, missed, coverage --------------------------------------------------------------------

def _window(since: datetime | None, until: datetime | None,
            now: datetime) -> tuple[datetime, datetime]:
    _aware(since, until)
    until = max(min(until or now, now), EARLIEST)
    since = since or until - timedelta(days=7)
    return min(max(since, until - MAX_WINDOW), until), until


async def _states(pool: asyncpg.Pool, user: Principal, since: datetime, until: datetime,
                  jurisdiction_id: int | None = None,
                  plan_id: int | None = None) -> list[store.PlanState]:
    nodes = await _nodes(pool, user)
    if jurisdiction_id is not None and nodes is not None and jurisdiction_id not in nodes:
        raise NotFound("jurisdiction not found")
    async with pool.acquire() as conn:
        return await store.plan_states(conn, nodes=nodes, sites=user.site_ids, since=since,
                                       until=until, jurisdiction_id=jurisdiction_id,
                                       plan_id=plan_id)


@router.get("/patrols/due", response_model=list[DuePlan], responses=responses(404))
async def due(user: Reader, pool: PoolDep, jurisdiction_id: NodeQuery = None) -> list[DuePlan]:
    """What is left to patrol now: for each plan the caller sees, the period running now
    (today, for a daily plan, in the plan's time zone) and its checkpoints not yet visited."""
    now = datetime.now(UTC)
    out = []
    for s in await _states(pool, user, now, now, jurisdiction_id):
        plan = store.plan_of(s.plan)
        by_id = {c["id"]: c for c in s.checkpoints}
        period, todo = pt.due(plan, by_id, s.visits, now)
        if period is None or not todo:
            continue
        out.append(DuePlan(plan_id=s.plan["id"], plan_name=s.plan["name"],
                           jurisdiction_id=s.plan["jurisdiction_id"],
                           period_start=period.start, period_end=period.end,
                           checkpoints=[DueCheckpoint(
                               checkpoint_id=c, name=by_id[c]["name"],
                               site_id=by_id[c]["site_id"], site_name=by_id[c]["site_name"],
                               location=by_id[c]["location"]) for c in todo]))
    return out


@router.get("/patrols/missed", response_model=MissedPage, responses=responses(404))
async def missed(user: Reader, pool: PoolDep, since: Timestamp | None = None,
                 until: Timestamp | None = None, jurisdiction_id: NodeQuery = None,
                 plan_id: NodeQuery = None, limit: Limit = 500) -> MissedPage:
    """Checkpoint visits missed in the periods that ended between `since` (default 7 days
    ago) and `until` (default now), oldest first; the window is at most 92 days (an earlier
    `since` is moved up, and the answer says which window it covers)."""
    since, until = _window(since, until, datetime.now(UTC))
    out: list[Missed] = []
    for s in await _states(pool, user, since, until, jurisdiction_id, plan_id):
        sites = {c["id"]: c["site_id"] for c in s.checkpoints}
        for m in pt.missed(store.plan_of(s.plan), sites, s.visits, since, until):
            out.append(Missed(plan_id=s.plan["id"], jurisdiction_id=s.plan["jurisdiction_id"],
                              checkpoint_id=m.checkpoint_id, site_id=sites[m.checkpoint_id],
                              period_start=m.period.start, period_end=m.period.end))
    out.sort(key=lambda m: (m.period_start, m.plan_id, m.checkpoint_id))
    return MissedPage(since=since, until=until, data=out[:limit], count=min(len(out), limit),
                      truncated=len(out) > limit)


@router.get("/patrols/coverage", response_model=Coverage, responses=responses(404))
async def coverage(user: Reader, pool: PoolDep, since: Timestamp | None = None,
                   until: Timestamp | None = None,
                   jurisdiction_id: NodeQuery = None) -> Coverage:
    """Per grid: checkpoint visits expected in the periods that ended in the window, visited,
    missed, the share visited, and check-ins carrying a flag."""
    since, until = _window(since, until, datetime.now(UTC))
    grids: dict[int, dict[str, int]] = {}
    for s in await _states(pool, user, since, until, jurisdiction_id):
        plan = store.plan_of(s.plan)
        ids = [c["id"] for c in s.checkpoints]
        ended = [p for p in pt.periods(plan, since, until) if p.end <= until]
        miss = len(pt.missed(plan, ids, s.visits, since, until))
        g = grids.setdefault(s.plan["jurisdiction_id"], {"plans": 0, "expected": 0,
                                                         "missed": 0})
        g["plans"] += 1
        g["expected"] += len(ended) * len(ids)
        g["missed"] += miss
    flagged = {r["jurisdiction_id"]: r["n"] for r in await pool.fetch(
        "SELECT p.jurisdiction_id, count(*) AS n FROM patrol_checkins k JOIN patrol_plans p "
        "ON p.id = k.plan_id JOIN patrol_checkpoints c ON c.id = k.checkpoint_id WHERE "
        "cardinality(k.flags) > 0 AND k.at >= $1 AND k.at < $2 AND p.jurisdiction_id = ANY($3) "
        "AND ($4::text[] IS NULL OR c.site_id = ANY($4)) GROUP BY 1", since, until,
        list(grids), user.site_filter)}
    names = {r["id"]: r["name"] for r in await pool.fetch(
        "SELECT id, name FROM jurisdictions WHERE id = ANY($1)", list(grids))}
    rows = []
    for gid, g in sorted(grids.items()):
        visited = g["expected"] - g["missed"]
        rows.append(GridCoverage(jurisdiction_id=gid, name=names.get(gid, ""), plans=g["plans"],
                                 expected=g["expected"], visited=visited, missed=g["missed"],
                                 coverage=visited / g["expected"] if g["expected"] else None,
                                 flagged_checkins=flagged.get(gid, 0)))
    return Coverage(since=since, until=until, grids=rows)


# -- inspectors -------------------------------------------------------------------------------

class InspectorCreate(Strict):
    jurisdiction_id: RefId
    name: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00]*$")]
    user_id: RefId | None = None
    certificate_no: Annotated[str, StringConstraints(max_length=64, pattern=r"^[^\x00]*$")] = ""
    qualified_until: Day | None = None
    tied_unit_ids: Annotated[list[RefId], Field(max_length=1000)] = Field(default_factory=list)
    active: StrictBool = True


class InspectorUpdate(Partial):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100,
                                           pattern=r"^[^\x00]*$")] | Absent = None
    user_id: RefId | None = None
    certificate_no: Annotated[str, StringConstraints(max_length=64,
                                                     pattern=r"^[^\x00]*$")] | Absent = None
    qualified_until: Day | None = None
    tied_unit_ids: Annotated[list[RefId], Field(max_length=1000)] | Absent = None
    active: StrictBool | Absent = None


class InspectorPublic(BaseModel):
    id: int
    jurisdiction_id: int
    name: str
    user_id: int | None
    certificate_no: str
    qualified_until: date | None
    tied_unit_ids: list[int]
    active: bool


async def _load_inspector(pool: asyncpg.Pool, user: Principal, inspector_id: int) -> Any:
    row = await pool.fetchrow("SELECT * FROM inspectors WHERE id = $1", inspector_id)
    nodes = await _nodes(pool, user)
    if row is None or (nodes is not None and row["jurisdiction_id"] not in nodes):
        raise NotFound("inspector not found")
    return row


@router.get("/inspectors", response_model=Page[InspectorPublic], tags=["inspections"])
async def list_inspectors(user: Drawer, pool: PoolDep, jurisdiction_id: NodeQuery = None,
                          limit: Limit = 1000) -> Page[InspectorPublic]:
    """The qualified inspector pools of the nodes the caller sees."""
    _, rows = await _under(pool, user, "inspectors", jurisdiction_id, limit)
    data = [InspectorPublic(**dict(r)) for r in rows]
    return Page[InspectorPublic](data=data, count=len(data))


@router.post("/inspectors", response_model=InspectorPublic, status_code=status.HTTP_201_CREATED,
             responses=responses(409), tags=["inspections"])
async def create_inspector(body: InspectorCreate, user: Drawer,
                           pool: PoolDep) -> InspectorPublic:
    """An inspector with enforcement qualification (执法资格) in a node's pool, with the units
    it must never be drawn for (`tied_unit_ids`)."""
    await _node_visible(pool, user, body.jurisdiction_id)
    async with _refusals(), pool.acquire() as conn:
        row = await store.create_inspector(conn, body.model_dump())
    return InspectorPublic(**row)


@router.patch("/inspectors/{inspector_id}", response_model=InspectorPublic,
              responses=responses(409), tags=["inspections"])
async def update_inspector(inspector_id: int, body: InspectorUpdate, user: Drawer,
                           pool: PoolDep) -> InspectorPublic:
    await _load_inspector(pool, user, inspector_id)
    async with _refusals(), pool.acquire() as conn:
        row = await store.update_inspector(conn, inspector_id,
                                           body.model_dump(exclude_unset=True))
    return InspectorPublic(**row)


# -- draws ------------------------------------------------------------------------------------

class RiskWeights(Strict):
    key: Annotated[int, Field(ge=0, le=1000), NotBool] = ins.RISK_WEIGHTS["key"]
    crowded: Annotated[int, Field(ge=0, le=1000), NotBool] = ins.RISK_WEIGHTS["crowded"]
    general: Annotated[int, Field(ge=0, le=1000), NotBool] = ins.RISK_WEIGHTS["general"]
    small: Annotated[int, Field(ge=0, le=1000), NotBool] = ins.RISK_WEIGHTS["small"]


class DrawCreate(Strict):
    jurisdiction_id: RefId
    title: Name
    # announce it before the draw (or take it from a public source) so that nobody can pick
    # a seed for its result; left out, the centre makes a random one
    seed: Annotated[str, StringConstraints(min_length=1, max_length=200,
                                           pattern=r"^[^\x00]*$")] | None = None
    targets: Annotated[int, Field(ge=1, le=1000), NotBool]
    inspectors_per_target: Annotated[int, Field(ge=1, le=10), NotBool] = 2
    max_per_inspector: Annotated[int, Field(ge=1, le=1000), NotBool] | None = None
    risk_weights: RiskWeights = Field(default_factory=RiskWeights)
    history_days: Annotated[int, Field(ge=1, le=3660), NotBool] = 365
    exclude_ties: StrictBool = True
    checklist: Checklist = Field(default_factory=list)


class DrawnTask(BaseModel):
    task_id: int
    position: int
    unit_id: int
    unit_name: str
    inspector_ids: list[int]
    state: str
    published: bool


class DrawPublic(BaseModel):
    id: int
    jurisdiction_id: int
    title: str
    algorithm: str
    seed: str
    parameters: dict[str, Any]
    candidates: list[dict[str, Any]]
    inspectors: list[dict[str, Any]]
    result: list[dict[str, Any]]
    drawn_by: str
    drawn_at: datetime
    tasks: list[DrawnTask]


class DrawSummary(BaseModel):
    id: int
    jurisdiction_id: int
    title: str
    seed: str
    drawn_by: str
    drawn_at: datetime
    targets: int


class DrawCheck(BaseModel):
    draw_id: int
    matches: bool
    reason: str
    recorded: list[dict[str, Any]]
    recomputed: list[dict[str, Any]]


def _draw_visible(row: Any, nodes: frozenset[int] | None, units: frozenset[int] | None) -> bool:
    """A draw is the caller's when it sees the draw's node and every candidate unit of it (a
    node on the way to the caller's sites is seen, but a draw over it holds other units)."""
    if nodes is not None and row["jurisdiction_id"] not in nodes:
        return False
    return units is None or all(int(c["id"]) in units
                                for c in store._jsonish(row["candidates"]))


async def _load_draw(pool: asyncpg.Pool, user: Principal, draw_id: int) -> Any:
    row = await pool.fetchrow("SELECT * FROM inspection_draws WHERE id = $1", draw_id)
    nodes = await _nodes(pool, user)
    units = await visible_ids(pool, "unit", user.scope, user.site_ids)
    if row is None or not _draw_visible(row, nodes, units):
        raise NotFound("draw not found")
    return row


async def _draw_public(pool: asyncpg.Pool, row: Any) -> DrawPublic:
    tasks = await pool.fetch(
        "SELECT t.*, u.name AS unit_name FROM inspection_tasks t JOIN units u ON u.id = "
        "t.unit_id WHERE t.draw_id = $1 ORDER BY t.position", row["id"])
    j = store._jsonish
    return DrawPublic(
        id=row["id"], jurisdiction_id=row["jurisdiction_id"], title=row["title"],
        algorithm=row["algorithm"], seed=row["seed"], parameters=j(row["parameters"]),
        candidates=j(row["candidates"]), inspectors=j(row["inspectors"]),
        result=j(row["result"]), drawn_by=row["drawn_by"], drawn_at=row["drawn_at"],
        tasks=[DrawnTask(task_id=t["id"], position=t["position"], unit_id=t["unit_id"],
                         unit_name=t["unit_name"], inspector_ids=list(t["inspector_ids"]),
                         state=t["state"], published=t["published"]) for t in tasks])


@router.post("/inspection-draws", response_model=DrawPublic, status_code=status.HTTP_201_CREATED,
             responses=responses(409), tags=["inspections"])
async def create_draw(body: DrawCreate, user: Drawer, pool: PoolDep) -> DrawPublic:
    """Draw `targets` units of the node's subtree (those the caller sees), weighted by risk
    class and history, and `inspectors_per_target` inspectors for each from the node's
    qualified pool; record it with everything needed to run it again, and one task per unit.
    Fewer targets or inspectors than asked when there are not enough (the record says so)."""
    await _node_visible(pool, user, body.jurisdiction_id)
    _unique_items(body.checklist)
    units = await visible_ids(pool, "unit", user.scope, user.site_ids)
    req = store.DrawRequest(
        body.jurisdiction_id, body.title, body.seed or secrets.token_hex(16),
        ins.Params(body.targets, body.inspectors_per_target, body.max_per_inspector,
                   body.risk_weights.model_dump()),
        tuple(i.model_dump() for i in body.checklist), body.history_days, body.exclude_ties)
    async with _refusals(), pool.acquire() as conn:
        draw_id = await store.make_draw(conn, f"user:{user.name}", req, units=units)
    return await _draw_public(pool, await _load_draw(pool, user, draw_id))


@router.get("/inspection-draws", response_model=Page[DrawSummary], tags=["inspections"])
async def list_draws(user: Drawer, pool: PoolDep, jurisdiction_id: NodeQuery = None,
                     limit: Limit = 200) -> Page[DrawSummary]:
    units = await visible_ids(pool, "unit", user.scope, user.site_ids)
    nodes, rows = await _under(pool, user, "inspection_draws", jurisdiction_id, limit,
                               columns="x.*, jsonb_array_length(x.result) AS targets",
                               order="x.id DESC")
    data = [DrawSummary(**{k: r[k] for k in DrawSummary.model_fields}) for r in rows
            if _draw_visible(r, nodes, units)]
    return Page[DrawSummary](data=data, count=len(data))


@router.get("/inspection-draws/{draw_id}", response_model=DrawPublic, tags=["inspections"])
async def get_draw(draw_id: int, user: Drawer, pool: PoolDep) -> DrawPublic:
    """The draw as recorded: seed, parameters, every candidate with its counts, weight and
    key, the inspector pool, the result, and its tasks."""
    return await _draw_public(pool, await _load_draw(pool, user, draw_id))


@router.get("/inspection-draws/{draw_id}/verify", response_model=DrawCheck, tags=["inspections"])
async def verify_draw(draw_id: int, user: Drawer, pool: PoolDep) -> DrawCheck:
    """Run the draw again from its record and compare the result, weights and keys."""
    row = await _load_draw(pool, user, draw_id)
    v = ins.verify(store.record_of(row))
    return DrawCheck(draw_id=draw_id, matches=v.matches, reason=v.reason,
                     recorded=v.recorded, recomputed=v.recomputed)


# -- tasks, results, publication --------------------------------------------------------------

class TaskItemResult(Strict):
    item_id: ItemId
    passed: StrictBool
    note: Note = ""
    site_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")] | None = None


class TaskResults(Strict):
    results: Annotated[list[TaskItemResult], Field(max_length=pt.MAX_CHECKLIST_ITEMS)]
    findings: Annotated[str, StringConstraints(max_length=4000, pattern=r"^[^\x00]*$")] = ""
    photos: Photos = Field(default_factory=list)


class Publication(Strict):
    summary: Annotated[str, StringConstraints(min_length=1, max_length=2000,
                                              pattern=r"^[^\x00]*$")]


class TaskPublic(BaseModel):
    id: int
    draw_id: int
    position: int
    unit_id: int
    unit_name: str
    inspector_ids: list[int]
    state: Literal["assigned", "done"]
    results: list[TaskItemResult]
    findings: str
    photos: list[str]
    inspected_at: datetime | None
    recorded_by: str | None
    published: bool
    public_summary: str
    published_at: datetime | None
    hazard_ids: list[int] = Field(default_factory=list)


class PublishedResult(BaseModel):
    """What the public sees of an inspection (一公开)."""
    task_id: int
    draw_title: str
    drawn_at: datetime
    unit_name: str
    credit_code: str | None
    inspected_at: datetime
    items: int
    failed: int
    failed_items: list[str]
    summary: str
    published_at: datetime


_TASK_SQL = ("SELECT t.*, u.name AS unit_name FROM inspection_tasks t JOIN units u ON "
             "u.id = t.unit_id WHERE t.id = $1")


async def _task_public(pool: asyncpg.Pool, row: Any) -> TaskPublic:
    hazards = await pool.fetch("SELECT id FROM hazards WHERE source = 'inspection' AND "
                               "source_ref LIKE $1 ORDER BY id", f"inspection:{row['id']}/%")
    return TaskPublic(**{k: row[k] for k in TaskPublic.model_fields
                         if k not in ("results", "hazard_ids", "inspector_ids")},
                      inspector_ids=list(row["inspector_ids"]),
                      results=[TaskItemResult(**r) for r in store._jsonish(row["results"])],
                      hazard_ids=[h["id"] for h in hazards])


async def _load_task(pool: asyncpg.Pool, user: Principal, task_id: int, *,
                     published_ok: bool = False) -> Any:
    """A task of a unit the caller sees; a published one is anyone's to read."""
    row = await pool.fetchrow(_TASK_SQL, task_id)
    if row is None:
        raise NotFound("inspection task not found")
    if published_ok and row["published"]:
        return row
    units = await visible_ids(pool, "unit", user.scope, user.site_ids)
    if units is not None and row["unit_id"] not in units:
        raise NotFound("inspection task not found")
    return row


@router.get("/inspection-tasks", response_model=Page[TaskPublic], tags=["inspections"])
async def list_tasks(user: Reader, pool: PoolDep, draw_id: NodeQuery = None,
                     published: bool | None = None, limit: Limit = 200) -> Page[TaskPublic]:
    """Inspection tasks of the units the caller sees, newest draw first."""
    units = await visible_ids(pool, "unit", user.scope, user.site_ids)
    rows = await pool.fetch(
        "SELECT t.*, u.name AS unit_name FROM inspection_tasks t JOIN units u ON u.id = "
        "t.unit_id WHERE ($1::bigint[] IS NULL OR t.unit_id = ANY($1)) AND ($2::bigint IS NULL "
        "OR t.draw_id = $2) AND ($3::boolean IS NULL OR t.published = $3) "
        "ORDER BY t.draw_id DESC, t.position LIMIT $4",
        None if units is None else sorted(units), draw_id, published, limit)
    data = [await _task_public(pool, r) for r in rows]
    return Page[TaskPublic](data=data, count=len(data))


@router.get("/inspection-tasks/{task_id}", response_model=TaskPublic, tags=["inspections"])
async def get_task(task_id: int, user: Reader, pool: PoolDep) -> TaskPublic:
    """One task; a published one is readable by every signed-in user, whatever its scope."""
    return await _task_public(pool, await _load_task(pool, user, task_id, published_ok=True))


@router.post("/inspection-tasks/{task_id}/results", response_model=TaskPublic,
             responses=responses(409), tags=["inspections"])
async def record_results(task_id: int, body: TaskResults, user: Drawer,
                         pool: PoolDep) -> TaskPublic:
    """The inspection's result per checklist item of the draw (409 for an item the checklist
    does not have, or once published); a failed item becomes a hazard of the unit (at the
    item's site when one is named), in the same transaction. Recording again replaces the
    results; hazards already made stay, one per item."""
    await _load_task(pool, user, task_id)
    for r in body.results:
        if r.site_id is not None and not user.sees(r.site_id):
            raise NotFound("site not found")
    ids = [r.item_id for r in body.results]
    if len(set(ids)) != len(ids):
        raise Conflict("results: an item is answered twice")
    async with _refusals(), pool.acquire() as conn:
        draw = await conn.fetchval("SELECT d.parameters FROM inspection_tasks t JOIN "
                                   "inspection_draws d ON d.id = t.draw_id WHERE t.id = $1",
                                   task_id)
        known = {str(i["id"]) for i in store._jsonish(draw).get("checklist", [])}
        unknown = sorted(set(ids) - known)
        if unknown:
            raise Conflict(f"results: not on the draw's checklist: {', '.join(unknown)}")
        await store.record_results(conn, f"user:{user.name}", task_id,
                                   [store.TaskResult(r.item_id, r.passed, r.note, r.site_id)
                                    for r in body.results], body.findings, body.photos)
    return await _task_public(pool, await _load_task(pool, user, task_id))


@router.post("/inspection-tasks/{task_id}/publish", response_model=TaskPublic,
             responses=responses(409), tags=["inspections"])
async def publish(task_id: int, body: Publication, user: Drawer, pool: PoolDep) -> TaskPublic:
    """Make the result public (双随机、一公开) with a summary written for the public: the
    unit, the date, how many items failed and which, and the summary. The internal findings,
    photos and inspectors stay internal. 409 before results exist, or when already public."""
    await _load_task(pool, user, task_id)
    async with _refusals(), pool.acquire() as conn:
        await store.publish(conn, f"user:{user.name}", task_id, body.summary)
    return await _task_public(pool, await _load_task(pool, user, task_id))


@router.get("/inspections/published", response_model=Page[PublishedResult],
            responses=responses(503), tags=["inspections"])
async def published(pool: PoolDep, limit: Limit = 100,
                    before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None
                    ) -> Page[PublishedResult]:
    """Published inspection results, newest first, for anyone: no sign-in (the policy makes
    results public). `before`: the task id to page back from."""
    rows = await pool.fetch(
        "SELECT t.id, t.results, t.inspected_at, t.public_summary, t.published_at, d.title, "
        "d.drawn_at, d.parameters, u.name AS unit_name, u.credit_code FROM inspection_tasks t "
        "JOIN inspection_draws d ON d.id = t.draw_id JOIN units u ON u.id = t.unit_id "
        "WHERE t.published AND ($1::bigint IS NULL OR t.id < $1) ORDER BY t.id DESC LIMIT $2",
        before, limit)
    data = []
    for r in rows:
        texts = {str(i["id"]): str(i["text"])
                 for i in store._jsonish(r["parameters"]).get("checklist", [])}
        results = store._jsonish(r["results"])
        failed = [texts.get(str(x["item_id"]), str(x["item_id"])) for x in results
                  if not x["passed"]]
        data.append(PublishedResult(
            task_id=r["id"], draw_title=r["title"], drawn_at=r["drawn_at"],
            unit_name=r["unit_name"], credit_code=r["credit_code"],
            inspected_at=r["inspected_at"], items=len(results), failed=len(failed),
            failed_items=failed, summary=r["public_summary"], published_at=r["published_at"]))
    return Page[PublishedResult](data=data, count=len(data))
