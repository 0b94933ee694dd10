"""The demo's city: `firetower run` places the simulated fleet's sites in a jurisdiction tree
and in units, so the console's City tab and map show something from the first minute.

Shenzhen (GB/T 2260 code 440300), the six districts the simulator puts sites in (their real
codes), one street and one grid in each, and one unit per site, with the site's fire safety
manager as its responsible person. Everything goes through org.store's bulk import (the one
writer, with the audit log), only in development and only when the tree is still empty: a
user's own tree is never touched."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from firetower import db
from org.bulk import ImportRefused, import_records
from org.codes import uscc_check_character
from org.store import Actor
from simulators.fleet import Fleet
from simulators.sites import CITY, DISTRICTS, site_details

log = logging.getLogger(__name__)
CITY_CODE = "440300"
DISTRICT_CODES = {"Luohu": "440303", "Futian": "440304", "Nanshan": "440305",
                  "Bao'an": "440306", "Longgang": "440307", "Yantian": "440308"}
ACTOR = Actor(None, "firetower run (demo city)")


def _rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**r, "_row": i} for i, r in enumerate(rows, start=2)]


def city_records(fleet: Fleet) -> dict[str, list[dict[str, Any]]]:
    tree: list[dict[str, Any]] = [{"code": CITY_CODE, "name": CITY, "level": "city"}]
    for name, lat, lon, _ in DISTRICTS:
        code = DISTRICT_CODES[name]
        tree += [{"code": code, "name": name, "level": "district", "parent_code": CITY_CODE,
                  "center_lat": lat, "center_lon": lon},
                 {"code": f"{code}001", "name": f"{name} Street", "level": "township",
                  "parent_code": code},
                 {"code": f"G-{code}001-01", "name": f"{name} Grid 1", "level": "grid",
                  "parent_code": f"{code}001"}]
    units, sites = [], []
    for n, site in enumerate(fleet.sites):
        det = site_details(fleet, site)
        district = next(d for d in DISTRICT_CODES if f"{d} District" in det.address)
        first17 = f"91{CITY_CODE}{n + 1:09d}"
        credit = first17 + uscc_check_character(first17)
        manager = next((c for c in det.contacts if "manager" in c["role"].lower()), None)
        units.append({"credit_code": credit, "name": f"{site.name} Management Co.",
                      "risk_class": "key" if n % 3 == 0 else "crowded" if n % 3 == 1 else "general",
                      "responsible_name": manager["name"] if manager else "",
                      "responsible_phone": manager["phone"] if manager else "",
                      "grid_code": f"G-{DISTRICT_CODES[district]}001-01"})
        sites.append({"id": site.id, "name": site.name, "address": det.address,
                      "latitude": det.latitude, "longitude": det.longitude,
                      "unit_credit_code": credit,
                      "jurisdiction_code": f"G-{DISTRICT_CODES[district]}001-01"})
    return {"jurisdictions": _rows(tree), "units": _rows(units), "sites": _rows(sites)}


async def place_demo_city(database_url: str, fleet: Fleet, timeout_s: float = 300.0) -> bool:
    """Wait until the simulator has registered the fleet's sites, then import the city.
    False (and nothing written) when a tree exists already or the sites never appear."""
    conn = await db.connect(database_url)
    try:
        if await conn.fetchval("SELECT count(*) FROM jurisdictions"):
            return False
        ids = [s.id for s in fleet.sites]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while await conn.fetchval("SELECT count(*) FROM sites WHERE id = ANY($1::text[]) "
                                  "AND latitude IS NOT NULL", ids) < len(ids):
            if loop.time() > deadline:
                log.warning("demo city: the simulator's sites did not appear; not placed")
                return False
            await asyncio.sleep(1.0)  # polling for the simulator's registration
        for kind, records in city_records(fleet).items():
            await import_records(conn, ACTOR, kind, records)
        return True
    except ImportRefused as exc:
        log.warning("demo city not placed: %s", exc.problems[:3])
        return False
    finally:
        await conn.close()
