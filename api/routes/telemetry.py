"""`/devices/{id}/telemetry`: time-bucketed series of one metric of one device.

Buckets of a minute or more are read from `telemetry_1m` (a TimescaleDB continuous aggregate,
or a plain view with the same columns), re-bucketed with sample-weighted averages; shorter
buckets read the raw `telemetry` table.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import Needs, PoolDep
from api.errors import Unprocessable
from api.permissions import Permission
from api.routes.devices import load_device
from api.schemas import Metric, TelemetryPoint, TelemetrySeries, Timestamp

router = APIRouter(tags=["telemetry"])
Reader = Needs(Permission.TELEMETRY_READ)
MAX_POINTS = 5000
MAX_SPAN = timedelta(days=400)
# metric -> (avg column, min column, max column) of telemetry_1m
ROLLUP: dict[str, tuple[str | None, str | None, str | None]] = {
    "obscuration_pct_per_m": ("obscuration_avg", None, "obscuration_max"),
    "temperature_c": ("temperature_avg", None, "temperature_max"),
    "co_ppm": ("co_avg", None, None),
    "battery_v": (None, "battery_min", None),
    "pressure_kpa": ("pressure_avg", "pressure_min", "pressure_max"),
    "flow_lps": (None, None, "flow_max"),
}
_ORIGIN = "TIMESTAMPTZ '2000-01-01'"


def _rollup_sql(metric: str) -> str:
    avg, lo, hi = ROLLUP[metric]
    a = f"sum({avg} * samples) / nullif(sum(samples) FILTER (WHERE {avg} IS NOT NULL), 0)" \
        if avg else "NULL"
    return (f"SELECT date_bin($2, bucket, {_ORIGIN}) AS t, {a} AS avg, "
            f"{f'min({lo})' if lo else 'NULL'} AS min, {f'max({hi})' if hi else 'NULL'} AS max, "
            f"sum(samples)::bigint AS samples FROM telemetry_1m "
            f"WHERE device_id = $1 AND bucket >= $3 AND bucket < $4 GROUP BY 1 ORDER BY 1")


def _raw_sql(metric: str) -> str:
    return (f"SELECT date_bin($2, ts, {_ORIGIN}) AS t, avg({metric}) AS avg, "
            f"min({metric}) AS min, max({metric}) AS max, count({metric}) AS samples "
            f"FROM telemetry WHERE device_id = $1 AND ts >= $3 AND ts < $4 "
            f"GROUP BY 1 ORDER BY 1")


@router.get("/devices/{device_id}/telemetry", response_model=TelemetrySeries)
async def series(device_id: str, user: Reader, pool: PoolDep,
                 metric: Metric,
                 start: Timestamp | None = None, end: Timestamp | None = None,
                 bucket_s: Annotated[int, Query(ge=1, le=7 * 86400)] = 300) -> TelemetrySeries:
    """E.g. the pressure curve of the last 24 h: `?metric=pressure_kpa&bucket_s=600`;
    smoke over a week: `?metric=obscuration_pct_per_m&start=...&bucket_s=3600`.
    Defaults: the last 24 h, 5-minute buckets."""
    await load_device(pool, user, device_id)
    end = end or datetime.now(UTC)
    start = start or end - timedelta(hours=24)
    if start.tzinfo is None or end.tzinfo is None:
        raise Unprocessable("start and end need a UTC offset")
    if not start < end or end - start > MAX_SPAN:
        raise Unprocessable(f"need start < end, at most {MAX_SPAN.days} days apart")
    if (end - start).total_seconds() / bucket_s > MAX_POINTS:
        raise Unprocessable(f"more than {MAX_POINTS} buckets: use a larger bucket_s")
    rollup = bucket_s % 60 == 0
    sql = _rollup_sql(metric) if rollup else _raw_sql(metric)
    rows = await pool.fetch(sql, device_id, timedelta(seconds=bucket_s), start, end)
    points = [TelemetryPoint(t=r["t"], avg=r["avg"], min=r["min"], max=r["max"],
                             samples=r["samples"] or 0) for r in rows]
    return TelemetrySeries(device_id=device_id, metric=metric, bucket_seconds=bucket_s,
                           source="telemetry_1m" if rollup else "telemetry", points=points)
