"""The one writer of patrol plans, checkpoints, check-ins, inspectors, inspection draws and
inspection tasks (migrations/0015_patrols.sql), and the reads the routes need of them.

The decisions are hazards/patrols.py's and hazards/inspections.py's; this module loads their
inputs, stores their outcomes, and records a hazard through hazards/store.py for every failed
checklist item, in the same transaction as the check-in or the inspection result. Refusals are
`PatrolError`s carrying the status a caller should answer (404, 409, 422) and a reason.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from firetower.refusal import Conn, now_or
from hazards import inspections as ins
from hazards import patrols as pt
from hazards.model import HazardDraft, Source
from hazards.store import create_hazard

TOKEN_BYTES = 32


class PatrolError(ValueError):
    status = 422


class PatrolNotFound(PatrolError):
    status = 404


class PatrolConflict(PatrolError):
    status = 409


def new_token() -> str:
    """An unguessable checkpoint token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _jsonish(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def _insert(conn: Conn, table: str, columns: Sequence[str],
                  values: Mapping[str, Any]) -> dict[str, Any]:
    """INSERT the given `columns` of `values` (those present) into `table`; the new row."""
    cols = [c for c in columns if c in values]
    row = await conn.fetchrow(
        f"INSERT INTO {table} ({', '.join(cols)}) VALUES "
        f"({', '.join(f'${i + 1}' for i in range(len(cols)))}) RETURNING *",
        *[values[c] for c in cols])
    assert row is not None
    return dict(row)


async def _update(conn: Conn, table: str, id_: int, columns: Sequence[str],
                  values: Mapping[str, Any], what: str) -> dict[str, Any]:
    """UPDATE the given `columns` of `values` (those present) of row `id_`; the row (404
    when there is none)."""
    cols = [c for c in columns if c in values]
    if not cols:
        row = await conn.fetchrow(f"SELECT * FROM {table} WHERE id = $1", id_)
    else:
        sets = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(cols))
        row = await conn.fetchrow(f"UPDATE {table} SET {sets} WHERE id = $1 RETURNING *",
                                  id_, *[values[c] for c in cols])
    if row is None:
        raise PatrolNotFound(f"{what} not found")
    return dict(row)


# -- plans and checkpoints -------------------------------------------------------------------

_PLAN_COLS = ("jurisdiction_id", "name", "every", "unit", "time_zone", "starts_on", "ends_on",
              "checklist", "active")


def checklist_of(row: Mapping[str, Any]) -> list[pt.ChecklistItem]:
    return [pt.ChecklistItem(str(i["id"]), str(i["text"]), str(i.get("category", "")),
                             str(i.get("legal_basis", "")))
            for i in _jsonish(row["checklist"])]


def plan_of(row: Mapping[str, Any]) -> pt.Plan:
    return pt.Plan(pt.Frequency(int(row["every"]), pt.Unit(row["unit"])), row["starts_on"],
                   row["ends_on"], str(row["time_zone"]))


async def _grid(conn: Conn, jurisdiction_id: int) -> None:
    level = await conn.fetchval("SELECT level FROM jurisdictions WHERE id = $1", jurisdiction_id)
    if level != "grid":
        raise PatrolNotFound(f"grid {jurisdiction_id} not found")


def _check_items(items: Sequence[Mapping[str, Any]]) -> None:
    ids = [str(i["id"]) for i in items]
    if len(set(ids)) != len(ids):
        raise PatrolError("checklist: item ids must be unique")


async def create_plan(conn: Conn, actor: str, values: Mapping[str, Any]) -> dict[str, Any]:
    await _grid(conn, values["jurisdiction_id"])
    _check_items(values.get("checklist", []))
    return await _insert(conn, "patrol_plans", (*_PLAN_COLS, "created_by"),
                         {**values, "created_by": actor})


