"""Hazards (隐患): the closed loop (docs/hazards.md). Every write goes through hazards.store, the
one writer; every read is scoped by the caller's sites and organisation (org.scope): a hazard
of a site the caller does not see, or of a node or unit outside its scope, answers 404.

- `GET /hazards`: a filtered list (state, severity, source, owner, subtree, unit, site,
  campaign, overdue, listed);
- `GET /hazards/lists?by=jurisdiction|department|campaign`: the lists (清单) with progress and
  ageing;
- `POST /hazards`: record one (by hand, from a department's notice, or converting an alarm);
- `GET /hazards/{id}`: with its whole event log;
- `POST /hazards/{id}/steps`: one step of the lifecycle (409 names the allowed next steps);
- `PUT /hazards/{id}/deadline`: a supervisor moves the deadline, with a reason.
"""

from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Path, Query, status

from api.attachments import check_attachable
from api.deps import PoolDep, Principal, require
from api.errors import Forbidden, NotFound, Unprocessable, refusals
from api.hazard_schemas import (
    DeadlineChange,
    HazardCreate,
    HazardDetail,
    HazardEvent,
    HazardListRow,
    HazardLists,
    HazardPublic,
    HazardsPublic,
    HazardStateName,
    HazardStep,
    SeverityName,
    StepInfo,
)
from api.permissions import Permission
from api.schemas import MAX_ID, Id
from hazards import store
from hazards.model import (
    NEEDS_NOTE,
    TRIGGER_PERMISSION,
    HazardDraft,
    HazardState,
    Severity,
    Source,
    Trigger,
    allowed,
    is_overdue,
    transition,
)
from hazards.policy import from_env
from org.scope import visible_ids

router = APIRouter(tags=["hazards"])
Reader = Annotated[Principal, require(Permission.HAZARD_READ)]
Reporter = Annotated[Principal, require(Permission.HAZARD_REPORT)]
Supervisor = Annotated[Principal, require(Permission.HAZARD_SUPERVISE)]
Limit = Annotated[int, Query(ge=1, le=5000)]
RowQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
HazardId = Annotated[int, Path(ge=1, le=MAX_ID)]
POLICY = from_env()


def who(user: Principal) -> str:
    return f"user:{user.name}"


class Visibility:
    """What of the hazards the caller sees, as query parameters: its sites ($1), and for
    hazards with no site, the nodes of its own subtree ($2) and its units ($3)."""

    def __init__(self, sites: list[str] | None, nodes: list[int], units: list[int]) -> None:
        self.sites, self.nodes, self.units = sites, nodes, units

    SQL = ("($1::text[] IS NULL OR h.site_id = ANY($1) OR (h.site_id IS NULL AND "
           "(h.jurisdiction_id = ANY($2::bigint[]) OR h.owner_id = ANY($2::bigint[]) "
           "OR h.unit_id = ANY($3::bigint[]))))")

    @property
    def args(self) -> list[Any]:
        return [self.sites, self.nodes, self.units]


async def visibility(pool: asyncpg.Pool, user: Principal) -> Visibility:
    if user.site_ids is None:
        return Visibility(None, [], [])
    nodes: list[int] = []
    if user.scope.kind == "jurisdiction":
        nodes = [r[0] for r in await pool.fetch(
            "SELECT id FROM jurisdictions WHERE path @> ARRAY[$1]::bigint[]", user.scope.id)]
    units = await visible_ids(pool, "unit", user.scope, user.site_ids)
    return Visibility(sorted(user.site_ids), nodes, sorted(units or ()))


_SELECT = """
SELECT h.*, o.name AS owner_name, o.level AS owner_level, l.name AS listed_by_name,
       s.name AS site_name
FROM hazards h LEFT JOIN jurisdictions o ON o.id = h.owner_id
LEFT JOIN jurisdictions l ON l.id = h.listed_by_id LEFT JOIN sites s ON s.id = h.site_id
WHERE """ + Visibility.SQL


