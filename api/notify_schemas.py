"""HTTP schemas of notification contacts, policies, escalation chains and the message log
(api/routes/notify.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, StringConstraints

from api.schemas import MAX_ID, Name, NotBool, Strict

RowId = Annotated[int, Field(ge=1, le=MAX_ID), NotBool]
ContactKind = Literal["unit_responsible", "unit_manager", "grid_member", "maintenance_company",
                      "township_station", "user"]
ChannelName = Literal["email", "sms", "voice", "dingtalk", "wecom", "feishu", "apprise"]
ClassName = Literal["fire", "supervisory", "fault", "offline", "early_warning"]
RecipientName = Literal["unit_responsible", "unit_manager", "grid_member", "maintenance_company",
                        "township_station", "unit_duty", "duty_operator", "duty_leader",
                        "duty_officer"]
Address = Annotated[str, StringConstraints(min_length=1, max_length=2000,
                                           pattern=r"^[^\x00-\x1f]*$")]
PersonName = Annotated[str, StringConstraints(max_length=100, pattern=r"^[^\x00]*$")]
HourMinute = Annotated[str, StringConstraints(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
TimeZoneName = Annotated[str, StringConstraints(min_length=1, max_length=64,
                                                pattern=r"^[A-Za-z0-9_+/-]+$")]


class ContactCreate(Strict):
    recipient: ContactKind
    ref_id: RowId
    name: PersonName = ""
    channel: ChannelName
    address: Address  # e-mail, phone, robot webhook URL or Apprise URL: sealed, never shown
    secret: Annotated[str, StringConstraints(min_length=1, max_length=200,
                                             pattern=r"^[^\x00-\x1f]*$")] | None = None
    enabled: bool = True


class ContactPatch(Strict):
    enabled: bool


class ContactPublic(BaseModel):
    id: int
    recipient: str
    ref_id: int
    name: str
    channel: str
    shown: str  # the address, redacted
    signed: bool  # a signing secret is stored
    enabled: bool
    created_at: datetime
    updated_at: datetime


class ContactsPublic(BaseModel):
    items: list[ContactPublic]


class PolicyIn(Strict):
    name: Name
    enabled: bool = True
    classes: Annotated[list[ClassName], Field(min_length=1, max_length=5)]
    max_priority: Annotated[int, Field(ge=1, le=5), NotBool] = 5
    jurisdiction_id: RowId | None = None
    unit_id: RowId | None = None
    recipients: Annotated[list[RecipientName], Field(min_length=1, max_length=9)]
    channels: Annotated[list[ChannelName], Field(min_length=1, max_length=7)] | None = None
    quiet_start: HourMinute | None = None
    quiet_end: HourMinute | None = None
    timezone: TimeZoneName = "Asia/Shanghai"
    group_window_s: Annotated[int, Field(ge=0, le=3600), NotBool] = 0


class PolicyPublic(BaseModel):
    id: int
    name: str
    enabled: bool
    classes: list[str]
    max_priority: int
    jurisdiction_id: int | None
    unit_id: int | None
    recipients: list[str]
    channels: list[str] | None
    quiet_start: str | None
    quiet_end: str | None
    timezone: str
    group_window_s: int
    created_at: datetime
    updated_at: datetime


class PoliciesPublic(BaseModel):
    items: list[PolicyPublic]


class StepIn(Strict):
    after_s: Annotated[int, Field(ge=1, le=86400), NotBool]
    recipients: Annotated[list[RecipientName], Field(min_length=1, max_length=9)]


class ChainIn(Strict):
    name: Name
    alarm_class: ClassName = Field(alias="class")
    jurisdiction_id: RowId | None = None
    steps: Annotated[list[StepIn], Field(min_length=1, max_length=10)]
    repeat_s: Annotated[int, Field(ge=10, le=86400), NotBool] = 300
    enabled: bool = True


class ChainPublic(BaseModel):
    model_config = {"populate_by_name": True}
    id: int
    name: str
    alarm_class: str = Field(serialization_alias="class")
    jurisdiction_id: int | None
    steps: list[dict[str, Any]]
    repeat_s: int
    enabled: bool
    created_at: datetime
    updated_at: datetime


class ChainsPublic(BaseModel):
    items: list[ChainPublic]


MessageStatus = Literal["pending", "sent", "dead", "grouped"]


class AttemptPublic(BaseModel):
    at: datetime
    duration_ms: float
    outcome: str
    error: str | None


class MessagePublic(BaseModel):
    id: int
    alarm_id: int | None
    prompt_id: int | None
    site_id: str | None
    recipient: str
    name: str
    channel: str
    shown: str
    step: int
    subject: str
    status: str
    grouped_into: int | None
    attempts: int
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None
    last_error: str | None


class MessageDetail(MessagePublic):
    body: str
    attempt_log: list[AttemptPublic]


class EscalationPublic(BaseModel):
    alarm_id: int
    chain_id: int | None
    next_step: int
    next_at: datetime
    stopped_at: datetime | None
    stopped_reason: str | None


class MessagesPublic(BaseModel):
    items: list[MessagePublic]
    # with `alarm_id`: the alarm's escalation, if a chain applies to it
    escalation: EscalationPublic | None = None


class LinkResult(BaseModel):
    purpose: str
    done: bool
    message: str
