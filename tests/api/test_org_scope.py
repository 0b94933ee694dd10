"""The city's organisation through the API, and the scope matrix: a three-level tree (city,
districts, townships, grids), units, a department, maintenance companies with a running and an
expired contract, and one user per kind of attachment. Each sees exactly its part in the site,
device and alarm lists, details, the live stream's snapshot, the exports, the organisation
lists and statistics, and gets 404 elsewhere."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date, timedelta

import httpx
import pytest

from firetower import db
from firetower.alarm_store import AlarmStore
from tests.api.conftest import PASSWORD, World, raise_alarm
from tests.api.sse import events

pytestmark = pytest.mark.integration

TODAY = date.today()
SQUARE = {"type": "Polygon", "coordinates": [[[119.2, 26.0], [119.4, 26.0], [119.4, 26.2],
                                              [119.2, 26.2], [119.2, 26.0]]]}


@dataclass
class City:
    world: World
    ids: dict[str, int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)  # integrations: API keys

    def client(self, who: str) -> httpx.AsyncClient:
        if who in self.keys:
            headers = {"X-API-Key": self.keys[who]}
        else:
            headers = {"Authorization": f"Bearer {self.tokens.get(who) or self.world.tokens[who]}"}
        return httpx.AsyncClient(base_url=f"{self.world.url}/api/v1", headers=headers, timeout=10)


async def _ok(r: httpx.Response, status: int = 201) -> dict:  # type: ignore[type-arg]
    assert r.status_code == status, r.text
    return r.json()  # type: ignore[no-any-return]


@pytest.fixture
async def city(world: World) -> AsyncIterator[City]:
    c = City(world)
    async with world.client("admin") as a:
        await a.post("/sites", json={"id": "s3", "name": "Night Market"})
        tree = [("city", "350100", "Fuzhou", "city", None),
                ("d1", "350102", "Gulou", "district", "city"),
                ("d2", "350103", "Taijiang", "district", "city"),
                ("t1", "350102001", "Dongjie", "township", "d1"),
                ("t2", "350103001", "Shanghai Jie", "township", "d2"),
                ("g1", "G-350102001-01", "Grid 1", "grid", "t1"),
                ("g2", "G-350103001-01", "Grid 2", "grid", "t2")]
        for key, code, name, level, parent in tree:
            body: dict[str, object] = {"code": code, "name": name, "level": level,
                                       "parent_id": c.ids[parent] if parent else None}
            if key == "g1":
                body |= {"boundary": SQUARE, "center_lat": 26.1, "center_lon": 119.3}
            c.ids[key] = (await _ok(await a.post("/jurisdictions", json=body)))["id"]
        c.ids["dept"] = (await _ok(await a.post("/departments", json={
            "code": "edu", "name": "Education Bureau", "industries": ["education"]})))["id"]
        c.ids["u1"] = (await _ok(await a.post("/units", json={
            "credit_code": "91350100M000100Y43", "name": "Harbour Tower Co.",
            "industry": "education", "department_id": c.ids["dept"], "risk_class": "key",
            "responsible_name": "Lin", "responsible_phone": "+86 591 0000 0001",
            "grid_id": c.ids["g1"]})))["id"]
        c.ids["u2"] = (await _ok(await a.post("/units", json={
            "credit_code": "91440300708461136T", "name": "Old Mill Ltd",
            "risk_class": "crowded", "grid_id": c.ids["g2"]})))["id"]
        for site, unit, grid in (("s1", "u1", "g1"), ("s2", "u2", "g2"), ("s3", "u2", "g2")):
            await _ok(await a.put(f"/sites/{site}/placement", json={
                "unit_id": c.ids[unit], "jurisdiction_id": c.ids[grid]}), 200)
        codes = {"k": "91350100M000100Y43", "k_old": "91440300708461136T"}
        for key, code in codes.items():
            c.ids[key] = (await _ok(await a.post("/companies", json={
                "credit_code": code, "name": f"Maintenance {key}",
                "licence_valid_until": str(TODAY + timedelta(days=300))})))["id"]
        await _ok(await a.post("/contracts", json={
            "company_id": c.ids["k"], "site_id": "s2", "starts_on": str(TODAY - timedelta(days=10)),
            "ends_on": str(TODAY + timedelta(days=355))}))
        await _ok(await a.post("/contracts", json={
            "company_id": c.ids["k_old"], "site_id": "s1",
            "starts_on": str(TODAY - timedelta(days=400)),
            "ends_on": str(TODAY - timedelta(days=35))}))
        users = {"county": ("supervisor", "jurisdiction", "d1"),
                 "gridder": ("site_manager", "jurisdiction", "g2"),
                 "unit_staff": ("site_manager", "unit", "u2"),
                 "maintainer": ("installer", "company", "k"),
                 "old_maintainer": ("installer", "company", "k_old"),
                 "department": ("supervisor", "department", "dept"),
                 # a district's own duty operator (a township or county dispatch centre)
                 "district_operator": ("operator", "jurisdiction", "d2")}
        for name, (role, kind, target) in users.items():
            await _ok(await a.post("/users", json={
                "name": name, "role": role, "password": PASSWORD, "scope_kind": kind,
                "scope_id": c.ids[target]}))
        # an integration (the unit's own building-management system) with an API key
        bms = await _ok(await a.post("/users", json={
            "name": "unit_bms", "role": "integration", "scope_kind": "unit",
            "scope_id": c.ids["u1"]}))
        api_key = await _ok(await a.post("/auth/api-keys", json={"user_id": bms["id"]}))
        c.keys["unit_bms"] = api_key["key"]
    async with httpx.AsyncClient(base_url=f"{world.url}/api/v1") as anon:
        for name in users:
            r = await anon.post("/auth/token", data={"username": name, "password": PASSWORD})
            c.tokens[name] = (await _ok(r, 200))["access_token"]
    yield c


# who -> the sites it sees (None: all)
SEES = {"admin": {"s1", "s2", "s3"}, "county": {"s1"}, "gridder": {"s2", "s3"},
        "unit_staff": {"s2", "s3"}, "maintainer": {"s2"}, "old_maintainer": set(),
        "department": {"s1"}, "district_operator": {"s2", "s3"}, "unit_bms": {"s1"}}


async def test_scope_matrix(city: City) -> None:
    pool = await db.create_pool(city.world.db_url, max_size=2)
    try:
        await pool.execute("INSERT INTO devices (id, kind, site_id) VALUES "
                           "('smk-1', 'smoke_detector', 's1'), ('smk-2', 'smoke_detector', 's2'),"
                           " ('smk-3', 'smoke_detector', 's3')")
        store = AlarmStore(pool)
        for dev, site in (("smk-1", "s1"), ("smk-2", "s2"), ("smk-3", "s3")):
            await raise_alarm(store, dev, site)
    finally:
        await pool.close()
    for who, sites in SEES.items():
        async with city.client(who) as c:
            listed = {s["id"] for s in (await _ok(await c.get("/sites"), 200))["data"]}
            assert listed == sites, who
            for s in {"s1", "s2", "s3"} - sites:
                assert (await c.get(f"/sites/{s}")).status_code == 404, (who, s)
                assert (await c.get(f"/devices/smk-{s[1]}")).status_code == 404, (who, s)
            devices = {d["id"] for d in (await _ok(await c.get("/devices"), 200))["data"]}
            assert devices == {f"smk-{s[1]}" for s in sites}, who
            alarms = (await _ok(await c.get("/alarms"), 200))["data"]
            assert {a["site_id"] for a in alarms} == sites, who
            for a in alarms:  # each alarm names the site's unit and its place in the city
                assert a["jurisdiction_path"][0] == "Fuzhou" and a["unit_name"], a
            # the live stream's snapshot, and the exports
            async with c.stream("GET", "/alarms/stream") as r:
                assert r.status_code == 200
                async for ev in events(r):
                    if ev.event == "snapshot":
                        assert {a["site_id"] for a in ev.data["alarms"]} == sites, who
                        break
            export = (await c.get("/org/export/sites")).text.splitlines()[1:]
            assert {line.split(",")[0] for line in export} == sites, who
            if who in ("admin", "county", "department", "district_operator"):
                stats = await _ok(await c.get("/stats"), 200)
                assert stats["alarms_by_class"].get("fire", 0) == len(sites), (who, stats)
    # statistics of one subtree, within the caller's own scope
    async with city.client("admin") as c:
        for node, fires in (("city", 3), ("d1", 1), ("d2", 2), ("g2", 2)):
            stats = await _ok(await c.get("/stats", params={
                "jurisdiction_id": city.ids[node]}), 200)
            assert stats["alarms_by_class"].get("fire", 0) == fires, (node, stats)
    async with city.client("county") as c:
        stats = await _ok(await c.get("/stats", params={"jurisdiction_id": city.ids["t1"]}), 200)
        assert stats["alarms_by_class"]["fire"] == 1
        assert stats["jurisdiction_path"] == ["Fuzhou", "Gulou", "Dongjie"]
        assert (await c.get("/stats", params={"jurisdiction_id": city.ids["d2"]})).status_code == 404
        r = await c.get("/stats/compliance", params={"jurisdiction_id": city.ids["d2"]})
        assert r.status_code == 404


async def test_the_tree_each_one_sees(city: City) -> None:
    ids = city.ids
    async with city.client("county") as c:
        nodes = {j["code"] for j in (await _ok(await c.get("/jurisdictions"), 200))["data"]}
        # its subtree, and nothing of the other district (the city itself is the way to
        # its own sites, so it is named on the path too)
        assert nodes >= {"350102", "350102001", "G-350102001-01"}
        assert not nodes & {"350103", "350103001", "G-350103001-01"}
        assert (await c.get(f"/jurisdictions/{ids['d2']}")).status_code == 404
        g1 = await _ok(await c.get(f"/jurisdictions/{ids['g1']}"), 200)
        assert [p["code"] for p in g1["path"]] == ["350100", "350102", "350102001",
                                                    "G-350102001-01"]
        assert g1["sites"] == 1 and g1["boundary"] == SQUARE
        units = {u["id"] for u in (await _ok(await c.get("/units"), 200))["data"]}
        assert units == {ids["u1"]}
        assert (await c.get(f"/units/{ids['u2']}")).status_code == 404
        # reading is not writing
        assert (await c.post("/jurisdictions", json={
            "code": "x1", "name": "x", "level": "grid", "parent_id": ids["t1"]})).status_code == 403
    async with city.client("maintainer") as c:
        companies = {k["id"] for k in (await _ok(await c.get("/companies"), 200))["data"]}
        assert companies == {ids["k"]}
        contracts = (await _ok(await c.get("/contracts"), 200))["data"]
        assert [k["site_id"] for k in contracts] == ["s2"]
    async with city.client("admin") as c:
        city_node = await _ok(await c.get(f"/jurisdictions/{ids['city']}"), 200)
        assert city_node["sites"] == 3
        # grid workers: only in a grid, seen by those who see the grid
        r = await c.post("/grid-members", json={"grid_id": ids["t1"], "name": "Wang"})
        assert r.status_code == 422 and "not a grid" in r.json()["detail"]
        for grid, name in (("g1", "Wang"), ("g2", "Chen")):
            await _ok(await c.post("/grid-members", json={
                "grid_id": ids[grid], "name": name, "phone": "+86 138 0000 0000"}))
    async with city.client("county") as c:
        members = (await _ok(await c.get("/grid-members"), 200))["data"]
        assert [m["name"] for m in members] == ["Wang"]
    async with city.client("gridder") as c:
        members = (await _ok(await c.get("/grid-members"), 200))["data"]
        assert [m["name"] for m in members] == ["Chen"]


async def test_tree_changes_and_their_refusals(city: City) -> None:
    ids = city.ids
    async with city.client("admin") as a:
        # moving township 1 (with its grid and site) under district 2: refused, codes differ
        r = await a.patch(f"/jurisdictions/{ids['t1']}", json={"parent_id": ids["d2"]})
        assert r.status_code == 422 and "does not lie inside" in r.json()["detail"]
        # a grid moves freely between townships; its subtree (its site) follows
        r = await a.patch(f"/jurisdictions/{ids['g1']}", json={"parent_id": ids["t2"]})
        assert r.status_code == 200, r.text
        assert [p["code"] for p in r.json()["path"]][-2:] == ["350103001", "G-350102001-01"]
        # a cycle
        r = await a.patch(f"/jurisdictions/{ids['d2']}", json={"parent_id": ids["t2"]})
        assert r.status_code == 422 and "subtree" in r.json()["detail"]
        # deleting a node that still owns sites
        r = await a.delete(f"/jurisdictions/{ids['g2']}")
        assert r.status_code == 409 and "sites" in r.json()["detail"]
        # duplicates, bad credit codes, overlapping contracts, malformed GeoJSON
        r = await a.post("/jurisdictions", json={"code": "350102", "name": "again",
                                                 "level": "district", "parent_id": ids["city"]})
        assert r.status_code == 409
        r = await a.post("/units", json={"credit_code": "91350100M000100Y44", "name": "typo"})
        assert r.status_code == 422 and "check character" in r.json()["detail"]
        r = await a.post("/contracts", json={
            "company_id": ids["k_old"], "site_id": "s2", "starts_on": str(TODAY),
            "ends_on": str(TODAY + timedelta(days=30))})
        assert r.status_code == 409 and "overlaps" in r.json()["detail"]
        r = await a.post("/jurisdictions", json={
            "code": "g9", "name": "bad", "level": "grid", "parent_id": ids["t2"],
            "boundary": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}})
        assert r.status_code == 422 and "GeoJSON" in r.json()["detail"]
        # the county supervisor now sees no site: its only one moved with grid 1
        async with city.client("county") as c:
            assert (await _ok(await c.get("/sites"), 200))["data"] == []
        log = (await _ok(await a.get("/audit", params={"entity": "jurisdiction",
                                                        "entity_id": str(ids["g1"])}), 200))
        assert [e["action"] for e in log["data"]] == ["move", "create"]
        moved = log["data"][0]
        assert moved["before"]["parent_id"] == ids["t1"] and moved["after"]["parent_id"] == ids["t2"]
        assert moved["actor_name"] == "admin"
    async with city.client("supervisor") as c:
        assert (await c.get("/audit")).status_code == 403
