"""`firetower bench loop`: the hazard loop's sweeps over a city-sized backlog.

A generated city (by default 2,000 sites under 20 grids, each site with a contract) with a
backlog the loop must work through at once, as after a long outage of `firetower loop` or on
its first start: `--alarms` open repair-class alarms (half fault, half offline, all older than
the thresholds, so each opens a work order and records a hazard) and `--hazards` overdue
hazards to escalate. Sweeps run back to back, as `firetower loop` would run them one per
interval, until one finds nothing to do. Measured: the sweeps and seconds to clear each kind
of backlog, and the seconds of a sweep with nothing to do (the steady-state cost per interval),
as a ratio against the busy sweeps. Checks: one order per alarm, one hazard per alarm, every
overdue hazard escalated exactly once, and a last sweep that does nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bench import records
from bench.support import fresh_database
from firetower import db
from firetower.alarm_store import AlarmKey, AlarmStore, Occurrence
from firetower.alarms import AlarmClass
from firetower.settings import Settings
from hazards.policy import DEFAULT_POLICY
from hazards.sweep import SweepReport, sweep


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sites", type=int, default=2000)
    p.add_argument("--alarms", type=int, default=10000)
    p.add_argument("--hazards", type=int, default=10000)
    p.add_argument("--batch", type=int, default=1000, help="rows per step of one sweep")
    p.add_argument("--keep-db", action="store_true", help="keep the benchmark database")


async def _seed(url: str, sites: int, alarms: int, hazards: int, now: datetime) -> None:
    conn = await db.connect(url)
    try:
        await conn.execute(
            "INSERT INTO jurisdictions (id, code, name, level, path) VALUES "
            "(1, '350100', 'City', 'city', '{1}'), (2, '350102', 'County', 'district', '{1,2}'),"
            " (3, '350102001', 'Township', 'township', '{1,2,3}')")
        await conn.execute(
            "INSERT INTO jurisdictions (id, code, name, level, parent_id, path)"
            " SELECT 10 + g, 'G-' || g, 'Grid ' || g, 'grid', 3, ARRAY[1, 2, 3, 10 + g]"
            " FROM generate_series(1, 20) g")
        await conn.execute("SELECT setval('jurisdictions_id_seq', 100)")
        await conn.execute(
            "INSERT INTO maintenance_companies (credit_code, name)"
            " VALUES ('91440300708461136T', 'Keep-Safe')")
        await conn.execute(
            "INSERT INTO sites (id, name, jurisdiction_id) SELECT 'site-' || i,"
            " 'Building ' || i, 11 + i % 20 FROM generate_series(1, $1) i", sites)
        await conn.execute(
            "INSERT INTO contracts (company_id, site_id, starts_on, ends_on)"
            " SELECT 1, id, current_date - 30, current_date + 300 FROM sites")
        await conn.execute(
            "INSERT INTO devices (id, kind, site_id) SELECT 'dev-' || i, 'alarm_panel',"
            " 'site-' || (1 + i % $2) FROM generate_series(1, $1) i", alarms, sites)
        since = now - timedelta(days=4)
        # the backlog's alarms through the one alarm write path, as the rule engine raises them
        pool = await db.create_pool(url, min_size=4, max_size=8)
        try:
            store = AlarmStore(pool)

            async def raise_one(i: int) -> None:
                cls = AlarmClass.FAULT if i % 2 == 0 else AlarmClass.OFFLINE
                await store.raise_or_recur(Occurrence(
                    AlarmKey(f"dev-{i}", "", "panel.fault" if i % 2 == 0 else "offline"), cls,
                    since, site_id=f"site-{1 + i % sites}", received_at=since,
                    reason="bench: backlog"))

            for start in range(1, alarms + 1, 200):
                await asyncio.gather(*(raise_one(i) for i in range(start,
                                                                   min(start + 200, alarms + 1))))
        finally:
            await pool.close()
        await conn.execute(
            "INSERT INTO hazards (source, title, severity, state, site_id, jurisdiction_id,"
            " owner_id, deadline, found_at) SELECT 'manual', 'Exit blocked ' || i, 'general',"
            " 'rectifying', 'site-' || (1 + i % $2), 11 + i % 20, 11 + i % 20, $3::timestamptz,"
            " $3::timestamptz - interval '15 days' FROM generate_series(1, $1) i", hazards, sites,
            now - timedelta(hours=1))
        await conn.execute("ANALYZE")
    finally:
        await conn.close()


async def _run(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any],
                                                                        list[records.Check]]:
    now = datetime.now(UTC)
    out: dict[str, Any] = {"sites": args.sites, "alarms": args.alarms, "hazards": args.hazards,
                           "batch": args.batch}
    checks: list[records.Check] = []
    async with fresh_database(settings.database_url, "firetower_bench_loop", plain=True,
                              keep=args.keep_db) as url:
        t = time.perf_counter()
        await _seed(url, args.sites, args.alarms, args.hazards, now)
        out["seed_s"] = round(time.perf_counter() - t, 2)
        pool = await db.create_pool(url, min_size=1, max_size=2)
        try:
            total = SweepReport()
            busy: list[float] = []
            while True:
                t = time.perf_counter()
                r = await sweep(pool, now=now, policy=DEFAULT_POLICY, batch=args.batch)
                elapsed = time.perf_counter() - t
                if not (r.orders_opened or r.hazards_recorded or r.escalated):
                    break
                busy.append(elapsed)
                total.orders_opened += r.orders_opened
                total.hazards_recorded += r.hazards_recorded
                total.escalated += r.escalated
            idle = []
            for _ in range(5):
                t = time.perf_counter()
                r = await sweep(pool, now=now, policy=DEFAULT_POLICY, batch=args.batch)
                idle.append(time.perf_counter() - t)
                checks.append(records.equal("an idle sweep does nothing",
                                            (len(r.orders_opened), len(r.hazards_recorded),
                                             len(r.escalated)), (0, 0, 0)))
            out["busy_sweeps"] = len(busy)
            out["busy_total_s"] = round(sum(busy), 2)
            out["busy_sweep_s"] = {"max": round(max(busy), 3), "mean": round(sum(busy) / len(busy), 3)}
            out["items_per_s"] = round((len(total.orders_opened) + len(total.hazards_recorded)
                                        + len(total.escalated)) / sum(busy))
            out["idle_sweep_s"] = round(sorted(idle)[len(idle) // 2], 4)
            out["idle_vs_busy_ratio"] = round(out["idle_sweep_s"] / out["busy_sweep_s"]["mean"], 4)
            counts = await pool.fetchrow(
                "SELECT (SELECT count(*) FROM work_orders) AS orders,"
                " (SELECT count(DISTINCT alarm_id) FROM work_orders) AS alarms_with_order,"
                " (SELECT count(*) FROM hazards WHERE source = 'rule') AS rule_hazards,"
                " (SELECT count(*) FROM hazards WHERE source = 'manual' AND escalations = 1"
                "  AND owner_id = 3) AS escalated_once,"
                " (SELECT count(*) FROM hazard_events WHERE kind = 'escalate') AS escalations")
            assert counts is not None
            out["counts"] = dict(counts)
            checks += [
                records.equal("one work order per open alarm", (counts["orders"],
                              counts["alarms_with_order"]), (args.alarms, args.alarms)),
                records.equal("one hazard per alarm past its threshold", counts["rule_hazards"],
                              args.alarms),
                records.equal("every overdue hazard escalated once, to the township",
                              (counts["escalated_once"], counts["escalations"]),
                              (args.hazards, args.hazards)),
            ]
        finally:
            await pool.close()
    return out, checks


def main(args: argparse.Namespace, settings: Settings) -> int:
    begun = records.start()
    out, checks = asyncio.run(_run(args, settings))
    print(f"backlog of {args.alarms} alarms and {args.hazards} overdue hazards: "
          f"{out.get('busy_sweeps')} sweeps, {out.get('busy_total_s')} s "
          f"({out.get('items_per_s')} items/s); an idle sweep {out.get('idle_sweep_s')} s")
    return records.finish("loop", args, begun, out, checks)
