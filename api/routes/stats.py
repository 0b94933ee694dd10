"""`/stats`: assessment figures for supervisors: alarm counts by class and verdict, the
false-alarm rate, acknowledgement times and the device online rate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import Needs, PoolDep
from api.errors import Unprocessable
from api.permissions import Permission

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


@router.get("/stats", response_model=Stats)
async def stats(user: Reader, pool: PoolDep, start: datetime | None = None,
                end: datetime | None = None) -> Stats:
    end = end or datetime.now(UTC)
    start = start or end - timedelta(days=30)
    if start.tzinfo is None or end.tzinfo is None or not start < end:
        raise Unprocessable("need start < end, both with a UTC offset")
    sites = user.site_filter
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
        f" FROM devices WHERE {scope}", sites)
    v = {r["verdict"]: r["n"] for r in verdicts}
    judged = sum(v.values())
    return Stats(start=start, end=end, alarms_by_class={r["class"]: r["n"] for r in rows},
                 verdicts=v,
                 false_alarm_rate=(v.get("false_alarm", 0) + v.get("nuisance", 0)) / judged
                 if judged else None,
                 ack_seconds_p50=ack["p50"], ack_seconds_p90=ack["p90"],
                 devices_in_service=dev["n"], devices_online=dev["online"],
                 online_rate=dev["online"] / dev["n"] if dev["n"] else None)
