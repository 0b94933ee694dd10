"""Public reports (举报): the unauthenticated intake under `/public/reports`, and triage under
`/reports` (docs/hazards-files-and-reports.md).

The intake is throttled before its body is read: per client address (a bounded table of token
buckets) and for everyone together (a cap on new reports a minute), both in this process's
memory (hazards/reports.py `IntakeThrottle`); over either, 429 with Retry-After and nothing is
stored. The address is the TCP peer (behind a reverse proxy, run uvicorn with
`--proxy-headers` and `--forwarded-allow-ips` naming the proxy, else every reporter shares
the proxy's allowance).

Who sees a report (scope): reports are matched at intake to a jurisdiction node (the node
code the reporter gave, else the node of the nearest site) and to the site within
FIRETOWER_REPORT_SITE_MATCH_M metres of the location. An unscoped user sees every report; a
scoped user sees the reports matched to one of its sites, and, when attached to a
jurisdiction node, those matched to a node of its subtree. Reading needs `hazard:read`; the
reporter's contact is shown only with `report:triage`, which every change needs too.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError, model_validator
from starlette.datastructures import UploadFile

from api.deps import ApiSettingsDep, PoolDep, Principal, SettingsDep, require
from api.errors import (
    STATUSES,
    ApiError,
    Conflict,
    ErrorBody,
    NotFound,
    PayloadTooLarge,
    TooManyRequests,
    Unprocessable,
    responses,
)
from api.permissions import Permission
from api.routes.files import (
    actor_name,
    checked_upload,
    intake_throttle,
    read_upload,
    report_visibility,
    save_checked,
    storage,
)
from api.schemas import MAX_ID, Latitude, Longitude, NotBool, Strict
from api.throttle import retry_after_s
from firetower.webhooks.secretbox import SealError, SecretBox
from hazards import file_records, report_store
from hazards.files import Limits
from hazards.model import Severity
from hazards.reports import CATEGORIES, MergeRule, Reward, normalize_tracking_code
from org.scope import visible_ids, visible_nodes

router = APIRouter(tags=["public reports"])
Reader = Annotated[Principal, require(Permission.HAZARD_READ)]
Triage = Annotated[Principal, require(Permission.REPORT_TRIAGE)]
ReportId = Annotated[int, Path(ge=1, le=MAX_ID)]

Category = Literal["blocked_exit", "fire_lane", "fire_equipment", "electrical",
                   "ebike_charging", "flammables", "other"]
assert set(get_args(Category)) == set(CATEGORIES)
Status = Literal["received", "merged", "dismissed", "converted"]
RewardStatus = Literal["none", "eligible", "granted", "refused"]
# Free text without NUL (PostgreSQL refuses it) nor other control characters but newlines
_TEXT = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f]*$"
_THROTTLED = {"description": "Too many reports from this address, or from everyone this "
                             "minute: wait Retry-After seconds",
              "model": ErrorBody, "headers": STATUSES[429][1]}


# -- bodies --------------------------------------------------------------------------------

class ReportFields(Strict):
    """What a reporter says (the JSON intake and the form share it)."""
    category: Category
    description: str = Field(min_length=1, max_length=2000, pattern=_TEXT)
    address: str = Field(default="", max_length=300, pattern=_TEXT)
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    node_code: str = Field(default="", max_length=32, pattern=r"^[A-Za-z0-9_.-]*$",
                           description="the grid or community the reporter names, if known")
    contact: str = Field(default="", max_length=200, pattern=_TEXT,
                         description="phone or e-mail; sealed at rest, shown only to triage")
    channel: Literal["web", "hotline", "api"] = "api"
    external_ref: str = Field(default="", max_length=64, pattern=r"^[A-Za-z0-9_.:/-]*$",
                              description="the hotline system's ticket number: the same "
                                          "ticket again answers its first report")

    @model_validator(mode="after")
    def _both_or_neither(self) -> ReportFields:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("latitude and longitude go together")
        if not self.description.strip():
            raise ValueError("description: say what was seen")
        return self


class ReportIn(ReportFields):
    """The JSON intake: photos as base64 (standard alphabet, padded)."""
    photos: list[str] = Field(default_factory=list, max_length=10,
                              description="each a JPEG, PNG or WebP image, base64; at most "
                                          "FIRETOWER_PUBLIC_REPORT_MAX_PHOTOS of them")


class ReportReceipt(BaseModel):
    tracking_code: str
    status: Status
    status_url: str


class ReportStatusPublic(BaseModel):
    """What a reporter learns: never a contact, a note or a name."""
    tracking_code: str
    status: Status
    outcome: Status = Field(description="the status of the report this one was merged into "
                                        "(its own status otherwise)")
    hazard_state: str | None = Field(description="the hazard's state once converted")
    category: Category
    reward_status: RewardStatus
    received_at: datetime
    updated_at: datetime


class ReportEvent(BaseModel):
    id: int
    at: datetime
    kind: str
    actor: str
    note: str
    details: dict[str, Any]


class ReportPublic(BaseModel):
    """A report as triage sees it; `contact` only for `report:triage`."""
    id: int
    tracking_code: str
    channel: str
    external_ref: str
    category: str
    description: str
    address: str
    latitude: float | None
    longitude: float | None
    node_code: str
    jurisdiction_id: int | None
    site_id: str | None
    has_contact: bool
    contact: str | None = None
    photos: list[str]
    status: Status
    merged_into: int | None
    duplicates: int
    dismiss_reason: str
    hazard_id: int | None
    reward_status: RewardStatus
    reward_amount: float | None
    reward_note: str
    received_at: datetime
    updated_at: datetime
    events: list[ReportEvent] | None = None


class ReportsPublic(BaseModel):
    data: list[ReportPublic]
    count: int


class MergeIn(Strict):
    into: Annotated[int, Field(ge=1, le=MAX_ID), NotBool]
    note: str = Field(default="", max_length=2000, pattern=_TEXT)


class DismissIn(Strict):
    reason: str = Field(min_length=1, max_length=1000, pattern=_TEXT)


class ConvertIn(Strict):
    title: str = Field(min_length=1, max_length=200, pattern=_TEXT)
    severity: Literal["general", "major"] = "general"
    site_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    unit_id: Annotated[int, Field(ge=1, le=MAX_ID), NotBool] | None = None
    jurisdiction_id: Annotated[int, Field(ge=1, le=MAX_ID), NotBool] | None = None
    deadline: datetime | None = None
    legal_basis: str = Field(default="", max_length=500, pattern=_TEXT)
    note: str = Field(default="", max_length=2000, pattern=_TEXT)


class Converted(BaseModel):
    hazard_id: int
    report: ReportPublic


class RewardIn(Strict):
    status: RewardStatus
    amount: Annotated[float, Field(gt=0, le=1_000_000), NotBool] | None = None
    note: str = Field(default="", max_length=1000, pattern=_TEXT)


# -- the intake ----------------------------------------------------------------------------

def _address(request: Request) -> str:
    return request.client.host if request.client else "-"


def _throttle(request: Request) -> None:
    refused = intake_throttle(request).report(_address(request))
    if refused is not None:
        wait, who = refused
        reason = ("too many reports from this address" if who == "address"
                  else "too many reports right now")
        raise TooManyRequests(f"{reason}; try again later", retry_after_s(wait))


def _invalid(exc: ValidationError) -> RequestValidationError:
    return RequestValidationError([{**e, "loc": ("body", *e.get("loc", ()))}
                                   for e in exc.errors(include_url=False, include_context=False)])


async def _file(request: Request, pool: PoolDep, settings: Any, fields: ReportFields,
                photos: list[tuple[bytes, str | None, str | None]],
                response: Response) -> ReportReceipt:
    """Check the photos, store them and the report in one transaction."""
    s = request.state.api_settings
    limits = Limits(s.public_report_photo_max_bytes, s.files_max_pixels)
    checked = [await checked_upload(data, declared, name, limits)
               for data, declared, name in photos]
    for c in checked:
        if c.content_type == "application/pdf":
            raise Unprocessable("photos must be JPEG, PNG or WebP images")
    rule = MergeRule(s.report_merge_radius_m, timedelta(hours=s.report_merge_hours))
    store = storage(request)
    async with pool.acquire() as conn, conn.transaction():
        ids = [(await save_checked(conn, store, c, file_records.PUBLIC)).id for c in checked]
        got = await report_store.receive(
            conn, report_store.NewReport(
                channel=fields.channel, category=fields.category,
                description=fields.description.strip(), address=fields.address.strip(),
                latitude=fields.latitude, longitude=fields.longitude,
                node_code=fields.node_code, contact=fields.contact.strip(),
                external_ref=fields.external_ref, photos=tuple(ids)),
            SecretBox.of(settings.secret_keys), rule=rule, site_match_m=s.report_site_match_m)
    if got.repeated:
        response.status_code = status.HTTP_200_OK
    return ReportReceipt(tracking_code=got.tracking_code, status=got.status.value,
                         status_url=f"/api/v1/public/reports/{got.tracking_code}")


_INTAKE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **responses(413, 422), 429: _THROTTLED,
    200: {"model": ReportReceipt, "description": "the same hotline ticket (channel, "
          "external_ref) again: its first report, nothing new stored"}}
_JSON_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": ReportIn.model_json_schema()}}}}


@router.post("/public/reports", response_model=ReportReceipt,
             status_code=status.HTTP_201_CREATED, responses=_INTAKE_RESPONSES,
             openapi_extra=_JSON_BODY)
async def file_report(request: Request, response: Response, pool: PoolDep,
                      settings: SettingsDep, api_settings: ApiSettingsDep) -> ReportReceipt:
    """File a report (no account needed): for a 12345 hotline system or any API client.
    Answers the tracking code the reporter follows it with. Photos are base64 in `photos`
    (at most FIRETOWER_PUBLIC_REPORT_MAX_PHOTOS, each at most
    FIRETOWER_PUBLIC_REPORT_PHOTO_MAX_BYTES once decoded, JPEG, PNG or WebP by content)."""
    _throttle(request)
    try:
        body = ReportIn.model_validate_json(await request.body())
    except ValidationError as exc:
        raise _invalid(exc) from None
    if len(body.photos) > api_settings.public_report_max_photos:
        raise Unprocessable(f"photos: at most {api_settings.public_report_max_photos}")
    photos: list[tuple[bytes, str | None, str | None]] = []
    max_b64 = -(-api_settings.public_report_photo_max_bytes // 3) * 4
    for i, text in enumerate(body.photos):
        if len(text) > max_b64:
            raise PayloadTooLarge(
                f"photo larger than {api_settings.public_report_photo_max_bytes} bytes")
        try:
            photos.append((base64.b64decode(text, validate=True), None, None))
        except (binascii.Error, ValueError):
            raise Unprocessable(f"photos.{i}: not base64") from None
    return await _file(request, pool, settings, body, photos, response)


_FORM_SCHEMA = ReportFields.model_json_schema()
_FORM_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {
    "schema": {**_FORM_SCHEMA, "properties": {
        **_FORM_SCHEMA["properties"],
        "photos": {"type": "array", "maxItems": 10,
                   "items": {"type": "string", "format": "binary"}}}}}}}}


@router.post("/public/reports/form", response_model=ReportReceipt,
             status_code=status.HTTP_201_CREATED, responses=_INTAKE_RESPONSES,
             openapi_extra=_FORM_BODY)
async def file_report_form(request: Request, response: Response, pool: PoolDep,
                           settings: SettingsDep, api_settings: ApiSettingsDep) -> ReportReceipt:
    """The same, as a web form posts it (multipart/form-data): the fields above, and the
    photos as files named `photos`; empty fields are left out."""
    _throttle(request)
    limit = api_settings.public_report_max_photos
    async with request.form(max_files=limit, max_fields=20, max_part_size=8 * 1024) as form:
        values: dict[str, Any] = {}
        uploads: list[UploadFile] = []
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key != "photos":
                    raise Unprocessable(f"{key[:40]}: not a file field")
                if value.filename or value.size:
                    uploads.append(value)
            elif key in values:
                raise Unprocessable(f"{key[:40]}: given more than once")
            elif value != "":
                values[key] = value
        values.setdefault("channel", "web")
        try:
            fields = ReportFields.model_validate(values)
        except ValidationError as exc:
            raise _invalid(exc) from None
        if len(uploads) > limit:
            raise Unprocessable(f"photos: at most {limit}")
        photos = [(await read_upload(u, api_settings.public_report_photo_max_bytes),
                   u.content_type, u.filename) for u in uploads]
    return await _file(request, pool, settings, fields, photos, response)


@router.get("/public/reports/{tracking_code}", response_model=ReportStatusPublic,
            responses={429: _THROTTLED})
async def report_status(tracking_code: Annotated[str, Path(max_length=40)], request: Request,
                        pool: PoolDep) -> ReportStatusPublic:
    """Where a report stands, by its tracking code (any case; dashes and spaces ignored)."""
    wait = intake_throttle(request).lookup(_address(request))
    if wait:
        raise TooManyRequests("too many look-ups from this address; try again later",
                              retry_after_s(wait))
    code = normalize_tracking_code(tracking_code)
    row = None if code is None else await report_store.public_status(pool, code)
    if row is None:
        raise NotFound("no report with this tracking code")
    return ReportStatusPublic(**row)


# -- triage --------------------------------------------------------------------------------

def _errors(exc: Exception) -> ApiError:
    if isinstance(exc, report_store.ReportNotFound):
        return NotFound(str(exc))
    if isinstance(exc, report_store.ReportConflict) or getattr(exc, "conflict", False):
        return Conflict(str(exc))
    return Unprocessable(str(exc))


def _public(row: dict[str, Any]) -> ReportPublic:
    fields = {k: v for k, v in row.items() if k in ReportPublic.model_fields}
    amount = fields.pop("reward_amount")  # numeric: a Decimal
    return ReportPublic(**fields, reward_amount=None if amount is None else float(amount))


async def _report(pool: Any, user: Principal, report_id: int, settings: Any = None,
                  *, with_events: bool = False) -> ReportPublic:
    try:
        row = await report_store.get_report(pool, report_visibility(user), report_id)
    except report_store.ReportNotFound as exc:
        raise NotFound(str(exc)) from None
    out = _public(row)
    if settings is not None and row["has_contact"] and user.can(Permission.REPORT_TRIAGE):
        try:
            out.contact = await report_store.contact(pool, SecretBox.of(settings.secret_keys),
                                                     report_id)
        except SealError:
            out.contact = None  # sealed under a key no longer known: has_contact says so
    if with_events:
        out.events = [ReportEvent(**e) for e in await report_store.events(pool, report_id)]
    return out


@router.get("/reports", response_model=ReportsPublic)
async def list_reports(user: Reader, pool: PoolDep,
                       status_: Annotated[Status | None, Query(alias="status")] = None,
                       category: Category | None = None,
                       before_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
                       limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> ReportsPublic:
    """Newest first, those the caller sees (module docstring); no contacts in a list."""
    rows = await report_store.list_reports(pool, report_visibility(user), status=status_,
                                           category=category, before_id=before_id, limit=limit)
    data = [_public(r) for r in rows]
    return ReportsPublic(data=data, count=len(data))


@router.get("/reports/{report_id}", response_model=ReportPublic)
async def get_report(report_id: ReportId, user: Reader, pool: PoolDep,
                     settings: SettingsDep) -> ReportPublic:
    """One report with its history; the reporter's contact only for `report:triage`."""
    return await _report(pool, user, report_id, settings, with_events=True)


