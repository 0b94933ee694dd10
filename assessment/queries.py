"""What the indicators are computed from: the nodes (a jurisdiction's subtree, a unit, an
industry, a maintenance company, a site), the places they cover, and the SQL that gathers the
counts of `assessment.indicators.Counts` for one place and one period [start, end).

A node covers a set of sites (a jurisdiction: every site in its subtree, `path @> ARRAY[id]`;
a company: the sites under a contract in force at some time in the period), and for the
records that have no site (a hazard, a public report), the jurisdiction nodes and units it
owns. A node's figure covers its whole subtree; its children (or any grouping of its sites)
are places of their own, so a count of a township is the sum of its grids' counts.

Alarms count only in normal mode: test, disabled (屏蔽) and maintenance-mode alarms are no real
alarms and never enter a figure.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg

from assessment.indicators import (
    GB50440_DAILY_FALSE_ALARMS,
    LIMITS,
    Counts,
    LimitCount,
    compute_all,
)
from firetower.alarms import OPEN_STATES_SQL
from firetower.refusal import Conn, Refused, now_or

NodeKind = Literal["jurisdiction", "unit", "industry", "company", "site"]
NODE_KINDS: tuple[str, ...] = ("jurisdiction", "unit", "industry", "company", "site")
Grouping = Literal["children", "units", "industries", "companies", "sites"]
GROUPINGS: tuple[str, ...] = ("children", "units", "industries", "companies", "sites")
Db = Conn | asyncpg.Pool


@dataclass(frozen=True)
class NodeRef:
    kind: str
    ref: str  # the id, or the industry's name

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.ref}"

    @property
    def id(self) -> int | None:
        return None if self.kind == "industry" or self.kind == "site" else int(self.ref)


MAX_ID = 2**53 - 1


def parse_node(text: str) -> NodeRef:
    """`jurisdiction:<id>`, `unit:<id>`, `company:<id>`, `site:<id>` or `industry:<name>`."""
    kind, sep, ref = text.partition(":")
    if not sep or kind not in NODE_KINDS:
        raise Refused("node must be jurisdiction:<id>, unit:<id>, industry:<name>, "
                      "company:<id> or site:<id>")
    if kind == "industry":
        if len(ref) > 100 or "\x00" in ref:
            raise Refused("an industry's name has at most 100 characters")
        return NodeRef(kind, ref)
    if kind == "site":
        if not ref or len(ref) > 64:
            raise Refused("site:<id> needs a site id")
        return NodeRef(kind, ref)
    if not ref.isascii() or not ref.isdigit() or not 1 <= int(ref) <= MAX_ID:
        raise Refused(f"{kind}:<id> needs a positive integer id")
    return NodeRef(kind, str(int(ref)))


@dataclass(frozen=True)
class Viewer:
    """What the caller may see (org.scope): its sites, and for records with no site the
    jurisdiction nodes and units it owns; None: everything."""

    sites: frozenset[str] | None = None
    nodes: frozenset[int] | None = None
    units: frozenset[int] | None = None


EVERYONE = Viewer()


@dataclass(frozen=True)
class Place:
    """What one node or group covers."""

    key: str
    kind: str
    name: str
    sites: tuple[str, ...]
    nodes: tuple[int, ...] = ()   # records with no site: jurisdiction ids
    units: tuple[int, ...] = ()   # records with no site: unit ids

    def seen_by(self, v: Viewer) -> Place:
        def cut(xs: tuple[Any, ...], allowed: frozenset[Any] | None) -> tuple[Any, ...]:
            return xs if allowed is None else tuple(x for x in xs if x in allowed)
        return replace(self, sites=cut(self.sites, v.sites), nodes=cut(self.nodes, v.nodes),
                       units=cut(self.units, v.units))


@dataclass(frozen=True)
class _Site:
    id: str
    name: str
    unit_id: int | None
    unit_name: str | None
    industry: str | None
    path: tuple[int, ...]


class _World:
    """The sites with their unit, industry and node path, and the contracts in force in the
    period: read once per request, grouped in memory."""

    def __init__(self, sites: list[_Site], contracts: list[tuple[str, int, str]]) -> None:
        self.sites = sites
        self.contracts = contracts  # (site, company id, company name)

    @classmethod
    async def load(cls, db: Db, start: datetime, end: datetime, tz: str) -> _World:
        rows = await db.fetch(
            "SELECT s.id, s.name, s.unit_id, u.name AS unit_name, u.industry, j.path "
            "FROM sites s LEFT JOIN units u ON u.id = s.unit_id "
            "LEFT JOIN jurisdictions j ON j.id = s.jurisdiction_id ORDER BY s.id")
        contracts = await db.fetch(
            "SELECT c.site_id, c.company_id, m.name FROM contracts c "
            "JOIN maintenance_companies m ON m.id = c.company_id "
            "WHERE c.starts_on <= ($2::timestamptz AT TIME ZONE $3)::date "
            "AND c.ends_on >= ($1::timestamptz AT TIME ZONE $3)::date ORDER BY 1, 2",
            start, end, tz)
        return cls([_Site(r["id"], r["name"], r["unit_id"], r["unit_name"], r["industry"],
                          tuple(r["path"] or ())) for r in rows],
                   [(r[0], r[1], r[2]) for r in contracts])


async def _subtree(db: Db, node_id: int) -> tuple[int, ...]:
    return tuple(r[0] for r in await db.fetch(
        "SELECT id FROM jurisdictions WHERE path @> ARRAY[$1]::bigint[] ORDER BY id", node_id))


async def _place(db: Db, world: _World, node: NodeRef) -> Place:
    """The place a node covers; Refused(missing) when there is no such node."""
    if node.kind == "jurisdiction":
        row = await db.fetchrow("SELECT id, name FROM jurisdictions WHERE id = $1", node.id)
        if row is None:
            raise Refused("no such jurisdiction", missing=True)
        nodes = await _subtree(db, row["id"])
        units = tuple(r[0] for r in await db.fetch(
            "SELECT id FROM units WHERE grid_id = ANY($1::bigint[]) ORDER BY id", list(nodes)))
        return Place(node.key, node.kind, row["name"],
                     tuple(s.id for s in world.sites if row["id"] in s.path), nodes, units)
    if node.kind == "unit":
        name = await db.fetchval("SELECT name FROM units WHERE id = $1", node.id)
        if name is None:
            raise Refused("no such unit", missing=True)
        return Place(node.key, node.kind, name,
                     tuple(s.id for s in world.sites if s.unit_id == node.id), (),
                     (node.id or 0,))
    if node.kind == "industry":
        units = tuple(r[0] for r in await db.fetch(
            "SELECT id FROM units WHERE industry = $1 ORDER BY id", node.ref))
        if not units:
            raise Refused("no unit of this industry", missing=True)
        return Place(node.key, node.kind, node.ref,
                     tuple(s.id for s in world.sites if s.industry == node.ref), (), units)
    if node.kind == "company":
        name = await db.fetchval("SELECT name FROM maintenance_companies WHERE id = $1", node.id)
        if name is None:
            raise Refused("no such company", missing=True)
        return Place(node.key, node.kind, name,
                     tuple(sorted({s for s, c, _ in world.contracts if c == node.id})))
    site = next((s for s in world.sites if s.id == node.ref), None)
    if site is None:
        raise Refused("no such site", missing=True)
    return Place(node.key, node.kind, site.name, (site.id,))


def _by(world: _World, sites: Iterable[str], grouping: str) -> list[Place]:
    mine = set(sites)
    chosen = [s for s in world.sites if s.id in mine]
    if grouping == "sites":
        return [Place(f"site:{s.id}", "site", s.name, (s.id,)) for s in chosen]
    if grouping == "companies":
        groups: dict[tuple[str, str], list[str]] = {}
        for site, company, name in world.contracts:
            if site in mine:
                groups.setdefault((str(company), name), []).append(site)
        return [Place(f"company:{c}", "company", n, tuple(sorted(set(ss))))
                for (c, n), ss in sorted(groups.items(), key=lambda kv: int(kv[0][0]))]
    if grouping == "industries":
        by_ind: dict[str, list[str]] = {}
        for s in chosen:
            if s.industry is not None:
                by_ind.setdefault(s.industry, []).append(s.id)
        return [Place(f"industry:{i}", "industry", i or "-", tuple(ss))
                for i, ss in sorted(by_ind.items())]
    by_unit: dict[int, tuple[str, list[str]]] = {}
    for s in chosen:
        if s.unit_id is not None:
            by_unit.setdefault(s.unit_id, (s.unit_name or "", []))[1].append(s.id)
    return [Place(f"unit:{u}", "unit", n, tuple(ss), (), (u,))
            for u, (n, ss) in sorted(by_unit.items())]


async def _children(db: Db, world: _World, node: NodeRef, place: Place,
                    grouping: str) -> list[Place]:
    if grouping != "children":
        return _by(world, place.sites, grouping)
    if node.kind == "jurisdiction":
        rows = await db.fetch("SELECT id FROM jurisdictions WHERE parent_id = $1 ORDER BY id",
                              node.id)
        if rows:
            return [await _place(db, world, NodeRef("jurisdiction", str(r[0]))) for r in rows]
        return _by(world, place.sites, "units")
    if node.kind == "industry":
        return _by(world, place.sites, "units")
    if node.kind in ("unit", "company"):
        return _by(world, place.sites, "sites")
    return []


# -- the counts of one place ------------------------------------------------------------------
# $1 sites, $2 start, $3 end, then each query's own.
_ALARMS = """
SELECT count(*) AS alarms,
       count(*) FILTER (WHERE verdict = 'true_fire') AS fires,
       count(*) FILTER (WHERE verdict IN ('false_alarm', 'nuisance')) AS false_alarms,
       count(*) FILTER (WHERE verdict = 'false_alarm') AS equipment_false_alarms,
       count(*) FILTER (WHERE verdict = 'test') AS test_verdicts,
       count(*) FILTER (WHERE class = 'fault') AS faults_raised,
       array_agg(extract(epoch FROM acknowledged_at - coalesce(received_at, stored_at))::float8)
           FILTER (WHERE acknowledged_at IS NOT NULL AND class = 'fire') AS ack_fire,
       array_agg(extract(epoch FROM acknowledged_at - coalesce(received_at, stored_at))::float8)
           FILTER (WHERE acknowledged_at IS NOT NULL) AS ack_all,
       array_agg(extract(epoch FROM verdict_at - coalesce(received_at, stored_at))::float8)
           FILTER (WHERE verdict_at IS NOT NULL AND class = 'fire') AS verdict_fire,
       array_agg(extract(epoch FROM verdict_at - coalesce(received_at, stored_at))::float8)
           FILTER (WHERE verdict_at IS NOT NULL) AS verdict_all,
       array_agg(extract(epoch FROM cleared_at - raised_at)::float8)
           FILTER (WHERE class = 'fault' AND cleared_at IS NOT NULL) AS fault_repair
