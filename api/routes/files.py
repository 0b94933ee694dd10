"""`/files`: photos and PDFs of hazards, work orders, patrols and public reports
(docs/hazards-files-and-reports.md). Uploads need `file:upload` and are checked by content
(hazards/files.py); a file is read by whoever sees what it documents:
- a file of a site: whoever sees the site;
- a public report's photo: whoever may read that report (api/routes/public.py);
- any other file without a site: unscoped users;
- and always the user who uploaded it.
Anyone else gets 404, as for a file that does not exist.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

import asyncpg
from fastapi import APIRouter, File, Form, Path, Request, UploadFile, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from starlette.datastructures import UploadFile as AnyUpload

from api.config import ApiSettings
from api.deps import ApiSettingsDep, CurrentUser, PoolDep, Principal, require
from api.errors import ApiError, NotFound, PayloadTooLarge, Unprocessable, responses
from api.permissions import Permission
from firetower.localpg import var_dir
from hazards import file_records, report_store
from hazards.files import (
    ACCEPTED_TYPES,
    IMAGE_TYPES,
    CheckedFile,
    FileRefused,
    FileTooLarge,
    Limits,
    LocalStorage,
    S3Config,
    S3Storage,
    Storage,
    StorageError,
    check_async,
)
from hazards.reports import IntakeLimits, IntakeThrottle

router = APIRouter(tags=["files"])
Uploader = Annotated[Principal, require(Permission.FILE_UPLOAD)]
FileId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{22}$")]
SiteId = Annotated[str | None, Form(pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                                    description="the site the file documents (in scope)")]
RETRY_AFTER_S = 5


class StorageUnavailable(ApiError, status=503):
    def __init__(self) -> None:
        super().__init__("file storage unavailable; try again shortly",
                         {"Retry-After": str(RETRY_AFTER_S)})


class FilePublic(BaseModel):
    """A stored file: its true type (by content), size, SHA-256 and where to read it."""
    id: str
    content_type: str
    size: int
    sha256: str
    original_name: str
    site_id: str | None
    uploaded_by: str
    created_at: datetime
    url: str


def file_public(rec: file_records.FileRecord) -> FilePublic:
    return FilePublic(id=rec.id, content_type=rec.content_type, size=rec.size,
                      sha256=rec.sha256, original_name=rec.original_name, site_id=rec.site_id,
                      uploaded_by=rec.uploaded_by, created_at=rec.created_at,
                      url=f"/api/v1/files/{rec.id}")


def actor_name(user: Principal) -> str:
    """The caller as the hazard logs name it."""
    return f"user:{user.name}"


# -- what this router shares with public.py: built once per application, on first use -------

def build_storage(settings: ApiSettings) -> Storage:
    if settings.files_backend == "s3":
        return S3Storage(S3Config(bucket=settings.files_s3_bucket,
                                  endpoint_url=settings.files_s3_endpoint,
                                  region=settings.files_s3_region,
                                  prefix=settings.files_s3_prefix))
    return LocalStorage(settings.files_dir or var_dir() / "files")


def storage(request: Request) -> Storage:
    """The application's file storage (one S3 client per application, not per request)."""
    app_state = request.app.state
    found: Storage | None = getattr(app_state, "file_storage", None)
    if found is None:
        found = build_storage(request.state.api_settings)
        app_state.file_storage = found
    return found


def intake_throttle(request: Request) -> IntakeThrottle:
    """The public intake's flood control, in this API process's memory."""
    app_state = request.app.state
    found: IntakeThrottle | None = getattr(app_state, "intake_throttle", None)
    if found is None:
        s: ApiSettings = request.state.api_settings
        found = IntakeThrottle(IntakeLimits(
            per_address_per_hour=s.public_reports_per_address_hour,
            address_burst=s.public_report_burst, per_minute=s.public_reports_per_minute,
            status_per_minute=s.public_status_per_minute,
            max_addresses=s.public_throttle_addresses), time.monotonic)
        app_state.intake_throttle = found
    return found


def report_visibility(user: Principal) -> report_store.Visibility:
    node = user.scope.id if user.scope.kind == "jurisdiction" else None
    return report_store.Visibility(user.site_ids, node)


