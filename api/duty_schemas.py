"""HTTP schemas of duty rosters, hand-overs, heightened-watch windows and work prompts
(api/routes/duty.py, api/routes/watch.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    model_validator,
)

from api.schemas import MAX_ID, SPACE, Id, NotBool, Strict, _rfc3339

RowId = Annotated[int, Field(ge=1, le=MAX_ID), NotBool]
Position = Literal["operator", "leader", "officer"]  # notify.rosters.POSITIONS
WindowState = Literal["upcoming", "active", "ended"]
# A note, a body: no NUL, bounded; a required one has something besides whitespace.
Note = Annotated[str, StringConstraints(max_length=4000, pattern=r"^[^\x00]*$")]
Required4000 = Annotated[str, StringConstraints(
    min_length=1, max_length=4000, pattern=rf"^[^\x00]*[^\x00{SPACE}][^\x00]*$")]
RequiredName = Annotated[str, StringConstraints(
    min_length=1, max_length=200, pattern=rf"^[^\x00]*[^\x00{SPACE}][^\x00]*$")]
Reason = Annotated[str, StringConstraints(max_length=2000, pattern=r"^[^\x00]*$")]


def _sane_year(value: datetime) -> datetime:
    # Far years overflow when converted to UTC (year 1 at +05:00); no roster or watch needs them.
    if not 1900 <= value.year <= 9000:
        raise ValueError("a time between the years 1900 and 9000 is required")
    return value


# A time in a body: RFC 3339 with its UTC offset (no number of seconds, no local time).
Moment = Annotated[AwareDatetime, BeforeValidator(_rfc3339), AfterValidator(_sane_year)]


def _one_of(a: str, b: str, b_type: dict[str, JsonValue]) -> dict[str, JsonValue]:
    """JSON Schema for "exactly one of a (an integer) and b", as the validators require."""
    return {"allOf": [{
        "if": {"required": [a], "properties": {a: {"type": "integer"}}},
        "then": {"not": {"required": [b], "properties": {b: b_type}}},
        "else": {"required": [b], "properties": {b: b_type}}}]}


def _check_one_of(values: Any, a: str, b: str) -> Any:
    if isinstance(values, dict) and (values.get(a) is None) == (values.get(b) is None):
        raise ValueError(f"give exactly one of {a} and {b}")
    return values


# -- rosters --------------------------------------------------------------------------------
class RosterCreate(Strict):  # of a jurisdiction (the centre at that level) or a unit
    model_config = ConfigDict(extra="forbid", json_schema_extra=_one_of(
        "jurisdiction_id", "unit_id", {"type": "integer"}))

    name: RequiredName
    jurisdiction_id: RowId | None = None
    unit_id: RowId | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_owner(cls, values: Any) -> Any:
        return _check_one_of(values, "jurisdiction_id", "unit_id")


class RosterUpdate(Strict):
    name: RequiredName


class RosterPublic(BaseModel):
    id: int
    name: str
    jurisdiction_id: int | None
    jurisdiction_name: str | None
    unit_id: int | None
    unit_name: str | None
    sites: int                  # the sites the roster covers
    created_at: datetime


class RostersPublic(BaseModel):
    data: list[RosterPublic]
    count: int


class ShiftCreate(Strict):
    user_id: RowId
    position: Position
    starts_at: Moment
    ends_at: Moment


class ShiftUpdate(Strict):  # what is given changes; the result is checked as a new shift
    user_id: RowId | None = None
    position: Position | None = None
    starts_at: Moment | None = None
    ends_at: Moment | None = None


class ShiftPublic(BaseModel):
    id: int
    roster_id: int
    user_id: int
    user_name: str
    position: Position
    starts_at: datetime
    ends_at: datetime
    created_at: datetime


class ShiftsPublic(BaseModel):
    data: list[ShiftPublic]
    count: int


class Candidate(BaseModel):  # a user who may hold a shift on the roster
    user_id: int
    name: str
    role: str


class Candidates(BaseModel):
    data: list[Candidate]


class OnDutyPerson(BaseModel):
    user_id: int
    name: str
    shift_id: int
    until: datetime             # the end of the shift running now


class OnDuty(BaseModel):  # who is on duty at `at`, per position (each present, maybe empty)
    roster_id: int
    at: datetime
    positions: dict[str, list[OnDutyPerson]]
    uncovered: list[Position]   # positions nobody holds now


class CoverageGap(BaseModel):
    starts_at: datetime
    ends_at: datetime


class CoverageGaps(BaseModel):
    roster_id: int
    start: datetime
    end: datetime
    position: Position | None
    data: list[CoverageGap]
    count: int


class LogCreate(Strict):
    text: Required4000


class LogEntry(BaseModel):
    id: int
    roster_id: int
    at: datetime
    actor: str
    kind: Literal["note", "handover"]
    text: str


class LogPublic(BaseModel):
    data: list[LogEntry]
    count: int


class HandoverCreate(Strict):  # the caller hands over to another user
    to_user_id: RowId
    note: Note = ""


class HandedAlarm(BaseModel):  # an alarm as it stood at the hand-over
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    id: int
    alarm_class: str = Field(alias="class")
    priority: int
    state: str
    site_id: str | None
    site_name: str | None = None
    device_id: str | None = None
    raised_at: datetime


class HandoverPublic(BaseModel):
    id: int
    roster_id: int
    at: datetime
    from_user_id: int
    from_user_name: str
    to_user_id: int
    to_user_name: str
    open_alarms: list[HandedAlarm]
    note: str


class HandoversPublic(BaseModel):
    data: list[HandoverPublic]
    count: int


class OpenAlarmsPublic(BaseModel):  # what a hand-over now would list
    roster_id: int
    data: list[HandedAlarm]
    count: int


# -- heightened watch -------------------------------------------------------------------------
class WindowCreate(Strict):  # a jurisdiction subtree or a list of sites, for at most 31 days
    model_config = ConfigDict(extra="forbid", json_schema_extra=_one_of(
        "jurisdiction_id", "site_ids", {"type": "array"}))

    name: RequiredName
    reason: Reason = ""
    starts_at: Moment
    ends_at: Moment
    jurisdiction_id: RowId | None = None
    site_ids: Annotated[list[Id], Field(min_length=1, max_length=1000)] | None = None
    # firetower.watch: heartbeat_s, verification_s, prealarm_ratio, escalation_factor; each
    # only tightens, within its bounds (the reason of a refusal names the key)
    settings: dict[str, JsonValue]

    @model_validator(mode="before")
    @classmethod
    def _one_target(cls, values: Any) -> Any:
        return _check_one_of(values, "jurisdiction_id", "site_ids")


class WindowPublic(BaseModel):
    id: int
    name: str
    reason: str
    state: WindowState
    starts_at: datetime
    ends_at: datetime
    jurisdiction_id: int | None
    jurisdiction_name: str | None
    site_ids: list[str] | None
    settings: dict[str, float]
    sites: int                   # the covered sites (that the caller sees)
    created_by: str
    created_at: datetime
    cancelled_at: datetime | None
    cancelled_by: str | None
    applied_at: datetime | None
    reverted_at: datetime | None


class WindowsPublic(BaseModel):
    data: list[WindowPublic]
    count: int


class PromptCreate(Strict):
    title: RequiredName
    body: Required4000
    jurisdiction_id: RowId
    watch_id: RowId | None = None


class ReceiptPublic(BaseModel):
    id: int
    recipient: Literal["unit_responsible", "grid_member"]
    ref_id: int
    name: str
    read_at: datetime | None
    read_via: str | None


class PromptPublic(BaseModel):
    id: int
    title: str
    body: str
    jurisdiction_id: int
    jurisdiction_name: str | None
    watch_id: int | None
    created_by: str
    created_at: datetime
    receipts_read: int
    receipts_total: int


class PromptDetail(PromptPublic):
    receipts: list[ReceiptPublic]


class PromptsPublic(BaseModel):
    data: list[PromptPublic]
    count: int


class BoardWindow(BaseModel):  # one active window on the watch board
    window: WindowPublic
    sites: int
    open_alarms: int
    alarms_by_class: dict[str, int]
    offline_devices: int
    prompts: list[PromptPublic]


class WatchBoard(BaseModel):
    at: datetime
    data: list[BoardWindow]
    count: int
    upcoming: list[WindowPublic]