FROM alarms
WHERE mode = 'normal' AND site_id = ANY($1::text[]) AND raised_at >= $2 AND raised_at < $3
"""

# GB 50440: the (unit, day) pairs with more than 5 equipment false alarms; a site with no unit
# stands for its own user. $4: the time zone the days are counted in.
_GB_DAYS = """
SELECT k, count(*) AS days FROM (
    SELECT coalesce('unit:' || s.unit_id, 'site:' || a.site_id) AS k,
           (a.raised_at AT TIME ZONE $4)::date AS d
    FROM alarms a JOIN sites s ON s.id = a.site_id
    WHERE a.mode = 'normal' AND a.verdict = 'false_alarm' AND a.site_id = ANY($1::text[])
      AND a.raised_at >= $2 AND a.raised_at < $3
    GROUP BY 1, 2 HAVING count(*) > $5) x
GROUP BY k ORDER BY k
"""

# The response-time limits over fire alarms (the clocks of docs/alarms.md, as api/latency.py
# checks them one alarm at a time): limit -> (start clock, end clock). A limit applies when its
# start clock is set; the forward limits only to forwarded or true fires. $4: now.
_LIMIT_CLOCKS: dict[str, tuple[str, str, str]] = {
    "gb50440_display_20s": ("origin", "shown_at", "true"),
    "nfpa72_display_90s": ("origin", "shown_at", "true"),
    "gb50440_forward_3s": ("confirmed", "delivered_at", "fwd"),
    "nfpa72_retransmit_90s": ("received_at", "delivered_at", "fwd"),
}


def _limits_sql() -> str:
    cols = []
    for name, secs in LIMITS.items():
        start, end, applies = _LIMIT_CLOCKS[name]
        lim = f"make_interval(secs => {secs})"
        on = f"{applies} AND {start} IS NOT NULL"
        cols += [
            f"count(*) FILTER (WHERE {on} AND {end} - {start} <= {lim}) AS \"{name}:met\"",
            f"count(*) FILTER (WHERE {on} AND ({end} - {start} > {lim} OR ({end} IS NULL "
            f"AND $4 - {start} > {lim}))) AS \"{name}:missed\"",
            f"count(*) FILTER (WHERE {on} AND {end} IS NULL AND $4 - {start} <= {lim}) "
            f"AS \"{name}:pending\""]
    return (f"SELECT {', '.join(cols)} FROM ("
            "SELECT coalesce(device_ts, received_at) AS origin, shown_at, delivered_at, "
            "received_at, CASE WHEN forward_basis = 'operator' OR (forward_basis IS NULL AND "
            "verdict = 'true_fire') THEN verdict_at ELSE forwarded_at END AS confirmed, "
            "(forwarded_at IS NOT NULL OR verdict IS NOT DISTINCT FROM 'true_fire') AS fwd "
            "FROM alarms WHERE class = 'fire' AND mode = 'normal' AND site_id = ANY($1::text[]) "
            "AND raised_at >= $2 AND raised_at < $3) f")


_LIMITS = _limits_sql()

# Devices as of now: in service; detectors for BS 5839-1; online as supervision sees it
# (api/presence.py: no open `offline` alarm of the device itself); intact: no open fault or
# offline alarm (normal mode) on any of its points.
_DEVICES = f"""
SELECT count(*) FILTER (WHERE d.kind IN ('smoke_detector', 'heat_detector')) AS detectors,
       count(*) AS in_service,
       count(*) FILTER (WHERE d.online AND NOT EXISTS (
           SELECT 1 FROM alarms a WHERE a.device_id = d.id AND a.point = ''
           AND a.type = 'offline' AND a.state IN {OPEN_STATES_SQL})) AS online,
       count(*) FILTER (WHERE NOT EXISTS (
           SELECT 1 FROM alarms a WHERE a.device_id = d.id AND a.mode = 'normal'
           AND a.class IN ('fault', 'offline') AND a.state IN {OPEN_STATES_SQL})) AS intact
