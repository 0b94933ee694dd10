"""The demo fleet (`firetower run`: DEMO_SCENARIOS, endless, paced in real time) through the
rule engine on a clock that follows the stamps, i.e. what the centre raises at speed 1:
every scenario the README promises raises its expected alarm inside the first half hour,
except the battery's early warning, which needs six hourly means (EarlyWarningParams:
bucket_s 3600 x min_points 6) and so comes 6-7 hours in, a day or more before the cell's
own fault. No broker or database: see tests/test_demo_run.py for the real processes."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from cli.run import DEMO_SCENARIOS
from simulators.fleet import build_fleet
from simulators.injection import Expect
from simulators.scenarios import generate
from tests.simulators.engine_replay import replay

HALF_HOUR = 1800.0
BATTERY_EW_BY = 7 * 3600.0   # six closed hourly means, the first bucket a partial hour


def demo_run(seed: int, sites: int = 20, per_kind: int = 10, minute: int = 0):  # type: ignore[no-untyped-def]
    start = datetime(2026, 11, 2, 9, minute, 17, tzinfo=UTC)
    return generate(build_fleet(seed, sites, per_kind), seed, start, DEMO_SCENARIOS,
                    duration=math.inf)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_demo_scenario_alarms_in_the_first_half_hour(seed: int) -> None:
    run = demo_run(seed)
    raised = replay(run, HALF_HOUR)
    got = {}
    for inj in run.injections:
        if inj.expect is Expect.MAINTENANCE:
            continue   # the battery: below
        hit = raised.expected(inj)
        assert hit is not None, (inj.scenario, inj.expect, inj.alarm_device)
        t, _type = hit
        assert (inj.start - run.start).total_seconds() <= t < HALF_HOUR
        got[inj.scenario] = hit
    assert set(got) == set(DEMO_SCENARIOS) - {"normal", "battery_depleting"}
    # the slow leak as a supervisory (leak or low pressure), the steam only as a pre-alarm
    assert got["slow_leak"][1] in ("sprinkler.leak", "sprinkler.low_pressure")
    steam = next(i for i in run.injections if i.scenario == "cooking_steam")
    assert not [k for k in raised.first if k[0] == steam.alarm_device and k[1] == "fire"]


@pytest.mark.parametrize(("seed", "minute"), [(1, 0), (4, 59)])
def test_the_battery_early_warning_comes_within_seven_hours(seed: int, minute: int) -> None:
    run = demo_run(seed, sites=3, per_kind=3, minute=minute)
    inj = run.expectations(Expect.MAINTENANCE)[0]
    raised = replay(run, BATTERY_EW_BY)
    hit = raised.expected(inj)
    assert hit is not None and hit[1] == "battery.depleting"
    assert 6 * 3600.0 - 3600.0 <= hit[0] < BATTERY_EW_BY
    fault_at = datetime.fromisoformat(inj.details["battery_fault_at"])
    assert (fault_at - run.start).total_seconds() > hit[0] + 86_400.0   # well before the fault
