"""Duty rosters (值班表), the duty log (值班记录) and shift hand-overs (交接班)
(docs/notifications.md, "Duty rosters").

A roster belongs to a jurisdiction (the centre at that level: it covers the sites of the
subtree) or to a unit (its control room: the unit's sites). Writes go through
notify/duty_store.py; who is on duty and the gaps come from notify/rosters.py.

Scope (org/scope.py): a scoped caller sees the rosters of the nodes of its own subtree (a caller
attached to a jurisdiction node) and of the units it sees whose sites it all sees; any other
roster answers 404, as an id that does not exist. A scoped planner creates rosters only there.

- `GET|POST /duty/rosters`, `GET|PATCH|DELETE /duty/rosters/{id}`;
- `GET|POST /duty/rosters/{id}/shifts`, `PATCH|DELETE /duty/rosters/{id}/shifts/{shift}`;
- `GET /duty/rosters/{id}/now` (who is on duty, per position), `GET .../gaps`;
- `GET|POST /duty/rosters/{id}/log` (append-only notes);
- `GET /duty/rosters/{id}/open-alarms` (what a hand-over would list now),
  `GET|POST /duty/rosters/{id}/handovers`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Path, Query, Response, status

from api.deps import PoolDep, Principal, actor, require
from api.duty_schemas import (
    Candidate,
    Candidates,
    CoverageGap,
    CoverageGaps,
    HandedAlarm,
    HandoverCreate,
    HandoverPublic,
    HandoversPublic,
    LogCreate,
    LogEntry,
    LogPublic,
    OnDuty,
    OnDutyPerson,
    OpenAlarmsPublic,
    Position,
    RosterCreate,
    RosterPublic,
    RostersPublic,
    RosterUpdate,
    ShiftCreate,
    ShiftPublic,
    ShiftsPublic,
    ShiftUpdate,
)
from api.errors import NotFound, Unprocessable, refusals
from api.permissions import Permission
from api.schemas import MAX_ID, Timestamp
from notify import duty_store as store
from notify import rosters
from org.scope import visible_ids

router = APIRouter(tags=["duty"])
Reader = Annotated[Principal, require(Permission.DUTY_READ)]
Logger = Annotated[Principal, require(Permission.DUTY_LOG)]
Planner = Annotated[Principal, require(Permission.DUTY_PLAN)]
RosterId = Annotated[int, Path(ge=1, le=MAX_ID)]
ShiftId = Annotated[int, Path(ge=1, le=MAX_ID)]
Limit = Annotated[int, Query(ge=1, le=5000)]
MAX_PERIOD = timedelta(days=92)  # shifts and gaps are asked for at most this long a period


def moment(t: datetime | None) -> datetime | None:
    """A time of a query: with its UTC offset, between the years 1900 and 9000 (422)."""
    if t is not None and t.tzinfo is None:
        raise Unprocessable("times need a UTC offset (RFC 3339)")
    if t is not None and not 1900 <= t.year <= 9000:
        raise Unprocessable("times between the years 1900 and 9000")
    return t


def _period(start: datetime | None, end: datetime | None,
            default_days: int = 7) -> tuple[datetime, datetime]:
    """[start, end) of a query: RFC 3339 with an offset, at most 92 days; default the week
    from today's midnight (UTC)."""
    start, end = moment(start), moment(end)
    if start is None:
        start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if end is None:
        end = start + timedelta(days=default_days)
    if end - start > MAX_PERIOD:
        raise Unprocessable("a period of at most 92 days")
    return start, end


# -- scope ------------------------------------------------------------------------------------
_ROSTERS_SQL = """
SELECT r.*, j.name AS jurisdiction_name, u.name AS unit_name,
       ARRAY(SELECT s.id FROM sites s WHERE s.unit_id = r.unit_id OR s.jurisdiction_id IN (
             SELECT x.id FROM jurisdictions x WHERE x.path @> ARRAY[r.jurisdiction_id]))
         AS covered
FROM duty_rosters r LEFT JOIN jurisdictions j ON j.id = r.jurisdiction_id
LEFT JOIN units u ON u.id = r.unit_id"""


