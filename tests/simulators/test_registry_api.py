"""The registered demo fleet read back through the real API as an operator sees it: sites with
address, coordinates, contacts, fire plan and floors; each floor's SVG plan; devices placed on
their floors under their panel."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest

from api.schemas import Contact, FirePlan
from simulators.fleet import build_fleet
from simulators.registry import PLAN_TYPE, register_fleet
from simulators.sites import site_details
from tests.api.conftest import api_settings_for, seed
from tests.api.server import running_api

pytestmark = pytest.mark.integration


async def test_an_operator_reads_the_demo_sites_through_the_api(clean_db) -> None:
    fleet = build_fleet(2, 3, 10)
    await register_fleet(clean_db.url, fleet)
    with running_api(api_settings_for(clean_db.url)) as server:
        world = await seed(clean_db.url, server.url)   # users (and two sites of its own)
        async with world.client("operator") as c:
            for site in fleet.sites:
                det = site_details(fleet, site)
                r = await c.get(f"/sites/{site.id}")
                assert r.status_code == 200, r.text
                body = r.json()
                assert (body["address"], body["latitude"], body["longitude"]) == (
                    det.address, det.latitude, det.longitude)
                # as written, in the API's own shape (absent optional fields as null)
                assert body["contacts"] == [Contact(**c).model_dump(mode="json")
                                            for c in det.contacts]
                assert body["fire_plan"] == FirePlan(**det.fire_plan).model_dump(mode="json")
                assert [(f["id"], f["level"], f["has_plan"]) for f in body["floors"]] == [
                    (f.id, f.level, True) for f in det.floors]
                for f in body["floors"]:
                    plan = await c.get(f["plan_url"].removeprefix("/api/v1"))
                    assert plan.status_code == 200, plan.text
                    assert plan.headers["content-type"].startswith(PLAN_TYPE)
                    ElementTree.fromstring(plan.content)
                devices = (await c.get("/devices", params={"site_id": site.id})).json()
                assert devices["count"] == len(fleet.at_site(site.id))
                spots = {d: (f.id, xy) for f in det.floors for d, xy in f.spots.items()}
                for d in devices["data"]:
                    assert (d["floor_id"], (d["x"], d["y"])) == spots[d["id"]]
                    if d["kind"] != "alarm_panel":
                        assert d["parent_id"] == fleet.panel_of(site.id).id
