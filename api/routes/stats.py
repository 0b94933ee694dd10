"""`/stats`: assessment figures for supervisors: alarm counts by class and verdict, the
false-alarm rate, acknowledgement times and the device online rate; `/stats/compliance`: how
many fire alarms met the GB 50440 and NFPA 72 response-time limits, per period and site."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import Needs, PoolDep, Principal
from api.errors import NotFound, Unprocessable, responses
from api.latency import limits
from api.permissions import Permission
from api.presence import ONLINE_SQL
from api.schemas import MAX_ID, Timestamp
from org.scope import Scope, scope_target_exists, visible_nodes, visible_sites

router = APIRouter(tags=["stats"])
Reader = Needs(Permission.STATS_READ)


class Stats(BaseModel):  # figures over [start, end)
    start: datetime
    end: datetime
    alarms_by_class: dict[str, int]
    verdicts: dict[str, int]
    false_alarm_rate: float | None
    ack_seconds_p50: float | None
    ack_seconds_p90: float | None
    devices_in_service: int
    devices_online: int
    online_rate: float | None
    # with `jurisdiction_id`: the node's path, the city first (docs/organisation.md)
    jurisdiction_path: list[str] | None = None


# IANA time zone names (the schema lists them; another name is 422).
TIME_ZONES = sorted(available_timezones() | {"UTC"})


def _check_period(start: datetime, end: datetime) -> None:
    """[start, end) with UTC offsets; start >= end is an empty period (nothing in it)."""
    if start.tzinfo is None or end.tzinfo is None:
        raise Unprocessable("start and end need a UTC offset")


NodeId = Annotated[int | None, Query(ge=1, le=MAX_ID, description=(
    "only the sites in this jurisdiction node's subtree (and in the caller's scope)"))]


async def _sites(pool: Any, user: Principal, jurisdiction_id: int | None) -> list[str] | None:
    """The caller's sites, narrowed to a node's subtree when one is asked for (a node the
    caller does not see: 404)."""
    if jurisdiction_id is None:
        return user.site_filter
    nodes = await visible_nodes(pool, user.scope, user.site_ids)
    if (nodes is not None and jurisdiction_id not in nodes) or not await scope_target_exists(
            pool, "jurisdiction", jurisdiction_id):
        raise NotFound("jurisdiction not found")
    under = await visible_sites(pool, Scope("jurisdiction", jurisdiction_id))
    assert under is not None
    return sorted(under if user.site_ids is None else under & user.site_ids)


@router.get("/stats", response_model=Stats, responses=responses(404))
async def stats(user: Reader, pool: PoolDep, start: Timestamp | None = None,
                end: Timestamp | None = None, jurisdiction_id: NodeId = None) -> Stats:
    end = end or datetime.now(UTC)
    start = start or end - timedelta(days=30)
    _check_period(start, end)
    sites = await _sites(pool, user, jurisdiction_id)
    scope = "($1::text[] IS NULL OR site_id = ANY($1))"
    rows = await pool.fetch(f"SELECT class, count(*) n FROM alarms WHERE {scope} "
                            "AND raised_at >= $2 AND raised_at < $3 GROUP BY 1", sites, start, end)
    verdicts = await pool.fetch(f"SELECT verdict, count(*) n FROM alarms WHERE {scope} AND "
                                "verdict IS NOT NULL AND raised_at >= $2 AND raised_at < $3 "
                                "GROUP BY 1", sites, start, end)
    ack = await pool.fetchrow(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY s) p50,"
        " percentile_cont(0.9) WITHIN GROUP (ORDER BY s) p90 FROM ("
        " SELECT extract(epoch FROM acknowledged_at - stored_at) s FROM alarms"
        f" WHERE {scope} AND acknowledged_at IS NOT NULL AND raised_at >= $2"
        " AND raised_at < $3) x", sites, start, end)
    dev = await pool.fetchrow(
        "SELECT count(*) FILTER (WHERE lifecycle = 'in_service') n,"
        " count(*) FILTER (WHERE lifecycle = 'in_service' AND online) online"
        f" FROM (SELECT lifecycle, site_id, {ONLINE_SQL} AS online FROM devices) d"
        f" WHERE {scope}", sites)  # online as supervision sees it (api/presence.py)
    v = {r["verdict"]: r["n"] for r in verdicts}
    judged = sum(v.values())
    return Stats(start=start, end=end, alarms_by_class={r["class"]: r["n"] for r in rows},
                 verdicts=v,
                 false_alarm_rate=(v.get("false_alarm", 0) + v.get("nuisance", 0)) / judged
                 if judged else None,
                 ack_seconds_p50=ack["p50"], ack_seconds_p90=ack["p90"],
                 devices_in_service=dev["n"], devices_online=dev["online"],
                 online_rate=dev["online"] / dev["n"] if dev["n"] else None,
                 jurisdiction_path=None if jurisdiction_id is None else [
                     r["name"] for r in await pool.fetch(
                         "SELECT j.name FROM jurisdictions n JOIN jurisdictions j ON "
                         "j.id = ANY(n.path) WHERE n.id = $1 ORDER BY array_position(n.path, j.id)",
                         jurisdiction_id)])


# -- compliance with the response-time limits (GB 50440, NFPA 72) -----------------------------
Bucket = Literal["hour", "day", "week", "month"]
_FIRE_CLOCKS = """
SELECT a.site_id, s.name AS site_name, a.class, a.mode, a.verdict, a.forward_basis,
       a.raised_at, a.device_ts, a.received_at, a.shown_at, a.verdict_at, a.forwarded_at,
       a.delivered_at
