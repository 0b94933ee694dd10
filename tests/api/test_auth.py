"""Login, tokens, API keys and the user command."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from tests.api.conftest import PASSWORD, World

pytestmark = pytest.mark.integration


async def test_login_and_me(world: World) -> None:
    async with world.client("installer") as c:
        r = await c.get("/auth/me")
    assert r.status_code == 200
    body = r.json()
    assert (body["name"], body["role"], body["site_ids"]) == ("installer", "installer", ["s1"])
    assert "device:write" in body["permissions"]


@pytest.mark.parametrize(("user", "password"), [("admin", "wrong password"),
                                                ("nobody", PASSWORD)], ids=["bad-pw", "no-user"])
async def test_bad_login_is_401_json(world: World, user: str, password: str) -> None:
    async with world.client() as c:
        r = await c.post("/auth/token", data={"username": user, "password": password})
    assert r.status_code == 401
    assert r.json() == {"detail": "wrong user name or password"}


async def test_no_or_bad_or_expired_token_is_401(world: World) -> None:
    expired = jwt.encode({"sub": str(world.ids["admin"]), "typ": "access",
                          "exp": datetime.now(UTC) - timedelta(minutes=1)},
                         "test-secret-key-0123456789abcdef", algorithm="HS256")
    forged = jwt.encode({"sub": str(world.ids["admin"]), "typ": "access",
                         "exp": datetime.now(UTC) + timedelta(minutes=5)},
                        "not-the-key-but-just-as-long-0123456", algorithm="HS256")
    async with world.client() as c:
        assert (await c.get("/sites")).status_code == 401
        for token in (expired, forged, "garbage"):
            r = await c.get("/sites", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 401, token
            assert r.headers["www-authenticate"] == "Bearer"


async def test_disabled_user_loses_access(world: World) -> None:
    async with world.client("admin") as admin:
        r = await admin.patch(f"/users/{world.ids['operator']}", json={"active": False})
        assert r.status_code == 200
    async with world.client("operator") as c:
        assert (await c.get("/sites")).status_code == 401


async def test_api_key_for_integration(world: World) -> None:
    async with world.client("admin") as admin:
        r = await admin.post("/auth/api-keys", json={"user_id": world.ids["integration"],
                                                     "name": "dispatch"})
        assert r.status_code == 201
        key, key_id = r.json()["key"], r.json()["id"]
        listed = (await admin.get("/auth/api-keys")).json()
        assert all(k["key"] is None for k in listed)  # shown once only
    async with world.client() as c:
        ok = await c.get("/sites", headers={"X-API-Key": key})
        assert ok.status_code == 200
        assert (await c.post("/sites", json={"id": "x", "name": "x"},
                             headers={"X-API-Key": key})).status_code == 403
        assert (await c.get("/sites", headers={"X-API-Key": key[:-2] + "xx"})).status_code == 401
    async with world.client("admin") as admin:
        assert (await admin.delete(f"/auth/api-keys/{key_id}")).status_code == 204
    async with world.client() as c:
        assert (await c.get("/sites", headers={"X-API-Key": key})).status_code == 401


async def test_scoped_roles_need_sites(world: World) -> None:
    async with world.client("admin") as admin:
        r = await admin.post("/users", json={"name": "i2", "role": "installer",
                                             "password": PASSWORD})
        assert r.status_code == 422
        assert "site" in r.json()["detail"]
        r = await admin.post("/users", json={"name": "i2", "role": "installer",
                                             "password": PASSWORD, "site_ids": ["s2"]})
        assert r.status_code == 201
        assert (await admin.post("/users", json={"name": "i2", "role": "operator",
                                                 "password": PASSWORD})).status_code == 409


def _cli(db_url: str, *argv: str, stdin: str) -> subprocess.CompletedProcess[str]:
    env = {"FIRETOWER_DATABASE_URL": db_url, "FIRETOWER_ENV": "development", "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "firetower", "user", *argv], input=stdin,
                          capture_output=True, text=True, env=env, timeout=60)


async def test_user_add_command(world: World, clean_db) -> None:  # type: ignore[no-untyped-def]
    done = _cli(clean_db.url, "add", "chief", "--role", "admin", stdin="s3cret-enough\n")
    assert done.returncode == 0, done.stderr
    assert "s3cret" not in done.stdout + done.stderr
    async with world.client() as c:
        r = await c.post("/auth/token", data={"username": "chief", "password": "s3cret-enough"})
        assert r.status_code == 200
    refused = _cli(clean_db.url, "add", "fitter", "--role", "installer", stdin="s3cret-enough\n")
    assert refused.returncode == 2 and "site" in refused.stderr
    scoped = _cli(clean_db.url, "add", "fitter", "--role", "installer", "--site", "s2",
                  stdin="s3cret-enough\n")
    assert scoped.returncode == 0, scoped.stderr


async def test_refresh_renews_a_valid_token_only(world: World) -> None:
    secret = "test-secret-key-0123456789abcdef"
    async with world.client("operator") as c:
        r = await c.post("/auth/refresh")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["token_type"] == "bearer" and body["expires_in"] == 30 * 60
        claims = jwt.decode(body["access_token"], secret, algorithms=["HS256"])
        assert claims["sub"] == str(world.ids["operator"]) and claims["typ"] == "access"
        me = await c.get("/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
        assert me.json()["name"] == "operator"
    expired = jwt.encode({"sub": str(world.ids["operator"]), "typ": "access",
                          "exp": datetime.now(UTC) - timedelta(seconds=1)},
                         secret, algorithm="HS256")
    async with world.client() as c:
        assert (await c.post("/auth/refresh")).status_code == 401
        for token in (expired, "garbage"):
            r = await c.post("/auth/refresh", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 401, token
    async with world.client("admin") as admin:
        key = (await admin.post("/auth/api-keys", json={"user_id": world.ids["integration"],
                                                        "name": "x"})).json()["key"]
        assert (await admin.patch(f"/users/{world.ids['operator']}",
                                  json={"active": False})).status_code == 200
    async with world.client() as c:  # an API key is not exchanged for a token
        r = await c.post("/auth/refresh", headers={"X-API-Key": key})
        assert r.status_code == 401 and "bearer" in r.json()["detail"]
    async with world.client("operator") as c:  # a disabled user cannot renew
        assert (await c.post("/auth/refresh")).status_code == 401


async def test_the_organisation_scope_changes_as_a_pair(world: World) -> None:
    """scope_kind and scope_id go together: one of them null alone clears both; an
    organisation that does not exist is 404, like any body naming what is not there."""
    async with world.client("admin") as admin:
        r = await admin.post("/jurisdictions", json={"code": "350100", "name": "Fuzhou",
                                                     "level": "city"})
        assert r.status_code == 201, r.text
        node = r.json()["id"]
        uid = world.ids["operator"]
        r = await admin.patch(f"/users/{uid}", json={"scope_kind": "jurisdiction",
                                                            "scope_id": node})
        assert r.status_code == 200 and (r.json()["scope_kind"], r.json()["scope_id"]) == (
            "jurisdiction", node), r.text
        r = await admin.patch(f"/users/{uid}", json={"scope_kind": None})
        assert r.status_code == 200 and (r.json()["scope_kind"], r.json()["scope_id"]) == (
            None, None), r.text
        r = await admin.patch(f"/users/{uid}", json={"scope_kind": "unit", "scope_id": 10**9})
        assert r.status_code == 404 and "does not exist" in r.json()["detail"]
        r = await admin.patch(f"/users/{uid}", json={"scope_id": node})
        assert r.status_code == 422  # the document says so too: no kind
