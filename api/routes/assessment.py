"""Assessment (考核, docs/assessment.md): the indicators of any node of the organisation for any
period, the yearly targets and the progress against them, the ranking of a node's children
(通报排名), the CSV and XLSX exports and the feed of the government assessment platforms. The
figures come from the library `assessment/`; every read is scoped by org.scope: a node outside
the caller's scope answers 404, as one that does not exist.

- `GET /assessment/indicators`: the definitions (formula, unit, source, direction);
- `GET /assessment/report?node=&start=&end=&by=`: every indicator of the node and per child;
- `GET /assessment/ranking?node=&indicator=`: the children ranked on one indicator;
- `GET|PUT /assessment/targets`, `GET /assessment/progress`: targets per jurisdiction and year;
- `GET /assessment/export.csv|.xlsx`, `GET /assessment/feed`: the report as files and as JSON.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import asyncpg
from fastapi import APIRouter, Query
from fastapi.responses import Response

from api.assessment_schemas import (
    AssessmentReport,
    Feed,
    Figures,
    GroupingName,
    IndicatorDef,
    PlaceOut,
    Progress,
    ProgressItem,
    Ranking,
    RankingRow,
    Targets,
    TargetsIn,
)
from api.deps import PoolDep, Principal, actor, require
from api.errors import NotFound, Unprocessable, refusals, responses
from api.permissions import Permission
from api.routes.stats import TIME_ZONES
from api.schemas import MAX_ID, Timestamp
from assessment import exports, queries, targets
from assessment.indicators import INDICATORS, KEYS
from assessment.queries import EVERYONE, Place, Report, Viewer
from org.scope import visible_ids

router = APIRouter(tags=["assessment"])
Reader = Annotated[Principal, require(Permission.STATS_READ)]
Setter = Annotated[Principal, require(Permission.TARGET_WRITE)]
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

NodeParam = Annotated[str, Query(min_length=3, max_length=200, pattern=(
    r"^((jurisdiction|unit|company):[1-9][0-9]{0,15}|site:[A-Za-z0-9_.-]{1,64}"
    r"|industry:[^\x00]{0,100})$"), description=(
    "jurisdiction:<id> (its subtree), unit:<id>, industry:<name>, company:<id> (sites under a "
    "contract in force in the period) or site:<id>"))]
Start = Annotated[Timestamp | None, Query(description="RFC 3339; default: 30 days before end")]
End = Annotated[Timestamp | None, Query(description="RFC 3339, exclusive; default: now")]
Tz = Annotated[str, Query(max_length=64, json_schema_extra={"enum": TIME_ZONES},
                          description="the zone calendar days are counted in")]
By = Annotated[GroupingName, Query(description=(
    "the children: the node's own (sub-nodes; a leaf's units; a unit's or company's sites) "
    "or its sites grouped by unit, industry, company or site"))]
JurisdictionId = Annotated[int, Query(ge=1, le=MAX_ID)]
YearQuery = Annotated[int, Query(ge=2000, le=2100)]
IndicatorKey = Annotated[str, Query(max_length=64, json_schema_extra={"enum": list(KEYS)})]


async def viewer(pool: asyncpg.Pool, user: Principal) -> Viewer:
    """What the caller sees: its sites, its own subtree, its units (org.scope)."""
    if user.site_ids is None:
        return EVERYONE
    nodes: frozenset[int] = frozenset()
    if user.scope.kind == "jurisdiction":
        nodes = frozenset(r[0] for r in await pool.fetch(
            "SELECT id FROM jurisdictions WHERE path @> ARRAY[$1]::bigint[]", user.scope.id))
    units = await visible_ids(pool, "unit", user.scope, user.site_ids)
    return Viewer(user.site_ids, nodes, units or frozenset())


def _period(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    end = end or datetime.now(UTC)
    start = start or end - timedelta(days=30)
    if start.tzinfo is None or end.tzinfo is None:
        raise Unprocessable("start and end need a UTC offset")
    return start, end


async def _report(pool: asyncpg.Pool, user: Principal, node: str, start: datetime | None,
                  end: datetime | None, tz: str, by: str, children: bool = True) -> Report:
    s, e = _period(start, end)
    async with refusals():
        ref = queries.parse_node(node)
        return await queries.report(pool, ref, s, e, viewer=await viewer(pool, user),
                                    grouping=by, tz=tz, children=children)


def _place(p: Place) -> PlaceOut:
    return PlaceOut(key=p.key, kind=p.kind, name=p.name, sites=len(p.sites))


def _figures(f: queries.Figures) -> Figures:
    counts = {k: v for k, v in vars(f.counts).items() if isinstance(v, int)}
    return Figures(node=_place(f.place), values=f.values, counts=counts,
                   gb50440_units=f.counts.gb50440_units)


@router.get("/assessment/indicators", response_model=list[IndicatorDef])
async def indicators(user: Reader) -> list[IndicatorDef]:
    """Every indicator: its key, names, unit, formula, source standard and direction."""
    return [IndicatorDef(key=i.key, name_zh=i.name_zh, name_en=i.name_en, unit=i.unit,
                         formula=i.formula, source=i.source, direction=i.direction)
            for i in INDICATORS.values()]


@router.get("/assessment/report", response_model=AssessmentReport, responses=responses(404))
async def assessment_report(user: Reader, pool: PoolDep, node: NodeParam, start: Start = None,
                            end: End = None, tz: Tz = "UTC",
                            by: By = "children") -> AssessmentReport:
    """Every indicator of `node` over [start, end) (its whole subtree), and of each child."""
    rep = await _report(pool, user, node, start, end, tz, by)
    assert rep.start is not None and rep.end is not None
    return AssessmentReport(start=rep.start, end=rep.end, days=rep.days, timezone=rep.timezone,
                            grouping=by, node=_figures(rep.node),
                            children=[_figures(c) for c in rep.children])


@router.get("/assessment/ranking", response_model=Ranking, responses=responses(404))
async def assessment_ranking(user: Reader, pool: PoolDep, node: NodeParam,
                             indicator: IndicatorKey, start: Start = None, end: End = None,
                             tz: Tz = "UTC", by: By = "children") -> Ranking:
    """The children of `node` ranked on one indicator (通报排名): best first by the
    indicator's direction, equal figures share a rank, no figure: last and unranked."""
    if indicator not in INDICATORS:
        raise Unprocessable(f"no indicator {indicator!r}")
    rep = await _report(pool, user, node, start, end, tz, by)
    assert rep.start is not None and rep.end is not None
    ind = INDICATORS[indicator]
    async with refusals():
        rows = targets.ranking(rep, indicator)
    return Ranking(indicator=indicator, unit=ind.unit, direction=ind.direction,
                   start=rep.start, end=rep.end, node=_place(rep.node.place),
                   rows=[RankingRow(rank=r, node=_place(f.place), value=f.values[indicator])
                         for r, f in rows])


