"""Every scenario's declared outcome (`inj.expect`) is what the rule engine raises: each
injection whose outcome is an alarm gets that alarm (class, device) over the scenario's own
run, at speed 1, with the installer's settings the demo registry enters."""

from __future__ import annotations

import pytest

from alerting.config import Override
from simulators.fleet import build_fleet
from simulators.injection import ALARM_CLASSES
from simulators.scenarios import SCENARIOS, generate
from tests.simulators.engine_replay import replay
from tests.simulators.helpers import START

KINDS = ("smoke_detector", "heat_detector", "sprinkler_pressure", "alarm_panel")


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_declared_outcome_is_raised(name: str) -> None:
    run = generate(build_fleet(7, 1, 3), 7, START, [name])
    extra = []
    if run.sim.interval > 60:   # slow reporters: heartbeats of three intervals, per kind
        extra = [Override("kind", k, "supervision", {"heartbeat_s": 3 * run.sim.interval})
                 for k in KINDS]
    raised = replay(run, run.duration, extra)
    checked = 0
    for inj in run.injections:
        if inj.expect not in ALARM_CLASSES:
            continue
        assert raised.expected(inj) is not None, (inj.condition, inj.expect, inj.alarm_device,
                                                  sorted(raised.first))
        checked += 1
    assert checked or not [i for i in run.injections if i.expect in ALARM_CLASSES]
