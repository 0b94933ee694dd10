"""Bulk import and export of the organisation through the API: CSV in UTF-8 and GBK and XLSX,
all or nothing with every bad row named, idempotent by code, and an export that imports back
unchanged."""

from __future__ import annotations

import pytest

from org.importing import XLSX_TYPE
from tests.api.conftest import World

pytestmark = pytest.mark.integration

TREE = """code,name,level,parent_code,center_lat,center_lon
350100,福州市,city,,26.07,119.30
350102,鼓楼区,district,350100,,
350102001,东街街道,township,350102,,
G-01,东街一网格,grid,350102001,26.09,119.29
"""
DEPARTMENTS = "code,name,industries\nedu,教育局,education;training\n"
UNITS = """credit_code,name,industry,department_code,risk_class,nine_small,responsible_name,grid_code
91350100M000100Y43,港口大厦有限公司,education,edu,key,no,林工,G-01
91440300708461136T,老磨坊,,,small,是,,G-01
"""
SITES = """id,name,address,latitude,longitude,unit_credit_code,jurisdiction_code
s1,Harbour Tower,1 Quay,26.09,119.29,91350100M000100Y43,G-01
s2,Old Mill,,,,91440300708461136T,G-01
"""
COMPANIES = "credit_code,name,licence_valid_until\n91350100M000100Y43,维保公司,2027-06-30\n"
CONTRACTS = ("site_id,starts_on,ends_on,company_credit_code,scope\n"
             "s1,2026-01-01,2026-12-31,91350100M000100Y43,全系统\n")


async def _post(c, kind: str, body: bytes, ctype: str = "text/csv"):  # type: ignore[no-untyped-def]
    return await c.post(f"/org/import/{kind}", content=body, headers={"Content-Type": ctype})


async def test_a_city_imports_once_and_round_trips(world: World) -> None:
    async with world.client("admin") as c:
        files = [("jurisdictions", TREE.encode()), ("departments", DEPARTMENTS.encode("gbk")),
                 ("units", UNITS.encode("gb18030")), ("sites", SITES.encode("utf-8-sig")),
                 ("companies", COMPANIES.encode()), ("contracts", CONTRACTS.encode())]
        for kind, body in files:
            r = await _post(c, kind, body)
            assert r.status_code == 200, (kind, r.text)
            if kind == "sites":  # the world's two sites exist: they are placed
                assert (r.json()["created"], r.json()["updated"]) == (0, 2), r.json()
            else:
                assert r.json()["updated"] == 0 and r.json()["created"] >= 1, (kind, r.json())
        # again: nothing changes
        for kind, body in files:
            r = await _post(c, kind, body)
            assert r.status_code == 200 and r.json()["created"] == 0 \
                and r.json()["updated"] == 0, (kind, r.json())
        units = {u["credit_code"]: u for u in (await c.get("/units")).json()["data"]}
        assert units["91440300708461136T"]["nine_small"] is True
        assert units["91350100M000100Y43"]["responsible_name"] == "林工"
        grid = [j for j in (await c.get("/jurisdictions")).json()["data"] if j["code"] == "G-01"]
        assert [p["code"] for p in grid[0]["path"]] == ["350100", "350102", "350102001", "G-01"]
        assert grid[0]["sites"] == 2
        # export -> import: unchanged, as CSV and as XLSX
        for kind, _ in files:
            for fmt, ctype in (("csv", "text/csv"), ("xlsx", XLSX_TYPE)):
                r = await c.get(f"/org/export/{kind}", params={"format": fmt})
                assert r.status_code == 200, r.text
                back = await _post(c, kind, r.content, ctype)
                assert back.status_code == 200, (kind, fmt, back.text)
                assert (back.json()["created"], back.json()["updated"]) == (0, 0), (kind, fmt)
        # a change by file: one row updated, with its audit entry
        r = await _post(c, "sites", SITES.replace("Old Mill", "Old Mill Museum").encode())
        assert r.json() == {"kind": "sites", "created": 0, "updated": 1, "unchanged": 1}
        log = (await c.get("/audit", params={"entity": "site", "entity_id": "s2"})).json()
        assert log["data"][0]["after"]["name"] == "Old Mill Museum"
        assert log["data"][0]["before"]["name"] == "Old Mill"


async def test_bad_files_name_every_row_and_write_nothing(world: World) -> None:
    async with world.client("admin") as c:
        assert (await _post(c, "jurisdictions", TREE.encode())).status_code == 200
        bad_units = ("credit_code,name,risk_class,grid_code\n"
                     "91350100M000100Y44,typo,key,G-01\n"      # check character
                     "91440300708461136T,,key,G-01\n"          # name missing
                     "91350100M000100Y43,ok,huge,G-01\n"       # risk class
                     "91110000600037341L,ok,key,G-99\n")       # unknown grid
        r = await _post(c, "units", bad_units.encode())
        assert r.status_code == 422, r.text
        errors = {(e["row"], e["column"]) for e in r.json()["errors"]}
        assert errors == {(2, "credit_code"), (3, "name"), (4, "risk_class")}, r.json()
        # the unknown grid is found once the rows themselves are good
        r = await _post(c, "units", (b"credit_code,name,grid_code\n"
                                     b"91350100M000100Y43,ok,G-99\n"))
        assert r.status_code == 422 and r.json()["errors"] == [
            {"row": 2, "column": "grid_code", "reason": "no jurisdiction with code G-99"}]
        assert (await c.get("/units")).json()["count"] == 0
        # a tree that would hang a district under a grid; a cycle within the file
        r = await _post(c, "jurisdictions", b"code,name,level,parent_code\n"
                                            b"350103,x,district,G-01\n")
        assert r.status_code == 422 and "leaf" in r.json()["errors"][0]["reason"]
        r = await _post(c, "jurisdictions", b"code,name,level,parent_code\n"
                                            b"a1,a,grid,b1\nb1,b,grid,a1\n")
        assert r.status_code == 422
        # wrong columns, duplicate keys, not a spreadsheet, an empty file
        r = await _post(c, "units", b"code,name\nx,y\n")
        assert r.status_code == 422 and "unknown columns: code" in r.json()["detail"]
        r = await _post(c, "departments", b"code,name\nedu,a\nedu,b\n")
        assert r.json()["errors"] == [{"row": 3, "column": "code", "reason": "also on row 2"}]
        r = await _post(c, "sites", b"PK\x03\x04 not really a zip", XLSX_TYPE)
        assert r.status_code == 422 and "XLSX" in r.json()["detail"]
        assert (await _post(c, "sites", b"")).status_code == 422
        # only an unscoped admin imports
    async with world.client("installer") as c:
        assert (await _post(c, "departments", DEPARTMENTS.encode())).status_code == 403
