"""The indicators of a node and its children as files and as the feed of the government
assessment platforms (docs/assessment.md):

- CSV: UTF-8 with a byte-order mark (spreadsheets open it with the right encoding), as
  org/importing.py writes; one row per place (the node first), one column per indicator key;
- XLSX: the same table on the sheet `indicators` (numbers as numbers), the definitions on the
  sheet `definitions`, the period on the sheet `period`;
- the feed: versioned JSON, every figure with its indicator key, unit and period.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

from assessment.indicators import INDICATORS, KEYS
from assessment.queries import Figures, Report
from org.importing import csv_text

FEED_VERSION = "firetower.assessment/1"
COLUMNS: tuple[str, ...] = ("node", "kind", "name", "period_start", "period_end", *KEYS)
DEFINITION_COLUMNS = ("key", "name_zh", "name_en", "unit", "direction", "source", "formula")


def _rows(rep: Report) -> list[Figures]:
    return [rep.node, *rep.children]


def _iso(t: datetime | None) -> str:
    return "" if t is None else t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _head(f: Figures, rep: Report) -> list[str]:
    return [f.place.key, f.place.kind, f.place.name, _iso(rep.start), _iso(rep.end)]


def _text(v: float | None) -> str:
    return "" if v is None else repr(round(v, 6))


def to_csv(rep: Report) -> str:
    """An empty cell is a figure with nothing to compute it from (no alarm, no device)."""
    return csv_text(list(COLUMNS), [_head(f, rep) + [_text(f.values[k]) for k in KEYS]
                                    for f in _rows(rep)])


def to_xlsx(rep: Report) -> bytes:
    from openpyxl import Workbook
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    def clean(value: str) -> str:  # a name with a control character no cell can hold
        return ILLEGAL_CHARACTERS_RE.sub("\ufffd", value)

    book = Workbook(write_only=True)
    sheet = book.create_sheet("indicators")
    sheet.append(list(COLUMNS))
    for f in _rows(rep):
        sheet.append([clean(v) for v in _head(f, rep)] + [f.values[k] for k in KEYS])
    defs = book.create_sheet("definitions")
    defs.append(list(DEFINITION_COLUMNS))
    for i in INDICATORS.values():
        defs.append([i.key, i.name_zh, i.name_en, i.unit, i.direction, i.source, i.formula])
    period = book.create_sheet("period")
    for k, v in (("start", _iso(rep.start)), ("end", _iso(rep.end)), ("days", rep.days),
                 ("timezone", rep.timezone), ("grouping", rep.grouping),
                 ("feed_version", FEED_VERSION)):
        period.append([k, v])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def _place(f: Figures) -> dict[str, Any]:
    return {"key": f.place.key, "kind": f.place.kind, "name": f.place.name}


def feed(rep: Report, generated_at: datetime) -> dict[str, Any]:
    """The stable JSON of the assessment platforms: `version` changes only when a field's
    meaning does; every figure names its indicator, unit, node and period."""
    period = {"start": _iso(rep.start), "end": _iso(rep.end), "days": rep.days,
              "timezone": rep.timezone}
    figures = [{"node": f.place.key, "indicator": k, "unit": INDICATORS[k].unit,
                "value": f.values[k], "period_start": period["start"],
                "period_end": period["end"]}
               for f in _rows(rep) for k in KEYS]
    return {"version": FEED_VERSION, "generated_at": _iso(generated_at), "period": period,
            "node": _place(rep.node), "children": [_place(c) for c in rep.children],
            "grouping": rep.grouping,
            "indicators": [{"key": i.key, "unit": i.unit, "direction": i.direction,
                            "source": i.source} for i in INDICATORS.values()],
            "figures": figures}
