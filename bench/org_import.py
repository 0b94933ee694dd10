"""`firetower bench org-import`: a whole city's organisation imported through the API.

A generated city (by default 5,000 units and 20,000 sites, the size issue 15 names): a tree of
one city, 13 districts, 10 townships each, 8 communities each and 2 grids each (3,264 nodes),
10 departments, the units, 100 maintenance companies, the sites and one contract per site. The
files go to a real `firetower api` process, one POST per kind in dependency order, as CSV.
Measured: the time of each import and of the whole, the API process's peak resident memory
(VmHWM) before and after, and a second import of the same files. Checks: every row created the
first time, nothing created or updated the second time, the export lists every site.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from api.permissions import Role
from api.users import add_user
from bench import records
from bench.support import fresh_database
from firetower import db
from firetower.broker import free_port
from firetower.settings import Settings
from org.codes import uscc_check_character

ORDER = ("jurisdictions", "departments", "units", "companies", "sites", "contracts")


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--units", type=int, default=5000)
    p.add_argument("--sites", type=int, default=20000)
    p.add_argument("--keep-db", action="store_true", help="keep the benchmark database")


def _credit(prefix: str, n: int) -> str:
    first17 = f"91{prefix}{n:09d}"
    assert len(first17) == 17
    return first17 + uscc_check_character(first17)


def _csv(header: list[str], rows: list[list[Any]]) -> bytes:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(header)
    w.writerows(rows)
    return out.getvalue().encode()


def city(units: int, sites: int) -> dict[str, bytes]:
    """The six files of a generated city."""
    tree: list[list[Any]] = [["350100", "Fuzhou", "city", ""]]
    grids: list[str] = []
    for d in range(13):
        dc = f"3501{d + 2:02d}"
        tree.append([dc, f"District {d}", "district", "350100"])
        for t in range(10):
            tc = f"{dc}{t + 1:03d}"
            tree.append([tc, f"Township {d}.{t}", "township", dc])
            for c in range(8):
                cc = f"{tc}{c + 1:03d}"
                tree.append([cc, f"Community {d}.{t}.{c}", "community", tc])
                for g in range(2):
                    gc = f"G-{cc}-{g + 1}"
                    tree.append([gc, f"Grid {d}.{t}.{c}.{g}", "grid", cc])
                    grids.append(gc)
    unit_codes = [_credit("350100", n) for n in range(units)]
    company_codes = [_credit("350102", n) for n in range(100)]
    return {
        "jurisdictions": _csv(["code", "name", "level", "parent_code"], tree),
        "departments": _csv(["code", "name", "industries"],
                            [[f"dept{i}", f"Department {i}", f"industry{i}"] for i in range(10)]),
        "units": _csv(["credit_code", "name", "industry", "department_code", "risk_class",
                       "responsible_name", "responsible_phone", "grid_code"],
                      [[code, f"Unit {i}", f"industry{i % 10}", f"dept{i % 10}",
                        ("key", "crowded", "general", "small")[i % 4], f"Person {i}",
                        f"+86 591 {i:08d}", grids[i % len(grids)]]
                       for i, code in enumerate(unit_codes)]),
        "companies": _csv(["credit_code", "name", "licence_valid_until"],
                          [[code, f"Maintenance {i}", "2027-12-31"]
                           for i, code in enumerate(company_codes)]),
        "sites": _csv(["id", "name", "address", "latitude", "longitude", "unit_credit_code",
                       "jurisdiction_code"],
                      [[f"site-{i:06d}", f"Building {i}", f"{i} Road", 26.0 + (i % 1000) / 5000,
                        119.2 + (i // 1000) / 500, unit_codes[i % units],
                        grids[(i % units) % len(grids)]] for i in range(sites)]),
        "contracts": _csv(["site_id", "starts_on", "ends_on", "company_credit_code", "scope"],
                          [[f"site-{i:06d}", "2026-01-01", "2026-12-31",
                            company_codes[i % 100], "whole system"] for i in range(sites)]),
    }


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


async def _run(args: argparse.Namespace, settings: Settings) -> tuple[dict[str, Any],
                                                                        list[records.Check]]:
    files = city(args.units, args.sites)
    rows = {k: v.count(b"\n") - 1 for k, v in files.items()}
    out: dict[str, Any] = {"rows": rows, "bytes": {k: len(v) for k, v in files.items()}}
    checks: list[records.Check] = []
    async with fresh_database(settings.database_url, "firetower_bench_org", plain=True,
                              keep=args.keep_db) as url:
        conn = await db.connect(url)
        try:
            await add_user(conn, "bench-admin", Role.ADMIN, "bench-admin-password", None)
        finally:
            await conn.close()
        port = free_port()
        env = dict(os.environ, FIRETOWER_DATABASE_URL=url, FIRETOWER_API_PORT=str(port),
                   FIRETOWER_API_HOST="127.0.0.1", FIRETOWER_API_METRICS_PORT=str(free_port()),
                   FIRETOWER_API_TOKEN_MINUTES="120")
        log = Path(tempfile.mkstemp(prefix="firetower-bench-org-", suffix=".log")[1])
        with log.open("wb") as sink:
            api = subprocess.Popen([sys.executable, "-m", "firetower", "api", "--no-migrate"],
                                   env=env, stdout=sink, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}/api/v1"
        try:
            async with httpx.AsyncClient(base_url=base, timeout=600) as http:
                for _ in range(600):
                    try:
                        if (await http.get("/openapi.json")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.1)  # polling the API's start-up
                r = await http.post("/auth/token", data={"username": "bench-admin",
                                                         "password": "bench-admin-password"})
                r.raise_for_status()
                http.headers["Authorization"] = f"Bearer {r.json()['access_token']}"
                out["rss_before_mb"] = _peak_rss_mb(api.pid)
                for round_ in ("first", "again"):
                    timings: dict[str, float] = {}
                    answers: dict[str, Any] = {}
                    t_all = time.perf_counter()
                    for kind in ORDER:
                        t = time.perf_counter()
                        r = await http.post(f"/org/import/{kind}", content=files[kind],
                                            headers={"Content-Type": "text/csv"})
                        timings[kind] = round(time.perf_counter() - t, 3)
                        answers[kind] = r.json() if r.status_code == 200 else {
                            "status": r.status_code, "body": r.text[:500]}
                    out[round_] = {"seconds": timings,
                                   "total_s": round(time.perf_counter() - t_all, 2),
                                   "answers": answers}
                    out[f"rss_after_{round_}_mb"] = _peak_rss_mb(api.pid)
                    for kind in ORDER:
                        a = answers[kind]
                        want = (rows[kind], 0, 0) if round_ == "first" else (0, 0, rows[kind])
                        got = (a.get("created"), a.get("updated"), a.get("unchanged"))
                        checks.append(records.equal(
                            f"{round_} import of {kind}: (created, updated, unchanged)", got, want))
                r = await http.get("/org/export/sites")
                exported = r.content.count(b"\n") - 1
                checks.append(records.equal("the export lists every site", exported, rows["sites"]))
        finally:
            api.terminate()
            api.wait(30)
            log.unlink(missing_ok=True)
    return out, checks


def main(args: argparse.Namespace, settings: Settings) -> int:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # not one line per request
    begun = records.start()
    out, checks = asyncio.run(_run(args, settings))
    for round_ in ("first", "again"):
        if round_ in out:
            print(f"{round_:5s} import: {out[round_]['total_s']} s "
                  + " ".join(f"{k}={v}s" for k, v in out[round_]["seconds"].items()))
    print(f"API peak RSS: {out.get('rss_before_mb')} MB before, "
          f"{out.get('rss_after_first_mb')} MB after the first import")
    return records.finish("org-import", args, begun, out, checks)