def my_steps(user: Principal, state: HazardState) -> list[StepInfo]:
    """The steps the state allows that the caller's role may take, and what each needs."""
    return [StepInfo(trigger=t.value, needs_note=t in NEEDS_NOTE,
                     photo=("required" if POLICY.photo_required_on_submit else "optional")
                     if transition(state, t) is HazardState.SUBMITTED else "none")
            for t in allowed(state) if user.can(Permission(TRIGGER_PERMISSION[t]))]


def _public(r: Any, now: datetime, user: Principal, cls: type[HazardPublic] = HazardPublic,
            **extra: Any) -> Any:
    state = HazardState(r["state"])
    end = r["closed_at"] or now
    return cls(
        **{k: r[k] for k in (
            "id", "source", "source_ref", "title", "description", "category", "legal_basis",
            "severity", "state", "site_id", "site_name", "unit_id", "jurisdiction_id",
            "owner_id", "owner_name", "owner_level", "responsible_name", "responsible_phone",
            "campaign", "deadline", "escalations", "listed", "listed_by_id", "listed_by_name",
            "files_before", "files_after", "found_by", "submitted_by", "found_at",
            "notified_at", "receipt_at", "submitted_at", "verified_at", "closed_at")},
        overdue=is_overdue(state, r["deadline"], now),
        age_days=round((end - r["found_at"]).total_seconds() / 86400, 2),
        allowed=[t.value for t in allowed(state)], my_steps=my_steps(user, state), **extra)


@router.get("/hazards", response_model=HazardsPublic)
async def list_hazards(user: Reader, pool: PoolDep,
                       state: HazardStateName | None = None,
                       severity: SeverityName | None = None,
                       source: Annotated[str | None, Query(max_length=20)] = None,
                       jurisdiction_id: RowQuery = None, owner_id: RowQuery = None,
                       unit_id: RowQuery = None, department_id: RowQuery = None,
                       site_id: Id | None = None,
                       campaign: Annotated[str | None, Query(max_length=100)] = None,
                       overdue: bool | None = None, listed: bool | None = None,
                       open: bool | None = None, limit: Limit = 500) -> HazardsPublic:
    """Hazards the caller sees, most urgent first (overdue, then the nearest deadline).
    `jurisdiction_id` takes the node's whole subtree, `department_id` the units it supervises;
    `open=true` leaves out closed ones. `my_steps`: the steps the caller may take now."""
    vis = await visibility(pool, user)
    now = datetime.now(UTC)
    rows = await pool.fetch(
        _SELECT + " AND ($4::text IS NULL OR h.state = $4) AND ($5::text IS NULL OR h.severity = $5)"
        " AND ($6::text IS NULL OR h.source = $6)"
        " AND ($7::bigint IS NULL OR h.jurisdiction_id IN (SELECT id FROM jurisdictions"
        "      WHERE path @> ARRAY[$7::bigint]))"
        " AND ($8::bigint IS NULL OR h.owner_id = $8) AND ($9::bigint IS NULL OR h.unit_id = $9)"
        " AND ($10::text IS NULL OR h.site_id = $10) AND ($11::text IS NULL OR h.campaign = $11)"
        " AND ($12::boolean IS NULL OR (h.state IN ('found', 'notified', 'rectifying')"
        "      AND h.deadline < $13) = $12)"
        " AND ($14::boolean IS NULL OR h.listed = $14)"
        " AND ($15::boolean IS NULL OR (h.state <> 'closed') = $15)"
        " AND ($17::bigint IS NULL OR h.unit_id IN (SELECT id FROM units WHERE department_id = $17))"
        " ORDER BY (h.state IN ('found', 'notified', 'rectifying') AND h.deadline < $13) DESC,"
        " h.state = 'closed', h.deadline NULLS LAST, h.id LIMIT $16",
        *vis.args, state, severity, source, jurisdiction_id, owner_id, unit_id, site_id,
        campaign, overdue, now, listed, open, limit, department_id)
    data = [_public(r, now, user) for r in rows]
    return HazardsPublic(data=data, count=len(data))


_GROUPS = {
    "jurisdiction": ("coalesce(h.owner_id::text, '')",
                     "coalesce((SELECT name FROM jurisdictions WHERE id = h.owner_id), '')"),
    "department": ("coalesce(u.department_id::text, '')",
                   "coalesce((SELECT name FROM departments WHERE id = u.department_id), '')"),
    "campaign": ("h.campaign", "h.campaign"),
}