@router.post("/reports/{report_id}/merge", response_model=ReportPublic,
             responses=responses(409))
async def merge_report(report_id: ReportId, body: MergeIn, user: Triage, pool: PoolDep,
                       settings: SettingsDep) -> ReportPublic:
    """A received report is a duplicate of `into` (or of the report `into` was merged
    into); its own duplicates follow it. 409 unless received, or if the target was
    dismissed."""
    await _report(pool, user, report_id)
    await _report(pool, user, body.into)
    try:
        async with pool.acquire() as conn:
            await report_store.merge(conn, actor_name(user), report_id, body.into, body.note)
    except (report_store.ReportNotFound, report_store.ReportConflict) as exc:
        raise _errors(exc) from None
    return await _report(pool, user, report_id, settings, with_events=True)


@router.post("/reports/{report_id}/dismiss", response_model=ReportPublic,
             responses=responses(409))
async def dismiss_report(report_id: ReportId, body: DismissIn, user: Triage, pool: PoolDep,
                         settings: SettingsDep) -> ReportPublic:
    """Not a hazard (with the reason, kept in the history; the reporter sees only
    `dismissed`)."""
    await _report(pool, user, report_id)
    try:
        async with pool.acquire() as conn:
            await report_store.dismiss(conn, actor_name(user), report_id, body.reason)
    except (report_store.ReportNotFound, report_store.ReportConflict, ValueError) as exc:
        raise _errors(exc) from None
    return await _report(pool, user, report_id, settings, with_events=True)