async def checked_upload(data: bytes, declared: str | None, name: str | None,
                         limits: Limits) -> CheckedFile:
    """The checked file, or the API's refusal: 413 beyond the limit, 422 for anything that
    is not what it claims or not an accepted type."""
    try:
        return await check_async(data, declared_type=declared, name=name, limits=limits)
    except FileTooLarge as exc:
        raise PayloadTooLarge(str(exc)) from None
    except FileRefused as exc:
        raise Unprocessable(str(exc)) from None


async def read_upload(upload: AnyUpload, max_bytes: int) -> bytes:
    data = await upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"file larger than {max_bytes} bytes")
    return data


async def save_checked(conn: file_records.Reader, store: Storage, checked: CheckedFile,
                       uploaded_by: str, site_id: str | None = None) -> file_records.FileRecord:
    try:
        return await file_records.save(conn, store, checked, uploaded_by=uploaded_by,
                                       site_id=site_id)
    except StorageError:
        raise StorageUnavailable() from None


# -- routes --------------------------------------------------------------------------------

@router.post("/files", response_model=FilePublic, status_code=status.HTTP_201_CREATED,
             responses=responses(413, 422))
async def upload_file(user: Uploader, request: Request, pool: PoolDep,
                      api_settings: ApiSettingsDep,
                      file: Annotated[UploadFile, File(description="JPEG, PNG, WebP or PDF")],
                      site_id: SiteId = None) -> FilePublic:
    """Store a photo or PDF. Its type is read from its content: a name or a declared type
    that says otherwise is refused (422), as is anything but JPEG, PNG, WebP and PDF; larger
    than FIRETOWER_FILES_MAX_BYTES (10 MiB): 413. `site_id`, if given, must be one of the
    caller's sites (else 404)."""
    if site_id is not None:
        if not user.sees(site_id) or not await pool.fetchval(
                "SELECT 1 FROM sites WHERE id = $1", site_id):
            raise NotFound("site not found")
    data = await read_upload(file, api_settings.files_max_bytes)
    checked = await checked_upload(
        data, file.content_type, file.filename,
        Limits(api_settings.files_max_bytes, api_settings.files_max_pixels))
    rec = await save_checked(pool, storage(request), checked, actor_name(user), site_id)
    return file_public(rec)


async def may_read(pool: asyncpg.Pool, user: Principal, rec: file_records.FileRecord) -> bool:
    if rec.uploaded_by == actor_name(user):
        return True
    if rec.site_id is not None:
        return user.sees(rec.site_id)
    reports = await report_store.photo_reports(pool, rec.id)
    if reports:
        visibility = report_visibility(user)
        return user.can(Permission.HAZARD_READ) and any(
            [await report_store.sees(pool, visibility, j, s) for j, s in reports])
    return user.site_ids is None


def _attachment(name: str, file_id: str) -> str:
    """A PDF is saved, never opened in the console's origin; its name survives (RFC 6266)."""
    shown = name or f"{file_id}.pdf"
    ascii_name = "".join(c if c.isascii() and c.isprintable() and c not in '"\\' else "_"
                         for c in shown)
    return (f'attachment; filename="{ascii_name}"; '
            f"filename*=UTF-8''{urllib.parse.quote(shown, safe='')}")


@router.get("/files/{file_id}", response_class=StreamingResponse, responses={
    200: {"content": {t: {"schema": {"type": "string", "format": "binary"}}
                      for t in sorted(ACCEPTED_TYPES)},
          "description": "the content, with the type its content was checked to be"}})
async def get_file(file_id: FileId, user: CurrentUser, request: Request,
                   pool: PoolDep) -> StreamingResponse:
    """The file's content (images inline, PDFs as attachments), never sniffed by the
    browser (`X-Content-Type-Options: nosniff`); 404 outside what the caller sees."""
    rec = await file_records.get(pool, file_id)
    if rec is None or not await may_read(pool, user, rec):
        raise NotFound("file not found")
    chunks = storage(request).read(rec.storage_key)
    try:
        first = await anext(chunks, b"")
    except StorageError:
        raise StorageUnavailable() from None

    async def body() -> AsyncIterator[bytes]:
        yield first
        async for chunk in chunks:
            yield chunk

    headers = {"Content-Length": str(rec.size), "X-Content-Type-Options": "nosniff",
               "Content-Security-Policy": "default-src 'none'; sandbox",
               "Cache-Control": "private, max-age=3600"}
    if rec.content_type not in IMAGE_TYPES:
        headers["Content-Disposition"] = _attachment(rec.original_name, rec.id)
    return StreamingResponse(body(), media_type=rec.content_type, headers=headers)

