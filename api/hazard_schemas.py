"""HTTP schemas of the hazard loop and work orders (api/routes/hazards.py, workorders.py)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from api.schemas import MAX_ID, Id, Name, NotBool, Strict

LongText = Annotated[str, StringConstraints(max_length=4000, pattern=r"^[^\x00]*$")]
Short = Annotated[str, StringConstraints(max_length=100, pattern=r"^[^\x00]*$")]
Phone = Annotated[str, StringConstraints(max_length=32, pattern=r"^[0-9+() -]*$")]
FileId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Files = Annotated[list[FileId], Field(max_length=20)]
RowId = Annotated[int, Field(ge=1, le=MAX_ID), NotBool]
# hazards.model.CATEGORIES, or none (a test keeps the two equal)
HazardCategory = Literal["", "evacuation", "fire_lane", "fire_equipment", "electrical", "ebike",
                         "fire_load", "management", "false_alarms", "maintenance", "other"]

HazardSourceIn = Literal["manual", "department", "alarm", "inspection"]
SeverityName = Literal["general", "major"]
HazardStateName = Literal["found", "notified", "rectifying", "submitted", "verified", "closed"]
HazardTriggerName = Literal["notify", "receipt", "submit", "fix_on_spot", "verify", "reject",
                            "close"]
OrderStateName = Literal["open", "responded", "repaired", "closed"]
OrderTriggerName = Literal["respond", "repair", "decide"]


class HazardCreate(Strict):  # record a hazard (a person does; rules and patrols have their own)
    title: Name
    source: HazardSourceIn = "manual"
    alarm_id: RowId | None = None        # source 'alarm': the IoT alarm converted
    site_id: Id | None = None
    unit_id: RowId | None = None
    jurisdiction_id: RowId | None = None
    description: LongText = ""
    category: HazardCategory = ""
    legal_basis: Annotated[str, StringConstraints(max_length=500, pattern=r"^[^\x00]*$")] = ""
    severity: SeverityName = "general"
    deadline: datetime | None = None
    responsible_name: Short = ""
    responsible_phone: Phone = ""
    campaign: Short = ""
    files: Files = Field(default_factory=list)


class HazardStep(Strict):  # one step of the lifecycle
    trigger: HazardTriggerName
    note: LongText = ""
    files: Files = Field(default_factory=list)


class DeadlineChange(Strict):  # a supervisor moves the deadline (延期), with a reason
    deadline: datetime
    note: Annotated[str, StringConstraints(min_length=1, max_length=4000, pattern=r"^[^\x00]*$")]


class StepInfo(BaseModel):  # a step the caller may take now, and what it needs
    trigger: str
    needs_note: bool
    photo: Literal["required", "optional", "none"]


class HazardEvent(BaseModel):
    id: int
    at: datetime
    kind: str
    from_state: str | None
    to_state: str | None
    actor: str
    note: str
    details: dict[str, Any]


class HazardPublic(BaseModel):
    id: int
    source: str
    source_ref: str
    title: str
    description: str
    category: str
    legal_basis: str
    severity: str
    state: HazardStateName
    site_id: str | None
    site_name: str | None
    unit_id: int | None
    jurisdiction_id: int | None
    owner_id: int | None
    owner_name: str | None
    owner_level: str | None
    responsible_name: str
    responsible_phone: str
    campaign: str
    deadline: datetime | None
    overdue: bool
    escalations: int
    listed: bool
    listed_by_id: int | None
    listed_by_name: str | None
    files_before: list[str]
    files_after: list[str]
    found_by: str
    submitted_by: str | None
    found_at: datetime
    notified_at: datetime | None
    receipt_at: datetime | None
    submitted_at: datetime | None
    verified_at: datetime | None
    closed_at: datetime | None
    age_days: float
    allowed: list[str]                  # the next steps the state allows
    my_steps: list[StepInfo]            # of those, the ones the caller's role may take


class HazardDetail(HazardPublic):
    events: list[HazardEvent]


class HazardsPublic(BaseModel):
    data: list[HazardPublic]
    count: int


class HazardListRow(BaseModel):  # one row of a list (清单): a jurisdiction, department, campaign
    key: str
    name: str
    total: int
    open: int
    closed: int
    overdue: int
    listed: int
    closure_rate: float | None          # closed / total
    ageing: dict[str, int]              # open hazards by age: '0-7d', '7-30d', '30-90d', '90d+'


class HazardLists(BaseModel):
    by: str
    data: list[HazardListRow]


class OrderStep(Strict):
    trigger: OrderTriggerName
    note: LongText = ""
    files: Files = Field(default_factory=list)


class WorkOrderEvent(BaseModel):
    id: int
    at: datetime
    kind: str
    from_state: str | None
    to_state: str | None
    actor: str
    note: str
    details: dict[str, Any]


class WorkOrderPublic(BaseModel):
    id: int
    alarm_id: int | None
    device_id: str | None
    site_id: str | None
    site_name: str | None
    company_id: int | None
    company_name: str | None
    alarm_class: str
    title: str
    state: OrderStateName
    repeat_of: int | None
    respond_by: datetime
    repair_by: datetime
    response_late: bool
    repair_late: bool
    opened_at: datetime
    responded_at: datetime | None
    responded_by: str | None
    repaired_at: datetime | None
    repaired_by: str | None
    closed_at: datetime | None
    closed_by: str | None
    close_reason: str
    files: list[str]
    allowed: list[str]
    my_steps: list[StepInfo]


class WorkOrderDetail(WorkOrderPublic):
    events: list[WorkOrderEvent]


class WorkOrdersPublic(BaseModel):
    data: list[WorkOrderPublic]
    count: int


class MaintenanceRecordCreate(Strict):  # GB 25201: a monthly check or the yearly full test
    site_id: Id
    kind: Literal["monthly_check", "yearly_test"]
    done_on: date
    result: Literal["pass", "fail"]
    note: LongText = ""
    files: Files = Field(default_factory=list)


class MaintenanceRecordPublic(BaseModel):
    id: int
    site_id: str
    company_id: int | None
    kind: str
    done_on: date
    result: str
    note: str
    files: list[str]
    recorded_by: str
    recorded_at: datetime


class MaintenanceRecordsPublic(BaseModel):
    data: list[MaintenanceRecordPublic]
    count: int


class TransmissionTests(BaseModel):  # GB 50440: >= 2 simulated fire transmissions a month
    device_id: str
    site_id: str | None
    tests: int
    required: int
    meets: bool


class TransmissionTestReport(BaseModel):
    month: str
    data: list[TransmissionTests]
    count: int
    failing: int
