"""The rule table (alerting/rules/selection.py) and the offline rule as a rule of its own
(alerting/rules/supervision.py): pure, no engine, no database."""

from __future__ import annotations

import pytest

from alerting.config import RuleConfig
from alerting.decision import Action
from alerting.device import DeviceInfo, DeviceState
from alerting.rules import early_warning, heat, panel, smoke, sprinkler, supervision
from alerting.rules.selection import TELEMETRY_RULES
from alerting.rules.supervision import OFFLINE
from firetower.alarms import AlarmClass, Mode
from firetower.model import DeviceKind


@pytest.mark.parametrize(("kind", "first"), [
    (DeviceKind.SMOKE_DETECTOR, smoke.evaluate_in_zone),
    (DeviceKind.HEAT_DETECTOR, heat.evaluate),
    (DeviceKind.SPRINKLER_PRESSURE, sprinkler.evaluate),
    (DeviceKind.ALARM_PANEL, panel.evaluate_telemetry),
], ids=lambda v: getattr(v, "value", getattr(v, "__name__", "")))
def test_each_kind_runs_its_own_rules_then_the_early_warnings(kind, first) -> None:  # type: ignore[no-untyped-def]
    assert TELEMETRY_RULES[kind] == (first, early_warning.evaluate)


def test_every_device_kind_has_a_row() -> None:
    assert set(TELEMETRY_RULES) == set(DeviceKind)


def _device(device_id: str, kind: DeviceKind = DeviceKind.SMOKE_DETECTOR,
            parent: str | None = None) -> DeviceState:
    st = DeviceState(DeviceInfo(device_id, kind, "s1", parent, 2),
                     RuleConfig().resolve(device_id, kind, "s1"))
    st.last_seen = 100.0
    return st


def test_offline_raises_once_with_its_evidence_and_group() -> None:
    st = _device("smk-1")
    [d] = supervision.went_offline(st, 190.0, "no message for 90 s", mode=Mode.TEST,
                                   parent=None, children=[], deadline=190.0)
    assert (d.action, d.alarm_class, d.key.type, d.key.point) == (
        Action.RAISE, AlarmClass.OFFLINE, OFFLINE, "")
    assert (d.at, d.mode, d.group_key, d.inhibited_by, d.confidence) == (
        190.0, Mode.TEST, "offline:s1", None, 1.0)
    assert d.evidence == {"rule": OFFLINE, "last_seen": 100.0,
                          "heartbeat_s": st.params.supervision.heartbeat_s,
                          "why": "no message for 90 s", "deadline": 190.0}
    assert st.is_active(OFFLINE) and st.dirty
    assert supervision.went_offline(st, 200.0, "again", mode=Mode.NORMAL, parent=None,
                                    children=[]) == []


def test_a_last_will_carries_no_deadline() -> None:
    [d] = supervision.went_offline(_device("smk-1"), 150.0, "last will", mode=Mode.NORMAL,
                                   parent=None, children=[])
    assert "deadline" not in d.evidence


def test_an_offline_panel_inhibits_its_offline_children_and_releases_them() -> None:
    pnl = _device("pnl-1", DeviceKind.ALARM_PANEL)
    child_off, child_on = _device("smk-1", parent="pnl-1"), _device("smk-2", parent="pnl-1")
    supervision.went_offline(child_off, 150.0, "x", mode=Mode.NORMAL, parent=pnl, children=[])
    raised, inhibit = supervision.went_offline(pnl, 160.0, "x", mode=Mode.NORMAL, parent=None,
                                               children=[child_off, child_on])
    assert raised.key.device_id == "pnl-1"
    assert (inhibit.action, inhibit.key.device_id, inhibit.inhibited_by) == (
        Action.ANNOTATE, "smk-1", "offline:pnl-1")
    # a child that goes silent while its panel is offline is raised inhibited
    [late] = supervision.went_offline(child_on, 170.0, "x", mode=Mode.NORMAL, parent=pnl,
                                      children=[])
    assert late.inhibited_by == "offline:pnl-1"
    cleared, *released = supervision.came_online(pnl, 180.0, [child_off, child_on])
    assert (cleared.action, cleared.key.device_id, cleared.at) == (Action.CLEAR, "pnl-1", 180.0)
    assert [(d.action, d.key.device_id, d.uninhibit) for d in released] == [
        (Action.ANNOTATE, "smk-1", True), (Action.ANNOTATE, "smk-2", True)]
    assert not pnl.is_active(OFFLINE)
    assert supervision.came_online(pnl, 190.0, []) == []


def test_a_device_that_was_never_offline_clears_nothing() -> None:
    assert supervision.came_online(_device("smk-1"), 100.0, []) == []
