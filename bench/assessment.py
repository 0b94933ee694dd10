"""`firetower bench assessment`: the indicator queries over a year of a city, the summary path
(migration 0019, `assessment.queries.gather_many`) against the raw path (`gather_raw`, one
query set per place) in the same run.

The city (generated straight into the database with generate_series): city > 10 districts >
50 townships > 200 grids, `--units` units each with one site spread over the grids,
`--detectors` smoke and heat detectors, `--alarms` normal-mode alarms raised over the year 2025
(class mix 60 % fire, 20 % fault, 10 % offline, 10 % supervisory; fire verdicts 3 % true fire,
55 % false alarm, 30 % nuisance, 2 % test, 10 % none; ack and verdict times log-normal, a
few test-mode alarms) plus hazards and work orders. The summary is kept by its trigger as the
alarms are inserted. Timed: the reports (node and children, the ranking of the children is
these figures) of the city, a district, a grid and a unit for the year, cold (first run) and
warm (p50 and max of `--runs`), each path. Checks: the two paths agree on every count.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from assessment.queries import NodeRef, report
from bench import records
from bench.support import fresh_database
from firetower import db
from firetower.settings import Settings

START = datetime(2025, 1, 1, tzinfo=UTC)
END = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 1, 15, tzinfo=UTC)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--units", type=int, default=1000)
    p.add_argument("--detectors", type=int, default=100_000)
    p.add_argument("--alarms", type=int, default=1_500_000)
    p.add_argument("--runs", type=int, default=5, help="warm runs per query and path")
    p.add_argument("--keep-db", action="store_true", help="keep the benchmark database")


_SEED = [
    "INSERT INTO jurisdictions (id, code, name, level, path) VALUES (1, 'C', 'City', 'city', "
    "'{1}')",
    "INSERT INTO jurisdictions (id, code, name, level, parent_id, path) SELECT 10 + d, 'D' || d, "
    "'District ' || d, 'district', 1, ARRAY[1, 10 + d] FROM generate_series(1, 10) d",
    "INSERT INTO jurisdictions (id, code, name, level, parent_id, path) SELECT 100 + t, 'T' || t,"
    " 'Township ' || t, 'township', 10 + 1 + (t - 1) / 5, ARRAY[1, 11 + (t - 1) / 5, 100 + t] "
    "FROM generate_series(1, 50) t",
    "INSERT INTO jurisdictions (id, code, name, level, parent_id, path) SELECT 1000 + g, 'G' || g,"
    " 'Grid ' || g, 'grid', 101 + (g - 1) / 4, ARRAY[1, 11 + (g - 1) / 20, 101 + (g - 1) / 4, "
    "1000 + g] FROM generate_series(1, 200) g",
    "SELECT setval('jurisdictions_id_seq', 5000)",
    "INSERT INTO units (id, name, industry, grid_id) SELECT u, 'Unit ' || u, (ARRAY['hotel', "
    "'school', 'factory', 'mall', 'hospital'])[1 + u % 5], 1001 + u % 200 "
    "FROM generate_series(1, $1::int) u",
    "SELECT setval('units_id_seq', $1::int + 1)",
    "INSERT INTO sites (id, name, unit_id, jurisdiction_id) SELECT 's' || u, 'Site ' || u, u, "
    "1001 + u % 200 FROM generate_series(1, $1::int) u",
]


async def _seed(url: str, args: argparse.Namespace) -> None:
    conn = await db.connect(url)
    try:
        for sql in _SEED:
            await (conn.execute(sql, args.units) if "$1" in sql else conn.execute(sql))
        await conn.execute(
            "INSERT INTO devices (id, kind, site_id, lifecycle, online) SELECT 'd' || i, "
            "CASE WHEN i % 4 = 0 THEN 'heat_detector' ELSE 'smoke_detector' END, "
            "'s' || (1 + i % $2::int), 'in_service', i % 50 <> 0 "
            "FROM generate_series(1, $1::int) i", args.detectors, args.units)
        # the alarms in chunks (the summary's trigger runs per row)
        chunk = 100_000
        for lo in range(0, args.alarms, chunk):
            await conn.execute(_ALARMS, lo + 1, min(lo + chunk, args.alarms), args.detectors,
                               args.units, START, END)
        await conn.execute(
            "INSERT INTO hazards (source, title, severity, state, site_id, jurisdiction_id, "
            "owner_id, deadline, found_at, closed_at, verified_at) SELECT 'manual', 'Hazard ' || i, "
            "'general', CASE WHEN i % 3 = 0 THEN 'rectifying' ELSE 'closed' END, "
            "'s' || (1 + i % $2::int), 1001 + (1 + i % $2::int) % 200, 1001 + (1 + i % $2::int) "
            "% 200, f + interval '15 days', f, CASE WHEN i % 3 <> 0 THEN f + interval '10 days'"
            " END, CASE WHEN i % 3 <> 0 THEN f + interval '10 days' END FROM (SELECT i, "
            "$3::timestamptz + (i % 365) * interval '1 day' AS f "
            "FROM generate_series(1, $1::int) i) x", args.units * 20, args.units, START)
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


# one alarm per i: device, class, verdict, times from hashes of i (repeatable)
_ALARMS = """
INSERT INTO alarms (device_id, site_id, point, type, class, priority, state, verdict, mode,
                    raised_at, last_at, device_ts, received_at, stored_at, acknowledged_at,
                    verdict_at, cleared_at, shown_at, delivered_at, forwarded_at)
