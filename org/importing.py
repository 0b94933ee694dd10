"""Bulk files of the organisation, read and checked before anything is written.

A file is CSV (UTF-8, with or without a byte-order mark, or GBK/GB 18030 as Chinese
spreadsheets save it) or XLSX (the first sheet), with a header row naming the columns. Each
kind has its columns (`COLUMNS`); unknown or missing required columns refuse the whole file.
Every row is checked; the answer is either every record or every problem (row number as the
user sees it in a spreadsheet, column, reason). The store then writes all or nothing.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from org.codes import CodeError, normalize_uscc
from org.tree import LEVELS

MAX_ROWS = 100_000
MAX_FIELD_CHARS = 20_000  # a boundary as GeoJSON text may be long; every other field is short
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class FileError(ValueError):
    """The file as a whole cannot be read (encoding, format, header)."""


@dataclass(frozen=True)
class Problem:
    row: int      # 1 is the header row, as a spreadsheet numbers it
    column: str
    reason: str


Parser = Callable[[str], Any]
_CODE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _text(limit: int) -> Parser:
    def parse(v: str) -> str:
        if len(v) > limit:
            raise ValueError(f"longer than {limit} characters")
        return v
    return parse


def _code(v: str) -> str:
    if not _CODE.match(v):
        raise ValueError("1-64 letters, digits, '_', '.' or '-'")
    return v


def _credit(v: str) -> str:
    try:
        return normalize_uscc(v)
    except CodeError as exc:
        raise ValueError(str(exc)) from None


def _choice(*options: str) -> Parser:
    def parse(v: str) -> str:
        if v not in options:
            raise ValueError(f"one of {', '.join(options)}")
        return v
    return parse


def _number(lo: float, hi: float) -> Parser:
    def parse(v: str) -> float:
        try:
            x = float(v)
        except ValueError:
            raise ValueError("a number") from None
        if not lo <= x <= hi:
            raise ValueError(f"between {lo:g} and {hi:g}")
        return x
    return parse


def _day(v: str) -> date:
    try:
        return date.fromisoformat(v)
    except ValueError:
        raise ValueError("a date YYYY-MM-DD") from None


def _flag(v: str) -> bool:
    low = v.lower()
    if low in ("1", "true", "yes", "y", "是"):
        return True
    if low in ("0", "false", "no", "n", "否"):
        return False
    raise ValueError("yes or no")


def _list(v: str) -> list[str]:
    # ";" or "|" between items (the full-width semicolon too, as Chinese input methods type it)
    return [p.strip() for p in re.split("[;|\uff1b]", v) if p.strip()]


def _geojson(v: str) -> Any:
    import json

    try:
        return json.loads(v)
    except ValueError:
        raise ValueError("GeoJSON text") from None


# kind -> column -> (required, parser). The first column is the kind's import key.
COLUMNS: dict[str, dict[str, tuple[bool, Parser]]] = {
    "jurisdictions": {"code": (True, _code), "name": (True, _text(200)),
                      "level": (True, _choice(*LEVELS)), "parent_code": (False, _code),
                      "center_lat": (False, _number(-90, 90)),
                      "center_lon": (False, _number(-180, 180)),
                      "boundary": (False, _geojson)},
    "departments": {"code": (True, _code), "name": (True, _text(200)),
                    "industries": (False, _list)},
    "units": {"credit_code": (True, _credit), "name": (True, _text(200)),
              "industry": (False, _text(100)), "department_code": (False, _code),
              "risk_class": (False, _choice("key", "crowded", "general", "small")),
              "nine_small": (False, _flag), "responsible_name": (False, _text(100)),
              "responsible_phone": (False, _text(32)), "manager_name": (False, _text(100)),
              "manager_phone": (False, _text(32)), "address": (False, _text(500)),
              "grid_code": (False, _code)},
    "companies": {"credit_code": (True, _credit), "name": (True, _text(200)),
                  "licence_no": (False, _text(100)), "licence_level": (False, _text(50)),
                  "licence_valid_until": (False, _day), "phone": (False, _text(32)),
                  "address": (False, _text(500))},
    "sites": {"id": (True, _code), "name": (True, _text(200)), "address": (False, _text(500)),
              "latitude": (False, _number(-90, 90)), "longitude": (False, _number(-180, 180)),
              "unit_credit_code": (False, _credit), "jurisdiction_code": (False, _code)},
    "contracts": {"site_id": (True, _code), "starts_on": (True, _day), "ends_on": (True, _day),
                  "company_credit_code": (True, _credit), "scope": (False, _text(1000))},
}
KINDS = tuple(COLUMNS)


def decode(raw: bytes) -> str:
    """UTF-8 (a byte-order mark is dropped), else GB 18030 (a superset of GBK and GB 2312)."""
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        if "\x00" in text:
            raise FileError("the file contains a NUL character")
        return text
    raise FileError("the file is neither UTF-8 nor GBK/GB 18030 text")


def _csv_table(raw: bytes) -> Iterator[list[str]]:
    text = decode(raw)
    csv.field_size_limit(MAX_FIELD_CHARS + 1)
    try:
        yield from csv.reader(io.StringIO(text, newline=""))
    except csv.Error as exc:
        raise FileError(f"not valid CSV: {exc}") from None


def _xlsx_table(raw: bytes) -> Iterator[list[str]]:
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a file that is not XLSX
        raise FileError(f"not a readable XLSX workbook ({type(exc).__name__})") from None
    try:
        sheet = book.worksheets[0]
        for values in sheet.iter_rows(values_only=True):
            yield ["" if v is None else (v.isoformat()[:10] if isinstance(v, date) else
                                         str(int(v)) if isinstance(v, float) and v.is_integer()
                                         else str(v)) for v in values]
    finally:
        book.close()


def table(raw: bytes, content_type: str) -> Iterator[list[str]]:
    """The rows of a CSV or XLSX file (by its content type, or by its ZIP signature)."""
    if content_type.startswith(XLSX_TYPE) or raw[:4] == b"PK\x03\x04":
        return _xlsx_table(raw)
    return _csv_table(raw)


def parse(kind: str, rows: Iterator[list[str]]) -> tuple[list[dict[str, Any]], list[Problem]]:
    """Every record of the file (each with its row number as `_row`, and the file's columns
    only), or every problem in it (then the records are not used)."""
    spec = COLUMNS[kind]
    header = next(rows, None)
    if header is None:
        raise FileError("the file is empty: a header row is required")
    names = [h.strip().lower() for h in header]
    unknown = [n for n in names if n and n not in spec]
    missing = [n for n, (required, _) in spec.items() if required and n not in names]
    if unknown or missing:
        parts = [f"unknown columns: {', '.join(unknown)}"] if unknown else []
        parts += [f"missing columns: {', '.join(missing)}"] if missing else []
        raise FileError(f"{kind}: {'; '.join(parts)} (columns: {', '.join(spec)})")
    if len(set(names) - {""}) != len([n for n in names if n]):
        raise FileError("a column is named twice")
    records: list[dict[str, Any]] = []
    problems: list[Problem] = []
    key = next(iter(spec))
    seen: dict[Any, int] = {}
    for number, values in enumerate(rows, start=2):
        if not any(v.strip() for v in values):
            continue
        if len(records) + len(problems) >= MAX_ROWS:
            raise FileError(f"more than {MAX_ROWS} rows")
        record: dict[str, Any] = {}
        bad = False
        for name, value in zip(names, values, strict=False):
            if not name:
                continue
            value = value.strip()
            required, parser = spec[name]
            if not value:
                if required:
                    problems.append(Problem(number, name, "required"))
                    bad = True
                continue
            if len(value) > MAX_FIELD_CHARS:
                problems.append(Problem(number, name, f"longer than {MAX_FIELD_CHARS} characters"))
                bad = True
                continue
            try:
                record[name] = parser(value)
            except ValueError as exc:
                problems.append(Problem(number, name, str(exc)))
                bad = True
        for name, (required, _) in spec.items():
            if required and name not in record and not any(
                    p.row == number and p.column == name for p in problems):
                problems.append(Problem(number, name, "required"))
                bad = True
        if bad:
            continue
        ident = (record[key], record.get("starts_on")) if kind == "contracts" else record[key]
        if ident in seen:
            problems.append(Problem(number, key, f"also on row {seen[ident]}"))
            continue
        seen[ident] = number
        record["_row"] = number
        records.append(record)
    if not records and not problems:
        raise FileError("the file has a header but no rows")
    return records, problems


def csv_text(columns: list[str], rows: list[list[str]]) -> str:
    """A file the import reads back (UTF-8 with a byte-order mark, so spreadsheets open it
    with the right encoding)."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return out.getvalue()


def xlsx_bytes(columns: list[str], rows: list[list[str]]) -> bytes:
    """An XLSX sheet of the rows. A cell cannot hold the C0 control characters other than tab
    and line breaks (the format refuses them, openpyxl raises): a name that carries one is
    exported with U+FFFD in its place, as the CSV export keeps it whole."""
    from openpyxl import Workbook
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    def cell(value: str) -> str:
        return ILLEGAL_CHARACTERS_RE.sub("\ufffd", value) if isinstance(value, str) else value

    book = Workbook(write_only=True)
    sheet = book.create_sheet("data")
    sheet.append(columns)
    for r in rows:
        sheet.append([cell(v) for v in r])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