async def update_plan(conn: Conn, plan_id: int, values: Mapping[str, Any]) -> dict[str, Any]:
    if "jurisdiction_id" in values:
        await _grid(conn, values["jurisdiction_id"])
    if "checklist" in values:
        _check_items(values["checklist"])
    cols = [c for c in _PLAN_COLS if c in values]
    async with conn.transaction():
        before = await conn.fetchrow("SELECT * FROM patrol_plans WHERE id = $1 FOR UPDATE",
                                     plan_id)
        if before is None:
            raise PatrolNotFound("patrol plan not found")
        if values.get("jurisdiction_id", before["jurisdiction_id"]) != before["jurisdiction_id"] \
                and await conn.fetchval("SELECT 1 FROM patrol_checkpoints WHERE plan_id = $1 "
                                        "LIMIT 1", plan_id):
            raise PatrolConflict("the plan has checkpoints in its grid; it cannot move to "
                                 "another grid")
        merged = {**dict(before), **{c: values[c] for c in cols}}
        if merged["ends_on"] is not None and merged["ends_on"] < merged["starts_on"]:
            raise PatrolConflict("ends_on lies before starts_on")
        if not cols:
            return dict(before)
        sets = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(cols))
        row = await conn.fetchrow(
            f"UPDATE patrol_plans SET {sets}, updated_at = now() WHERE id = $1 RETURNING *",
            plan_id, *[values[c] for c in cols])
    assert row is not None
    return dict(row)


async def delete_plan(conn: Conn, plan_id: int) -> None:
    """Refused (409) once the plan has visits: they are records."""
    async with conn.transaction():
        visits = await conn.fetchval("SELECT count(*) FROM patrol_checkins WHERE plan_id = $1",
                                     plan_id)
        if visits:
            raise PatrolConflict(f"the plan has {visits} check-ins; switch it off "
                                 "(active: false) instead")
        if await conn.fetchval("DELETE FROM patrol_plans WHERE id = $1 RETURNING id",
                               plan_id) is None:
            raise PatrolNotFound("patrol plan not found")


async def add_checkpoint(conn: Conn, plan_id: int, site_id: str, name: str,
                         location: str = "") -> tuple[dict[str, Any], str]:
    """A checkpoint at a site of the plan's grid, and its token (shown only now)."""
    plan_grid = await conn.fetchval("SELECT jurisdiction_id FROM patrol_plans WHERE id = $1",
                                    plan_id)
    if plan_grid is None:
        raise PatrolNotFound("patrol plan not found")
    site = await conn.fetchrow("SELECT jurisdiction_id FROM sites WHERE id = $1", site_id)
    if site is None:
        raise PatrolNotFound("site not found")
    if site["jurisdiction_id"] != plan_grid:
        raise PatrolConflict(f"site {site_id} does not lie in the plan's grid")
    token = new_token()
    row = await conn.fetchrow(
        "INSERT INTO patrol_checkpoints (plan_id, site_id, name, location, token_sha256) "
        "VALUES ($1, $2, $3, $4, $5) RETURNING *", plan_id, site_id, name, location,
        token_digest(token))
    assert row is not None
    return dict(row), token


async def update_checkpoint(conn: Conn, checkpoint_id: int,
                            values: Mapping[str, Any]) -> dict[str, Any]:
    return await _update(conn, "patrol_checkpoints", checkpoint_id,
                         ("name", "location", "active"), values, "checkpoint")


async def replace_token(conn: Conn, checkpoint_id: int) -> tuple[dict[str, Any], str]:
    """A new token for a lost or copied QR code; the old one stops working at once."""
    token = new_token()
    row = await conn.fetchrow(
        "UPDATE patrol_checkpoints SET token_sha256 = $2, token_set_at = now() WHERE id = $1 "
        "RETURNING *", checkpoint_id, token_digest(token))
    if row is None:
        raise PatrolNotFound("checkpoint not found")
    return dict(row), token


# -- check-ins --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class CheckinInput:
    token: str
    gps: pt.Gps | None = None
    photos: tuple[str, ...] = ()
    results: tuple[pt.ItemResult, ...] = ()
    note: str = ""
    client_ref: str = ""


@dataclass(frozen=True, slots=True)
class CheckinOutcome:
    checkin: dict[str, Any]
    hazard_ids: list[int]
    repeated: bool  # the same client_ref came before: this is the first check-in's answer


