"""Notification contacts, policies, escalation chains and the message log through the API on the
real database: refusals at write time with their reasons, addresses never shown, the audit
rows, and scope (a township supervisor manages its subtree only; other places answer 404)."""

from __future__ import annotations

import pytest

from firetower import db
from tests.api.conftest import World
from tests.api.test_hazard_loop import Town, build_town, ok

pytestmark = pytest.mark.integration

ROBOT = "https://oapi.dingtalk.com/robot/send?access_token=0123456789abcdef0123456789abcdef"


@pytest.fixture
async def town(world: World) -> Town:
    return await build_town(world)


async def test_contacts_are_checked_sealed_and_shown_redacted(town: Town) -> None:
    t = town
    async with t.client("admin") as a:
        c = await ok(await a.post("/notify/contacts", json={
            "recipient": "unit_responsible", "ref_id": t.ids["unit"], "name": "张三",
            "channel": "dingtalk", "address": ROBOT,
            "secret": "SEC0123456789abcdef0123456789abcdef"}), 201)
        assert c["signed"] and "0123456789abcdef0123" not in c["shown"]
        listed = await ok(await a.get("/notify/contacts", params={"ref_id": t.ids["unit"]}))
        assert [x["id"] for x in listed["items"]] == [c["id"]]
        assert "address" not in listed["items"][0] and "secret" not in listed["items"][0]
        conn = await db.connect(t.world.db_url)
        try:
            stored = await conn.fetchval("SELECT address FROM notify_contacts WHERE id = $1",
                                         c["id"])
        finally:
            await conn.close()
        assert ROBOT.encode() not in bytes(stored)  # sealed at rest
        bad = await a.post("/notify/contacts", json={
            "recipient": "unit_responsible", "ref_id": t.ids["unit"], "channel": "email",
            "address": "not-an-address"})
        assert bad.status_code == 422 and "e-mail" in bad.json()["detail"]
        missing = await a.post("/notify/contacts", json={
            "recipient": "grid_member", "ref_id": 99999, "channel": "email",
            "address": "a@b.cn"})
        assert missing.status_code == 422 and "no grid member 99999" in missing.json()["detail"]
        off = await ok(await a.patch(f"/notify/contacts/{c['id']}", json={"enabled": False}))
        assert off["enabled"] is False
        assert (await a.delete(f"/notify/contacts/{c['id']}")).status_code == 204
        assert (await a.delete(f"/notify/contacts/{c['id']}")).status_code == 404
    conn = await db.connect(t.world.db_url)
    try:
        audit = await conn.fetch(
            "SELECT action FROM audit_log WHERE entity = 'notify_contact' ORDER BY id")
    finally:
        await conn.close()
    assert [r["action"] for r in audit] == ["create", "update", "delete"]


async def test_policies_that_cannot_work_are_refused_with_the_reason(town: Town) -> None:
    t = town
    async with t.client("admin") as a:
        p = await ok(await a.post("/notify/policies", json={
            "name": "faults at night", "classes": ["fault", "offline"],
            "recipients": ["unit_responsible", "maintenance_company"], "channels": ["sms"],
            "quiet_start": "22:00", "quiet_end": "07:00", "group_window_s": 300,
            "jurisdiction_id": t.ids["county"]}), 201)
        assert p["quiet_start"] == "22:00" and p["group_window_s"] == 300
        for body, reason in (
                ({"classes": ["fire"], "quiet_start": "22:00", "quiet_end": "07:00"},
                 "never apply to fire"),
                ({"classes": ["fault"], "quiet_start": "22:00"}, "both a start and an end"),
                ({"classes": ["fault"], "timezone": "Mars/Base"}, "unknown time zone"),
                ({"classes": ["fault"], "jurisdiction_id": t.ids["county"],
                  "unit_id": t.ids["unit"]}, "not both")):
            r = await a.post("/notify/policies", json={
                "name": "x", "recipients": ["grid_member"], **body})
            assert r.status_code == 422 and reason in r.json()["detail"], r.text
        changed = await ok(await a.put(f"/notify/policies/{p['id']}", json={
            "name": "faults", "classes": ["fault"], "recipients": ["grid_member"]}))
        assert changed["quiet_start"] is None and changed["jurisdiction_id"] is None
        assert (await a.delete(f"/notify/policies/{p['id']}")).status_code == 204


async def test_chains_are_checked_and_one_per_class_and_place(town: Town) -> None:
    t = town
    steps = [{"after_s": 60, "recipients": ["duty_leader"]},
             {"after_s": 180, "recipients": ["duty_officer"]}]
    async with t.client("admin") as a:
        c = await ok(await a.post("/notify/chains", json={
            "name": "fire", "class": "fire", "steps": steps}), 201)
        assert c["class"] == "fire" and c["steps"] == steps
        again = await a.post("/notify/chains", json={"name": "f2", "class": "fire",
                                                     "steps": steps})
        assert again.status_code == 409
        backwards = await a.post("/notify/chains", json={
            "name": "f3", "class": "fire", "jurisdiction_id": t.ids["county"],
            "steps": list(reversed(steps))})
        assert backwards.status_code == 422
        assert "later than the step before" in backwards.json()["detail"]
        county = await ok(await a.post("/notify/chains", json={
            "name": "county fire", "class": "fire", "jurisdiction_id": t.ids["county"],
            "steps": steps[:1], "repeat_s": 120}), 201)
        listed = await ok(await a.get("/notify/chains"))
        assert {x["id"] for x in listed["items"]} == {c["id"], county["id"]}


async def test_scoped_supervisors_manage_only_their_subtree(town: Town) -> None:
    t = town
    async with t.client("admin") as a:
        city = await ok(await a.post("/notify/policies", json={
            "name": "city", "classes": ["fire"], "recipients": ["duty_operator"]}), 201)
    async with t.client("township_sup") as s:
        mine = await ok(await s.post("/notify/policies", json={
            "name": "township", "classes": ["fire"], "recipients": ["grid_member"],
            "jurisdiction_id": t.ids["township"]}), 201)
        above = await s.post("/notify/policies", json={
            "name": "county", "classes": ["fire"], "recipients": ["grid_member"],
            "jurisdiction_id": t.ids["county"]})
        assert above.status_code == 404
        citywide = await s.post("/notify/policies", json={
            "name": "all", "classes": ["fire"], "recipients": ["grid_member"]})
        assert citywide.status_code == 404
        listed = await ok(await s.get("/notify/policies"))
        assert [p["id"] for p in listed["items"]] == [mine["id"]]
        assert (await s.delete(f"/notify/policies/{city['id']}")).status_code == 404
    async with t.client("gridder") as g:  # a grid member reads no notification settings
        assert (await g.get("/notify/policies")).status_code == 403
        assert (await g.get("/notify/messages")).status_code == 403


async def test_links_refuse_forged_tokens_without_a_database_read(town: Town) -> None:
    async with town.client("admin") as a:
        for method in ("get", "post"):
            r = await getattr(a, method)("/public/links/ack/1.AAAAAAAAAAAAAAAAAAAAAA.bad")
            assert r.status_code == 404
        r = await a.get("/public/links/nope/1.AAAAAAAAAAAAAAAAAAAAAA.bad")
        assert r.status_code == 422
