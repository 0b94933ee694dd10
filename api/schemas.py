"""HTTP schemas. Ladder per resource: XBase -> XCreate / XUpdate -> XPublic -> XsPublic."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StrictBool,
    StringConstraints,
    field_validator,
)
from pydantic.json_schema import SkipJsonSchema

from api.permissions import Role
from firetower.model import ClockState, DeviceKind, Lifecycle

Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
FloorId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,32}$")]
UserName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")]
# Free text: no NUL (PostgreSQL refuses it in text), bounded length.
Text = Annotated[str, StringConstraints(max_length=500, pattern=r"^[^\x00]*$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00]*$")]
def _not_bool(value: object) -> object:
    """Pydantic takes true for 1; the document says number, so a boolean is refused (422)."""
    if isinstance(value, bool):
        raise ValueError("a number is required, not a boolean")
    return value


def _rfc3339(value: object) -> object:
    """Pydantic also reads a number of seconds as a time; the document says date-time."""
    if not isinstance(value, datetime) and not (
            isinstance(value, str) and re.match(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}", value)):
        raise ValueError("a date-time is required (RFC 3339, e.g. 2026-01-31T08:00:00Z)")
    return value


NotBool = BeforeValidator(_not_bool)
# A time in a query: RFC 3339 only, with its UTC offset checked by the route.
Timestamp = Annotated[datetime, BeforeValidator(_rfc3339)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0), NotBool]
Latitude = Annotated[float, Field(ge=-90.0, le=90.0), NotBool]
Longitude = Annotated[float, Field(ge=-180.0, le=180.0), NotBool]
SmallInt = Annotated[int, Field(ge=0, le=65535), NotBool]


# Whitespace as Python's str.isspace() has it, spelled out: `\s` means less in the JSON
# Schema (ECMA) regexes that clients and schemathesis use.
SPACE = r"\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# Largest id a body may carry: JSON numbers are exact up to here (a float near 2**62 is not).
MAX_ID = 2**53 - 1


ScopeKind = Literal["jurisdiction", "department", "unit", "company"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- auth ---------------------------------------------------------------------------------
class Token(BaseModel):  # OAuth2 token response
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


# scope_kind and scope_id go together (api/users.check_scope_target), stated in the document
_SCOPE_PAIR: list[JsonValue] = [
    {"if": {"required": ["scope_id"], "properties": {"scope_id": {"type": "integer"}}},
     "then": {"required": ["scope_kind"], "properties": {"scope_kind": {"type": "string"}}}},
    {"if": {"required": ["scope_kind"], "properties": {"scope_kind": {"type": "string"}}},
     "then": {"required": ["scope_id"], "properties": {"scope_id": {"type": "integer"}}}}]


class UserCreate(Strict):  # admin creates a user
    # What api.users.add_user requires besides the types, stated in the document too.
    model_config = ConfigDict(extra="forbid", json_schema_extra={"allOf": [
        {"if": {"properties": {"role": {"const": "integration"}}},
         "else": {"required": ["password"], "properties": {"password": {"type": "string"}}}},
        {"if": {"properties": {"role": {"enum": ["installer", "site_manager", "grid_member"]}}},
         "then": {"anyOf": [
             {"required": ["site_ids"],
              "properties": {"site_ids": {"type": "array", "minItems": 1}}},
             {"required": ["scope_kind", "scope_id"],
              "properties": {"scope_kind": {"type": "string"},
                             "scope_id": {"type": "integer"}}}]}}, *_SCOPE_PAIR]})

    name: UserName
    role: Role
    password: Annotated[str, StringConstraints(min_length=8, max_length=200)] | None = None
    site_ids: list[Id] | None = None
    # attached to a jurisdiction node, department, unit or maintenance company (org/scope.py)
    scope_kind: ScopeKind | None = None
    scope_id: Annotated[int, Field(ge=1, le=MAX_ID), NotBool] | None = None


class UserUpdate(Strict):  # admin changes role, scope, password or disables a user
    model_config = ConfigDict(extra="forbid", json_schema_extra={"allOf": _SCOPE_PAIR})

    role: Role | None = None
    password: Annotated[str, StringConstraints(min_length=8, max_length=200)] | None = None
    site_ids: list[Id] | None = None
    scope_kind: ScopeKind | None = None  # with scope_id; both null: no organisation scope
    scope_id: Annotated[int, Field(ge=1, le=MAX_ID), NotBool] | None = None
    active: StrictBool | None = None  # true or false, not 0 or "yes"


class UserPublic(BaseModel):  # a user as shown to admins and to itself
    id: int
    name: str
    role: Role
    site_ids: list[str] | None
    scope_kind: ScopeKind | None = None
    scope_id: int | None = None
    active: bool = True
    permissions: list[str] = []


class UsersPublic(BaseModel):
    data: list[UserPublic]
    count: int


class ApiKeyCreate(Strict):  # a key for an integration (or any) user
    user_id: Annotated[int, NotBool] = Field(ge=1, le=MAX_ID)
    name: Text = ""


class ApiKeyPublic(BaseModel):  # key metadata; `key` only in the creation response
    id: int
    prefix: str
    user_id: int
    name: str
    created_at: datetime
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None
    key: str | None = None


# -- sites --------------------------------------------------------------------------------
class Contact(Strict):  # a person to call about a site
    name: Name
    role: Text = ""
    phone: Annotated[str, StringConstraints(max_length=40, pattern=r"^[0-9+()\- .]*$")] = ""
    email: Annotated[str, StringConstraints(max_length=200, pattern=rf"^[^\x00{SPACE}]*$")] = ""


class PlanItem(Strict):  # one entrance, water source or hazard of the fire plan
    name: Name
    description: Text = ""
    floor_id: FloorId | None = None
    x: Fraction | None = None
    y: Fraction | None = None
    latitude: Latitude | None = None
    longitude: Longitude | None = None


class FirePlan(Strict):  # what the fire brigade needs on arrival
    entrances: list[PlanItem] = Field(default_factory=list, max_length=100)
    water_sources: list[PlanItem] = Field(default_factory=list, max_length=100)
    hazards: list[PlanItem] = Field(default_factory=list, max_length=100)
    notes: Annotated[str, StringConstraints(max_length=5000, pattern=r"^[^\x00]*$")] = ""


class SiteBase(Strict):
    name: Name
    address: Text = ""
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    contacts: list[Contact] = Field(default_factory=list, max_length=50)
    fire_plan: FirePlan = Field(default_factory=FirePlan)


class SiteCreate(SiteBase):  # register a site
    id: Id


class SiteUpdate(Strict):  # partial update; absent fields are unchanged
    name: Name | SkipJsonSchema[None] = None  # may be absent, not null (422)
    address: Text | None = None
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    contacts: list[Contact] | None = Field(default=None, max_length=50)
    fire_plan: FirePlan | None = None


class FloorBase(Strict):
    name: Name
    level: Annotated[int, NotBool] = Field(default=0, ge=-20, le=300)


class FloorCreate(FloorBase):  # add a floor; the plan image is uploaded separately
    id: FloorId


class FloorPublic(FloorBase):
    id: str
    has_plan: bool
    plan_url: str | None


class SitePublic(SiteBase):
    id: str
    created_at: datetime
    floors: list[FloorPublic] = []
    unit_id: int | None = None          # PUT /sites/{id}/placement (docs/organisation.md)
    jurisdiction_id: int | None = None


class SitesPublic(BaseModel):
    data: list[SitePublic]
    count: int


class SiteHealth(BaseModel):  # device health of a site: the online rate
    site_id: str
    devices: int
    in_service: int
    online: int
    offline: int
    never_seen: int
    online_rate: float | None


# -- devices ------------------------------------------------------------------------------
class DevicePlacement(Strict):
    floor_id: FloorId | None = None
    location: Text = ""
    x: Fraction | None = None
    y: Fraction | None = None
    zone: SmallInt | None = None


class DeviceCreate(DevicePlacement):  # register (or claim) one device
    id: Id
    kind: DeviceKind
    site_id: Id
    parent_id: Id | None = None


class DeviceUpdate(Strict):  # move or re-place a device; absent fields are unchanged
    site_id: Id | SkipJsonSchema[None] = None  # may be absent, not null (422)
    floor_id: FloorId | None = None
    location: Text | None = None
    x: Fraction | None = None
    y: Fraction | None = None
    zone: SmallInt | None = None


class DevicePublic(BaseModel):
    id: str
    kind: DeviceKind
    site_id: str | None
    parent_id: str | None
    floor_id: str | None
    location: str
    x: float | None
    y: float | None
    zone: int | None
    lifecycle: Lifecycle
    registered_at: datetime
    commissioned_at: datetime | None
    in_service_at: datetime | None
    decommissioned_at: datetime | None
    last_seen_at: datetime | None
    online: bool | None
    # the device clock (docs/alarms.md): smallest receive time - device time of the current
    # window (s, positive = behind), when it was measured, and ok / ahead / behind / reset
    clock_offset_s: float | None = None
    clock_checked_at: datetime | None = None
    clock: ClockState | None = None


class DevicesPublic(BaseModel):
    data: list[DevicePublic]
    count: int


class MqttCredentials(BaseModel):  # shown once, at registration or rotation
    username: str
    password: str
    host: str
    port: int
    topic_prefix: str


class DeviceRegistered(BaseModel):
    device: DevicePublic
    mqtt: MqttCredentials


class ImportProblem(BaseModel):
    line: int
    message: str


class DeviceImport(BaseModel):  # result of a CSV bulk import (all or nothing)
    created: list[DeviceRegistered]
    errors: list[ImportProblem]


class LifecycleChange(Strict):
    to: Lifecycle


class DeviceTestPublic(BaseModel):  # a commissioning test request and when its signal came
    id: int
    device_id: str
    requested_at: datetime
    arrived_at: datetime | None
    signal: str | None
    status: Literal["waiting", "arrived"]
    latency_s: float | None


class UnregisteredDevice(BaseModel):  # seen by the ingester but not in the registry
    device_id: str
    first_seen_at: datetime
    last_seen_at: datetime
    message_count: int
    last_topic: str


class UnregisteredDevices(BaseModel):
    data: list[UnregisteredDevice]
    count: int


# -- telemetry ----------------------------------------------------------------------------
Metric = Literal["obscuration_pct_per_m", "temperature_c", "co_ppm", "battery_v",
                 "pressure_kpa", "flow_lps"]


class TelemetryPoint(BaseModel):
    t: datetime
    avg: float | None
    min: float | None
    max: float | None
    samples: int


class TelemetrySeries(BaseModel):
    device_id: str
    metric: Metric
    bucket_seconds: int
    source: Literal["telemetry_1m", "telemetry"]
    points: list[TelemetryPoint]


# -- alarms -------------------------------------------------------------------------------
AlarmClassName = Literal["fire", "supervisory", "fault", "offline", "early_warning"]
AlarmStateName = Literal["active", "acknowledged", "verified", "cleared_unack", "cleared",
                         "closed"]
VerdictName = Literal["true_fire", "false_alarm", "test", "nuisance"]
Reason = Annotated[str, StringConstraints(max_length=1000, pattern=r"^[^\x00]*$")]


class AlarmPublic(BaseModel):  # an alarm as listed on the board
    id: int
    device_id: str
    site_id: str | None
    site_name: str | None
    unit_id: int | None = None    # the unit the site belongs to (docs/organisation.md)
    unit_name: str | None = None
    jurisdiction_path: list[str] = []  # names of the site's nodes, the city first
    point: str
    zone: int | None
    type: str
    alarm_class: AlarmClassName = Field(alias="class")
    priority: int
    state: AlarmStateName
    verdict: VerdictName | None
    confidence: float
    mode: str
    count: int
    location: str | None
    floor_id: str | None
    x: float | None
    y: float | None
    assignee: str | None
    raised_at: datetime
    last_at: datetime
    received_at: datetime | None
    stored_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    verdict_at: datetime | None
    verdict_by: str | None
    cleared_at: datetime | None
    closed_at: datetime | None
    updated_at: datetime
    # Latency clocks (docs/alarms.md): with received_at, stored_at, acknowledged_at, verdict_at.
    device_ts: datetime | None = None
    ingested_at: datetime | None = None
    shown_at: datetime | None = None
    shown_to: str | None = None
    forwarded_at: datetime | None = None
    forward_basis: str | None = None
    delivered_at: datetime | None = None
    # Grouping on the board: the panel whose being offline inhibits this alarm
    # ('offline:<panel>'), the flood group ('offline:<site>'), the device's kind and panel.
    inhibited_by: str | None = None
    group_key: str | None = None
    device_kind: str | None = None
    parent_id: str | None = None

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class AlarmsPublic(BaseModel):
    data: list[AlarmPublic]
    count: int


class AlarmEventPublic(BaseModel):  # one line of an alarm's timeline (append-only log)
    id: int
    alarm_id: int | None
    at: datetime
    kind: str
    from_state: str | None
    to_state: str | None
    actor: str
    reason: str
    details: dict[str, object]


class LatencyStage(BaseModel):  # one step between two latency clocks of an alarm
    stage: str  # e.g. "received->ingested"
    start: str  # the clock it starts at: "device_ts", "received_at", ...
    end: str
    seconds: float


class LimitCheck(BaseModel):  # one regulatory limit applied to this alarm
    limit: str  # "gb50440_display_20s", "gb50440_forward_3s", "nfpa72_90s"
    limit_s: float
    seconds: float | None  # None: the end clock has not happened yet
    status: Literal["met", "missed", "pending"]


class AlarmDetail(AlarmPublic):  # an alarm with its full timeline and evidence
    evidence: dict[str, object]
    events: list[AlarmEventPublic]
    latency: list[LatencyStage] = []
    limits: list[LimitCheck] = []
    # What the operator acts on: the site (address, contacts, fire plan, floors) and the
    # device's floor with its plan (the device's x/y are fractions of the plan).
    site: SitePublic | None = None
    floor: FloorPublic | None = None


class AcknowledgeCreate(Strict):
    reason: Reason = ""


# A reason that says something: the validator below refuses a blank one (with its message);
# the document says the same as a pattern.
RequiredReason = Annotated[Reason, Field(json_schema_extra={
    "minLength": 1, "pattern": rf"^[^\x00]*[^\x00{SPACE}][^\x00]*$"})]


def _required_reason(value: str) -> str:
    if not value.strip():
        raise ValueError("a reason is required: say why (e.g. what the site confirmed)")
    return value


class VerdictCreate(Strict):  # true_fire / false_alarm / test / nuisance, and why
    verdict: VerdictName
    reason: RequiredReason

    _reason = field_validator("reason")(_required_reason)


class CloseCreate(Strict):  # close a cleared, non-fire alarm without a verdict, and why
    reason: RequiredReason

    _reason = field_validator("reason")(_required_reason)


AlarmIds = Annotated[list[Annotated[int, Field(ge=1, le=MAX_ID), NotBool]],
                     Field(min_length=1, max_length=1000)]


class BulkAcknowledgeCreate(Strict):  # acknowledge many alarms in one call
    ids: AlarmIds
    reason: Reason = ""


class BulkCloseCreate(Strict):  # close many cleared, non-fire alarms in one call, and why
    ids: AlarmIds
    reason: RequiredReason

    _reason = field_validator("reason")(_required_reason)


class BulkRefusal(BaseModel):  # one alarm a bulk action left unchanged, and why
    id: int
    status: Literal[404, 409]
    detail: str


class BulkResult(BaseModel):  # what a bulk action did: changed alarms (as they are now), refusals
    data: list[AlarmPublic]
    count: int
    refused: list[BulkRefusal]


class CommentCreate(Strict):
    text: Annotated[str, StringConstraints(min_length=1, max_length=2000,
                                           pattern=r"^[^\x00]*$")]


class AssignCreate(Strict):  # assign to a user by name, or null to unassign
    assignee: UserName | None


# -- rules and modes ----------------------------------------------------------------------
RuleName = Literal["smoke", "heat", "multi", "sprinkler", "supervision", "early_warning",
                   "clock"]
ParamName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
ParamValue = Annotated[float, Field(allow_inf_nan=False, ge=-1e9, le=1e9), NotBool] | Annotated[
    int, Field(ge=-(10**9), le=10**9), NotBool]


class RuleOverrideCreate(Strict):  # set parameters of one rule for a kind, a site or a device
    scope: Literal["kind", "site", "device"]
    target: Id
    rule: RuleName
    params: dict[ParamName, ParamValue] = Field(
        max_length=50, json_schema_extra={"additionalProperties": False})  # names: ParamName


class RuleOverridePublic(BaseModel):
    id: int
    scope: str
    target: str
    rule: str
    params: dict[str, object]
    updated_by: str
    updated_at: datetime


class ModeCreate(Strict):  # put a device (or one panel point) or a whole site in a mode
    scope: Literal["device", "site"]
    target: Id
    point: Annotated[str, StringConstraints(max_length=64, pattern=r"^[^\x00]*$")] | None = None
    mode: Literal["test", "disabled", "maintenance"]
    reason: Annotated[str, StringConstraints(min_length=1, max_length=500,
                                             pattern=r"^[^\x00]*$")]
    minutes: int = Field(ge=1, le=7 * 24 * 60)  # every operator window expires


class ModePublic(BaseModel):
    id: int
    scope: str
    target: str
    point: str | None
    mode: str
    owner: str
    reason: str
    starts_at: datetime
    expires_at: datetime | None
    ended_at: datetime | None