_CHECKPOINT_SQL = """
SELECT c.id, c.site_id, c.active AS checkpoint_active, c.name, p.id AS plan_id, p.every, p.unit,
       p.time_zone, p.starts_on, p.ends_on, p.checklist, p.active AS plan_active,
       p.jurisdiction_id, s.latitude, s.longitude
FROM patrol_checkpoints c JOIN patrol_plans p ON p.id = c.plan_id JOIN sites s ON s.id = c.site_id
WHERE c.token_sha256 = $1"""


async def hazards_of_checkin(conn: Conn, checkin_id: int) -> list[int]:
    rows = await conn.fetch("SELECT id FROM hazards WHERE source = 'patrol' AND "
                            "source_ref LIKE $1 ORDER BY id", f"checkin:{checkin_id}/%")
    return [int(r["id"]) for r in rows]


async def check_in(conn: Conn, actor: str, data: CheckinInput, *,
                   sites: frozenset[str] | None, now: datetime | None = None) -> CheckinOutcome:
    """Record a visit to the checkpoint the token names (404 unless it is at one of `sites`;
    None: every site), with its flags, and a hazard for each failed checklist item, all in one
    transaction. A repeated `client_ref` answers the first visit and records nothing."""
    t = now_or(now)
    cp = await conn.fetchrow(_CHECKPOINT_SQL, token_digest(data.token))
    if cp is None or (sites is not None and cp["site_id"] not in sites):
        raise PatrolNotFound("checkpoint not found")
    checklist = checklist_of(dict(cp))
    unknown = pt.unknown_items(checklist, data.results)
    if unknown:
        raise PatrolError(f"results: not on the plan's checklist: {', '.join(unknown)}")
    if len({r.item_id for r in data.results}) != len(data.results):
        raise PatrolError("results: an item is answered twice")
    plan = plan_of(dict(cp))
    async with conn.transaction():
        if data.client_ref:
            first = await conn.fetchrow(
                "SELECT * FROM patrol_checkins WHERE checkpoint_id = $1 AND actor = $2 AND "
                "client_ref = $3", cp["id"], actor, data.client_ref)
            if first is not None:
                return CheckinOutcome(dict(first), await hazards_of_checkin(conn, first["id"]),
                                      True)
        # one visit at a time per checkpoint, so REPEAT is decided on what is committed
        await conn.execute("SELECT 1 FROM patrol_checkpoints WHERE id = $1 FOR UPDATE", cp["id"])
        period = pt.period_at(plan, t)
        earlier = [r["at"] for r in await conn.fetch(
            "SELECT at FROM patrol_checkins WHERE checkpoint_id = $1 AND at >= $2 AND at < $3",
            cp["id"], period.start, period.end)]
        site = (None if cp["latitude"] is None or cp["longitude"] is None
                else (float(cp["latitude"]), float(cp["longitude"])))
        _, flags, distance = pt.assess(
            plan, at=t, gps=data.gps, site=site, earlier=earlier,
            enabled=bool(cp["plan_active"] and cp["checkpoint_active"]))
        gps = data.gps
        row = await conn.fetchrow(
            "INSERT INTO patrol_checkins (checkpoint_id, plan_id, at, period_start, period_end, "
            "actor, client_ref, lat, lon, accuracy_m, distance_m, photos, results, note, flags) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) "
            "RETURNING *", cp["id"], cp["plan_id"], t, period.start, period.end, actor,
            data.client_ref, gps.lat if gps else None, gps.lon if gps else None,
            gps.accuracy_m if gps else None, distance, list(data.photos),
            [{"item_id": r.item_id, "passed": r.passed, "note": r.note} for r in data.results],
            data.note, [f.value for f in flags])
        assert row is not None
        hazard_ids = []
        for item, result in pt.failed_items(checklist, data.results):
            hazard_ids.append(await create_hazard(conn, actor, HazardDraft(
                source=Source.PATROL, title=item.text[:200], site_id=cp["site_id"],
                jurisdiction_id=cp["jurisdiction_id"],
                description=(result.note or data.note)[:4000], category=item.category[:100],
                legal_basis=item.legal_basis[:500],
                source_ref=f"checkin:{row['id']}/{item.id}", files_before=data.photos), now=t))
    return CheckinOutcome(dict(row), hazard_ids, False)


