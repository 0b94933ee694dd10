"""The hazard rules: pure tables of what fires when, and the false-alarm rule on the real
database through a sweep (more than 5 false fire alarms of one unit in a day: GB 50440)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firetower import db
from hazards import rules
from hazards.policy import DEFAULT_POLICY
from hazards.rules import AlarmFact, FalseAlarmDay, LateOrder
from hazards.sweep import sweep
from tests.conftest import Database

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)


def fact(cls: str, age: timedelta, **kw: object) -> AlarmFact:
    return AlarmFact(7, "dev-1", "s1", cls, kw.pop("type", f"{cls}.x"), NOW - age,  # type: ignore[arg-type]
                     **kw)  # type: ignore[arg-type]


def test_offline_and_fault_fire_after_their_thresholds() -> None:
    assert rules.offline([fact("offline", 23 * H)], NOW, DEFAULT_POLICY) == []
    [d] = rules.offline([fact("offline", 25 * H)], NOW, DEFAULT_POLICY)
    assert d.source_ref == "rule:offline:7" and d.site_id == "s1"
    assert "more than 1 d" in d.title
    assert rules.fault([fact("fault", 71 * H)], NOW, DEFAULT_POLICY) == []
    assert len(rules.fault([fact("fault", 73 * H)], NOW, DEFAULT_POLICY)) == 1
    # a rule takes only its class
    assert rules.fault([fact("offline", 99 * H)], NOW, DEFAULT_POLICY) == []


def test_test_mode_and_inhibited_alarms_never_make_hazards() -> None:
    for kw in ({"mode": "test"}, {"mode": "maintenance"}, {"inhibited_by": "offline:pnl-1"}):
        assert rules.offline([fact("offline", 99 * H, **kw)], NOW, DEFAULT_POLICY) == []
        assert rules.fault([fact("fault", 99 * H, **kw)], NOW, DEFAULT_POLICY) == []


def test_early_warning_by_its_predicted_time() -> None:
    soon = fact("early_warning", H, evidence={"predicted_s": 3 * 86400})
    late = fact("early_warning", H, evidence={"predicted_s": 30 * 86400})
    none = fact("early_warning", H, evidence={"predicted_s": None})
    odd = fact("early_warning", H, evidence={"predicted_s": True})
    [d] = rules.early_warning([soon, late, none, odd], NOW, DEFAULT_POLICY)
    assert d.source_ref == "rule:early_warning:7"
    assert rules.predicted_at(soon) == NOW - H + timedelta(days=3)


@given(st.integers(min_value=0, max_value=50))
def test_false_alarms_more_than_five_a_day(n: int) -> None:
    drafts = rules.false_alarms([FalseAlarmDay(3, date(2026, 12, 6), n)], DEFAULT_POLICY)
    assert len(drafts) == (1 if n > 5 else 0)
    if drafts:
        assert drafts[0].unit_id == 3
        assert drafts[0].source_ref == "rule:false_alarms:3:2026-12-06"


def test_late_work_orders() -> None:
    due = LateOrder(5, "s1", "fault: x", NOW - H, "responded")
    assert [d.source_ref for d in rules.work_order([due], NOW)] == ["rule:work_order:5"]
    assert rules.work_order([LateOrder(5, "s1", "x", NOW + H, "open")], NOW) == []
    assert rules.work_order([LateOrder(5, "s1", "x", NOW - H, "closed")], NOW) == []


@pytest.mark.integration
async def test_a_unit_with_six_false_alarms_in_a_day_gets_one_hazard(clean_db: Database) -> None:
    pool = await db.create_pool(clean_db.url, max_size=2)
    try:
        unit = await pool.fetchval("INSERT INTO units (name) VALUES ('Night Market') RETURNING id")
        await pool.execute("INSERT INTO sites (id, name, unit_id) VALUES ('s1', 'Market', $1)",
                           unit)
        # six false alarms today in Asia/Shanghai (one real fire and one test do not count)
        verdict_at = datetime.now(UTC) - timedelta(minutes=10)
        for i, (verdict, mode) in enumerate([("false_alarm", "normal")] * 5
                                            + [("nuisance", "normal"), ("true_fire", "normal"),
                                               ("false_alarm", "test")]):
            await pool.execute(
                "INSERT INTO alarms (device_id, site_id, type, class, priority, state, verdict,"
                " mode, raised_at, last_at, verdict_at) VALUES ($1, 's1', 'smoke.threshold',"
                " 'fire', 1, 'closed', $2, $3, $4, $4, $4)", f"smk-{i}", verdict, mode, verdict_at)
        first = await sweep(pool)
        assert len(first.hazards_recorded) == 1
        h = await pool.fetchrow("SELECT unit_id, source_ref, title FROM hazards")
        assert h is not None
        assert h["unit_id"] == unit and h["source_ref"].startswith(f"rule:false_alarms:{unit}:")
        assert h["title"].startswith("6 false fire alarms")
        assert (await sweep(pool)).hazards_recorded == []
        assert await pool.fetchval("SELECT count(*) FROM hazards") == 1
    finally:
        await pool.close()