FROM devices d WHERE d.lifecycle = 'in_service' AND d.site_id = ANY($1::text[])
"""

# $4 nodes, $5 units (records with no site), $6 E = least(end, now).
_HAZARDS = """
SELECT count(*) FILTER (WHERE found_at >= $2 AND found_at < $3) AS found,
       count(*) FILTER (WHERE found_at >= $2 AND found_at < $3 AND closed_at < $6)
           AS found_closed,
       count(*) FILTER (WHERE closed_at >= $2 AND closed_at < $3) AS closed,
       count(*) FILTER (WHERE found_at < $6 AND deadline < $6
                        AND (closed_at IS NULL OR closed_at >= $6)) AS overdue
FROM hazards
WHERE site_id = ANY($1::text[]) OR (site_id IS NULL AND (jurisdiction_id = ANY($4::bigint[])
      OR unit_id = ANY($5::bigint[])))
"""

# $4 E = least(end, now).
_ORDERS = """
SELECT count(*) AS opened,
       count(*) FILTER (WHERE responded_at <= respond_by AND repaired_at <= repair_by) AS met,
       count(*) FILTER (WHERE responded_at > respond_by OR repaired_at > repair_by
                        OR (responded_at IS NULL AND respond_by < $4)
                        OR (repaired_at IS NULL AND repair_by < $4)) AS missed
