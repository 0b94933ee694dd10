"""The briefings of the jurisdictions (docs/assessment.md, "Briefings"): the figures a
briefing is built from, read with `assessment.queries.report` and `assessment.targets`; the
generation (content, PDF, chart SVGs); and the table `briefings`, of which this module is the
only writer.

One row per jurisdiction and month. Generating on demand replaces the row's content and PDF
and adds one to its `version`; the schedule (`firetower loop`, `generate_due`) only ever
inserts, so two loops, or one run twice, generate a month once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from assessment import queries, targets
from assessment.briefing import (
    RANKING_KEYS,
    Briefing,
    BriefingData,
    PlaceFigures,
    SitePoint,
    Values,
    add_months,
    build,
)
from assessment.briefing_pdf import Font, chart_svg, render_pdf
from assessment.queries import Db, NodeRef, Report
from firetower.refusal import Refused, now_or

LEVELS = ("province", "city", "district", "township", "community", "grid")
SCHEDULE_LEVELS = ("province", "city", "district")   # district level and above
SCHEDULE = "schedule"


def zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise Refused(f"unknown time zone {tz!r}") from None


def month_bounds(month: date, tz: str) -> tuple[datetime, datetime]:
    """The month [start, end) in `tz`, as UTC instants."""
    z = zone(tz)
    nxt = add_months(month, 1)
    return (datetime(month.year, month.month, 1, tzinfo=z).astimezone(UTC),
            datetime(nxt.year, nxt.month, 1, tzinfo=z).astimezone(UTC))


def last_month(now: datetime, tz: str) -> date:
    """The month before the one `now` lies in, in `tz`."""
    local = now.astimezone(zone(tz))
    return add_months(date(local.year, local.month, 1), -1)


def _places(rep: Report) -> list[PlaceFigures]:
    return [PlaceFigures(c.place.key, c.place.name, c.values, c.place.sites)
            for c in rep.children]


async def collect(db: Db, jurisdiction_id: int, month: date, *, tz: str = "UTC",
                  now: datetime | None = None,
                  ranking_keys: tuple[str, ...] = RANKING_KEYS) -> BriefingData:
    """Every figure of a jurisdiction's briefing for `month` (its whole subtree)."""
    now = now_or(now)
    start, month_end = month_bounds(month, tz)
    if start >= now:
        raise Refused("the month has not begun")
    row = await db.fetchrow("SELECT name, level FROM jurisdictions WHERE id = $1",
                            jurisdiction_id)
    if row is None:
        raise Refused("no such jurisdiction", missing=True)
    complete = month_end <= now
    end = month_end if complete else now
    node = NodeRef("jurisdiction", str(jurisdiction_id))
    current = await queries.report(db, node, start, end, tz=tz, now=now)
    units = await queries.report(db, node, start, end, tz=tz, now=now, grouping="units")

    async def values(m: date) -> Values:
        s, e = month_bounds(m, tz)
        rep = await queries.report(db, node, s, e, tz=tz, now=now, children=False)
        return rep.node.values

    trend: list[tuple[date, Values]] = []
    for back in range(11, 0, -1):
        m = add_months(month, -back)
        trend.append((m, await values(m)))
    trend.append((month, current.node.values))
    previous = trend[-2][1]

    goals = await targets.get_targets(db, jurisdiction_id, month.year)
    ytd: Values = {}
    if goals:
        prog = await targets.progress(db, jurisdiction_id, month.year, tz=tz,
                                      now=min(month_end, now))
        ytd = prog.report.node.values

    unit_names = {u.place.key: u.place.name for u in units.children}
    flagged = current.node.counts.gb50440_units
    site_ids = [k.partition(":")[2] for k in flagged if k.startswith("site:")]
    site_names = {r["id"]: r["name"] for r in await db.fetch(
        "SELECT id, name FROM sites WHERE id = ANY($1::text[])", site_ids)}
    names = [unit_names.get(k) or site_names.get(k.partition(":")[2]) or k for k in flagged]

    sites = [SitePoint(r["id"], r["name"], r["latitude"], r["longitude"])
             for r in await db.fetch(
                 "SELECT id, name, latitude, longitude FROM sites WHERE id = ANY($1::text[]) "
                 "AND latitude IS NOT NULL AND longitude IS NOT NULL ORDER BY id",
                 list(current.node.place.sites))]
    boundaries = {f"jurisdiction:{r['id']}": r["boundary"] for r in await db.fetch(
        "SELECT id, boundary FROM jurisdictions WHERE parent_id = $1 AND boundary IS NOT NULL",
        jurisdiction_id)}
    return BriefingData(
        jurisdiction_id, row["name"], row["level"], month, tz, current.node.values, previous,
        trend, _places(current), _places(units), names, goals, ytd, sites, boundaries,
        current.node.counts.devices_in_service, complete,
        "" if complete else now.astimezone(zone(tz)).date().isoformat(), ranking_keys)


@dataclass
class Rendered:
    briefing: Briefing
    pdf: bytes
    charts: dict[str, str]   # name -> SVG


def render(briefing: Briefing, font: Font, generated: str) -> Rendered:
    """The PDF and the SVG of every chart (CPU work: run it off the event loop)."""
    return Rendered(briefing, render_pdf(briefing, font, generated=generated),
                    {c.name: chart_svg(c, font).decode() for c in briefing.charts})


@dataclass
class Stored:
    id: int
    jurisdiction_id: int
    jurisdiction_name: str
    month: date
    timezone: str
    version: int
    generated_at: datetime
    generated_by: str
    content: dict[str, Any] | None = None


