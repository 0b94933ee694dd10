"""Yearly targets per jurisdiction (年初下达目标), the progress against them, and the ranking of
a node's children on one indicator (通报排名), docs/assessment.md.

`set_targets` is the only writer of `assessment_targets`: one transaction replaces a
jurisdiction's targets for a year, with an audit_log row (before, after) as org/store.py writes
them for the organisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from assessment.indicators import INDICATORS, is_met, rank
from assessment.queries import (
    EVERYONE,
    Db,
    Figures,
    NodeRef,
    Report,
    Viewer,
    check_zone,
    report,
)
from firetower.refusal import Conn, Refused, now_or
from org.store import Actor, audit

MAX_TARGETS = len(INDICATORS)


def check_targets(targets: dict[str, float]) -> None:
    """Refused unless every key is an indicator and every value fits its unit."""
    for key, value in targets.items():
        ind = INDICATORS.get(key)
        if ind is None:
            raise Refused(f"no indicator {key!r} (GET /assessment/indicators lists them)")
        if not 0 <= value < float("inf"):
            raise Refused(f"the target of {key} must be a finite number >= 0")
        if ind.unit == "ratio" and value > 1:
            raise Refused(f"the target of {key} is a ratio between 0 and 1")


async def get_targets(db: Db, jurisdiction_id: int, year: int) -> dict[str, float]:
    rows = await db.fetch("SELECT indicator, target FROM assessment_targets "
                          "WHERE jurisdiction_id = $1 AND year = $2 ORDER BY indicator",
                          jurisdiction_id, year)
    return {r["indicator"]: r["target"] for r in rows}


async def set_targets(conn: Conn, actor: Actor, jurisdiction_id: int, year: int,
                      targets: dict[str, float]) -> dict[str, float]:
    """Replace the targets of a jurisdiction for a year (an empty dict removes them)."""
    check_targets(targets)
    async with conn.transaction():
        if not await conn.fetchval("SELECT 1 FROM jurisdictions WHERE id = $1 FOR SHARE",
                                   jurisdiction_id):
            raise Refused("no such jurisdiction", missing=True)
        before = await get_targets(conn, jurisdiction_id, year)
        if before == targets:
            return before
        await conn.execute("DELETE FROM assessment_targets WHERE jurisdiction_id = $1 "
                           "AND year = $2", jurisdiction_id, year)
        await conn.executemany(
            "INSERT INTO assessment_targets (jurisdiction_id, year, indicator, target, set_by) "
            "VALUES ($1, $2, $3, $4, $5)",
            [(jurisdiction_id, year, k, v, actor.name) for k, v in sorted(targets.items())])
        await audit(conn, actor, "update", "assessment_target", f"{jurisdiction_id}/{year}",
                    {"year": year, "targets": before}, {"year": year, "targets": targets})
    return dict(sorted(targets.items()))


def year_period(year: int, tz: str) -> tuple[datetime, datetime]:
    check_zone(tz)
    zone = ZoneInfo(tz)
    return (datetime(year, 1, 1, tzinfo=zone).astimezone(UTC),
            datetime(year + 1, 1, 1, tzinfo=zone).astimezone(UTC))


@dataclass
class Progress:
    indicator: str
    target: float
    actual: float | None
    met: bool | None


@dataclass
class YearProgress:
    jurisdiction_id: int
    year: int
    start: datetime
    end: datetime            # the year's end, or now when the year is still running
    elapsed: float           # the share of the year passed, 0..1
    items: list[Progress]
    report: Report


async def progress(db: Db, jurisdiction_id: int, year: int, *, viewer: Viewer = EVERYONE,
                   tz: str = "UTC", now: datetime | None = None) -> YearProgress:
    """Each target of the year against the figure of the year so far (年中/年底考核)."""
    now = now_or(now)
    start, year_end = year_period(year, tz)
    end = min(year_end, now) if start < now else year_end
    node = NodeRef("jurisdiction", str(jurisdiction_id))
    rep = await report(db, node, start, end, viewer=viewer, tz=tz, now=now, children=False)
    targets = await get_targets(db, jurisdiction_id, year)
    values = rep.node.values
    items = [Progress(k, t, values.get(k), is_met(values.get(k), t, INDICATORS[k].direction))
             for k, t in targets.items() if k in INDICATORS]
    elapsed = (end - start).total_seconds() / (year_end - start).total_seconds()
    return YearProgress(jurisdiction_id, year, start, end, min(1.0, max(0.0, elapsed)), items,
                        rep)


def ranking(rep: Report, indicator: str) -> list[tuple[int | None, Figures]]:
    """The children of a report ordered by `indicator`, best first by its direction, with
    shared ranks for equal figures; children with no figure last, unranked."""
    ind = INDICATORS.get(indicator)
    if ind is None:
        raise Refused(f"no indicator {indicator!r} (GET /assessment/indicators lists them)")
    ranks = rank([c.values.get(indicator) for c in rep.children], ind.direction)
    pairs = list(zip(ranks, rep.children, strict=True))
    pairs.sort(key=lambda p: (p[0] is None, p[0] or 0, p[1].place.key))
    return pairs

