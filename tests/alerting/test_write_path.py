"""One write path for alarm state: no production module but firetower/alarm_store.py writes
`alarms` or `alarm_events` (migrations' SQL, which defines them, and tests excepted; and one
benchmark, below)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STORE = ROOT / "firetower" / "alarm_store.py"
# `firetower bench assessment` seeds a year of a city's alarms (1-2 million rows) with one
# INSERT ... SELECT into a throwaway database of its own: a history to measure queries on, not
# alarm state the centre decides (through the store it would take hours).
SEEDERS = {"bench/assessment.py"}
# INSERT INTO / UPDATE / DELETE FROM / COPY of either table, in any case and spacing.
WRITE = re.compile(r"\b(insert\s+into|update|delete\s+from|copy)\s+(alarms|alarm_events)\b",
                   re.IGNORECASE)


def writers() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(ROOT.rglob("*.py")):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in {"tests", ".venv", "var", "migrations"} or rel.parts[0].startswith("."):
            continue
        if str(rel) in SEEDERS:
            continue
        hits = [m.group(0) for m in WRITE.finditer(path.read_text(encoding="utf-8"))]
        if hits:
            found[str(rel)] = hits
    return found


def test_only_the_alarm_store_writes_alarm_state() -> None:
    found = writers()
    assert set(found) == {str(STORE.relative_to(ROOT))}, found


def test_the_check_sees_a_write() -> None:
    assert WRITE.search('conn.execute("update  Alarms set x = 1")')
    assert WRITE.search("INSERT INTO alarm_events (alarm_id) VALUES ($1)")
    assert not WRITE.search("UPDATE alarm_counts SET n = 1")