class _Reach:
    """What of the organisation a scoped caller holds: its sites, the nodes of its own subtree
    (a caller attached to a jurisdiction node), the units it sees."""

    def __init__(self, sites: frozenset[str] | None, own: frozenset[int],
                 units: frozenset[int] | None) -> None:
        self.sites, self.own, self.units = sites, own, units

    def holds(self, jurisdiction_id: int | None, unit_id: int | None,
              covered: Sequence[str]) -> bool:
        """A jurisdiction's roster: a node of the caller's own subtree (a node above it
        belongs to a higher centre); a unit's: a unit it sees whose sites it all sees."""
        if self.sites is None:
            return True
        if jurisdiction_id is not None:
            return jurisdiction_id in self.own
        return (self.units is None or unit_id in self.units) and set(covered) <= self.sites


async def own_nodes(pool: asyncpg.Pool, user: Principal) -> frozenset[int]:
    """The jurisdiction subtree a caller attached to a node holds (else none)."""
    if user.scope.kind != "jurisdiction":
        return frozenset()
    return frozenset(r[0] for r in await pool.fetch(
        "SELECT id FROM jurisdictions WHERE path @> ARRAY[$1::bigint]", user.scope.id))


async def _reach(pool: asyncpg.Pool, user: Principal) -> _Reach:
    if user.site_ids is None:
        return _Reach(None, frozenset(), None)
    return _Reach(user.site_ids, await own_nodes(pool, user),
                  await visible_ids(pool, "unit", user.scope, user.site_ids))


def _public(r: Any) -> RosterPublic:
    return RosterPublic(id=r["id"], name=r["name"], jurisdiction_id=r["jurisdiction_id"],
                        jurisdiction_name=r["jurisdiction_name"], unit_id=r["unit_id"],
                        unit_name=r["unit_name"], sites=len(r["covered"]),
                        created_at=r["created_at"])


async def _load(pool: asyncpg.Pool, user: Principal, roster_id: int) -> Any:
    """The roster if the caller sees it, else 404 (as for an id that does not exist)."""
    row = await pool.fetchrow(_ROSTERS_SQL + " WHERE r.id = $1", roster_id)
    if row is None or not (await _reach(pool, user)).holds(
            row["jurisdiction_id"], row["unit_id"], row["covered"]):
        raise NotFound("roster not found")
    return row


# -- rosters ----------------------------------------------------------------------------------
@router.get("/duty/rosters", response_model=RostersPublic)
async def list_rosters(user: Reader, pool: PoolDep, jurisdiction_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID)] = None, unit_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID)] = None) -> RostersPublic:
    """The rosters the caller sees, by name."""
    rows = await pool.fetch(
        _ROSTERS_SQL + " WHERE ($1::bigint IS NULL OR r.jurisdiction_id = $1)"
        " AND ($2::bigint IS NULL OR r.unit_id = $2) ORDER BY r.name, r.id",
        jurisdiction_id, unit_id)
    reach = await _reach(pool, user)
    data = [_public(r) for r in rows if reach.holds(r["jurisdiction_id"], r["unit_id"],
                                                      r["covered"])]
    return RostersPublic(data=data, count=len(data))


@router.post("/duty/rosters", response_model=RosterPublic, status_code=status.HTTP_201_CREATED)
async def create_roster(body: RosterCreate, user: Planner, pool: PoolDep) -> RosterPublic:
    """A roster of a jurisdiction (the centre at that level) or of a unit (its control room).
    A scoped planner: only where it sees every site (404 otherwise)."""
    if user.site_ids is not None:
        covered = await pool.fetch("SELECT id FROM sites WHERE unit_id = $1", body.unit_id)
        if not (await _reach(pool, user)).holds(body.jurisdiction_id, body.unit_id,
                                                [r[0] for r in covered]):
            what = "jurisdiction" if body.jurisdiction_id is not None else "unit"
            raise NotFound(f"{what} not found")
    async with refusals(), pool.acquire() as conn:
        rid = await store.create_roster(conn, actor(user), name=body.name,
                                        jurisdiction_id=body.jurisdiction_id,
                                        unit_id=body.unit_id)
    return _public(await _load(pool, user, rid))


