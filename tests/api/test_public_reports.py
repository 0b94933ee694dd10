"""Public reports against the real API and database: the unauthenticated intake (JSON with
base64 photos, and the web form), duplicates merged by place and time, the status answer (no
contact, ever), floods (429 per address and for everyone, the database's rows bounded), the
contact sealed at rest and shown only to triage, scope, and triage: merge, dismiss, convert
to a hazard (hazards.store), reward."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.config import ApiSettings
from firetower import db
from tests.api.conftest import PASSWORD, World, api_settings_for, seed
from tests.api.server import running_api
from tests.conftest import Database
from tests.hazards.test_files import PDF_DOC, image

pytestmark = pytest.mark.integration
PHONE = "13800138000"
# Harbour Tower (s1) and Old Mill (s2), 5 km apart
S1 = (22.5431, 114.0579)
S2 = (22.5881, 114.0579)


async def _setup(world: World) -> None:
    """Coordinates for the two sites, a small tree (city, district, township, grid) and a
    grid member attached to the grid (it sees no site: only reports matched to its grid)."""
    conn = await db.connect(world.db_url)
    try:
        for site, (lat, lon) in (("s1", S1), ("s2", S2)):
            await conn.execute("UPDATE sites SET latitude = $2, longitude = $3 WHERE id = $1",
                               site, lat, lon)
    finally:
        await conn.close()
    ids: dict[str, int] = {}
    async with world.client("admin") as a:
        for key, code, level, parent in (("city", "440300", "city", None),
                                         ("district", "440304", "district", "city"),
                                         ("township", "440304001", "township", "district"),
                                         ("grid", "G-440304001-01", "grid", "township")):
            r = await a.post("/jurisdictions", json={
                "code": code, "name": code, "level": level,
                "parent_id": ids[parent] if parent else None})
            assert r.status_code == 201, r.text
            ids[key] = r.json()["id"]
        r = await a.post("/users", json={"name": "gridman", "role": "grid_member",
                                         "password": PASSWORD, "scope_kind": "jurisdiction",
                                         "scope_id": ids["grid"]})
        assert r.status_code == 201, r.text


async def _login(world: World, name: str) -> None:
    async with httpx.AsyncClient(base_url=f"{world.url}/api/v1") as c:
        r = await c.post("/auth/token", data={"username": name, "password": PASSWORD})
        assert r.status_code == 200, r.text
        world.tokens[name] = r.json()["access_token"]


@pytest.fixture
async def world(clean_db: Database, tmp_path: Path) -> AsyncIterator[World]:
    settings = ApiSettings(files_dir=tmp_path / "files", public_reports_per_address_hour=10_000,
                           public_report_burst=1000, public_reports_per_minute=1000,
                           public_status_per_minute=1000)
    with running_api(api_settings_for(clean_db.url), settings) as server:
        w = await seed(clean_db.url, server.url)
        await _setup(w)
        await _login(w, "gridman")
        yield w


def _report(**fields: Any) -> dict[str, Any]:
    return {"category": "blocked_exit", "description": "The fire exit is chained shut",
            "latitude": S1[0], "longitude": S1[1], **fields}


async def _rows(world: World, sql: str = "SELECT count(*) FROM public_reports") -> Any:
    conn = await db.connect(world.db_url)
    try:
        return await conn.fetchval(sql)
    finally:
        await conn.close()


async def test_file_a_report_and_follow_it(world: World) -> None:
    photo = base64.b64encode(image("JPEG", seed=3)).decode()
    async with world.client() as public:
        r = await public.post("/public/reports", json=_report(
            contact=PHONE, photos=[photo], channel="hotline", address="Harbour Tower, exit B"))
        assert r.status_code == 201, r.text
        receipt = r.json()
        assert receipt["status"] == "received"
        code = receipt["tracking_code"]
        status = await public.get(f"/public/reports/{code.lower()[:4]}-{code[4:]}")
        assert status.status_code == 200, status.text
        body = status.json()
        assert set(body) == {"tracking_code", "status", "outcome", "hazard_state", "category",
                             "reward_status", "received_at", "updated_at"}
        assert (body["status"], body["hazard_state"], body["reward_status"]) == (
            "received", None, "none")
        assert PHONE not in status.text and "Harbour" not in status.text
        # a typo in the code, or a code that was never given: the same 404
        typo = code[:-1] + ("0" if code[-1] != "0" else "1")
        assert (await public.get(f"/public/reports/{typo}")).status_code == 404
    # sealed at rest: the database never holds the phone number in clear
    sealed = await _rows(world, "SELECT contact_sealed FROM public_reports")
    assert sealed is not None and PHONE.encode() not in bytes(sealed)
    async with world.client("operator") as triage:
        listed = (await triage.get("/reports")).json()
        assert listed["count"] == 1 and listed["data"][0]["contact"] is None  # not in lists
        detail = (await triage.get(f"/reports/{listed['data'][0]['id']}")).json()
        assert detail["contact"] == PHONE and detail["site_id"] == "s1"
        assert [e["kind"] for e in detail["events"]] == ["received"]
        photo_id = detail["photos"][0]
        assert (await triage.get(f"/files/{photo_id}")).status_code == 200
    for reader in ("manager", "installer"):  # scoped to s1, no report:triage
        async with world.client(reader) as c:
            r = await c.get(f"/reports/{detail['id']}")
            assert r.status_code == 200, r.text
            assert r.json()["contact"] is None and PHONE not in r.text
            assert r.json()["has_contact"] is True
            assert (await c.get(f"/files/{photo_id}")).status_code == 200


async def test_the_web_form(world: World) -> None:
    async with world.client() as public:
        r = await public.post("/public/reports/form", data={
            "category": "ebike_charging", "description": "E-bikes charging in the stairwell",
            "latitude": str(S2[0]), "longitude": str(S2[1]), "contact": "", "node_code": ""},
            files=[("photos", ("stairs.png", image("PNG", seed=4), "image/png"))])
        assert r.status_code == 201, r.text
        # a photo that is not what it says, a PDF, or a field the form does not have: 422
        bad = [({"photos": ("x.png", b"not an image at all" * 10, "image/png")}, {}),
               ({"photos": ("x.pdf", PDF_DOC, "application/pdf")}, {}),
               ({}, {"colour": "red"}),
               ({}, {"latitude": "22.5"})]
        for files, extra in bad:
            r = await public.post("/public/reports/form", data={
                "category": "other", "description": "x", **extra}, files=files or None)
            assert r.status_code == 422, r.text
    assert await _rows(world) == 1
    assert await _rows(world, "SELECT count(*) FROM files") == 1
    async with world.client("operator") as c:
        data = (await c.get("/reports")).json()["data"]
        assert (data[0]["channel"], data[0]["site_id"], len(data[0]["photos"])) == (
            "web", "s2", 1)


async def test_bad_json_input(world: World) -> None:
    async with world.client() as public:
        for body in (_report(latitude=None), _report(category="ufo"), _report(description=""),
                     _report(photos=["!!!not base64!!!"]), _report(extra="x"),
                     _report(photos=[base64.b64encode(b"plain text" * 50).decode()]),
                     _report(photos=["a" * 4] * 4)):
            r = await public.post("/public/reports", json=body)
            assert r.status_code == 422, (body, r.text)
        r = await public.post("/public/reports", content=b"{not json",
                              headers={"content-type": "application/json"})
        assert r.status_code == 422, r.text
        big = base64.b64encode(b"\xff\xd8\xff" + b"\x00" * (6 * 1024 * 1024)).decode()
        r = await public.post("/public/reports", json=_report(photos=[big]))
        assert r.status_code == 413, r.text
    assert await _rows(world) == 0


async def test_duplicates_merge_by_place_and_time(world: World) -> None:
    async with world.client() as public:
        first = (await public.post("/public/reports", json=_report())).json()
        near = (S1[0] + 0.001, S1[1])  # about 110 m north
        second = (await public.post("/public/reports", json=_report(
            latitude=near[0], longitude=near[1]))).json()
        other_kind = (await public.post("/public/reports", json=_report(
            category="fire_lane"))).json()
        far = (await public.post("/public/reports", json=_report(
            latitude=S1[0] + 0.01, longitude=S1[1]))).json()  # 1.1 km
        nowhere = (await public.post("/public/reports", json=_report(
            latitude=None, longitude=None))).json()
    assert [x["status"] for x in (first, second, other_kind, far, nowhere)] == [
        "received", "merged", "received", "received", "received"]
    async with world.client("operator") as c:
        data = {r["tracking_code"]: r for r in (await c.get("/reports")).json()["data"]}
        assert data[second["tracking_code"]]["merged_into"] == data[first["tracking_code"]]["id"]
        assert data[first["tracking_code"]]["duplicates"] == 1
        # a hotline ticket sent twice answers its first report and stores nothing new
    async with world.client() as public:
        a = await public.post("/public/reports", json=_report(
            channel="hotline", external_ref="12345-2026-0001", latitude=S2[0], longitude=S2[1]))
        b = await public.post("/public/reports", json=_report(
            channel="hotline", external_ref="12345-2026-0001", latitude=S2[0], longitude=S2[1]))
        assert (a.status_code, b.status_code) == (201, 200)
        assert a.json()["tracking_code"] == b.json()["tracking_code"]
    assert await _rows(world) == 6


async def test_triage_steps_and_conversion(world: World) -> None:
    photo = base64.b64encode(image("PNG", seed=8)).decode()
    async with world.client() as public:
        main = (await public.post("/public/reports", json=_report(photos=[photo]))).json()
        dup = (await public.post("/public/reports", json=_report(
            category="fire_lane", description="Cars on the fire lane"))).json()
        junk = (await public.post("/public/reports", json=_report(
            category="other", description="test test"))).json()
    async with world.client("operator") as c:
        ids = {r["tracking_code"]: r["id"] for r in (await c.get("/reports")).json()["data"]}
        main_id, dup_id, junk_id = (ids[x["tracking_code"]] for x in (main, dup, junk))
        # dismiss needs a reason; a second dismissal is a wrong step (409, allowed steps)
        assert (await c.post(f"/reports/{junk_id}/dismiss", json={"reason": ""})).status_code \
            == 422
        r = await c.post(f"/reports/{junk_id}/dismiss", json={"reason": "a test call"})
        assert r.status_code == 200 and r.json()["status"] == "dismissed"
        r = await c.post(f"/reports/{junk_id}/dismiss", json={"reason": "again"})
        assert r.status_code == 409 and "allowed: nothing" in r.json()["detail"]
        # nothing merges into a dismissed report, nor into itself
        assert (await c.post(f"/reports/{dup_id}/merge", json={"into": junk_id})).status_code \
            == 409
        assert (await c.post(f"/reports/{dup_id}/merge", json={"into": dup_id})).status_code \
            == 409
        r = await c.post(f"/reports/{dup_id}/merge", json={"into": main_id, "note": "same"})
        assert r.status_code == 200 and r.json()["merged_into"] == main_id
        # convert: a hazard at the matched site, the photos its photos before
        r = await c.post(f"/reports/{main_id}/convert", json={"title": "Exit B chained"})
        assert r.status_code == 201, r.text
        hazard_id = r.json()["hazard_id"]
        assert r.json()["report"]["status"] == "converted"
        hazard = await _rows(world, f"SELECT row_to_json(h)::text FROM hazards h "
                                    f"WHERE id = {int(hazard_id)}")
        assert '"source":"public_report"' in hazard and f'"report:{main_id}"' in hazard
        assert '"site_id":"s1"' in hazard and r.json()["report"]["photos"][0] in hazard
        assert await _rows(world, "SELECT site_id FROM files") == "s1"  # its photo now too
        assert (await c.post(f"/reports/{main_id}/convert", json={"title": "x"})).status_code \
            == 409
        # reward: eligible, then granted with an amount (final)
        assert (await c.put(f"/reports/{dup_id}/reward", json={"status": "eligible"})) \
            .status_code == 409  # merged, not the hazard's report
        assert (await c.put(f"/reports/{main_id}/reward", json={"status": "granted",
                                                               "amount": 200})).status_code == 409
        assert (await c.put(f"/reports/{main_id}/reward",
                            json={"status": "eligible"})).status_code == 200
        assert (await c.put(f"/reports/{main_id}/reward",
                            json={"status": "granted"})).status_code == 422  # no amount
        r = await c.put(f"/reports/{main_id}/reward", json={"status": "granted", "amount": 200,
                                                            "note": "paid by the county"})
        assert r.status_code == 200 and r.json()["reward_amount"] == 200
        assert (await c.put(f"/reports/{main_id}/reward",
                            json={"status": "refused"})).status_code == 409
        detail = (await c.get(f"/reports/{main_id}")).json()
        assert [e["kind"] for e in detail["events"]] == ["received", "converted", "reward",
                                                         "reward"]
    async with world.client() as public:
        s = (await public.get(f"/public/reports/{dup['tracking_code']}")).json()
        assert (s["status"], s["outcome"], s["hazard_state"]) == ("merged", "converted", "found")
        s = (await public.get(f"/public/reports/{main['tracking_code']}")).json()
        assert (s["reward_status"], s["hazard_state"]) == ("granted", "found")
        assert "county" not in str(s) and "200" not in str(s["reward_status"])
    # report events are append-only
    conn = await db.connect(world.db_url)
    try:
        with pytest.raises(Exception, match="append-only"):
            await conn.execute("DELETE FROM public_report_events")
    finally:
        await conn.close()


async def test_who_sees_which_report(world: World) -> None:
    async with world.client() as public:
        at_s1 = (await public.post("/public/reports", json=_report())).json()
        at_s2 = (await public.post("/public/reports", json=_report(
            latitude=S2[0], longitude=S2[1], category="flammables"))).json()
        in_grid = (await public.post("/public/reports", json=_report(
            latitude=None, longitude=None, category="electrical",
            node_code="G-440304001-01"))).json()
    async with world.client("operator") as c:
        ids = {r["tracking_code"]: r["id"] for r in (await c.get("/reports")).json()["data"]}
    s1_id, s2_id, grid_id = (ids[x["tracking_code"]] for x in (at_s1, at_s2, in_grid))
    expected = {"manager": {s1_id}, "installer": {s1_id}, "gridman": {grid_id},
                "supervisor": {s1_id, s2_id, grid_id}}
    for who, sees in expected.items():
        async with world.client(who) as c:
            listed = {r["id"] for r in (await c.get("/reports")).json()["data"]}
            assert listed == sees, who
            for rid in {s1_id, s2_id, grid_id} - sees:
                assert (await c.get(f"/reports/{rid}")).status_code == 404, (who, rid)
    async with world.client("manager") as c:  # no report:triage: reads, changes nothing
        r = await c.post(f"/reports/{s1_id}/dismiss", json={"reason": "no"})
        assert r.status_code == 403 and r.json()["detail"].startswith("role site_manager")
    async with world.client("supervisor") as c:
        r = await c.post(f"/reports/{s1_id}/convert", json={"title": "x", "site_id": "nope"})
        assert r.status_code == 404
        r = await c.post(f"/reports/{s1_id}/convert", json={
            "title": "x", "deadline": "2020-01-01T00:00:00Z"})
        assert r.status_code == 422 and "past" in r.json()["detail"]


async def test_a_flood_from_one_address_is_cut_and_bounded(clean_db: Database,
                                                           tmp_path: Path) -> None:
    limits = ApiSettings(files_dir=tmp_path, public_reports_per_address_hour=10,
                         public_report_burst=3, public_reports_per_minute=1000,
                         public_status_per_minute=5)
    with running_api(api_settings_for(clean_db.url), limits) as server:
        world = await seed(clean_db.url, server.url)
        async with world.client() as public:
            answers = [await public.post("/public/reports", json=_report(
                description=f"report {i}", category="other")) for i in range(40)]
            codes = [r.status_code for r in answers]
            assert codes[:3] == [201] * 3 and set(codes[3:]) == {429}, codes
            refused = answers[-1]
            assert refused.json()["detail"].startswith("too many reports from this address")
            assert 1 <= int(refused.headers["retry-after"]) <= 3600
            # status look-ups have their own allowance
            code = answers[0].json()["tracking_code"]
            looks = [(await public.get(f"/public/reports/{code}")).status_code
                     for _ in range(8)]
            assert looks[:5] == [200] * 5 and set(looks[5:]) == {429}
        assert await _rows(world) == 3


async def test_a_flood_from_everyone_hits_the_global_cap(clean_db: Database,
                                                         tmp_path: Path) -> None:
    limits = ApiSettings(files_dir=tmp_path, public_reports_per_address_hour=100_000,
                         public_report_burst=1000, public_reports_per_minute=5)
    with running_api(api_settings_for(clean_db.url), limits) as server:
        world = await seed(clean_db.url, server.url)
        async with world.client() as public:
            codes = [(await public.post("/public/reports/form", data={
                "category": "other", "description": f"report {i}"})).status_code
                for i in range(30)]
            assert codes[:5] == [201] * 5 and set(codes[5:]) == {429}, codes
            r = await public.post("/public/reports", json=_report())
            assert r.status_code == 429 and "right now" in r.json()["detail"]
        assert await _rows(world) == 5