SELECT 'd' || dev, 's' || (1 + dev % $4::int), 'p' || i, 'rule', cls, 1, 'closed', verdict,
       CASE WHEN r4 < 0.02 THEN 'test' ELSE 'normal' END,
       raised, raised, raised, raised + interval '1 s', raised + interval '1 s',
       raised + interval '1 s' + ack, raised + interval '1 s' + ack + vt,
       CASE WHEN cls = 'fault' THEN raised + (3600 * exp(r2 * 3)) * interval '1 s' END,
       raised + (2 + r3 * 25) * interval '1 s',
       CASE WHEN verdict = 'true_fire' THEN raised + ack + vt + interval '3 s' END,
       CASE WHEN verdict = 'true_fire' THEN raised + ack + vt + interval '1 s' END
FROM (
    SELECT i, 1 + (hashint4(i) & 2147483647) % $3::int AS dev,
           $5::timestamptz + ((hashint4(i + 7) & 2147483647) / 2147483647.0)
               * ($6::timestamptz - $5::timestamptz) AS raised,
           CASE WHEN c < 0.6 THEN 'fire' WHEN c < 0.8 THEN 'fault' WHEN c < 0.9 THEN 'offline'
                ELSE 'supervisory' END AS cls,
           CASE WHEN c >= 0.6 THEN NULL WHEN v < 0.03 THEN 'true_fire'
                WHEN v < 0.58 THEN 'false_alarm' WHEN v < 0.88 THEN 'nuisance'
                WHEN v < 0.90 THEN 'test' END AS verdict,
           (5 * exp(r1 * 2)) * interval '1 s' AS ack, (30 * exp(r2 * 2.5)) * interval '1 s' AS vt,
           r2, r3, r4
    FROM (SELECT i, (hashint4(i + 1) & 2147483647) / 2147483647.0 AS c,
                 (hashint4(i + 2) & 2147483647) / 2147483647.0 AS v,
                 (hashint4(i + 3) & 2147483647) / 2147483647.0 AS r1,
                 (hashint4(i + 4) & 2147483647) / 2147483647.0 AS r2,
                 (hashint4(i + 5) & 2147483647) / 2147483647.0 AS r3,
                 (hashint4(i + 6) & 2147483647) / 2147483647.0 AS r4
          FROM generate_series($1::int, $2::int) i) h) x
"""

QUERIES = {"city": ("jurisdiction", "1"), "district": ("jurisdiction", "11"),
           "grid": ("jurisdiction", "1001"), "unit": ("unit", "1")}
_COUNTED = ("alarms", "fires", "false_alarms", "equipment_false_alarms", "test_verdicts",
            "faults_raised", "gb50440_unit_days", "hazards_found", "detectors")


async def _run(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any],
                                                                        list[records.Check]]:
    out: dict[str, Any] = {"units": args.units, "detectors": args.detectors,
                           "alarms": args.alarms, "period": "2025 (a year)"}
    checks: list[records.Check] = []
    async with fresh_database(settings.database_url, "firetower_bench_assessment", plain=True,
                              keep=args.keep_db) as url:
        t = time.perf_counter()
        await _seed(url, args)
        out["seed_s"] = round(time.perf_counter() - t, 1)
        pool = await db.create_pool(url, min_size=1, max_size=2)
        try:
            out["summary_rows"] = dict(await pool.fetchrow(
                "SELECT (SELECT count(*) FROM alarm_month_counts) AS counts, "
                "(SELECT count(*) FROM alarm_month_times) AS times") or {})
            out["queries"] = {}
            for name, (kind, ref) in QUERIES.items():
                node = NodeRef(kind, ref)
                row: dict[str, Any] = {}
                reps: dict[str, Any] = {}
                for source in ("summary", "raw"):
                    times = []
                    for _ in range(1 + (args.runs if source == "summary" else
                                        max(1, args.runs // 2))):
                        t = time.perf_counter()
                        reps[source] = await report(pool, node, START, END, tz="Asia/Shanghai",
                                                    now=NOW, source=source)  # type: ignore[arg-type]
                        times.append(time.perf_counter() - t)
                    warm = sorted(times[1:])
                    row[source] = {"cold_s": round(times[0], 3),
                                   "warm_p50_s": round(warm[len(warm) // 2], 3),
                                   "warm_max_s": round(warm[-1], 3)}
                row["children"] = len(reps["summary"].children)
                row["speedup_warm_p50"] = round(row["raw"]["warm_p50_s"]
                                                / max(row["summary"]["warm_p50_s"], 1e-6), 1)
                out["queries"][name] = row
                print(f"{name}: summary {row['summary']} raw {row['raw']} "
                      f"x{row['speedup_warm_p50']}", flush=True)
                for a, b in zip([reps["summary"].node, *reps["summary"].children],
                                [reps["raw"].node, *reps["raw"].children], strict=True):
                    got = {f: getattr(a.counts, f) for f in _COUNTED}
                    want = {f: getattr(b.counts, f) for f in _COUNTED}
                    if got != want:
                        checks.append(records.equal(f"{name} {a.place.key}: counts", got, want))
                        break
                else:
                    checks.append(records.Check(f"{name}: summary counts equal raw counts "
                                                "for the node and every child", True,
                                                f"{1 + row['children']} places"))
                checks.append(records.Check(
                    f"{name}: warm p50 under 1 s (summary)", row["summary"]["warm_p50_s"] < 1,
                    f"{row['summary']['warm_p50_s']} s"))
        finally:
            await pool.close()
    return out, checks


def main(args: argparse.Namespace, settings: Settings) -> int:
    begun = records.start()
    out, checks = asyncio.run(_run(args, settings))
    print(f"seeded in {out.get('seed_s')} s")
    return records.finish("assessment", args, begun, out, checks)