@router.get("/hazards/lists", response_model=HazardLists)
async def hazard_lists(user: Reader, pool: PoolDep,
                       by: Annotated[str, Query(pattern="^(jurisdiction|department|campaign)$")]
                       = "jurisdiction") -> HazardLists:
    """The lists (清单): per owning node, supervising department or campaign, how many hazards,
    how many open, closed and overdue, the closure rate, and the open ones by age."""
    vis = await visibility(pool, user)
    key, name = _GROUPS[by]
    rows = await pool.fetch(
        f"SELECT {key} AS key, {name} AS name, count(*) AS total,"
        " count(*) FILTER (WHERE h.state <> 'closed') AS open,"
        " count(*) FILTER (WHERE h.state = 'closed') AS closed,"
        " count(*) FILTER (WHERE h.state IN ('found', 'notified', 'rectifying')"
        "   AND h.deadline < $4) AS overdue,"
        " count(*) FILTER (WHERE h.listed AND h.state <> 'closed') AS listed,"
        " count(*) FILTER (WHERE h.state <> 'closed' AND $4 - h.found_at < interval '7 days') AS a0,"
        " count(*) FILTER (WHERE h.state <> 'closed' AND $4 - h.found_at >= interval '7 days'"
        "   AND $4 - h.found_at < interval '30 days') AS a1,"
        " count(*) FILTER (WHERE h.state <> 'closed' AND $4 - h.found_at >= interval '30 days'"
        "   AND $4 - h.found_at < interval '90 days') AS a2,"
        " count(*) FILTER (WHERE h.state <> 'closed' AND $4 - h.found_at >= interval '90 days') AS a3"
        " FROM hazards h LEFT JOIN units u ON u.id = h.unit_id"
        f" WHERE {Visibility.SQL} GROUP BY 1, 2 ORDER BY 6 DESC, 4 DESC, 1",
        *vis.args, datetime.now(UTC))
    data = [HazardListRow(
        key=r["key"], name=r["name"], total=r["total"], open=r["open"], closed=r["closed"],
        overdue=r["overdue"], listed=r["listed"],
        closure_rate=round(r["closed"] / r["total"], 4) if r["total"] else None,
        ageing={"0-7d": r["a0"], "7-30d": r["a1"], "30-90d": r["a2"], "90d+": r["a3"]})
        for r in rows]
    return HazardLists(by=by, data=data)


async def _load(pool: asyncpg.Pool, user: Principal, hazard_id: int) -> Any:
    vis = await visibility(pool, user)
    row = await pool.fetchrow(_SELECT + " AND h.id = $4", *vis.args, hazard_id)
    if row is None:
        raise NotFound("hazard not found")
    return row


@router.get("/hazards/{hazard_id}", response_model=HazardDetail)
async def get_hazard(hazard_id: HazardId, user: Reader, pool: PoolDep) -> HazardDetail:
    """A hazard with its event log (append-only: every step, who, when, why)."""
    row = await _load(pool, user, hazard_id)
    events = await pool.fetch("SELECT * FROM hazard_events WHERE hazard_id = $1 ORDER BY id",
                              hazard_id)
    return _public(row, datetime.now(UTC), user, HazardDetail,
                   events=[HazardEvent(**dict(e)) for e in events])


async def _check_placement(pool: asyncpg.Pool, user: Principal, body: HazardCreate) -> None:
    """A hazard may only be recorded where the caller sees: its site, unit and node."""
    if user.site_ids is None:
        return
    if body.site_id is not None and body.site_id not in user.site_ids:
        raise NotFound(f"site {body.site_id} not found")
    if body.unit_id is not None:
        units = await visible_ids(pool, "unit", user.scope, user.site_ids)
        if units is not None and body.unit_id not in units:
            raise NotFound(f"unit {body.unit_id} not found")
    if body.jurisdiction_id is not None:
        vis = await visibility(pool, user)
        inside = body.jurisdiction_id in vis.nodes or bool(await pool.fetchval(
            "SELECT 1 FROM sites WHERE jurisdiction_id = $1 AND id = ANY($2::text[])",
            body.jurisdiction_id, vis.sites))
        if not inside:
            raise NotFound(f"jurisdiction {body.jurisdiction_id} not found")
    if body.site_id is None and body.unit_id is None and body.jurisdiction_id is None:
        raise Unprocessable("a scoped user names the site, unit or jurisdiction of the hazard")


