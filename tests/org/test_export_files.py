"""The XLSX export of the organisation: every name survives, and one carrying a control
character (which the API accepts in names, and an XLSX cell cannot hold) is exported with U+FFFD
in its place instead of failing the whole export (found by the schema fuzzer: a 500)."""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st
from openpyxl import load_workbook

from org.importing import xlsx_bytes


def _read(raw: bytes) -> list[list[object]]:
    sheet = load_workbook(io.BytesIO(raw), read_only=True)["data"]
    return [list(r) for r in sheet.iter_rows(values_only=True)]


def test_a_control_character_is_replaced_not_fatal() -> None:
    rows = _read(xlsx_bytes(["code", "name"], [["d1", "消防\x01支队\x1f"], ["d2", "Tab\tok"]]))
    assert rows == [["code", "name"], ["d1", "消防\ufffd支队\ufffd"], ["d2", "Tab\tok"]]


@given(st.lists(st.text(alphabet=st.characters(exclude_categories=["Cs"],
                                               exclude_characters="\x00\r"),
                        min_size=1, max_size=30), min_size=1, max_size=5))
def test_any_name_exports(names: list[str]) -> None:
    rows = _read(xlsx_bytes(["name"], [[n] for n in names]))
    assert len(rows) == len(names) + 1
    for got, want in zip(rows[1:], names, strict=True):
        assert isinstance(got[0], str) and len(got[0]) == len(want)