@router.get("/duty/rosters/{roster_id}", response_model=RosterPublic)
async def get_roster(roster_id: RosterId, user: Reader, pool: PoolDep) -> RosterPublic:
    return _public(await _load(pool, user, roster_id))


@router.patch("/duty/rosters/{roster_id}", response_model=RosterPublic)
async def rename_roster(roster_id: RosterId, body: RosterUpdate, user: Planner,
                        pool: PoolDep) -> RosterPublic:
    await _load(pool, user, roster_id)
    async with refusals(), pool.acquire() as conn:
        await store.rename_roster(conn, actor(user), roster_id, body.name)
    return _public(await _load(pool, user, roster_id))


@router.delete("/duty/rosters/{roster_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_roster(roster_id: RosterId, user: Planner, pool: PoolDep) -> Response:
    """The roster with its shifts, log and hand-overs (the audit log keeps the roster)."""
    await _load(pool, user, roster_id)
    async with refusals(), pool.acquire() as conn:
        await store.delete_roster(conn, actor(user), roster_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- shifts -----------------------------------------------------------------------------------
_SHIFTS_SQL = """
SELECT s.*, u.name AS user_name FROM duty_shifts s JOIN users u ON u.id = s.user_id
WHERE s.roster_id = $1"""


def _shift(r: Any) -> ShiftPublic:
    return ShiftPublic(**{k: r[k] for k in ShiftPublic.model_fields})


async def _one_shift(pool: asyncpg.Pool, roster_id: int, shift_id: int) -> ShiftPublic:
    row = await pool.fetchrow(_SHIFTS_SQL + " AND s.id = $2", roster_id, shift_id)
    if row is None:
        raise NotFound("shift not found")
    return _shift(row)


@router.get("/duty/rosters/{roster_id}/shifts", response_model=ShiftsPublic)
async def list_shifts(roster_id: RosterId, user: Reader, pool: PoolDep,
                      start: Timestamp | None = None, end: Timestamp | None = None,
                      ) -> ShiftsPublic:
    """The shifts overlapping [start, end) (default: the week from today, UTC), by start."""
    await _load(pool, user, roster_id)
    t0, t1 = _period(start, end)
    rows = await pool.fetch(_SHIFTS_SQL + " AND s.ends_at > $2 AND s.starts_at < $3"
                            " ORDER BY s.starts_at, s.position, s.id", roster_id, t0, t1)
    data = [_shift(r) for r in rows]
    return ShiftsPublic(data=data, count=len(data))


@router.post("/duty/rosters/{roster_id}/shifts", response_model=ShiftPublic,
             status_code=status.HTTP_201_CREATED)
async def add_shift(roster_id: RosterId, body: ShiftCreate, user: Planner,
                    pool: PoolDep) -> ShiftPublic:
    """A user on duty in a position for [starts_at, ends_at) (at most 7 days). Refused: a user
    that does not exist (404), one already on a shift of this roster then (409, naming it)."""
    await _load(pool, user, roster_id)
    async with refusals(), pool.acquire() as conn:
        sid = await store.add_shift(conn, actor(user), roster_id, user_id=body.user_id,
                                    position=body.position, starts_at=body.starts_at,
                                    ends_at=body.ends_at)
    return await _one_shift(pool, roster_id, sid)


@router.patch("/duty/rosters/{roster_id}/shifts/{shift_id}", response_model=ShiftPublic)
async def change_shift(roster_id: RosterId, shift_id: ShiftId, body: ShiftUpdate,
                       user: Planner, pool: PoolDep) -> ShiftPublic:
    await _load(pool, user, roster_id)
    async with refusals(), pool.acquire() as conn:
        await store.change_shift(conn, actor(user), roster_id, shift_id, user_id=body.user_id,
                                 position=body.position, starts_at=body.starts_at,
                                 ends_at=body.ends_at)
    return await _one_shift(pool, roster_id, shift_id)


@router.delete("/duty/rosters/{roster_id}/shifts/{shift_id}",
               status_code=status.HTTP_204_NO_CONTENT)
async def delete_shift(roster_id: RosterId, shift_id: ShiftId, user: Planner,
                       pool: PoolDep) -> Response:
    await _load(pool, user, roster_id)
    async with refusals(), pool.acquire() as conn:
        await store.delete_shift(conn, actor(user), roster_id, shift_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# Who may hold a shift on a roster: active staff (operators, supervisors, admins; and for a
# unit's control room its site managers) who are unscoped, attached to a node of the roster's
# subtree, or to the roster's unit.
_CANDIDATES_SQL = """
SELECT u.id AS user_id, u.name, u.role FROM users u, duty_rosters r
WHERE r.id = $1 AND u.active
  AND (u.role IN ('operator', 'supervisor', 'admin')
       OR (r.unit_id IS NOT NULL AND u.role = 'site_manager'))
  AND ((u.scope_kind IS NULL AND u.site_ids IS NULL)
       OR (u.scope_kind = 'jurisdiction' AND r.jurisdiction_id IS NOT NULL AND u.scope_id IN (
           SELECT j.id FROM jurisdictions j WHERE j.path @> ARRAY[r.jurisdiction_id]))
       OR (u.scope_kind = 'unit' AND u.scope_id = r.unit_id))
ORDER BY u.name LIMIT 1000"""


@router.get("/duty/rosters/{roster_id}/candidates", response_model=Candidates)
async def candidates(roster_id: RosterId, user: Planner, pool: PoolDep) -> Candidates:
    """The people a planner may put on this roster's shifts, by name (the user list itself is
    for admins only)."""
    await _load(pool, user, roster_id)
    rows = await pool.fetch(_CANDIDATES_SQL, roster_id)
    return Candidates(data=[Candidate(**dict(r)) for r in rows])


@router.get("/duty/rosters/{roster_id}/now", response_model=OnDuty)
async def on_duty(roster_id: RosterId, user: Reader, pool: PoolDep,
                  at: Timestamp | None = None) -> OnDuty:
    """Who is on duty now (or `at`), per position; `uncovered`: positions nobody holds."""
    await _load(pool, user, roster_id)
    t = moment(at) or datetime.now(UTC)
    rows = await pool.fetch(_SHIFTS_SQL + " AND s.starts_at <= $2 AND s.ends_at > $2",
                            roster_id, t)
    names = {r["user_id"]: r["user_name"] for r in rows}
    running = rosters.current([rosters.Shift(r["id"], r["user_id"], r["position"],
                                             r["starts_at"], r["ends_at"]) for r in rows], t)
    positions: dict[str, list[OnDutyPerson]] = {p: [] for p in rosters.POSITIONS}
    for s in running:
        if all(p.user_id != s.user_id for p in positions[s.position]):
            positions[s.position].append(OnDutyPerson(user_id=s.user_id, name=names[s.user_id],
                                                      shift_id=s.id, until=s.ends_at))
    uncovered: list[Any] = [p for p in rosters.POSITIONS if not positions[p]]
    return OnDuty(roster_id=roster_id, at=t, positions=positions, uncovered=uncovered)


@router.get("/duty/rosters/{roster_id}/gaps", response_model=CoverageGaps)
async def coverage_gaps(roster_id: RosterId, user: Reader, pool: PoolDep,
                        start: Timestamp | None = None, end: Timestamp | None = None,
                        position: Position | None = None) -> CoverageGaps:
    """The stretches of [start, end) (default: the week from today) that no shift covers (of
    `position`, or of any)."""
    await _load(pool, user, roster_id)
    t0, t1 = _period(start, end)
    async with pool.acquire() as conn:
        shifts = await store.shifts(conn, roster_id, t0, t1)
    data = [CoverageGap(starts_at=g.starts_at, ends_at=g.ends_at)
            for g in rosters.gaps(shifts, t0, t1, position)]
    return CoverageGaps(roster_id=roster_id, start=t0, end=t1, position=position, data=data,
                        count=len(data))


# -- the duty log and hand-overs --------------------------------------------------------------
@router.get("/duty/rosters/{roster_id}/log", response_model=LogPublic)
async def read_log(roster_id: RosterId, user: Reader, pool: PoolDep,
                   limit: Limit = 200) -> LogPublic:
    """The duty log, newest first."""
    await _load(pool, user, roster_id)
    rows = await pool.fetch("SELECT * FROM duty_log WHERE roster_id = $1 ORDER BY at DESC,"
                            " id DESC LIMIT $2", roster_id, limit)
    data = [LogEntry(**dict(r)) for r in rows]
    return LogPublic(data=data, count=len(data))


@router.post("/duty/rosters/{roster_id}/log", response_model=LogEntry,
             status_code=status.HTTP_201_CREATED)
async def write_log(roster_id: RosterId, body: LogCreate, user: Logger,
                    pool: PoolDep) -> LogEntry:
    """Append a note (append-only: notes are never changed or removed)."""
    await _load(pool, user, roster_id)
    async with refusals(), pool.acquire() as conn:
        lid = await store.log_note(conn, roster_id, f"user:{user.name}", body.text)
    row = await pool.fetchrow("SELECT * FROM duty_log WHERE id = $1", lid)
    return LogEntry(**dict(row))  # type: ignore[arg-type]


def _handed(alarms: list[dict[str, Any]]) -> list[HandedAlarm]:
    return [HandedAlarm.model_validate(a) for a in alarms]


@router.get("/duty/rosters/{roster_id}/open-alarms", response_model=OpenAlarmsPublic)
async def open_alarms(roster_id: RosterId, user: Reader, pool: PoolDep) -> OpenAlarmsPublic:
    """What a hand-over now would list: the alarms of the roster's sites still on the board
    (not closed), most urgent first."""
    await _load(pool, user, roster_id)
    async with pool.acquire() as conn:
        data = _handed(await store.open_alarms(conn, roster_id))
    return OpenAlarmsPublic(roster_id=roster_id, data=data, count=len(data))


_HANDOVERS_SQL = """
SELECT h.*, f.name AS from_user_name, t.name AS to_user_name FROM shift_handovers h
JOIN users f ON f.id = h.from_user_id JOIN users t ON t.id = h.to_user_id
WHERE h.roster_id = $1"""


def _handover(r: Any) -> HandoverPublic:
    return HandoverPublic(id=r["id"], roster_id=r["roster_id"], at=r["at"],
                          from_user_id=r["from_user_id"], from_user_name=r["from_user_name"],
                          to_user_id=r["to_user_id"], to_user_name=r["to_user_name"],
                          open_alarms=_handed(r["open_alarms"]), note=r["note"])


@router.get("/duty/rosters/{roster_id}/handovers", response_model=HandoversPublic)
async def list_handovers(roster_id: RosterId, user: Reader, pool: PoolDep,
                         limit: Limit = 100) -> HandoversPublic:
    """The roster's hand-overs, newest first, each with the alarms it listed."""
    await _load(pool, user, roster_id)
    rows = await pool.fetch(_HANDOVERS_SQL + " ORDER BY h.at DESC, h.id DESC LIMIT $2",
                            roster_id, limit)
    data = [_handover(r) for r in rows]
    return HandoversPublic(data=data, count=len(data))


@router.post("/duty/rosters/{roster_id}/handovers", response_model=HandoverPublic,
             status_code=status.HTTP_201_CREATED)
async def hand_over(roster_id: RosterId, body: HandoverCreate, user: Logger,
                    pool: PoolDep) -> HandoverPublic:
    """The caller hands over to `to_user_id`: the record lists the open alarms of the roster's
    sites as they stand, and the duty log gets a 'handover' row."""
    await _load(pool, user, roster_id)
    async with refusals(), pool.acquire() as conn:
        done = await store.hand_over(conn, roster_id, from_user_id=user.id,
                                     to_user_id=body.to_user_id, note=body.note,
                                     actor=f"user:{user.name}")
    row = await pool.fetchrow(_HANDOVERS_SQL + " AND h.id = $2", roster_id, done.id)
    return _handover(row)