# -- what is due, missed and covered ----------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PlanState:
    plan: dict[str, Any]
    checkpoints: list[dict[str, Any]]      # active checkpoints at the sites the caller sees
    visits: list[pt.Visit]


async def plan_states(conn: Conn, *, nodes: frozenset[int] | None, sites: frozenset[str] | None,
                      since: datetime, until: datetime, jurisdiction_id: int | None = None,
                      plan_id: int | None = None) -> list[PlanState]:
    """Active plans in `nodes` (None: all) with their active checkpoints at `sites` and the
    visits in the periods overlapping [since, until); `jurisdiction_id` narrows to a node's
    subtree."""
    plans = await conn.fetch(
        "SELECT p.* FROM patrol_plans p JOIN jurisdictions j ON j.id = p.jurisdiction_id "
        "WHERE p.active AND ($1::bigint[] IS NULL OR p.jurisdiction_id = ANY($1)) "
        "AND ($2::bigint IS NULL OR j.path @> ARRAY[$2]::bigint[]) "
        "AND ($3::bigint IS NULL OR p.id = $3) ORDER BY p.id",
        None if nodes is None else sorted(nodes), jurisdiction_id, plan_id)
    ids = [p["id"] for p in plans]
    cps = await conn.fetch(
        "SELECT c.*, s.name AS site_name FROM patrol_checkpoints c JOIN sites s ON "
        "s.id = c.site_id WHERE c.plan_id = ANY($1) AND c.active AND "
        "($2::text[] IS NULL OR c.site_id = ANY($2)) ORDER BY c.id",
        ids, None if sites is None else sorted(sites))
    # each plan's visits over its window stretched to whole periods
    windows = [widen(plan_of(dict(p)), since, until) for p in plans]
    visits = await conn.fetch(
        "SELECT k.plan_id, k.checkpoint_id, k.at FROM patrol_checkins k JOIN unnest($1::bigint[], "
        "$2::timestamptz[], $3::timestamptz[]) AS w (plan_id, s, e) ON k.plan_id = w.plan_id "
        "AND k.at >= w.s AND k.at < w.e", ids, [w[0] for w in windows],
        [w[1] for w in windows])
    out = []
    for p in plans:
        out.append(PlanState(dict(p), [dict(c) for c in cps if c["plan_id"] == p["id"]],
                             [pt.Visit(v["checkpoint_id"], v["at"]) for v in visits
                              if v["plan_id"] == p["id"]]))
    return out


def widen(plan: pt.Plan, since: datetime, until: datetime) -> tuple[datetime, datetime]:
    """The window stretched to whole periods, so every visit of a period is seen."""
    return pt.period_at(plan, since).start, pt.period_at(plan, until).end


# -- inspectors and draws ---------------------------------------------------------------------

_INSPECTOR_COLS = ("jurisdiction_id", "name", "user_id", "certificate_no", "qualified_until",
                   "tied_unit_ids", "active")


async def create_inspector(conn: Conn, values: Mapping[str, Any]) -> dict[str, Any]:
    return await _insert(conn, "inspectors", _INSPECTOR_COLS, values)


async def update_inspector(conn: Conn, inspector_id: int,
                           values: Mapping[str, Any]) -> dict[str, Any]:
    return await _update(conn, "inspectors", inspector_id, _INSPECTOR_COLS, values,
                         "inspector")