async def _jurisdiction(pool: asyncpg.Pool, user: Principal, jurisdiction_id: int) -> None:
    v = await viewer(pool, user)
    exists = await pool.fetchval("SELECT 1 FROM jurisdictions WHERE id = $1", jurisdiction_id)
    if not exists or (v.nodes is not None and jurisdiction_id not in v.nodes):
        raise NotFound("jurisdiction not found")


@router.get("/assessment/targets", response_model=Targets, responses=responses(404))
async def get_targets(user: Reader, pool: PoolDep, jurisdiction_id: JurisdictionId,
                      year: YearQuery) -> Targets:
    """The targets of a jurisdiction for a year (年初下达目标)."""
    await _jurisdiction(pool, user, jurisdiction_id)
    return Targets(jurisdiction_id=jurisdiction_id, year=year,
                   targets=await targets.get_targets(pool, jurisdiction_id, year))


@router.put("/assessment/targets", response_model=Targets, responses=responses(404))
async def put_targets(body: TargetsIn, user: Setter, pool: PoolDep) -> Targets:
    """Replace a jurisdiction's targets for a year; each key an indicator, a ratio's target
    between 0 and 1; audited."""
    await _jurisdiction(pool, user, body.jurisdiction_id)
    async with refusals(), pool.acquire() as conn:
        out = await targets.set_targets(conn, actor(user), body.jurisdiction_id, body.year,
                                        dict(body.targets))
    return Targets(jurisdiction_id=body.jurisdiction_id, year=body.year, targets=out)


@router.get("/assessment/progress", response_model=Progress, responses=responses(404))
async def get_progress(user: Reader, pool: PoolDep, jurisdiction_id: JurisdictionId,
                       year: YearQuery, tz: Tz = "UTC") -> Progress:
    """Each target of the year against the year's figure so far (年中检查, 年底考核)."""
    await _jurisdiction(pool, user, jurisdiction_id)
    async with refusals():
        p = await targets.progress(pool, jurisdiction_id, year, viewer=await viewer(pool, user),
                                   tz=tz)
    return Progress(jurisdiction_id=jurisdiction_id, year=year, start=p.start, end=p.end,
                    elapsed=p.elapsed,
                    items=[ProgressItem(indicator=i.indicator, unit=INDICATORS[i.indicator].unit,
                                        direction=INDICATORS[i.indicator].direction,
                                        target=i.target, actual=i.actual, met=i.met)
                           for i in p.items])


def _file(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


@router.get("/assessment/export.csv", responses={**responses(404), 200: {"content": {
    "text/csv": {"schema": {"type": "string"}}}, "description": "the indicators, a row a node"}})
async def export_csv(user: Reader, pool: PoolDep, node: NodeParam, start: Start = None,
                     end: End = None, tz: Tz = "UTC", by: By = "children") -> Response:
    """The node and its children, one column per indicator (UTF-8 with a byte-order mark)."""
    rep = await _report(pool, user, node, start, end, tz, by)
    return Response(exports.to_csv(rep), media_type="text/csv; charset=utf-8",
                    headers=_file("assessment.csv"))


@router.get("/assessment/export.xlsx", responses={**responses(404), 200: {"content": {
    XLSX_TYPE: {"schema": {"type": "string", "format": "binary"}}},
    "description": "sheets indicators, definitions and period"}})
async def export_xlsx(user: Reader, pool: PoolDep, node: NodeParam, start: Start = None,
                      end: End = None, tz: Tz = "UTC", by: By = "children") -> Response:
    """The same table as the CSV, with the definitions and the period on their own sheets."""
    rep = await _report(pool, user, node, start, end, tz, by)
    return Response(exports.to_xlsx(rep), media_type=XLSX_TYPE,
                    headers=_file("assessment.xlsx"))


@router.get("/assessment/feed", response_model=Feed, responses=responses(404))
async def assessment_feed(user: Reader, pool: PoolDep, node: NodeParam, start: Start = None,
                          end: End = None, tz: Tz = "UTC", by: By = "children") -> Feed:
    """The feed of the government assessment platforms: versioned (`version`), every figure
    with its indicator key, unit, node and period."""
    rep = await _report(pool, user, node, start, end, tz, by)
    return Feed.model_validate(exports.feed(rep, datetime.now(UTC)))