FROM work_orders
WHERE site_id = ANY($1::text[]) AND opened_at >= $2 AND opened_at < $3
"""

# $4 time zone: a plan runs in the period when its dates overlap the period's days.
_PATROLS = """
SELECT count(*) AS planned,
       count(*) FILTER (WHERE EXISTS (SELECT 1 FROM patrol_checkins k WHERE
           k.checkpoint_id = c.id AND k.at >= $2 AND k.at < $3)) AS visited
FROM patrol_checkpoints c JOIN patrol_plans p ON p.id = c.plan_id
WHERE c.active AND p.active AND c.site_id = ANY($1::text[])
  AND p.starts_on <= ($3::timestamptz AT TIME ZONE $4)::date
  AND (p.ends_on IS NULL OR p.ends_on >= ($2::timestamptz AT TIME ZONE $4)::date)
"""

# $4 nodes (reports with no site).
_REPORTS = """
SELECT count(*) AS received, count(*) FILTER (WHERE status <> 'received') AS handled
FROM public_reports
WHERE received_at >= $2 AND received_at < $3
  AND (site_id = ANY($1::text[]) OR (site_id IS NULL AND jurisdiction_id = ANY($4::bigint[])))
"""


def _secs(xs: Sequence[float] | None) -> list[float]:
    return [float(x) for x in xs or ()]


async def gather(db: Db, place: Place, start: datetime, end: datetime, *, tz: str = "UTC",
                 now: datetime | None = None) -> Counts:
    """The counts behind every indicator, for one place over [start, end)."""
    now = now_or(now)
    e = min(end, now)
    sites = list(place.sites)
    base = (sites, start, end)
    a = await db.fetchrow(_ALARMS, *base)
    assert a is not None
    gb = await db.fetch(_GB_DAYS, *base, tz, GB50440_DAILY_FALSE_ALARMS)
    lim = await db.fetchrow(_LIMITS, *base, now)
    dev = await db.fetchrow(_DEVICES, sites)
    hz = await db.fetchrow(_HAZARDS, *base, list(place.nodes), list(place.units), e)
    wo = await db.fetchrow(_ORDERS, *base, e)
    pt = await db.fetchrow(_PATROLS, *base, tz)
    rp = await db.fetchrow(_REPORTS, *base, list(place.nodes))
    assert lim is not None and dev is not None and hz is not None
    assert wo is not None and pt is not None and rp is not None
    return Counts(
        alarms=a["alarms"], fires=a["fires"], false_alarms=a["false_alarms"],
        equipment_false_alarms=a["equipment_false_alarms"], test_verdicts=a["test_verdicts"],
        detectors=dev["detectors"],
        gb50440_unit_days=sum(r["days"] for r in gb), gb50440_units=[r["k"] for r in gb],
        ack_fire_s=_secs(a["ack_fire"]), ack_all_s=_secs(a["ack_all"]),
        verdict_fire_s=_secs(a["verdict_fire"]), verdict_all_s=_secs(a["verdict_all"]),
        limits={n: LimitCount(lim[f"{n}:met"], lim[f"{n}:missed"], lim[f"{n}:pending"])
                for n in LIMITS},
        devices_in_service=dev["in_service"], devices_online=dev["online"],
        devices_intact=dev["intact"], faults_raised=a["faults_raised"],
        fault_repair_s=_secs(a["fault_repair"]),
        hazards_found=hz["found"], hazards_found_closed=hz["found_closed"],
        hazards_closed=hz["closed"], hazards_overdue=hz["overdue"],
        orders_opened=wo["opened"], orders_met=wo["met"], orders_missed=wo["missed"],
        checkpoints_planned=pt["planned"], checkpoints_visited=pt["visited"],
        reports_received=rp["received"], reports_handled=rp["handled"])



# -- a report: a node and its children --------------------------------------------------------

@dataclass
class Figures:
    place: Place
    counts: Counts
    values: dict[str, float | None]


@dataclass
class Report:
    node: Figures
    children: list[Figures] = field(default_factory=list)
    start: datetime | None = None
    end: datetime | None = None
    days: float = 0.0
    timezone: str = "UTC"
    grouping: str = "children"


def period_days(start: datetime, end: datetime) -> float:
    """The period's length in days (0 for an empty period)."""
    return max(0.0, (end - start).total_seconds() / 86400.0)