async def _check_targets(pool: Any, user: Principal, body: ConvertIn) -> None:
    """The hazard's site, unit and node must be the caller's to name (else 404)."""
    if body.site_id is not None and (not user.sees(body.site_id) or not await pool.fetchval(
            "SELECT 1 FROM sites WHERE id = $1", body.site_id)):
        raise NotFound("site not found")
    if body.unit_id is not None:
        units = await visible_ids(pool, "unit", user.scope, user.site_ids)
        if (units is not None and body.unit_id not in units) or not await pool.fetchval(
                "SELECT 1 FROM units WHERE id = $1", body.unit_id):
            raise NotFound("unit not found")
    if body.jurisdiction_id is not None:
        nodes = await visible_nodes(pool, user.scope, user.site_ids)
        if (nodes is not None and body.jurisdiction_id not in nodes) or not await pool.fetchval(
                "SELECT 1 FROM jurisdictions WHERE id = $1", body.jurisdiction_id):
            raise NotFound("jurisdiction not found")
    if body.deadline is not None:
        if body.deadline.tzinfo is None:
            raise Unprocessable("deadline: give its UTC offset")
        if body.deadline <= datetime.now(UTC):
            raise Unprocessable("deadline: in the past")


@router.post("/reports/{report_id}/convert", response_model=Converted,
             status_code=status.HTTP_201_CREATED, responses=responses(409))