# Units of a node's subtree (by their grid or one of their sites) with their history over the
# window: confirmed fires, false and nuisance alarms (normal mode), complaints (hazards from
# public reports), hazards overdue now.
_CANDIDATES_SQL = """
WITH sub AS (SELECT id FROM jurisdictions WHERE path @> ARRAY[$1]::bigint[]),
cand AS (
    SELECT u.id, u.name, u.risk_class FROM units u
    WHERE (u.grid_id IN (SELECT id FROM sub)
           OR EXISTS (SELECT 1 FROM sites s WHERE s.unit_id = u.id
                      AND s.jurisdiction_id IN (SELECT id FROM sub)))
      AND ($2::bigint[] IS NULL OR u.id = ANY($2)))
SELECT c.id, c.name, c.risk_class,
  (SELECT count(*) FROM alarms a JOIN sites s ON s.id = a.site_id WHERE s.unit_id = c.id
     AND a.class = 'fire' AND a.verdict = 'true_fire' AND a.mode = 'normal'
     AND a.raised_at >= $3) AS fires,
  (SELECT count(*) FROM alarms a JOIN sites s ON s.id = a.site_id WHERE s.unit_id = c.id
     AND a.verdict IN ('false_alarm', 'nuisance') AND a.mode = 'normal'
     AND a.raised_at >= $3) AS false_alarms,
  (SELECT count(*) FROM hazards h WHERE h.unit_id = c.id AND h.source = 'public_report'
     AND h.found_at >= $3) AS complaints,
  (SELECT count(*) FROM hazards h WHERE h.unit_id = c.id
     AND h.state IN ('found', 'notified', 'rectifying') AND h.deadline < $4) AS overdue_hazards
FROM cand c ORDER BY c.id"""


async def candidates(conn: Conn, jurisdiction_id: int, units: frozenset[int] | None,
                     since: datetime, now: datetime) -> list[ins.Candidate]:
    rows = await conn.fetch(_CANDIDATES_SQL, jurisdiction_id,
                            None if units is None else sorted(units), since, now)
    return [ins.Candidate(str(r["id"]), r["risk_class"], int(r["fires"]),
                          int(r["false_alarms"]), int(r["complaints"]),
                          int(r["overdue_hazards"]), r["name"]) for r in rows]


async def pool_of(conn: Conn, jurisdiction_id: int, day: date,
                  with_ties: bool = True) -> list[ins.Inspector]:
    """The inspectors qualified on `day` of the node, of the nodes above it (a county's
    staff inspect in its townships) and of its subtree."""
    rows = await conn.fetch(
        "SELECT i.id, i.name, i.tied_unit_ids FROM inspectors i JOIN jurisdictions j ON "
        "j.id = i.jurisdiction_id WHERE i.active AND (j.path @> ARRAY[$1]::bigint[] OR "
        "j.id = ANY(SELECT unnest(path) FROM jurisdictions WHERE id = $1)) AND "
        "(i.qualified_until IS NULL OR i.qualified_until >= $2) ORDER BY i.id",
        jurisdiction_id, day)
    return [ins.Inspector(str(r["id"]),
                          frozenset(str(u) for u in r["tied_unit_ids"]) if with_ties
                          else frozenset(), r["name"]) for r in rows]


@dataclass(frozen=True, slots=True)
class DrawRequest:
    jurisdiction_id: int
    title: str
    seed: str
    params: ins.Params
    checklist: tuple[Mapping[str, Any], ...] = ()
    history_days: int = 365
    exclude_ties: bool = True


async def make_draw(conn: Conn, actor: str, req: DrawRequest, *, units: frozenset[int] | None,
                    now: datetime | None = None) -> int:
    """Draw, record the draw (append-only) and one task per drawn unit; the draw's id.
    `units`: the units the caller sees (None: all)."""
    t = now_or(now)
    _check_items(req.checklist)
    cands = await candidates(conn, req.jurisdiction_id, units,
                             t - timedelta(days=req.history_days), t)
    pool = await pool_of(conn, req.jurisdiction_id, t.date(), req.exclude_ties)
    rec = ins.record(req.seed, cands, pool, req.params).to_json()
    parameters = {**rec["parameters"], "history_days": req.history_days,
                  "exclude_ties": req.exclude_ties, "checklist": list(req.checklist),
                  "history_since": (t - timedelta(days=req.history_days)).isoformat()}
    async with conn.transaction():
        draw_id = await conn.fetchval(
            "INSERT INTO inspection_draws (jurisdiction_id, title, algorithm, seed, parameters, "
            "candidates, inspectors, result, drawn_by, drawn_at) VALUES ($1, $2, $3, $4, $5, $6, "
            "$7, $8, $9, $10) RETURNING id", req.jurisdiction_id, req.title, rec["algorithm"],
            req.seed, parameters, rec["candidates"], rec["inspectors"], rec["result"], actor, t)
        for n, a in enumerate(rec["result"], start=1):
            await conn.execute(
                "INSERT INTO inspection_tasks (draw_id, position, unit_id, inspector_ids) "
                "VALUES ($1, $2, $3, $4)", draw_id, n, int(a["target"]),
                [int(i) for i in a["inspectors"]])
    return int(draw_id)