def check_zone(tz: str) -> None:
    """Refused unless `tz` is an IANA time zone name (days are counted in it)."""
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise Refused(f"unknown time zone {tz!r}") from None


def check_period(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise Refused("start and end need a UTC offset")
    if end <= start:
        raise Refused("the period is empty: end must be after start")
    if period_days(start, end) > 3660:
        raise Refused("the period is longer than ten years: narrow it")


async def visible_node(db: Db, node: NodeRef, viewer: Viewer, *, start: datetime,
                       end: datetime, tz: str = "UTC") -> Place:
    """The place of a node the viewer may see, cut to what it sees; Refused(missing) for a
    node that does not exist or lies outside the viewer's scope (the same answer)."""
    return await _visible(db, await _World.load(db, start, end, tz), node, viewer)


async def _visible(db: Db, world: _World, node: NodeRef, viewer: Viewer) -> Place:
    place = await _place(db, world, node)
    if viewer.sites is not None:
        allowed = {"jurisdiction": node.kind == "jurisdiction" and viewer.nodes is not None
                   and node.id in viewer.nodes,
                   "unit": viewer.units is not None and node.id in viewer.units,
                   "site": node.ref in viewer.sites}.get(
                       node.kind, bool(set(place.sites) & viewer.sites))
        if not allowed:
            raise Refused(f"no such {node.kind}", missing=True)
    return place.seen_by(viewer)


async def report(db: Db, node: NodeRef, start: datetime, end: datetime, *,
                 viewer: Viewer = EVERYONE, grouping: str = "children", tz: str = "UTC",
                 now: datetime | None = None, children: bool = True) -> Report:
    """Every indicator of a node over [start, end), and of each of its children (or of the
    groups of its sites by `grouping`)."""
    check_period(start, end)
    check_zone(tz)
    if grouping not in GROUPINGS:
        raise Refused(f"grouping must be one of {', '.join(GROUPINGS)}")
    now = now_or(now)
    days = period_days(start, end)
    world = await _World.load(db, start, end, tz)
    place = await _visible(db, world, node, viewer)

    async def figures(p: Place) -> Figures:
        counts = await gather(db, p, start, end, tz=tz, now=now)
        return Figures(p, counts, compute_all(counts, days))

    out = Report(await figures(place), start=start, end=end, days=days, timezone=tz,
                 grouping=grouping)
    if children:
        for child in await _children(db, world, node, place, grouping):
            out.children.append(await figures(child.seen_by(viewer)))
    return out
