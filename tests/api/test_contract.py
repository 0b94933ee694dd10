"""The API's contract, beyond what schemathesis samples: 405 names every method of the path
(`Allow`), every error answer has the one shape and is in the OpenAPI document."""

from __future__ import annotations

import pytest

from tests.api.conftest import World

pytestmark = pytest.mark.integration


async def test_405_names_every_method_of_the_path(world: World) -> None:
    async with world.client("admin") as c:
        r = await c.put("/sites/s1")
        assert r.status_code == 405
        assert set(r.headers["allow"].split(", ")) >= {"GET", "PATCH", "DELETE"}
        assert r.json() == {"detail": "Method Not Allowed"}
        r = await c.delete("/sites")
        assert set(r.headers["allow"].split(", ")) >= {"GET", "POST"}
        # a fixed path beside a parameter one (/devices/{device_id}) is the fixed route's
        r = await c.put("/devices/import")
        assert (r.status_code, r.headers["allow"]) == (405, "POST")


async def test_error_answers_have_one_shape_and_are_documented(world: World) -> None:
    async with world.client() as anonymous, world.client("installer") as installer:
        answers = {
            401: await anonymous.get("/sites"),
            403: await installer.post("/sites", json={"id": "s9", "name": "x"}),
            404: await installer.get("/sites/s2"),
            413: await anonymous.post("/sites", content=b"{" + b" " * 70_000 + b"}",
                                      headers={"Content-Type": "application/json"}),
            422: await installer.get("/devices", params={"limit": 0}),
        }
        doc = (await anonymous.get("/openapi.json")).json()["paths"]
    for status, r in answers.items():
        assert r.status_code == status, r.text
        assert isinstance(r.json()["detail"], str), r.text
    assert set(answers) <= {int(s) for s in doc["/api/v1/sites"]["post"]["responses"]} | {404}
    assert {"401", "403", "404", "422", "503"} <= set(doc["/api/v1/sites/{site_id}"]["get"]
                                                      ["responses"])
    assert doc["/api/v1/alarms/stream"]["get"]["responses"]["200"]["content"] == {
        "text/event-stream": {}}
    assert doc["/api/v1/auth/token"]["post"]["responses"]["429"]["headers"]["Retry-After"]


async def test_a_one_value_query_parameter_given_twice_is_refused(world: World) -> None:
    """FastAPI would keep the last value (`?limit=x&limit=5` read as 5); the API refuses it,
    and a list parameter (`class`) still takes many."""
    async with world.client("installer") as c:
        r = await c.get("/alarms", params=[("limit", "nonsense"), ("limit", "5")])
        assert r.status_code == 422 and "limit" in r.json()["detail"], r.text
        r = await c.get("/companies", params=[("limit", "{}"), ("limit", "2")])
        assert r.status_code == 422, r.text
        r = await c.get("/alarms", params=[("class", "fire"), ("class", "fault")])
        assert r.status_code == 200, r.text