def record_of(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored draw as hazards/inspections.py's record (for `verify`)."""
    return {"algorithm": row["algorithm"], "seed": row["seed"],
            "parameters": _jsonish(row["parameters"]),
            "candidates": _jsonish(row["candidates"]), "inspectors": _jsonish(row["inspectors"]),
            "result": _jsonish(row["result"])}


# -- inspection results -----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class TaskResult:
    item_id: str
    passed: bool
    note: str = ""
    site_id: str | None = None


async def record_results(conn: Conn, actor: str, task_id: int, results: Iterable[TaskResult],
                         findings: str, photos: Sequence[str], *,
                         now: datetime | None = None) -> list[int]:
    """The inspection's results; a hazard for each failed item (at the item's site, else
    the unit's), in the same transaction. Refused once published (409)."""
    t = now_or(now)
    results = list(results)
    async with conn.transaction():
        task = await conn.fetchrow(
            "SELECT t.*, d.parameters, u.grid_id FROM inspection_tasks t JOIN inspection_draws d "
            "ON d.id = t.draw_id JOIN units u ON u.id = t.unit_id WHERE t.id = $1 "
            "FOR UPDATE OF t", task_id)
        if task is None:
            raise PatrolNotFound("inspection task not found")
        if task["published"]:
            raise PatrolConflict("the results are published; they no longer change")
        checklist = checklist_of({"checklist": _jsonish(task["parameters"]).get("checklist", [])})
        known = {i.id: i for i in checklist}
        if len({r.item_id for r in results}) != len(results):
            raise PatrolError("results: an item is answered twice")
        unknown = sorted({r.item_id for r in results} - set(known))
        if unknown:
            raise PatrolError(f"results: not on the draw's checklist: {', '.join(unknown)}")
        for r in results:
            if r.site_id is not None and await conn.fetchval(
                    "SELECT unit_id FROM sites WHERE id = $1", r.site_id) != task["unit_id"]:
                raise PatrolNotFound(f"site {r.site_id} not found among the unit's sites")
        await conn.execute(
            "UPDATE inspection_tasks SET state = 'done', results = $2, findings = $3, "
            "photos = $4, inspected_at = $5, recorded_by = $6 WHERE id = $1", task_id,
            [{"item_id": r.item_id, "passed": r.passed, "note": r.note, "site_id": r.site_id}
             for r in results], findings, list(photos), t, actor)
        hazard_ids = []
        for r in results:
            if r.passed:
                continue
            item = known[r.item_id]
            hazard_ids.append(await create_hazard(conn, actor, HazardDraft(
                source=Source.INSPECTION, title=item.text[:200], site_id=r.site_id,
                unit_id=int(task["unit_id"]),
                jurisdiction_id=None if r.site_id else task["grid_id"],
                description=(r.note or findings)[:4000], category=item.category[:100],
                legal_basis=item.legal_basis[:500],
                source_ref=f"inspection:{task_id}/{item.id}", files_before=tuple(photos)),
                now=t))
    return hazard_ids


async def publish(conn: Conn, actor: str, task_id: int, summary: str,
                  now: datetime | None = None) -> None:
    t = now_or(now)
    async with conn.transaction():
        task = await conn.fetchrow("SELECT state, published FROM inspection_tasks WHERE id = $1 "
                                   "FOR UPDATE", task_id)
        if task is None:
            raise PatrolNotFound("inspection task not found")
        if task["state"] != "done":
            raise PatrolConflict("no results to publish yet")
        if task["published"]:
            raise PatrolConflict("already published")
        await conn.execute("UPDATE inspection_tasks SET published = true, public_summary = $2, "
                           "published_at = $3, published_by = $4 WHERE id = $1", task_id,
                           summary, t, actor)
