"""HTTP schemas of the assessment routes (api/routes/assessment.py, docs/assessment.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from api.schemas import MAX_ID, NotBool, Strict

DirectionName = Literal["higher_better", "lower_better"]
UnitName = Literal["count", "ratio", "per_100_detectors_per_year", "seconds", "unit_days",
                   "units"]
GroupingName = Literal["children", "units", "industries", "companies", "sites"]
Year = Annotated[int, Field(ge=2000, le=2100), NotBool]
Target = Annotated[float, Field(ge=0.0, le=1e12), NotBool]


class IndicatorDef(BaseModel):
    key: str
    name_zh: str
    name_en: str
    unit: UnitName
    formula: str
    source: str
    direction: DirectionName


class PlaceOut(BaseModel):
    key: str   # jurisdiction:<id>, unit:<id>, industry:<name>, company:<id>, site:<id>
    kind: str
    name: str
    sites: int  # how many sites it covers (in the caller's scope)


class Figures(BaseModel):
    node: PlaceOut
    values: dict[str, float | None]   # indicator key -> figure (None: nothing to compute from)
    counts: dict[str, int]            # the counts behind them
    gb50440_units: list[str]          # the units (unit:<id>) with a day of > 5 false alarms


class AssessmentReport(BaseModel):
    start: datetime
    end: datetime
    days: float
    timezone: str
    grouping: GroupingName
    node: Figures
    children: list[Figures]


class RankingRow(BaseModel):
    rank: int | None   # shared by equal figures; None: no figure
    node: PlaceOut
    value: float | None


class Ranking(BaseModel):
    indicator: str
    unit: UnitName
    direction: DirectionName
    start: datetime
    end: datetime
    node: PlaceOut
    rows: list[RankingRow]


class TargetsIn(Strict):
    jurisdiction_id: Annotated[int, Field(ge=1, le=MAX_ID), NotBool]
    year: Year
    # indicator key -> target; replaces the year's targets (an empty object removes them)
    targets: Annotated[dict[Annotated[str, Field(max_length=64)], Target],
                       Field(max_length=64)]


class Targets(BaseModel):
    jurisdiction_id: int
    year: int
    targets: dict[str, float]


class ProgressItem(BaseModel):
    indicator: str
    unit: UnitName
    direction: DirectionName
    target: float
    actual: float | None
    met: bool | None


class Progress(BaseModel):
    jurisdiction_id: int
    year: int
    start: datetime
    end: datetime
    elapsed: float   # share of the year passed
    items: list[ProgressItem]


class FeedPeriod(BaseModel):
    start: str
    end: str
    days: float
    timezone: str


class FeedNode(BaseModel):
    key: str
    kind: str
    name: str


class FeedIndicator(BaseModel):
    key: str
    unit: UnitName
    direction: DirectionName
    source: str


class FeedFigure(BaseModel):
    node: str
    indicator: str
    unit: UnitName
    value: float | None
    period_start: str
    period_end: str


class Feed(BaseModel):
    version: str
    generated_at: str
    period: FeedPeriod
    node: FeedNode
    children: list[FeedNode]
    grouping: GroupingName
    indicators: list[FeedIndicator]
    figures: list[FeedFigure]