@router.post("/hazards", response_model=HazardDetail, status_code=status.HTTP_201_CREATED)
async def create_hazard(body: HazardCreate, user: Reporter, pool: PoolDep) -> HazardDetail:
    """Record a hazard. `source: alarm` converts an IoT alarm (`alarm_id`): the site comes from
    the alarm, and converting it twice answers the same hazard. A deadline in the past, or a
    site, unit or node outside the caller's scope, is refused."""
    site_id, ref = body.site_id, ""
    if body.source == "alarm":
        if body.alarm_id is None:
            raise Unprocessable("source 'alarm' needs the alarm_id converted")
        alarm = await pool.fetchrow("SELECT site_id FROM alarms WHERE id = $1", body.alarm_id)
        if alarm is None or not user.sees(alarm["site_id"]):
            raise NotFound(f"alarm {body.alarm_id} not found")
        site_id, ref = site_id or alarm["site_id"], f"alarm:{body.alarm_id}"
    elif body.alarm_id is not None:
        raise Unprocessable("alarm_id is given only with source 'alarm'")
    body = body.model_copy(update={"site_id": site_id})
    await _check_placement(pool, user, body)
    await check_attachable(pool, user, body.files)
    if body.deadline is not None and body.deadline.tzinfo is None:
        raise Unprocessable("the deadline needs its UTC offset")
    draft = HazardDraft(
        Source(body.source), body.title, site_id=site_id, unit_id=body.unit_id,
        jurisdiction_id=body.jurisdiction_id, description=body.description,
        category=body.category, legal_basis=body.legal_basis, severity=Severity(body.severity),
        deadline=body.deadline, source_ref=ref, responsible_name=body.responsible_name,
        responsible_phone=body.responsible_phone, campaign=body.campaign,
        files_before=tuple(body.files))
    async with refusals(), pool.acquire() as conn:
        hid = await store.create_hazard(conn, who(user), draft, policy=POLICY)
    return await get_hazard(hid, user, pool)


@router.post("/hazards/{hazard_id}/steps", response_model=HazardDetail)
async def hazard_step(hazard_id: HazardId, body: HazardStep, user: Reader,
                      pool: PoolDep) -> HazardDetail:
    """One step: notify (抄告), receipt, submit (with photos), fix_on_spot, verify (复查, by
    someone other than the submitter), reject (back to rectifying, with the reason), close.
    A step the state does not allow answers 409 naming the allowed ones; a step the caller's
    role may not take answers 403."""
    trigger = Trigger(body.trigger)
    if not user.can(Permission(TRIGGER_PERMISSION[trigger])):
        raise Forbidden(f"role {user.role} may not {trigger.value} a hazard")
    await _load(pool, user, hazard_id)
    await check_attachable(pool, user, body.files)
    async with refusals(), pool.acquire() as conn:
        await store.step(conn, hazard_id, trigger, who(user), note=body.note,
                         files=tuple(body.files), policy=POLICY)
    return await get_hazard(hazard_id, user, pool)


@router.put("/hazards/{hazard_id}/deadline", response_model=HazardDetail)
async def move_deadline(hazard_id: HazardId, body: DeadlineChange, user: Supervisor,
                        pool: PoolDep) -> HazardDetail:
    """Grant an extension (延期) or shorten it; never into the past; with the reason."""
    if body.deadline.tzinfo is None:
        raise Unprocessable("the deadline needs its UTC offset")
    await _load(pool, user, hazard_id)
    async with refusals(), pool.acquire() as conn:
        await store.set_deadline(conn, hazard_id, body.deadline, who(user), body.note)
    return await get_hazard(hazard_id, user, pool)
