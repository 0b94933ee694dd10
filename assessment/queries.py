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
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg

from assessment.indicators import (
    GB50440_DAILY_FALSE_ALARMS,
    LIMITS,
    Binned,
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
    """The counts behind every indicator, for one place over [start, end) (from the summary
    tables and the raw edges: `gather_many`)."""
    return (await gather_many(db, [place], start, end, tz=tz, now=now))[0]


async def gather_raw(db: Db, place: Place, start: datetime, end: datetime, *, tz: str = "UTC",
                     now: datetime | None = None) -> Counts:
    """The counts of one place read from the raw tables only, one query per family: the
    reference the summary path is tested and benchmarked against (exact times, unbucketed)."""
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

# -- the counts of many places at once: the summary tables and the raw edges --------------------
# Every query takes the places as (group, site) pairs, $1 int[] and $2 text[], and answers per
# group; whole UTC months come from alarm_month_counts / alarm_month_times (migration 0019),
# the partial months at the period's edges from `alarms` ($3..$6: [start, m0) and [m1, end)).

_PAIRS = "unnest($1::int[], $2::text[]) p (g, site)"
_EDGES = "((a.raised_at >= $3 AND a.raised_at < $4) OR (a.raised_at >= $5 AND a.raised_at < $6))"

_SUM_COUNTS = f"""
SELECT p.g, c.class, c.verdict, sum(c.n)::bigint AS n,
       {", ".join(f"sum(c.{k}_{w})::bigint AS {k}_{w}" for k in ("gd", "nd", "gf", "nr")
                  for w in ("met", "over", "open"))}
FROM alarm_month_counts c JOIN {_PAIRS} ON c.site_id = p.site
WHERE c.month >= $3 AND c.month < $4
GROUP BY 1, 2, 3
"""

# one alarm's limit columns, as migration 0019's assessment_summary_add counts them
_LIM_SPEC = {"gd": ("origin", "shown_at", "true", 20), "nd": ("origin", "shown_at", "true", 90),
             "gf": ("confirmed", "delivered_at", "fwd", 3),
             "nr": ("received_at", "delivered_at", "fwd", 90)}
_LIM_KEYS = {"gd": "gb50440_display_20s", "nd": "nfpa72_display_90s",
             "gf": "gb50440_forward_3s", "nr": "nfpa72_retransmit_90s"}


def _lim_cols() -> str:
    cols = []
    for k, (st, en, applies, secs) in _LIM_SPEC.items():
        on = f"fire AND {applies} AND {st} IS NOT NULL"
        lim = f"interval '{secs} s'"
        cols += [f"count(*) FILTER (WHERE {on} AND {en} - {st} <= {lim}) AS {k}_met",
                 f"count(*) FILTER (WHERE {on} AND {en} - {st} > {lim}) AS {k}_over",
                 f"count(*) FILTER (WHERE {on} AND {en} IS NULL) AS {k}_open"]
    return ", ".join(cols)


_CLOCKS = """a.class = 'fire' AS fire, coalesce(a.device_ts, a.received_at) AS origin,
       a.shown_at, a.delivered_at, a.received_at,
       CASE WHEN a.forward_basis = 'operator' OR (a.forward_basis IS NULL AND
            a.verdict = 'true_fire') THEN a.verdict_at ELSE a.forwarded_at END AS confirmed,
       (a.forwarded_at IS NOT NULL OR a.verdict IS NOT DISTINCT FROM 'true_fire') AS fwd"""

_RAW_COUNTS = f"""
SELECT g, class, verdict, count(*) AS n, {_lim_cols()} FROM (
    SELECT p.g, a.class, coalesce(a.verdict, '') AS verdict, {_CLOCKS}
    FROM alarms a JOIN {_PAIRS} ON a.site_id = p.site
    WHERE a.mode = 'normal' AND {_EDGES}) x
GROUP BY 1, 2, 3
"""

# the open clocks that are still pending (counted open above): only alarms with a start clock
# within the longest limit of now can be. $3 start, $4 end, $5 now.
_PENDING = f"""
SELECT g, {", ".join(
    f"count(*) FILTER (WHERE fire AND {a} AND {st} IS NOT NULL AND {en} IS NULL "
    f"AND $5::timestamptz - {st} <= interval '{secs} s') AS {k}"
    for k, (st, en, a, secs) in _LIM_SPEC.items())} FROM (
    SELECT p.g, {_CLOCKS}
    FROM alarms a JOIN {_PAIRS} ON a.site_id = p.site
    WHERE a.class = 'fire' AND a.mode = 'normal' AND a.raised_at >= $3 AND a.raised_at < $4
      AND greatest(a.device_ts, a.received_at, a.verdict_at, a.forwarded_at)
          > $5::timestamptz - interval '{max(LIMITS.values()):g} s') x
GROUP BY 1
"""

_SUM_TIMES = f"""
SELECT p.g, t.class, t.kind, t.bucket, sum(t.n)::bigint AS n
FROM alarm_month_times t JOIN {_PAIRS} ON t.site_id = p.site
WHERE t.month >= $3 AND t.month < $4
GROUP BY 1, 2, 3, 4
"""

_RAW_TIMES = f"""
SELECT g, class, kind, assessment_bucket(extract(epoch FROM v)::float8) AS bucket,
       count(*) AS n FROM (
    SELECT p.g, a.class, x.kind, x.v
    FROM alarms a JOIN {_PAIRS} ON a.site_id = p.site
    CROSS JOIN LATERAL (VALUES
        ('ack', a.acknowledged_at - coalesce(a.received_at, a.stored_at)),
        ('verdict', a.verdict_at - coalesce(a.received_at, a.stored_at)),
        ('repair', CASE WHEN a.class = 'fault' THEN a.cleared_at - a.raised_at END)) x (kind, v)
    WHERE a.mode = 'normal' AND {_EDGES} AND x.v IS NOT NULL) y
GROUP BY 1, 2, 3, 4
"""

# $3 start, $4 end, $5 tz, $6 the daily threshold
_GB_MANY = f"""
SELECT g, k, count(*) AS days FROM (
    SELECT p.g, coalesce('unit:' || s.unit_id, 'site:' || a.site_id) AS k,
           (a.raised_at AT TIME ZONE $5)::date AS d
    FROM alarms a JOIN {_PAIRS} ON a.site_id = p.site JOIN sites s ON s.id = a.site_id
    WHERE a.mode = 'normal' AND a.verdict = 'false_alarm'
      AND a.raised_at >= $3 AND a.raised_at < $4
    GROUP BY 1, 2, 3 HAVING count(*) > $6) x
GROUP BY g, k ORDER BY g, k
"""

_DEVICES_MANY = f"""
SELECT p.g, count(*) FILTER (WHERE d.kind IN ('smoke_detector', 'heat_detector')) AS detectors,
       count(*) AS in_service,
       count(*) FILTER (WHERE d.online AND NOT EXISTS (
           SELECT 1 FROM alarms a WHERE a.device_id = d.id AND a.point = ''
           AND a.type = 'offline' AND a.state IN {OPEN_STATES_SQL})) AS online,
       count(*) FILTER (WHERE NOT EXISTS (
           SELECT 1 FROM alarms a WHERE a.device_id = d.id AND a.mode = 'normal'
           AND a.class IN ('fault', 'offline') AND a.state IN {OPEN_STATES_SQL})) AS intact
FROM devices d JOIN {_PAIRS} ON d.site_id = p.site WHERE d.lifecycle = 'in_service'
GROUP BY 1
"""

# $3 start, $4 end, $5/$6 (group, node) pairs, $7/$8 (group, unit) pairs, $9 E
_HAZARDS_MANY = f"""
WITH hp AS (
    SELECT p.g, h.id FROM hazards h JOIN {_PAIRS} ON h.site_id = p.site
    UNION
    SELECT p.g, h.id FROM hazards h JOIN unnest($5::int[], $6::bigint[]) p (g, node)
        ON h.site_id IS NULL AND h.jurisdiction_id = p.node
    UNION
    SELECT p.g, h.id FROM hazards h JOIN unnest($7::int[], $8::bigint[]) p (g, unit)
        ON h.site_id IS NULL AND h.unit_id = p.unit)
SELECT hp.g,
       count(*) FILTER (WHERE found_at >= $3 AND found_at < $4) AS found,
       count(*) FILTER (WHERE found_at >= $3 AND found_at < $4 AND closed_at < $9)
           AS found_closed,
       count(*) FILTER (WHERE closed_at >= $3 AND closed_at < $4) AS closed,
       count(*) FILTER (WHERE found_at < $9 AND deadline < $9
                        AND (closed_at IS NULL OR closed_at >= $9)) AS overdue
FROM hp JOIN hazards h ON h.id = hp.id GROUP BY 1
"""

# $3 start, $4 end, $5 E
_ORDERS_MANY = f"""
SELECT p.g, count(*) AS opened,
       count(*) FILTER (WHERE responded_at <= respond_by AND repaired_at <= repair_by) AS met,
       count(*) FILTER (WHERE responded_at > respond_by OR repaired_at > repair_by
                        OR (responded_at IS NULL AND respond_by < $5)
                        OR (repaired_at IS NULL AND repair_by < $5)) AS missed
FROM work_orders w JOIN {_PAIRS} ON w.site_id = p.site
WHERE w.opened_at >= $3 AND w.opened_at < $4 GROUP BY 1
"""

# $3 start, $4 end, $5 tz
_PATROLS_MANY = f"""
SELECT p.g, count(*) AS planned,
       count(*) FILTER (WHERE EXISTS (SELECT 1 FROM patrol_checkins k WHERE
           k.checkpoint_id = c.id AND k.at >= $3 AND k.at < $4)) AS visited
FROM patrol_checkpoints c JOIN patrol_plans pl ON pl.id = c.plan_id
JOIN {_PAIRS} ON c.site_id = p.site
WHERE c.active AND pl.active
  AND pl.starts_on <= ($4::timestamptz AT TIME ZONE $5)::date
  AND (pl.ends_on IS NULL OR pl.ends_on >= ($3::timestamptz AT TIME ZONE $5)::date)
GROUP BY 1
"""

# $3 start, $4 end, $5/$6 (group, node) pairs
_REPORTS_MANY = f"""
WITH rp AS (
    SELECT p.g, r.id FROM public_reports r JOIN {_PAIRS} ON r.site_id = p.site
    UNION
    SELECT p.g, r.id FROM public_reports r JOIN unnest($5::int[], $6::bigint[]) p (g, node)
        ON r.site_id IS NULL AND r.jurisdiction_id = p.node)
SELECT rp.g, count(*) AS received, count(*) FILTER (WHERE status <> 'received') AS handled
FROM rp JOIN public_reports r ON r.id = rp.id
WHERE r.received_at >= $3 AND r.received_at < $4 GROUP BY 1
"""


def _month_floor(t: datetime) -> datetime:
    u = t.astimezone(UTC)
    return datetime(u.year, u.month, 1, tzinfo=UTC)


def _next_month(m: datetime) -> datetime:
    return m.replace(year=m.year + 1, month=1) if m.month == 12 else m.replace(month=m.month + 1)


def summary_months(start: datetime, end: datetime) -> tuple[datetime, datetime] | None:
    """The whole UTC months [m0, m1) inside [start, end) that the summary answers; None when
    there is none (the period is read from `alarms` alone)."""
    m0 = _month_floor(start)
    if m0 < start:
        m0 = _next_month(m0)
    m1 = _month_floor(end)
    return (m0, m1) if m0 < m1 else None


def _pairs(places: Sequence[Place], attr: str) -> tuple[list[int], list[Any]]:
    gs: list[int] = []
    xs: list[Any] = []
    for i, p in enumerate(places):
        for x in getattr(p, attr):
            gs.append(i)
            xs.append(x)
    return gs, xs


async def gather_many(db: Db, places: Sequence[Place], start: datetime, end: datetime, *,
                      tz: str = "UTC", now: datetime | None = None) -> list[Counts]:
    """The counts of several places over [start, end), in one grouped query per family: the
    alarm figures from the summary tables for whole UTC months and from `alarms` for the
    edges; the same numbers as `gather_raw` (times rounded as `assessment_bucket`)."""
    now = now_or(now)
    e = min(end, now)
    n = len(places)
    gs, sites = _pairs(places, "sites")
    pairs = (gs, sites)
    months = summary_months(start, end)
    edges = (start, end, end, end) if months is None else (start, months[0], months[1], end)

    counts: list[dict[str, int]] = [dict.fromkeys(
        ("alarms", "fires", "false_alarms", "equipment_false_alarms", "test_verdicts",
         "faults_raised"), 0) for _ in range(n)]
    lims = [{f"{k}_{w}": 0 for k in _LIM_SPEC for w in ("met", "over", "open")}
            for _ in range(n)]
    rows = list(await db.fetch(_RAW_COUNTS, *pairs, *edges))
    if months is not None:
        rows += await db.fetch(_SUM_COUNTS, *pairs, *months)
    for r in rows:
        c = counts[r["g"]]
        c["alarms"] += r["n"]
        v = r["verdict"]
        c["fires"] += r["n"] if v == "true_fire" else 0
        c["false_alarms"] += r["n"] if v in ("false_alarm", "nuisance") else 0
        c["equipment_false_alarms"] += r["n"] if v == "false_alarm" else 0
        c["test_verdicts"] += r["n"] if v == "test" else 0
        c["faults_raised"] += r["n"] if r["class"] == "fault" else 0
        for k in lims[r["g"]]:
            lims[r["g"]][k] += r[k]
    pending = {r["g"]: r for r in await db.fetch(_PENDING, *pairs, start, end, now)}

    bins: list[dict[str, dict[float, int]]] = [
        {k: {} for k in ("ack_fire", "ack_all", "verdict_fire", "verdict_all", "fault_repair")}
        for _ in range(n)]
    rows = list(await db.fetch(_RAW_TIMES, *pairs, *edges))
    if months is not None:
        rows += await db.fetch(_SUM_TIMES, *pairs, *months)
    for r in rows:
        b = bins[r["g"]]
        kind, cls, v, k = r["kind"], r["class"], r["bucket"], r["n"]
        targets = (["fault_repair"] if kind == "repair" and cls == "fault" else
                   [] if kind == "repair" else
                   [f"{kind}_all", f"{kind}_fire"] if cls == "fire" else [f"{kind}_all"])
        for t in targets:
            b[t][v] = b[t].get(v, 0) + k

    gb: list[list[tuple[str, int]]] = [[] for _ in range(n)]
    for r in await db.fetch(_GB_MANY, *pairs, start, end, tz, GB50440_DAILY_FALSE_ALARMS):
        gb[r["g"]].append((r["k"], r["days"]))
    dev = {r["g"]: r for r in await db.fetch(_DEVICES_MANY, *pairs)}
    hz = {r["g"]: r for r in await db.fetch(_HAZARDS_MANY, *pairs, start, end,
                                            *_pairs(places, "nodes"), *_pairs(places, "units"),
                                            e)}
    wo = {r["g"]: r for r in await db.fetch(_ORDERS_MANY, *pairs, start, end, e)}
    pt = {r["g"]: r for r in await db.fetch(_PATROLS_MANY, *pairs, start, end, tz)}
    rp = {r["g"]: r for r in await db.fetch(_REPORTS_MANY, *pairs, start, end,
                                            *_pairs(places, "nodes"))}

    def get(rows: dict[int, Any], g: int, key: str) -> int:
        r = rows.get(g)
        return int(r[key]) if r is not None else 0

    out = []
    for g in range(n):
        lm = lims[g]
        limits = {}
        for k, name in _LIM_KEYS.items():
            pend = get(pending, g, k)
            limits[name] = LimitCount(lm[f"{k}_met"], lm[f"{k}_over"] + lm[f"{k}_open"] - pend,
                                      pend)
        b = bins[g]
        out.append(Counts(
            **counts[g], detectors=get(dev, g, "detectors"),
            gb50440_unit_days=sum(d for _, d in gb[g]), gb50440_units=[k for k, _ in gb[g]],
            ack_fire_s=Binned(b["ack_fire"]), ack_all_s=Binned(b["ack_all"]),
            verdict_fire_s=Binned(b["verdict_fire"]), verdict_all_s=Binned(b["verdict_all"]),
            fault_repair_s=Binned(b["fault_repair"]),
            limits={name: limits[name] for name in LIMITS},
            devices_in_service=get(dev, g, "in_service"), devices_online=get(dev, g, "online"),
            devices_intact=get(dev, g, "intact"),
            hazards_found=get(hz, g, "found"), hazards_found_closed=get(hz, g, "found_closed"),
            hazards_closed=get(hz, g, "closed"), hazards_overdue=get(hz, g, "overdue"),
            orders_opened=get(wo, g, "opened"), orders_met=get(wo, g, "met"),
            orders_missed=get(wo, g, "missed"),
            checkpoints_planned=get(pt, g, "planned"), checkpoints_visited=get(pt, g, "visited"),
            reports_received=get(rp, g, "received"), reports_handled=get(rp, g, "handled")))
    return out


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
                 now: datetime | None = None, children: bool = True,
                 source: Literal["summary", "raw"] = "summary") -> Report:
    """Every indicator of a node over [start, end), and of each of its children (or of the
    groups of its sites by `grouping`), all places in one grouped query per family.
    `source="raw"`: each place from the raw tables on its own (`gather_raw`, the baseline)."""
    check_period(start, end)
    check_zone(tz)
    if grouping not in GROUPINGS:
        raise Refused(f"grouping must be one of {', '.join(GROUPINGS)}")
    now = now_or(now)
    days = period_days(start, end)
    world = await _World.load(db, start, end, tz)
    place = await _visible(db, world, node, viewer)

    places = [place]
    if children:
        places += [c.seen_by(viewer) for c in await _children(db, world, node, place, grouping)]
    if source == "raw":
        counts = [await gather_raw(db, p, start, end, tz=tz, now=now) for p in places]
    else:
        counts = await gather_many(db, places, start, end, tz=tz, now=now)
    figs = [Figures(p, c, compute_all(c, days)) for p, c in zip(places, counts, strict=True)]
    return Report(figs[0], figs[1:], start=start, end=end, days=days, timezone=tz,
                  grouping=grouping)
