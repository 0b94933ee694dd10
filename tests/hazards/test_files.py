"""hazards/files.py: what is accepted (by content, never by name or declared type), and both
storage backends: the local folder, and S3 through boto3 against a real S3 HTTP endpoint
(moto's standalone server on a free loopback port: no MinIO server can be installed here)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import random
import struct
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from firetower.broker import free_port
from hazards.files import (
    JPEG,
    PDF,
    PNG,
    WEBP,
    FileRefused,
    FileTooLarge,
    Limits,
    LocalStorage,
    S3Config,
    S3Storage,
    check,
    clean_name,
    new_file_id,
    sniff,
    storage_key,
    store,
)


def image(fmt: str, size: tuple[int, int] = (64, 48), seed: int = 1) -> bytes:
    rng = random.Random(seed)
    img = Image.new("RGB", size)
    img.putdata([(rng.randrange(256), rng.randrange(256), rng.randrange(256))
                 for _ in range(size[0] * size[1])])
    out = io.BytesIO()
    img.save(out, format=fmt)
    return out.getvalue()


PDF_DOC = (b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
           b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
           b"xref\n0 3\n0000000000 65535 f \ntrailer << /Root 1 0 R /Size 3 >>\n"
           b"startxref\n9\n%%EOF\n")


@pytest.mark.parametrize(("fmt", "kind", "name"), [
    ("JPEG", JPEG, "exit.jpg"), ("PNG", PNG, "exit.PNG"), ("WEBP", WEBP, "exit.webp")])
def test_images_are_accepted_by_content(fmt: str, kind: str, name: str) -> None:
    data = image(fmt)
    for declared, given in ((kind, name), (None, None), ("application/octet-stream", "x")):
        got = check(data, declared_type=declared, name=given)
        assert got.content_type == kind
        assert got.sha256 == hashlib.sha256(data).hexdigest()
        assert got.storage_key == f"{got.sha256[:2]}/{got.sha256}"


def test_a_pdf_is_accepted_by_its_structure() -> None:
    got = check(PDF_DOC, declared_type="application/pdf", name="notice.pdf")
    assert (got.content_type, got.original_name) == (PDF, "notice.pdf")
    for broken in (PDF_DOC.replace(b"%%EOF", b"%%END"), b"%PDF-9.9\n" + PDF_DOC[9:],
                   PDF_DOC.replace(b"startxref", b"xxxxxxxxx")):
        with pytest.raises(FileRefused):
            check(broken)


@pytest.mark.parametrize(("data", "declared", "name", "why"), [
    (image("PNG"), "image/jpeg", "photo.jpg", "declared as image/jpeg"),   # forged type
    (image("PNG"), None, "photo.jpg", "named .jpg"),                       # renamed
    (image("PNG"), "image/png", "photo.jpg", "named .jpg"),
    (b"hello, this is text\n" * 20, "image/png", "x.png", "not a JPEG"),    # text as an image
    (b"<svg xmlns='http://www.w3.org/2000/svg'><script>x</script></svg>", "image/svg+xml",
     "a.svg", "not a JPEG"),
    (b"GIF89a" + b"\x00" * 100, "image/gif", "a.gif", "not a JPEG"),
    (image("JPEG"), "application/pdf", "a.pdf", "declared as application/pdf"),
    (b"", None, None, "empty"),
])
def test_forged_renamed_and_unaccepted_files_are_refused(data: bytes, declared: str | None,
                                                         name: str | None, why: str) -> None:
    with pytest.raises(FileRefused, match=why):
        check(data, declared_type=declared, name=name)


def test_a_file_that_only_starts_like_an_image_is_refused() -> None:
    png, jpeg = image("PNG", (200, 200)), image("JPEG", (200, 200))
    for data in (png[:len(png) // 2], jpeg[:len(jpeg) // 2],
                 b"\x89PNG\r\n\x1a\n" + b"\x00" * 200, b"\xff\xd8\xff" + b"junk" * 50,
                 b"RIFF\x00\x00\x00\x00WEBPVP8 " + b"\x00" * 40):
        with pytest.raises(FileRefused, match="damaged or not"):
            check(data)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a size and holds almost no pixels (a decompression bomb's shape)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def test_too_many_pixels_are_refused_before_decoding() -> None:
    with pytest.raises(FileRefused, match="pixels"):
        check(_png_header_only(30_000, 30_000), limits=Limits(max_pixels=40_000_000))
    with pytest.raises(FileRefused, match="pixels"):
        check(image("PNG", (100, 100)), limits=Limits(max_pixels=9_999))
    assert check(image("PNG", (100, 100)), limits=Limits(max_pixels=10_000)).content_type == PNG


def test_size_limit() -> None:
    data = image("PNG", (64, 64))
    with pytest.raises(FileTooLarge):
        check(data, limits=Limits(max_bytes=len(data) - 1))
    assert check(data, limits=Limits(max_bytes=len(data))).size == len(data)


def test_names_and_ids() -> None:
    assert clean_name("C:\\Users\\me\\火警 出口.jpg") == "火警 出口.jpg"
    assert clean_name("../../etc/passwd") == "passwd"
    assert clean_name("a\x00b\nc\u202e.png") == "abc.png"
    assert len(clean_name("x" * 500)) == 200
    ids = {new_file_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(len(i) == 22 for i in ids)
    assert sniff(b"%PDF-1.7") == PDF and sniff(b"BM....") is None


async def _roundtrip(storage: LocalStorage | S3Storage) -> None:
    first = check(image("PNG", seed=2))
    key = await store(storage, first)
    assert key == storage_key(first.sha256)
    assert await storage.exists(key)
    assert b"".join([c async for c in storage.read(key)]) == first.data
    big = check(image("PNG", (400, 400), seed=3))   # more than one read chunk
    assert big.size > 64 * 1024
    await store(storage, big)
    assert b"".join([c async for c in storage.read(big.storage_key)]) == big.data
    assert not await storage.exists(storage_key("0" * 64))
    with pytest.raises(ValueError, match="not a storage key"):
        await storage.exists("../../etc/passwd")


async def test_local_storage(tmp_path: Path) -> None:
    local = LocalStorage(tmp_path / "files")
    await _roundtrip(local)
    stored = [p for p in (tmp_path / "files").rglob("*") if p.is_file()]
    assert len(stored) == 2   # no temporary file left behind
    assert all(p.parent.name == p.name[:2] for p in stored)


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real S3 HTTP endpoint: moto's standalone server, on a free loopback port."""
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


async def test_s3_storage(s3_endpoint: str) -> None:
    bucket = f"firetower-{uuid.uuid4().hex[:12]}"  # moto keeps its buckets per process
    s3 = S3Storage(S3Config(bucket=bucket, endpoint_url=s3_endpoint, prefix="city/"))
    await s3.ensure_bucket()
    await s3.ensure_bucket()  # already there: nothing happens
    await _roundtrip(s3)
    listed = await asyncio.to_thread(s3.client.list_objects_v2, Bucket=bucket)
    keys = sorted(o["Key"] for o in listed["Contents"])
    assert len(keys) == 2 and all(k.startswith("city/") for k in keys)
    head = await asyncio.to_thread(s3.client.head_object, Bucket=bucket,
                                   Key=keys[0])
    assert head["ContentType"] == PNG


async def test_s3_unreachable_is_a_storage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from hazards.files import StorageError

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    s3 = S3Storage(S3Config(bucket="b", endpoint_url=f"http://127.0.0.1:{free_port()}"))
    with pytest.raises(StorageError):
        await s3.exists(storage_key("a" * 64))
    with pytest.raises(StorageError):
        await s3.put(storage_key("a" * 64), b"x", PNG)
