"""The subscription API end to end: roles and ownership, the secret shown once, a ping and an
operator verdict through the API arriving signed at a real receiver, the delivery log,
replay, rotation, disable and delete."""

from __future__ import annotations

import pytest

from dispatch.receiver import Receiver
from firetower.alarm_store import AlarmStore
from tests.api.conftest import World, api, api_settings_for, world  # noqa: F401  (fixtures)
from tests.dispatch.common import pool_for, raise_fire, running
from tests.helpers import eventually

pytestmark = pytest.mark.integration


async def test_roles_and_ownership(world: World) -> None:  # noqa: F811
    body = {"url": "https://dispatch.example/hook", "classes": ["fire"]}
    for who in ("operator", "supervisor", "installer", "manager"):
        async with world.client(who) as c:
            assert (await c.get("/webhooks")).status_code == 403
            assert (await c.post("/webhooks", json=body)).status_code == 403
    async with world.client("integration") as c:
        r = await c.post("/webhooks", json=body)
        assert r.status_code == 201, r.text
        mine = r.json()
        assert mine["secret"].startswith("whsec_") and mine["modes"] == ["normal"]
        got = (await c.get(f"/webhooks/{mine['id']}")).json()
        assert "secret" not in got and got["health"]["consecutive_failures"] == 0
        assert (await c.post("/webhooks", json={"url": "ftp://x"})).status_code == 422
        assert (await c.post("/webhooks", json={**body, "bogus": 1})).status_code == 422
    async with world.client("admin") as c:
        theirs = (await c.post("/webhooks", json=body)).json()
        listed = (await c.get("/webhooks")).json()
        assert {w["id"] for w in listed["data"]} == {mine["id"], theirs["id"]}
    async with world.client("integration") as c:
        assert [w["id"] for w in (await c.get("/webhooks")).json()["data"]] == [mine["id"]]
        assert (await c.get(f"/webhooks/{theirs['id']}")).status_code == 404
        assert (await c.delete(f"/webhooks/{theirs['id']}")).status_code == 404
        r = await c.patch(f"/webhooks/{mine['id']}", json={"enabled": False, "max_priority": 1})
        assert r.status_code == 200 and r.json()["enabled"] is False
        assert r.json()["max_priority"] == 1 and r.json()["classes"] == ["fire"]
        assert (await c.delete(f"/webhooks/{mine['id']}")).status_code == 204
        assert (await c.get(f"/webhooks/{mine['id']}")).status_code == 404


async def test_ping_verdict_log_replay_rotate(world: World) -> None:  # noqa: F811
    rx = await Receiver([]).start()
    key = api_settings_for(world.db_url).secret_key.get_secret_value()  # the API's
    async with pool_for(world.db_url) as pool, running(world.db_url, secret_key=key):
        async with world.client("integration") as c:
            r = await c.post("/webhooks", json={"url": rx.url, "name": "119 gateway",
                                                "event_types": ["alarm.verdict"]})
            hook = r.json()
            rx.secrets.append(hook["secret"])
            r = await c.post(f"/webhooks/{hook['id']}/ping")
            assert r.status_code == 202
            await eventually(lambda: _n(rx, 1), timeout=30)
            assert rx.unique[0].type == "webhook.ping"

            await pool.execute("INSERT INTO devices (id, kind, site_id) VALUES"
                               " ('d1', 'smoke_detector', 's1')")
            alarm = await raise_fire(AlarmStore(pool), "d1")
            async with world.client("operator") as op:
                r = await op.post(f"/alarms/{alarm}/verdict",
                                  json={"verdict": "false_alarm", "reason": "cooking steam"})
                assert r.status_code == 200, r.text
            await eventually(lambda: _n(rx, 2), timeout=30)
            verdict = rx.unique[1]
            assert verdict.type == "alarm.verdict"
            assert verdict.body["data"]["alarm"]["verdict"] == "false_alarm"

            log = (await c.get(f"/webhooks/{hook['id']}/deliveries")).json()
            assert [d["type"] for d in log["data"]] == ["alarm.verdict", "webhook.ping"]
            assert all(d["status"] == "delivered" for d in log["data"])
            assert log["data"][0]["event_id"] == verdict.id
            first = log["data"][0]["id"]
            tries = (await c.get(f"/webhooks/{hook['id']}/deliveries/{first}/attempts")).json()
            assert [t["outcome"] for t in tries] == ["delivered"]
            assert tries[0]["status_code"] == 204

            r = await c.post(f"/webhooks/{hook['id']}/replay", json={"delivery_ids": [first]})
            assert r.status_code == 202
            await eventually(lambda: _requests(rx, 3), timeout=30)
            assert rx.requests[2].id == verdict.id and len(rx.unique) == 2  # same id: dropped
            assert (await c.post(f"/webhooks/{hook['id']}/replay",
                                 json={"delivery_ids": [first, 999999]})).status_code == 404

            r = await c.post(f"/webhooks/{hook['id']}/secret", json={"overlap_seconds": 60})
            assert r.status_code == 200 and r.json()["secret"] != hook["secret"]
            rx.secrets[:] = [r.json()["secret"]]  # the receiver switches to the new secret
            await c.post(f"/webhooks/{hook['id']}/ping")
            await eventually(lambda: _n(rx, 3), timeout=30)
    await rx.stop()
    assert rx.bad_signatures == 0


async def _n(rx: Receiver, n: int) -> bool:
    return len(rx.unique) >= n


async def _requests(rx: Receiver, n: int) -> bool:
    return len(rx.requests) >= n
