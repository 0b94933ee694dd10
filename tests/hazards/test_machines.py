"""The hazard and work-order machines and escalation, as pure functions: tables and properties
(no sequence reaches an undefined state, closed means verified, escalation exactly once per
deadline)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hazards.escalation import Node, escalation, lister, listing_for
from hazards.model import (
    OPEN,
    OWING,
    TRANSITIONS,
    HazardState,
    InvalidTransition,
    Severity,
    Trigger,
    allowed,
    is_overdue,
    transition,
)
from hazards.policy import DEFAULT_POLICY, PolicyError, from_mapping
from hazards.workorders import (
    ORDER_TRANSITIONS,
    InvalidOrderTransition,
    OpenAlarm,
    OrderState,
    OrderTrigger,
    needs_order,
    order_transition,
    repair_late,
    response_late,
)

T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
CITY, DISTRICT, TOWNSHIP, GRID = Node(1, "city"), Node(2, "district"), Node(3, "township"), Node(4, "grid")
PATH = [CITY, DISTRICT, TOWNSHIP, GRID]


def test_the_loop_in_order() -> None:
    s = HazardState.FOUND
    for trig, expect in ((Trigger.NOTIFY, "notified"), (Trigger.RECEIPT, "rectifying"),
                         (Trigger.SUBMIT, "submitted"), (Trigger.REJECT, "rectifying"),
                         (Trigger.SUBMIT, "submitted"), (Trigger.VERIFY, "verified"),
                         (Trigger.CLOSE, "closed")):
        s = transition(s, trig)
        assert s.value == expect
    assert allowed(s) == []


def test_a_wrong_step_names_the_allowed_ones() -> None:
    with pytest.raises(InvalidTransition) as e:
        transition(HazardState.FOUND, Trigger.CLOSE)
    assert e.value.allowed == [Trigger.NOTIFY, Trigger.FIX_ON_SPOT]
    assert "allowed: notify, fix_on_spot" in str(e.value)


@given(st.lists(st.sampled_from(list(Trigger)), max_size=40))
def test_no_sequence_reaches_an_undefined_state_and_closed_means_verified(
        triggers: list[Trigger]) -> None:
    s = HazardState.FOUND
    seen = [s]
    for trig in triggers:
        try:
            s = transition(s, trig)
        except InvalidTransition as exc:
            assert (s, trig) not in TRANSITIONS
            assert exc.allowed == allowed(s)
            continue
        assert isinstance(s, HazardState)
        seen.append(s)
    if s is HazardState.CLOSED:
        # closed only ever follows verified, which only follows submitted
        i = seen.index(HazardState.CLOSED)
        assert seen[i - 1] is HazardState.VERIFIED
        assert seen[i - 2] is HazardState.SUBMITTED
    # closed is final
    assert all(seen[j] is HazardState.CLOSED for j in range(len(seen))
               if HazardState.CLOSED in seen[:j])


def test_every_state_is_reachable_and_every_open_state_can_move() -> None:
    reachable = {HazardState.FOUND} | set(TRANSITIONS.values())
    assert reachable == set(HazardState)
    assert all(allowed(s) for s in OPEN)


def test_overdue_only_while_the_fix_is_owed() -> None:
    late = T0 + timedelta(days=1)
    for s in HazardState:
        assert is_overdue(s, T0, late) is (s in OWING)
        assert not is_overdue(s, T0, T0)
        assert not is_overdue(s, None, late)


# -- escalation ----------------------------------------------------------------------------

def test_escalation_walks_up_one_level_and_lists_at_the_district() -> None:
    deadline = T0 + timedelta(days=15)
    first = escalation(HazardState.RECTIFYING, deadline, None, PATH, False,
                       deadline + timedelta(hours=1), DEFAULT_POLICY)
    assert first is not None
    assert (first.from_owner, first.to_owner, first.listed_by) == (GRID.id, TOWNSHIP.id, None)
    assert first.new_deadline == deadline + timedelta(hours=1, days=7)
    second = escalation(HazardState.RECTIFYING, first.new_deadline, deadline, PATH[:3], False,
                        first.new_deadline + timedelta(minutes=1), DEFAULT_POLICY)
    assert second is not None
    assert (second.to_owner, second.listed_by) == (DISTRICT.id, DISTRICT.id)


def test_at_the_root_it_stays_and_is_listed() -> None:
    esc = escalation(HazardState.FOUND, T0, None, [CITY], False, T0 + timedelta(seconds=1),
                     DEFAULT_POLICY)
    assert esc is not None and esc.to_owner == CITY.id and esc.listed_by == CITY.id


def test_major_hazards_are_listed_by_the_nearest_listing_level() -> None:
    assert listing_for(Severity.MAJOR, PATH, DEFAULT_POLICY) == DISTRICT
    assert listing_for(Severity.GENERAL, PATH, DEFAULT_POLICY) is None
    assert lister([Node(9, "township")], DEFAULT_POLICY) == Node(9, "township")  # the root
    assert lister([], DEFAULT_POLICY) is None


@given(st.lists(st.integers(min_value=0, max_value=40 * 24), min_size=1, max_size=30),
       st.sampled_from(sorted(OWING)), st.integers(min_value=1, max_value=4))
def test_escalation_happens_exactly_once_per_deadline(hours: list[int], state: HazardState,
                                                      depth: int) -> None:
    """Sweeps at any times (in order): each deadline that passes escalates exactly once, and
    the owner moves up one level each time until the root."""
    path = PATH[:depth]
    deadline, escalated_for, listed = T0 + timedelta(days=1), None, False
    fired_for: list[datetime] = []
    for h in sorted(hours):
        now = T0 + timedelta(hours=h)
        esc = escalation(state, deadline, escalated_for, path, listed, now, DEFAULT_POLICY)
        if esc is None:
            assert now <= deadline or escalated_for == deadline
            continue
        assert now > deadline and esc.old_deadline == deadline
        fired_for.append(deadline)
        escalated_for, deadline = deadline, esc.new_deadline
        listed = listed or esc.listed_by is not None
        assert deadline > now
        if len(path) > 1:
            assert esc.to_owner == path[-2].id
            path = path[:-1]
    assert len(fired_for) == len(set(fired_for))


def test_no_escalation_once_submitted() -> None:
    for s in (HazardState.SUBMITTED, HazardState.VERIFIED, HazardState.CLOSED):
        assert escalation(s, T0, None, PATH, False, T0 + timedelta(days=99), DEFAULT_POLICY) is None


# -- work orders ---------------------------------------------------------------------------

@given(st.lists(st.sampled_from(list(OrderTrigger)), max_size=20))
def test_orders_close_only_on_the_device_or_a_decision(triggers: list[OrderTrigger]) -> None:
    s = OrderState.OPEN
    last = None
    for trig in triggers:
        try:
            s = order_transition(s, trig)
            last = trig
        except InvalidOrderTransition as exc:
            assert (s, trig) not in ORDER_TRANSITIONS and trig not in exc.allowed
    if s is OrderState.CLOSED:
        assert last in (OrderTrigger.DEVICE_NORMAL, OrderTrigger.DECIDE)
    # the company's own steps never close an order
    assert all(new is not OrderState.CLOSED for (_, trig), new in ORDER_TRANSITIONS.items()
               if trig in (OrderTrigger.RESPOND, OrderTrigger.REPAIR))


def test_sla_lateness() -> None:
    by = T0 + timedelta(hours=4)
    assert not response_late(by, T0 + timedelta(hours=3), T0 + timedelta(days=9))
    assert response_late(by, None, T0 + timedelta(hours=5))
    assert not response_late(by, None, T0 + timedelta(hours=3))
    assert repair_late(by, None, T0 + timedelta(hours=5))
    assert not repair_late(by, T0 + timedelta(hours=1), T0 + timedelta(days=5))


def test_which_alarms_open_orders() -> None:
    grace = timedelta(minutes=5)
    base = OpenAlarm(1, "d", "s1", "fault", "panel.fault", "normal", None, T0)
    assert needs_order(base, T0 + grace, grace)
    assert not needs_order(base, T0 + grace / 2, grace)
    for cls in ("fire",):
        assert not needs_order(OpenAlarm(1, "d", "s1", cls, "x", "normal", None, T0),
                               T0 + grace, grace)
    assert not needs_order(OpenAlarm(1, "d", "s1", "fault", "x", "test", None, T0), T0 + grace, grace)
    assert not needs_order(OpenAlarm(1, "d", "s1", "fault", "x", "normal", "offline:p", T0),
                           T0 + grace, grace)


def test_policy_file_is_checked_whole() -> None:
    p = from_mapping({"offline_hazard_s": 3600, "sla": {"fault": [60, 120]}})
    assert p.offline_hazard_s == 3600 and p.sla["fault"] == (60.0, 120.0)
    assert p.sla["offline"] == DEFAULT_POLICY.sla["offline"]
    for bad in ({"nope": 1}, {"offline_hazard_s": -1}, {"offline_hazard_s": True},
                {"sla": {"fire": [1, 2]}}, {"sla": {"fault": [5, 1]}},
                {"false_alarms_per_day": 0}, {"listing_levels": "district"}):
        with pytest.raises(PolicyError):
            from_mapping(bad)


def test_the_console_labels_every_hazard_category() -> None:
    import json
    from pathlib import Path

    from hazards.model import CATEGORIES

    labels = json.loads((Path(__file__).resolve().parents[2] / "api" / "static"
                         / "labels.json").read_text())
    for lang in ("en", "zh"):
        assert [c for c in CATEGORIES if f"hz.category.{c}" not in labels[lang]] == [], lang


def test_the_api_takes_exactly_the_hazard_categories() -> None:
    from typing import get_args

    from api.hazard_schemas import HazardCategory
    from hazards.model import CATEGORIES

    assert get_args(HazardCategory) == ("", *CATEGORIES)
