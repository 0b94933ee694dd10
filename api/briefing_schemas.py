"""HTTP schemas of the briefing routes (api/routes/briefings.py, docs/assessment.md
"Briefings")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field

from api.schemas import MAX_ID, NotBool, Strict

MONTH_PATTERN = r"^(20[0-9][0-9]|2100)-(0[1-9]|1[0-2])$"
Month = Annotated[str, Field(pattern=MONTH_PATTERN, description="YYYY-MM")]
# assessment/briefing.py names them; a briefing has those its data allows (no map without
# coordinates or boundaries, no children's charts without children)
ChartName = Literal["trend", "trend_rate", "ranking", "hazards", "devices", "map"]


class BriefingIn(Strict):
    jurisdiction_id: Annotated[int, Field(ge=1, le=MAX_ID), NotBool]
    month: Month
    # an IANA zone (Asia/Shanghai): the zone the month's days are counted in
    timezone: Annotated[str, Field(min_length=1, max_length=64)] = "UTC"


class BriefingOut(BaseModel):
    id: int
    jurisdiction_id: int
    jurisdiction_name: str
    month: str               # YYYY-MM
    timezone: str
    version: int             # 1, then one more each time it is generated again on demand
    generated_at: datetime
    generated_by: str        # "schedule" or "user:<name>"
    pdf: str                 # the PDF's path under the API
    page: str                # the web page's path


class BriefingList(BaseModel):
    data: list[BriefingOut]
    count: int


class Briefing(BriefingOut):
    # assessment.briefing.Briefing: title, sections (title, paragraphs, figures, tables,
    # charts), charts (kind, labels, series, points, areas)
    content: dict[str, Any]
