"""Files (photos, PDFs) of hazards, work orders, patrols and public reports: what is accepted,
and where the bytes go (docs/hazards-files-and-reports.md).

Accepted: JPEG, PNG and WebP photos, and PDF documents. The type is decided by the content,
never by the file name or the declared content type:
- an image must open with Pillow as the format its first bytes name, pass `verify()`, stay
  within `Limits.max_pixels` and decode completely (a JPEG at 1/8 scale, which still reads the
  whole compressed stream);
- a PDF must start with a `%PDF-1.x`/`%PDF-2.0` header and end with `startxref` and `%%EOF`
  (its contents are not sanitised: it is served as an attachment, never inline).
A name or a declared type that names another type than the content is refused (a PNG called
`photo.jpg`, a text file declared `image/png`): `FileRefused`. Empty or unnamed declarations
(`application/octet-stream`, no extension) defer to the content.

Storage is one interface, `Storage` (put, exists, read in chunks), with two backends:
`LocalStorage` (a folder; the default) and `S3Storage` (any S3-compatible service: MinIO, S3,
through boto3). Objects are keyed by their SHA-256, so the same content is stored once.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import re
import secrets
import tempfile
import unicodedata
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from PIL import Image, UnidentifiedImageError

if TYPE_CHECKING:
    from types_boto3_s3.client import S3Client

JPEG, PNG, WEBP, PDF = "image/jpeg", "image/png", "image/webp", "application/pdf"
IMAGE_TYPES = frozenset({JPEG, PNG, WEBP})
ACCEPTED_TYPES = frozenset(IMAGE_TYPES | {PDF})
# the file-name extensions each type may carry
EXTENSIONS: dict[str, frozenset[str]] = {
    JPEG: frozenset({".jpg", ".jpeg", ".jfif"}), PNG: frozenset({".png"}),
    WEBP: frozenset({".webp"}), PDF: frozenset({".pdf"})}
_PIL_FORMAT = {JPEG: "JPEG", PNG: "PNG", WEBP: "WEBP"}
# declarations that say nothing about the type: the content decides
UNDECLARED = frozenset({"", "application/octet-stream", "binary/octet-stream"})
MAX_NAME = 200                 # characters of an original file name kept
CHUNK = 64 * 1024              # bytes read at a time when a file is streamed
_PDF_TAIL = 2048               # where `startxref` and `%%EOF` must be, from the end
_KEY_RE = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{64}$")
FILE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{22}$")


class FileRefused(ValueError):
    """The upload is not an accepted file (wrong type, forged type, damaged, too many pixels)."""


class FileTooLarge(FileRefused):
    """More bytes than the limit (an HTTP 413)."""


@dataclass(frozen=True, slots=True)
class Limits:
    max_bytes: int = 10 * 1024 * 1024   # one file
    max_pixels: int = 40_000_000        # one image, width x height (decoding needs ~3 B each)


@dataclass(frozen=True, slots=True)
class CheckedFile:
    """Content that passed the checks, with its true type."""
    data: bytes
    content_type: str
    sha256: str
    original_name: str

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def storage_key(self) -> str:
        return storage_key(self.sha256)


def storage_key(sha256: str) -> str:
    return f"{sha256[:2]}/{sha256}"


def new_file_id() -> str:
    """22 URL-safe characters, 128 random bits: not guessable, not sequential."""
    return secrets.token_urlsafe(16)


def sniff(data: bytes) -> str | None:
    """The accepted type the first bytes announce, if any (not yet proof: see `check`)."""
    if data[:3] == b"\xff\xd8\xff":
        return JPEG
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return PNG
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return WEBP
    if data[:5] == b"%PDF-":
        return PDF
    return None


def clean_name(name: str | None) -> str:
    """The original name as shown back: its last path part, no control characters, at most
    MAX_NAME characters."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = "".join(c for c in unicodedata.normalize("NFC", base)
                   if unicodedata.category(c)[0] != "C").strip()
    return base[:MAX_NAME]