FROM alarms a LEFT JOIN sites s ON s.id = a.site_id
WHERE a.class = 'fire' AND a.mode = 'normal' AND a.raised_at >= $2 AND a.raised_at < $3
  AND ($1::text[] IS NULL OR a.site_id = ANY($1)) AND ($4::text IS NULL OR a.site_id = $4)
ORDER BY a.raised_at
LIMIT 200001
"""
MAX_ALARMS = 200_000


class LimitSummary(BaseModel):
    limit: str
    limit_s: float
    met: int
    missed: int
    pending: int  # the end clock is not set yet and the limit has not passed
    compliance: float | None  # met / (met + missed)
    p50_s: float | None
    p99_s: float | None
    max_s: float | None


class ComplianceRow(BaseModel):
    period_start: datetime | None  # None in the totals row
    site_id: str | None  # None in a period's all-sites row and in the totals row
    site_name: str | None
    fire_alarms: int
    limits: list[LimitSummary]


class Compliance(BaseModel):
    start: datetime
    end: datetime
    bucket: Bucket
    timezone: str
    rows: list[ComplianceRow]  # per period and site, then per period for all sites
    totals: ComplianceRow


def _period(t: datetime, bucket: Bucket, tz: ZoneInfo) -> datetime:
    t = t.astimezone(tz)
    if bucket == "hour":
        return t.replace(minute=0, second=0, microsecond=0)
    day = t.replace(hour=0, minute=0, second=0, microsecond=0)
    if bucket == "week":
        return day - timedelta(days=day.weekday())
    if bucket == "month":
        return day.replace(day=1)
    return day


def _quantile(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


def _summarise(checks: list[list[dict[str, Any]]]) -> list[LimitSummary]:
    by_limit: dict[str, list[dict[str, Any]]] = {}
    for alarm_checks in checks:
        for c in alarm_checks:
            by_limit.setdefault(c["limit"], []).append(c)
    out = []
    for name, cs in by_limit.items():
        n = Counter(c["status"] for c in cs)
        secs = [c["seconds"] for c in cs if c["seconds"] is not None]
        judged = n["met"] + n["missed"]
        out.append(LimitSummary(limit=name, limit_s=cs[0]["limit_s"], met=n["met"],
                                missed=n["missed"], pending=n["pending"],
                                compliance=n["met"] / judged if judged else None,
                                p50_s=_quantile(secs, 0.5), p99_s=_quantile(secs, 0.99),
                                max_s=max(secs) if secs else None))
    return out


@router.get("/stats/compliance", response_model=Compliance, responses=responses(404))
async def compliance(user: Reader, pool: PoolDep, start: Timestamp | None = None,
                     end: Timestamp | None = None, bucket: Bucket = "day",
                     site_id: Annotated[str | None, Query(max_length=200)] = None,
                     tz: Annotated[str, Query(max_length=64,
                                              json_schema_extra={"enum": TIME_ZONES})] = "UTC",
                     jurisdiction_id: NodeId = None) -> Compliance:
    """Fire alarms (normal mode) raised in [start, end) against the response-time limits:
    GB 50440 display <= 20 s and forward <= 3 s, NFPA 72 display and retransmission <= 90 s;
    per `bucket` (in time zone `tz`) and site, per period for all sites, and in total.
    docs/alarms.md defines each limit's start and end clock."""
    end = end or datetime.now(UTC)
    start = start or end - timedelta(days=30)
    _check_period(start, end)
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise Unprocessable(f"unknown time zone {tz!r}") from None
    rows = await pool.fetch(_FIRE_CLOCKS, await _sites(pool, user, jurisdiction_id), start, end,
                            site_id)
    if len(rows) > MAX_ALARMS:
        raise Unprocessable(f"more than {MAX_ALARMS} fire alarms in the range: narrow it")
    now = datetime.now(UTC)
    groups: dict[tuple[datetime, str | None], list[list[dict[str, Any]]]] = {}
    periods: dict[datetime, list[list[dict[str, Any]]]] = {}
    names: dict[str | None, str | None] = {}
    every: list[list[dict[str, Any]]] = []
    for r in rows:
        checks = limits(dict(r), now)
        p = _period(r["raised_at"], bucket, zone)
        groups.setdefault((p, r["site_id"]), []).append(checks)
        periods.setdefault(p, []).append(checks)
        names[r["site_id"]] = r["site_name"]
        every.append(checks)
    out = [ComplianceRow(period_start=p, site_id=site, site_name=names[site],
                         fire_alarms=len(cs), limits=_summarise(cs))
           for (p, site), cs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))]
    out += [ComplianceRow(period_start=p, site_id=None, site_name=None, fire_alarms=len(cs),
                          limits=_summarise(cs)) for p, cs in sorted(periods.items())]
    return Compliance(start=start, end=end, bucket=bucket, timezone=tz, rows=out,
                      totals=ComplianceRow(period_start=None, site_id=None, site_name=None,
                                           fire_alarms=len(every), limits=_summarise(every)))
