"""`/files` against the real API and database: uploads checked by content (a forged or renamed
type, a text file as an image, an oversize file: 4xx, nothing stored), scope (another site's
file, or another user's file without a site, answers 404 to a scoped user), the answer's
headers, and the S3 backend through the API (moto's S3 server on a free loopback port)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from api.config import ApiSettings
from firetower import db
from firetower.broker import free_port
from tests.api.conftest import World, api_settings_for, seed
from tests.api.server import running_api
from tests.conftest import Database
from tests.hazards.test_files import PDF_DOC, image

pytestmark = pytest.mark.integration
MAX = 200 * 1024


@pytest.fixture
async def world(clean_db: Database, tmp_path: Path) -> AsyncIterator[World]:
    limits = ApiSettings(files_dir=tmp_path / "files", files_max_bytes=MAX)
    with running_api(api_settings_for(clean_db.url), limits) as server:
        yield await seed(clean_db.url, server.url)


async def _upload(c: httpx.AsyncClient, data: bytes, name: str, ctype: str,
                  site_id: str | None = None) -> httpx.Response:
    return await c.post("/files", files={"file": (name, data, ctype)},
                        data={"site_id": site_id} if site_id else None)


async def _count(world: World) -> int:
    conn = await db.connect(world.db_url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM files"))
    finally:
        await conn.close()


async def test_upload_and_read_back(world: World, tmp_path: Path) -> None:
    png = image("PNG", seed=5)
    async with world.client("installer") as c:
        r = await _upload(c, png, "出口.png", "image/png", "s1")
        assert r.status_code == 201, r.text
        body = r.json()
        assert (body["content_type"], body["size"], body["site_id"], body["uploaded_by"],
                body["original_name"]) == ("image/png", len(png), "s1", "user:installer",
                                           "出口.png")
        got = await c.get(body["url"].removeprefix("/api/v1"))
        assert got.status_code == 200 and got.content == png
        assert got.headers["content-type"] == "image/png"
        assert got.headers["x-content-type-options"] == "nosniff"
        assert "content-disposition" not in got.headers  # an image is shown, not saved
        r = await _upload(c, PDF_DOC, "整改通知.pdf", "application/pdf", "s1")
        assert r.status_code == 201, r.text
        got = await c.get(f"/files/{r.json()['id']}")
        assert got.headers["content-type"] == "application/pdf"
        assert got.headers["content-disposition"].startswith('attachment; filename="')
        assert "filename*=UTF-8''%E6%95%B4" in got.headers["content-disposition"]
    # the same content twice: two records, one stored object
    async with world.client("admin") as c:
        assert (await _upload(c, png, "again.png", "image/png")).status_code == 201
    assert len([p for p in (tmp_path / "files").rglob("*") if p.is_file()]) == 2
    assert await _count(world) == 3


@pytest.mark.parametrize(("data", "name", "ctype", "why"), [
    (image("PNG"), "photo.jpg", "image/jpeg", "declared as image/jpeg"),  # a renamed PNG
    (image("PNG"), "photo.jpg", "application/octet-stream", "named .jpg"),
    (b"just some text, not a picture\n" * 10, "a.png", "image/png", "not a JPEG"),
    (b"<html><script>alert(1)</script></html>", "a.html", "text/html", "not a JPEG"),
    (image("JPEG", (300, 300))[:2000], "cut.jpg", "image/jpeg", "damaged"),
])
async def test_forged_or_wrong_types_are_refused(world: World, data: bytes, name: str,
                                                 ctype: str, why: str) -> None:
    async with world.client("admin") as c:
        r = await _upload(c, data, name, ctype, "s1")
    assert r.status_code == 422, r.text
    assert why in r.json()["detail"]
    assert await _count(world) == 0


async def test_oversize_uploads_get_413(world: World) -> None:
    async with world.client("admin") as c:
        r = await _upload(c, b"\x89PNG\r\n\x1a\n" + b"\x00" * MAX, "big.png", "image/png")
        assert r.status_code == 413, r.text
        assert "larger than" in r.json()["detail"]
        # beyond the body limit: refused before the body is read
        r = await _upload(c, b"\x00" * (MAX + 100 * 1024), "bigger.png", "image/png")
        assert r.status_code == 413, r.text
    assert await _count(world) == 0


async def test_scope_of_files(world: World) -> None:
    async with world.client("admin") as admin:
        other_site = (await _upload(admin, image("PNG", seed=1), "a.png", "image/png",
                                    "s2")).json()["id"]
        no_site = (await _upload(admin, image("PNG", seed=2), "b.png", "image/png")).json()["id"]
        own_site = (await _upload(admin, image("PNG", seed=3), "c.png", "image/png",
                                  "s1")).json()["id"]
    async with world.client("installer") as c:
        missing = await c.get("/files/AAAAAAAAAAAAAAAAAAAAAA")
        for fid in (other_site, no_site):
            r = await c.get(f"/files/{fid}")
            assert r.status_code == 404, (fid, r.text)
            assert r.json() == missing.json()  # the same answer as a file that is not there
        assert (await c.get(f"/files/{own_site}")).status_code == 200
        # a scoped user cannot tie a file to a site it does not see, nor to no site at all
        # and read someone else's; its own site-less upload it reads
        r = await _upload(c, image("PNG", seed=4), "d.png", "image/png", "s2")
        assert r.status_code == 404, r.text
        mine = (await _upload(c, image("PNG", seed=6), "e.png", "image/png")).json()["id"]
        assert (await c.get(f"/files/{mine}")).status_code == 200
    async with world.client("manager") as c:  # same site, another scoped user
        assert (await c.get(f"/files/{own_site}")).status_code == 200
        assert (await c.get(f"/files/{mine}")).status_code == 404
    async with world.client("operator") as c:  # unscoped: every site, and files of none
        for fid in (other_site, no_site, own_site, mine):
            assert (await c.get(f"/files/{fid}")).status_code == 200
    async with world.client("integration") as c:
        r = await _upload(c, image("PNG"), "x.png", "image/png")
        assert r.status_code == 403 and r.json()["detail"].startswith("role integration may not")
    async with world.client() as anonymous:
        assert (await anonymous.get(f"/files/{own_site}")).status_code == 401
        assert (await _upload(anonymous, image("PNG"), "x.png", "image/png")).status_code == 401


@pytest.fixture
def moto_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "firetower-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "firetower-test-secret")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


async def test_the_s3_backend_through_the_api(clean_db: Database, moto_s3: str) -> None:
    import uuid

    import boto3

    # moto keeps its buckets per process: a bucket of this test's own
    bucket = f"firetower-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1").create_bucket(
        Bucket=bucket)
    s3 = ApiSettings(files_backend="s3", files_s3_endpoint=moto_s3,
                     files_s3_bucket=bucket, files_s3_prefix="t/")
    with running_api(api_settings_for(clean_db.url), s3) as server:
        world = await seed(clean_db.url, server.url)
        jpeg = image("JPEG", (120, 90), seed=9)
        async with world.client("operator") as c:
            r = await _upload(c, jpeg, "scene.jpeg", "image/jpeg", "s2")
            assert r.status_code == 201, r.text
            got = await c.get(f"/files/{r.json()['id']}")
            assert got.status_code == 200 and got.content == jpeg
    listed = boto3.client("s3", endpoint_url=moto_s3, region_name="us-east-1").list_objects_v2(
        Bucket=bucket)
    sha = r.json()["sha256"]
    assert [o["Key"] for o in listed["Contents"]] == [f"t/{sha[:2]}/{sha}"]