def _declared(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def check(data: bytes, *, declared_type: str | None = None, name: str | None = None,
          limits: Limits = Limits()) -> CheckedFile:
    """The file if its content is an accepted type that agrees with its name and declared
    type; else FileRefused (FileTooLarge beyond `limits.max_bytes`). CPU-bound: call it in a
    worker thread (`check_async`)."""
    if len(data) > limits.max_bytes:
        raise FileTooLarge(f"file larger than {limits.max_bytes} bytes")
    if not data:
        raise FileRefused("empty file")
    kind = sniff(data)
    if kind is None:
        raise FileRefused("not a JPEG, PNG, WebP image or PDF document (by its content)")
    declared = _declared(declared_type)
    if declared not in UNDECLARED and declared != kind and not (
            declared == "image/jpg" and kind == JPEG):
        raise FileRefused(f"declared as {declared[:100]} but the content is {kind}")
    shown = clean_name(name)
    ext = os.path.splitext(shown)[1].lower()
    if ext and ext not in EXTENSIONS[kind]:
        raise FileRefused(f"named {ext[:20]} but the content is {kind}")
    if kind == PDF:
        _check_pdf(data)
    else:
        _check_image(data, kind, limits)
    return CheckedFile(data, kind, hashlib.sha256(data).hexdigest(), shown)


async def check_async(data: bytes, *, declared_type: str | None = None,
                      name: str | None = None, limits: Limits = Limits()) -> CheckedFile:
    return await asyncio.to_thread(check, data, declared_type=declared_type, name=name,
                                   limits=limits)


def _check_pdf(data: bytes) -> None:
    if not re.match(rb"%PDF-(1\.[0-7]|2\.0)\s", data[:16]):
        raise FileRefused("not a PDF document: bad header")
    tail = data[-_PDF_TAIL:]
    if b"%%EOF" not in tail or b"startxref" not in tail:
        raise FileRefused("not a complete PDF document: no trailer (startxref, %%EOF)")


def _check_image(data: bytes, kind: str, limits: Limits) -> None:
    with warnings.catch_warnings():
        # our own pixel bound applies before Pillow's decompression-bomb warning would
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(io.BytesIO(data), formats=[_PIL_FORMAT[kind]]) as probe:
                width, height = probe.size
                if width * height > limits.max_pixels:
                    raise FileRefused(f"image of {width}x{height} pixels: more than "
                                      f"{limits.max_pixels}")
                probe.verify()
            with Image.open(io.BytesIO(data), formats=[_PIL_FORMAT[kind]]) as image:
                if kind == JPEG:
                    image.draft("RGB", (max(1, width // 8), max(1, height // 8)))
                image.load()
        except FileRefused:
            raise
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
                Image.DecompressionBombError, EOFError) as exc:
            raise FileRefused(f"damaged or not a {kind} image: {str(exc)[:200]}") from None


# -- storage -------------------------------------------------------------------------------

class StorageError(OSError):
    """The storage backend failed (not the caller's fault)."""


class Storage(Protocol):
    """Where file contents live, by key (`storage_key`). Writes are whole and atomic: a
    reader sees all of an object or none of it."""

    async def put(self, key: str, data: bytes, content_type: str) -> None: ...

    async def exists(self, key: str) -> bool: ...

    def read(self, key: str) -> AsyncIterator[bytes]: ...


def _checked_key(key: str) -> str:
    if not _KEY_RE.match(key):
        raise ValueError(f"not a storage key: {key[:80]!r}")
    return key


class LocalStorage:
    """A folder on the API's disk: `<root>/<2 hex>/<sha256>`, written to a temporary file,
    flushed to disk and renamed into place."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / _checked_key(key)

    def _put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        try:
            await asyncio.to_thread(self._put, key, data)
        except OSError as exc:
            raise StorageError(f"cannot store file: {exc}") from exc

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self._path(key).is_file)

    async def read(self, key: str) -> AsyncIterator[bytes]:
        path = self._path(key)
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except OSError as exc:
            raise StorageError(f"cannot read file: {exc}") from exc
        try:
            while chunk := await asyncio.to_thread(handle.read, CHUNK):
                yield chunk
        finally:
            handle.close()


@dataclass(frozen=True, slots=True)
class S3Config:
    bucket: str
    endpoint_url: str | None = None     # None: AWS itself; MinIO: http(s)://host:9000
    region: str = "us-east-1"
    prefix: str = ""                    # keys are stored as <prefix><key>
    # Credentials: boto3's own chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, a profile,
    # an instance role); they are never part of Firetower's settings.
    path_style: bool = True             # MinIO and most S3-compatible services want it


class S3Storage:
    """An S3-compatible bucket (MinIO, Ceph RGW, AWS S3), through boto3 in worker threads.
    The bucket must exist; `ensure_bucket` creates it (deployments usually do that
    themselves)."""

    def __init__(self, config: S3Config, client: S3Client | None = None) -> None:
        self.config = config
        self._client = client

    @property
    def client(self) -> S3Client:
        if self._client is None:
            import boto3
            from botocore.config import Config

            self._client = boto3.client(
                "s3", endpoint_url=self.config.endpoint_url, region_name=self.config.region,
                config=Config(s3={"addressing_style": "path" if self.config.path_style
                                  else "auto"},
                              retries={"max_attempts": 3, "mode": "standard"},
                              connect_timeout=5, read_timeout=30))
        return self._client

    def _name(self, key: str) -> str:
        return self.config.prefix + _checked_key(key)

    async def ensure_bucket(self) -> None:
        from botocore.exceptions import ClientError

        try:
            await asyncio.to_thread(self.client.head_bucket, Bucket=self.config.bucket)
        except ClientError:
            await asyncio.to_thread(self.client.create_bucket, Bucket=self.config.bucket)

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            await asyncio.to_thread(self.client.put_object, Bucket=self.config.bucket,
                                    Key=self._name(key), Body=data, ContentType=content_type)
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"cannot store file in S3: {exc}") from exc

    async def exists(self, key: str) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            await asyncio.to_thread(self.client.head_object, Bucket=self.config.bucket,
                                    Key=self._name(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise StorageError(f"cannot reach S3: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(f"cannot reach S3: {exc}") from exc
        return True

    async def read(self, key: str) -> AsyncIterator[bytes]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            answer: Any = await asyncio.to_thread(self.client.get_object,
                                                  Bucket=self.config.bucket,
                                                  Key=self._name(key))
        except (BotoCoreError, ClientError) as exc:
            raise StorageError(f"cannot read file from S3: {exc}") from exc
        body = answer["Body"]
        chunks: Iterator[bytes] = body.iter_chunks(CHUNK)
        try:
            while chunk := await asyncio.to_thread(next, chunks, b""):
                yield chunk
        finally:
            body.close()


async def store(storage: Storage, checked: CheckedFile) -> str:
    """Put the content under its key unless the same content is already there; the key."""
    key = checked.storage_key
    if not await storage.exists(key):
        await storage.put(key, checked.data, checked.content_type)
    return key
