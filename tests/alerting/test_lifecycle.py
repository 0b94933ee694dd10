"""The alarm lifecycle (firetower/alarms.py) and the condition edge detector: table-driven
cases and Hypothesis properties, including a RuleBasedStateMachine."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from alerting.condition import Condition, Edge, Level
from firetower.alarms import (
    OPEN_STATES,
    OPEN_STATES_SQL,
    PRIORITY,
    TRANSITIONS,
    AlarmClass,
    AlarmState,
    InvalidTransition,
    Trigger,
    Verdict,
    transition,
)

S, T = AlarmState, Trigger


@pytest.mark.parametrize(("state", "trigger", "expected"), [
    (S.NONE, T.RAISE, S.ACTIVE),
    (S.ACTIVE, T.RECUR, S.ACTIVE),
    (S.ACTIVE, T.ACKNOWLEDGE, S.ACKNOWLEDGED),
    (S.ACKNOWLEDGED, T.VERDICT, S.VERIFIED),
    (S.VERIFIED, T.CLEAR, S.CLOSED),
    (S.ACTIVE, T.CLEAR, S.CLEARED_UNACK),
    (S.CLEARED_UNACK, T.ACKNOWLEDGE, S.CLEARED),
    (S.CLEARED, T.VERDICT, S.CLOSED),
    (S.ACTIVE, T.RAISE, None),
    (S.CLOSED, T.ACKNOWLEDGE, None),
    (S.ACKNOWLEDGED, T.ACKNOWLEDGE, None),
    (S.CLEARED, T.RECUR, None),
], ids=lambda x: getattr(x, "value", str(x)))
def test_table(state: AlarmState, trigger: Trigger, expected: AlarmState | None) -> None:
    if expected is None:
        with pytest.raises(InvalidTransition):
            transition(state, trigger, verdict=Verdict.TEST)
    else:
        assert transition(state, trigger, verdict=Verdict.TRUE_FIRE) is expected


def test_fire_is_closed_only_by_a_verdict_and_verdict_needs_a_value() -> None:
    with pytest.raises(InvalidTransition):
        transition(S.CLEARED, T.CLOSE, alarm_class=AlarmClass.FIRE)
    assert transition(S.CLEARED, T.CLOSE, alarm_class=AlarmClass.FAULT) is S.CLOSED
    with pytest.raises(InvalidTransition):
        transition(S.ACTIVE, T.VERDICT)


def test_priorities_fire_first_and_sql_matches_open_states() -> None:
    assert min(PRIORITY, key=PRIORITY.__getitem__) is AlarmClass.FIRE
    assert sorted(PRIORITY.values()) == list(range(1, 6))
    assert {s.value for s in OPEN_STATES} == {x.strip(" '") for x in
                                              OPEN_STATES_SQL.strip("()").split(",")}


def test_table_is_closed_over_states_and_closed_is_terminal() -> None:
    for (_, _), new in TRANSITIONS.items():
        assert new in AlarmState and new is not S.NONE
    assert not [k for k in TRANSITIONS if k[0] is S.CLOSED]
    # every state reached by the table can still reach CLOSED
    reach = {S.CLOSED}
    changed = True
    while changed:
        changed = False
        for (a, _), b in TRANSITIONS.items():
            if b in reach and a not in reach:
                reach.add(a)
                changed = True
    assert reach == set(AlarmState)


@given(st.lists(st.tuples(st.sampled_from(list(Trigger)), st.sampled_from(list(AlarmClass)),
                          st.sampled_from([None, *Verdict]))))
def test_no_trigger_sequence_reaches_an_undefined_state(seq: list) -> None:  # type: ignore[type-arg]
    state = S.NONE
    for trigger, cls, verdict in seq:
        try:
            state = transition(state, trigger, alarm_class=cls, verdict=verdict)
        except InvalidTransition:
            continue
        assert state in AlarmState


class Lifecycle(RuleBasedStateMachine):
    """The model: a condition (true/false) driving the engine side, an operator acting on the
    other side; invariants tie the alarm state to the condition history."""

    def __init__(self) -> None:
        super().__init__()
        self.state = S.NONE
        self.condition = False
        self.acked = False
        self.verdict: Verdict | None = None
        self.cls = AlarmClass.FIRE

    def _apply(self, trigger: Trigger, verdict: Verdict | None = None) -> bool:
        try:
            self.state = transition(self.state, trigger, alarm_class=self.cls, verdict=verdict)
            return True
        except InvalidTransition:
            return False

    @precondition(lambda self: self.state in (S.NONE, S.CLEARED, S.CLEARED_UNACK, S.CLOSED))
    @rule(cls=st.sampled_from(list(AlarmClass)))
    def condition_true_new_alarm(self, cls: AlarmClass) -> None:
        # a raise after clear or close is a new alarm (a new row): model it as a fresh one
        self.state, self.acked, self.verdict, self.cls = S.NONE, False, None, cls
        self.condition = True
        assert self._apply(T.RAISE)

    @precondition(lambda self: self.state in OPEN_STATES)
    @rule()
    def condition_true_again(self) -> None:
        before = self.state
        assert self._apply(T.RECUR) and self.state is before

    @precondition(lambda self: self.state in OPEN_STATES)
    @rule()
    def condition_false(self) -> None:
        self.condition = False
        assert self._apply(T.CLEAR)

    @rule()
    def acknowledge(self) -> None:
        if self._apply(T.ACKNOWLEDGE):
            self.acked = True

    @rule(v=st.sampled_from(list(Verdict)))
    def verdict_given(self, v: Verdict) -> None:
        if self._apply(T.VERDICT, v):
            self.acked, self.verdict = True, v

    @rule()
    def close(self) -> None:
        ok = self._apply(T.CLOSE)
        assert not (ok and self.cls is AlarmClass.FIRE)

    @invariant()
    def open_iff_condition_true(self) -> None:
        if self.state is not S.NONE:
            assert (self.state in OPEN_STATES) == self.condition

    @invariant()
    def ack_and_verdict_consistent(self) -> None:
        if self.state in (S.ACKNOWLEDGED, S.CLEARED):
            assert self.acked
        if self.state is S.VERIFIED:
            assert self.verdict is not None
        if self.state is S.CLOSED and self.cls is AlarmClass.FIRE:
            assert self.verdict is not None


TestLifecycle = Lifecycle.TestCase
TestLifecycle.settings = settings(max_examples=200, stateful_step_count=30, deadline=None)

# -- the condition (duration + hysteresis) ---------------------------------------------------
levels = st.lists(st.tuples(st.sampled_from(list(Level)), st.floats(0.0, 20.0)), max_size=60)


@given(levels, st.floats(0.0, 30.0), st.floats(0.0, 30.0))
def test_condition_raises_only_on_true_held_and_clears_only_after_false_held(
        seq: list[tuple[Level, float]], for_s: float, clear_s: float) -> None:
    c = Condition()
    t = 0.0
    true_since: float | None = None
    false_since: float | None = None
    active = False
    for level, dt in seq:
        t += dt
        edge = c.update(level, t, for_s, clear_s)
        true_since = (true_since if true_since is not None else t) if level is Level.TRUE \
            else None
        # HOLD (between the levels) and TRUE both restart the clear clock
        false_since = (false_since if false_since is not None else t) if level is Level.FALSE \
            else None
        if edge is Edge.RAISE:
            assert level is Level.TRUE and not active  # no alarm without a true condition
            assert true_since is not None and t - true_since >= for_s
            active = True
        elif edge is Edge.CLEAR:
            assert level is Level.FALSE and active  # no clear before the condition went false
            assert false_since is not None and t - false_since >= clear_s
            active = False
        elif edge is Edge.RECUR:
            assert level is Level.TRUE and active
        assert c.active == active


@given(levels)
def test_condition_state_survives_dump_and_load(seq: list[tuple[Level, float]]) -> None:
    c = Condition()
    t = 0.0
    for level, dt in seq:
        t += dt
        c.update(level, t, 5.0, 5.0)
    d = Condition.load(c.dump())
    assert (d.active, d.pending_since, d.clear_since, d.went_false, d.level) == (
        c.active, c.pending_since, c.clear_since, c.went_false, c.level)