async def convert_report(report_id: ReportId, body: ConvertIn, user: Triage, pool: PoolDep,
                         settings: SettingsDep) -> Converted:
    """The report becomes a hazard (source `public_report`, its photos as the photos
    before): at the site it was matched to unless `site_id` names another of the caller's.
    409 unless received."""
    await _report(pool, user, report_id)
    await _check_targets(pool, user, body)
    how = report_store.Conversion(
        title=body.title, severity=Severity(body.severity), site_id=body.site_id,
        unit_id=body.unit_id, jurisdiction_id=body.jurisdiction_id, deadline=body.deadline,
        legal_basis=body.legal_basis, note=body.note)
    try:
        async with pool.acquire() as conn:
            hazard_id = await report_store.convert(conn, actor_name(user), report_id, how)
    except (report_store.ReportNotFound, report_store.ReportConflict, ValueError) as exc:
        raise _errors(exc) from None
    return Converted(hazard_id=hazard_id,
                     report=await _report(pool, user, report_id, settings, with_events=True))


@router.put("/reports/{report_id}/reward", response_model=ReportPublic,
            responses=responses(409))
async def set_reward(report_id: ReportId, body: RewardIn, user: Triage, pool: PoolDep,
                     settings: SettingsDep) -> ReportPublic:
    """The reward's status: none → eligible → granted (with the amount; final) or refused;
    eligible and granted only for a report that became a hazard (else 409)."""
    await _report(pool, user, report_id)
    try:
        async with pool.acquire() as conn:
            await report_store.set_reward(conn, actor_name(user), report_id,
                                          Reward(body.status), body.amount, body.note)
    except (report_store.ReportNotFound, report_store.ReportConflict, ValueError) as exc:
        raise _errors(exc) from None
    return await _report(pool, user, report_id, settings, with_events=True)
