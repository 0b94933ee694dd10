"""A Hypothesis state machine against the real alarm store: random raises, re-occurrences,
clears, acknowledgements, verdicts and closes on a few keys; the database must match a model
built from the pure `transition()`, keep one open alarm per key and log every change."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from firetower import db
from firetower.alarm_store import AlarmKey, AlarmStore, Occurrence
from firetower.alarms import (
    OPEN_STATES,
    AlarmClass,
    AlarmState,
    InvalidTransition,
    Trigger,
    Verdict,
    transition,
)

pytestmark = pytest.mark.integration
KEYS = [AlarmKey("d1", "", "panel.fire"), AlarmKey("d1", "1/2", "panel.fire"),
        AlarmKey("d2", "", "panel.fault")]
CLASS = {"panel.fire": AlarmClass.FIRE, "panel.fault": AlarmClass.FAULT}
NOW = datetime(2026, 11, 28, tzinfo=UTC)


class StoreMachine(RuleBasedStateMachine):
    url = ""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.conn = self.run(db.connect(self.url))
        self.run(self.conn.execute("TRUNCATE alarms, alarm_events RESTART IDENTITY CASCADE"))
        self.store = AlarmStore(self.conn)
        self.model: dict[int, tuple[AlarmKey, AlarmState]] = {}
        self.events = 0

    def run(self, coro):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.conn.close())
        self.loop.close()

    def _open(self, key: AlarmKey) -> int | None:
        return next((i for i, (k, s) in self.model.items() if k == key and s in OPEN_STATES),
                    None)

    @rule(key=st.sampled_from(KEYS))
    def condition_true(self, key: AlarmKey) -> None:
        change = self.run(self.store.raise_or_recur(Occurrence(key, CLASS[key.type], NOW)))
        assert change is not None
        open_id = self._open(key)
        if open_id is None:
            assert change.kind == "raise" and change.alarm_id not in self.model
            self.model[change.alarm_id] = (key, AlarmState.ACTIVE)
        else:
            assert change.kind == "recur" and change.alarm_id == open_id
        self.events += 1

    @rule(key=st.sampled_from(KEYS))
    def condition_false(self, key: AlarmKey) -> None:
        change = self.run(self.store.clear(key, at=NOW, reason="gone"))
        open_id = self._open(key)
        if open_id is None:
            assert change is None
            return
        assert change is not None and change.alarm_id == open_id
        self.model[open_id] = (key, transition(self.model[open_id][1], Trigger.CLEAR))
        self.events += 1

    @rule(n=st.integers(0, 20), trigger=st.sampled_from(
        [Trigger.ACKNOWLEDGE, Trigger.VERDICT, Trigger.CLOSE]),
        verdict=st.sampled_from(list(Verdict)))
    def operator(self, n: int, trigger: Trigger, verdict: Verdict) -> None:
        if not self.model:
            return
        alarm_id = sorted(self.model)[n % len(self.model)]
        key, state = self.model[alarm_id]
        v = verdict if trigger is Trigger.VERDICT else None
        try:
            expected = transition(state, trigger, alarm_class=CLASS[key.type], verdict=v)
        except InvalidTransition:
            expected = None
        try:
            change = self.run(self.store.transition(alarm_id, trigger, actor="op", verdict=v))
        except InvalidTransition:
            assert expected is None
            return
        assert change.to_state is expected
        self.model[alarm_id] = (key, expected)
        self.events += 1

    @invariant()
    def database_matches_the_model(self) -> None:
        rows = self.run(self.conn.fetch("SELECT id, state FROM alarms ORDER BY id"))
        assert {r["id"]: AlarmState(r["state"]) for r in rows} == {
            i: s for i, (_, s) in self.model.items()}
        assert self.run(self.conn.fetchval("SELECT count(*) FROM alarm_events")) == self.events


def test_store_state_machine(database) -> None:  # type: ignore[no-untyped-def]
    StoreMachine.url = database.url
    machine = StoreMachine.TestCase
    machine.settings = settings(max_examples=25, stateful_step_count=25, deadline=None)
    machine().runTest()