_UPSERT = """
INSERT INTO briefings (jurisdiction_id, month, timezone, generated_at, generated_by, content,
                       charts, pdf)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (jurisdiction_id, month) DO {}
RETURNING id
"""
_REPLACE = _UPSERT.format(
    "UPDATE SET version = briefings.version + 1, timezone = EXCLUDED.timezone, "
    "generated_at = EXCLUDED.generated_at, generated_by = EXCLUDED.generated_by, "
    "content = EXCLUDED.content, charts = EXCLUDED.charts, pdf = EXCLUDED.pdf")
_ONCE = _UPSERT.format("NOTHING")


async def generate(db: Db, jurisdiction_id: int, month: date, *, by: str, font: Font,
                   tz: str = "UTC", now: datetime | None = None,
                   ranking_keys: tuple[str, ...] = RANKING_KEYS) -> Stored | None:
    """Build, render and store the briefing of a jurisdiction and month. On demand (`by` a
    user) it replaces the stored one as the next version; by the schedule (`by` ==
    SCHEDULE) it is stored only if there is none yet (else None)."""
    now = now_or(now)
    data = await collect(db, jurisdiction_id, month, tz=tz, now=now, ranking_keys=ranking_keys)
    briefing = build(data)
    stamp = now.astimezone(zone(tz)).strftime("%Y-%m-%d %H:%M")
    out = await asyncio.to_thread(render, briefing, font, stamp)
    sql = _ONCE if by == SCHEDULE else _REPLACE
    new_id = await db.fetchval(sql, jurisdiction_id, month, tz, now, by[:200],
                               briefing.to_json(), out.charts, out.pdf)
    if new_id is None:
        return None
    return await get(db, new_id)


_COLUMNS = ("b.id, b.jurisdiction_id, j.name AS jurisdiction_name, b.month, b.timezone, "
            "b.version, b.generated_at, b.generated_by")


def _stored(r: Any, content: dict[str, Any] | None = None) -> Stored:
    return Stored(r["id"], r["jurisdiction_id"], r["jurisdiction_name"], r["month"],
                  r["timezone"], r["version"], r["generated_at"], r["generated_by"], content)


async def get(db: Db, briefing_id: int) -> Stored | None:
    r = await db.fetchrow(f"SELECT {_COLUMNS}, b.content FROM briefings b "
                          "JOIN jurisdictions j ON j.id = b.jurisdiction_id WHERE b.id = $1",
                          briefing_id)
    return None if r is None else _stored(r, r["content"])


async def pdf(db: Db, briefing_id: int) -> tuple[int, bytes] | None:
    """(jurisdiction id, PDF bytes)."""
    r = await db.fetchrow("SELECT jurisdiction_id, pdf FROM briefings WHERE id = $1",
                          briefing_id)
    return None if r is None else (r["jurisdiction_id"], bytes(r["pdf"]))


async def chart(db: Db, briefing_id: int, name: str) -> tuple[int, str | None] | None:
    """(jurisdiction id, the chart's SVG or None when it has no such chart)."""
    r = await db.fetchrow("SELECT jurisdiction_id, charts -> $2::text AS svg FROM briefings "
                          "WHERE id = $1", briefing_id, name)
    return None if r is None else (r["jurisdiction_id"], r["svg"])


async def list_briefings(db: Db, *, visible: Iterable[int] | None = None,
                         jurisdiction_id: int | None = None, month: date | None = None,
                         limit: int = 100) -> list[Stored]:
    """The briefings, newest month first; `visible`: only those of these jurisdictions."""
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM briefings b JOIN jurisdictions j ON j.id = b.jurisdiction_id "
        "WHERE ($1::bigint[] IS NULL OR b.jurisdiction_id = ANY($1::bigint[])) "
        "AND ($2::bigint IS NULL OR b.jurisdiction_id = $2) "
        "AND ($3::date IS NULL OR b.month = $3) "
        "ORDER BY b.month DESC, b.jurisdiction_id LIMIT $4",
        None if visible is None else list(visible), jurisdiction_id, month, limit)
    return [_stored(r) for r in rows]


async def due(db: Db, month: date, levels: Iterable[str]) -> list[int]:
    """The jurisdictions at these levels with no briefing of `month` yet."""
    rows = await db.fetch(
        "SELECT j.id FROM jurisdictions j WHERE j.level = ANY($1::text[]) AND NOT EXISTS ("
        "SELECT 1 FROM briefings b WHERE b.jurisdiction_id = j.id AND b.month = $2) "
        "ORDER BY cardinality(j.path), j.id", list(levels), month)
    return [r[0] for r in rows]


async def generate_due(db: Db, *, font: Font, levels: Iterable[str] = SCHEDULE_LEVELS,
                       tz: str = "UTC", now: datetime | None = None,
                       before_each: Callable[[], object] | None = None) -> list[int]:
    """The schedule: last month's briefing (in `tz`) of every jurisdiction at `levels` that
    has none yet; the ids stored. Idempotent: a month once stored is never regenerated here.
    `before_each` is called before each generation (the loop's heartbeat)."""
    now = now_or(now)
    bad = set(levels) - set(LEVELS)
    if bad:
        raise Refused(f"unknown jurisdiction levels: {', '.join(sorted(bad))}")
    month = last_month(now, tz)
    done = []
    for jid in await due(db, month, levels):
        if before_each is not None:
            before_each()
        stored = await generate(db, jid, month, by=SCHEDULE, font=font, tz=tz, now=now)
        if stored is not None:
            done.append(stored.id)
    return done
