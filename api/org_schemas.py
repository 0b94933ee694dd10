"""Request and response bodies of the organisation resources (api/routes/org.py)."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from api.schemas import MAX_ID, Latitude, Longitude, Name, NotBool, Strict, Text

Code = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
CreditCode = Annotated[str, StringConstraints(min_length=18, max_length=24,
                                              pattern=r"^[\x20-\x7e]+$")]
Phone = Annotated[str, StringConstraints(max_length=32, pattern=r"^[0-9+() -]*$")]
Short = Annotated[str, StringConstraints(max_length=100, pattern=r"^[^\x00]*$")]
# the bounds before NotBool: after a BeforeValidator pydantic writes them as keys no JSON
# Schema reader knows (ge/le), not minimum/maximum
RefId = Annotated[int, Field(ge=1, le=MAX_ID), NotBool]
Level = Literal["province", "city", "district", "township", "community", "grid"]
RiskClass = Literal["key", "crowded", "general", "small"]
Lat = Latitude
Lon = Longitude


def _iso_date(value: object) -> object:
    """Pydantic also reads a number as a date (days or seconds since 1970); the document says
    a date: YYYY-MM-DD."""
    if not isinstance(value, date) and not (
            isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value)):
        raise ValueError("a date is required (YYYY-MM-DD)")
    return value


Day = Annotated[date, BeforeValidator(_iso_date)]
# GeoJSON Polygon or MultiPolygon (checked by org.store with geojson-pydantic)
Boundary = dict[str, Any]
# In a partial update: may be absent, not null (the column has no empty value)
Absent = SkipJsonSchema[None]


class Partial(Strict):
    """A partial update: an absent field is unchanged; a field typed `X | Absent` may not be
    sent as null (422), one typed `X | None` may (it clears the value)."""

    @model_validator(mode="after")
    def _no_nulls(self) -> Partial:
        for name in self.model_fields_set:
            info = type(self).model_fields[name]
            if getattr(self, name) is None and "SkipJsonSchema" in repr(info.annotation):
                raise ValueError(f"{name} may be left out, not set to null")
        return self


class JurisdictionCreate(Strict):
    code: Code
    name: Name
    level: Level
    parent_id: RefId | None = None
    boundary: Boundary | None = None
    center_lat: Lat | None = None
    center_lon: Lon | None = None


class JurisdictionUpdate(Partial):  # parent_id moves the node with its subtree
    code: Code | Absent = None
    name: Name | Absent = None
    level: Level | Absent = None
    parent_id: RefId | None = None
    boundary: Boundary | None = None
    center_lat: Lat | None = None
    center_lon: Lon | None = None


class PathStep(BaseModel):
    id: int
    code: str
    name: str
    level: str


class JurisdictionPublic(BaseModel):
    id: int
    code: str
    name: str
    level: str
    parent_id: int | None
    path: list[PathStep] = []  # root first, this node last
    boundary: dict[str, Any] | None = None
    center_lat: float | None = None
    center_lon: float | None = None
    sites: int = 0             # sites in its subtree that the caller sees
    created_at: datetime
    updated_at: datetime


class JurisdictionsPublic(BaseModel):
    data: list[JurisdictionPublic]
    count: int


class DepartmentCreate(Strict):
    code: Code
    name: Name
    industries: Annotated[list[Short], Field(max_length=50)] = Field(default_factory=list)


class DepartmentUpdate(Partial):
    name: Name | Absent = None
    industries: Annotated[list[Short], Field(max_length=50)] | Absent = None


class DepartmentPublic(BaseModel):
    id: int
    code: str
    name: str
    industries: list[str]


class UnitFields(Partial):
    name: Name | Absent = None
    industry: Short | Absent = None
    department_id: RefId | None = None
    risk_class: RiskClass | Absent = None
    nine_small: StrictBool | Absent = None
    responsible_name: Short | Absent = None
    responsible_phone: Phone | Absent = None
    manager_name: Short | Absent = None
    manager_phone: Phone | Absent = None
    address: Text | Absent = None
    grid_id: RefId | None = None


class UnitCreate(UnitFields):
    credit_code: CreditCode
    name: Name


class UnitPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    credit_code: str | None
    name: str
    industry: str
    department_id: int | None
    risk_class: str
    nine_small: bool
    responsible_name: str
    responsible_phone: str
    manager_name: str
    manager_phone: str
    address: str
    grid_id: int | None
    created_at: datetime
    updated_at: datetime


class CompanyFields(Partial):
    name: Name | Absent = None
    licence_no: Short | Absent = None
    licence_level: Short | Absent = None
    licence_valid_until: Day | None = None
    phone: Phone | Absent = None
    address: Text | Absent = None


class CompanyCreate(CompanyFields):
    credit_code: CreditCode
    name: Name


class CompanyPublic(BaseModel):
    id: int
    credit_code: str
    name: str
    licence_no: str
    licence_level: str
    licence_valid_until: date | None
    phone: str
    address: str
    created_at: datetime
    updated_at: datetime


class ContractCreate(Strict):
    company_id: RefId
    site_id: Code
    starts_on: Day
    ends_on: Day
    scope: Annotated[str, StringConstraints(max_length=1000, pattern=r"^[^\x00]*$")] = ""


class ContractUpdate(Partial):
    starts_on: Day | Absent = None
    ends_on: Day | Absent = None
    scope: Annotated[str, StringConstraints(max_length=1000, pattern=r"^[^\x00]*$")] | Absent = None


class ContractPublic(BaseModel):
    id: int
    company_id: int
    site_id: str
    starts_on: date
    ends_on: date
    scope: str
    created_at: datetime


class Placement(Strict):  # the unit a site belongs to and the jurisdiction it lies in
    unit_id: RefId | None
    jurisdiction_id: RefId | None


class PlacementPublic(BaseModel):
    id: str
    unit_id: int | None
    jurisdiction_id: int | None


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor_id: int | None
    actor_name: str
    action: str
    entity: str
    entity_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    data: list[T]
    count: int


ImportKind = Literal["jurisdictions", "departments", "units", "companies", "sites", "contracts"]


class ImportSummary(BaseModel):
    kind: str
    created: int
    updated: int
    unchanged: int


class ImportRowError(BaseModel):
    row: int      # as the spreadsheet numbers it: the header is row 1
    column: str
    reason: str


class ImportRefusal(BaseModel):
    detail: str
    errors: list[ImportRowError]


class MapConfig(BaseModel):
    tile_url: str | None
    attribution: str


class GridMemberCreate(Strict):
    grid_id: RefId
    name: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00]*$")]
    phone: Phone = ""
    user_id: RefId | None = None  # the member's account in the centre, if it has one


class GridMemberUpdate(Partial):
    grid_id: RefId | Absent = None
    name: Annotated[str, StringConstraints(min_length=1, max_length=100,
                                           pattern=r"^[^\x00]*$")] | Absent = None
    phone: Phone | Absent = None
    user_id: RefId | None = None


class GridMemberPublic(BaseModel):
    id: int
    grid_id: int
    name: str
    phone: str
    user_id: int | None
