"""Endless streams (`duration=math.inf`, what `firetower simulate` paces in real time): every
scenario keeps producing messages with advancing timestamps, and no device's plan can make the
generator spin without yielding (a detector silent for good used to loop forever)."""

from __future__ import annotations

import contextlib
import math
import signal
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.effects import Effect
from simulators.fleet import build_fleet
from simulators.injection import ENDLESS_SPAN_S
from simulators.scenarios import SCENARIOS, generate
from simulators.stream import DevicePlan, Simulation
from tests.simulators.helpers import START

DRAW = 6000


class Overrun(Exception):
    pass


@contextlib.contextmanager
def within(seconds: float) -> Iterator[None]:
    """Fail with Overrun if the block runs longer than `seconds` (SIGALRM interrupts a pure
    Python loop between bytecodes); pytest-timeout's own alarm is put back afterwards."""

    def fire(signum: int, frame: object) -> None:
        raise Overrun(f"still running after {seconds} s")

    before = signal.signal(signal.SIGALRM, fire)
    t0 = time.monotonic()
    outer, _ = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before)
        if outer > 0:
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - t0), 0.01))


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_scenario_streams_on_forever(name: str) -> None:
    fleet = build_fleet(3, 3, 3)
    run = generate(fleet, 3, START, ["normal", name], duration=math.inf)
    interval = run.sim.interval
    last_seen: dict[str, float] = {}
    prev = None
    with within(20.0):
        for n, m in enumerate(run, 1):
            assert prev is None or m.ts >= prev
            prev = m.ts
            last_seen[m.device_id] = (m.ts - START).total_seconds()
            if n == DRAW:
                break
    assert n == DRAW
    reached = (prev - START).total_seconds()
    # past the half hour in which endless runs place their injections, and further on
    assert reached > ENDLESS_SPAN_S + 10 * interval
    gone = {d for inj in run.expectations("silent") for d in inj.device_ids}
    for d in fleet.devices:   # everyone else still reports in the last two intervals
        if d.id in gone:
            assert last_seen[d.id] < run.sim.plans[d.id].silent[0][0] + 1.0
        else:
            assert last_seen[d.id] > reached - 2 * interval - 1.0, (d.id, last_seen[d.id])


def test_all_demo_scenarios_together_stream_on() -> None:
    names = ["normal", "smouldering_fire", "cooking_steam", "sprinkler_head_open", "slow_leak",
             "panel_fault", "detector_silent", "battery_depleting"]
    run = generate(build_fleet(1, 20, 10), 1, START, names, duration=math.inf)
    with within(30.0):
        tail = [m for _, m in zip(range(40_000), run, strict=False)]
    assert len(tail) == 40_000
    assert tail[-1].ts - START > timedelta(seconds=1.5 * ENDLESS_SPAN_S)


# -- the tick generator under any plan ---------------------------------------------------------
INTERVAL, FAST = 60.0, 5.0
times = st.floats(0.0, 20_000.0, allow_nan=False).map(lambda x: float(round(x, 1)))
windows = st.lists(st.tuples(times, st.one_of(st.floats(1.0, 8_000.0), st.just(math.inf)))
                   .map(lambda w: (w[0], w[0] + w[1])), max_size=4)
fasts = st.lists(st.tuples(times, st.one_of(st.floats(1.0, 3_000.0), st.just(math.inf)))
                 .map(lambda w: Effect(w[0], w[0] + w[1], fast=True)), max_size=3)


def reference_ticks(sim: Simulation, plan: DevicePlan, end: float) -> list[float]:
    """The tick rule stepped one report at a time, quiet instants filtered out (finite end)."""
    device = sim.fleet.devices[0]
    fast = sorted((e.t0, e.t1) for e in plan.effects if e.fast)
    out, t = [], sim.phase(device)
    while t < end:
        if not plan.quiet(t):
            out.append(t)
        t = sim._next_tick(t, fast)
    return out


def sim_with(plan: DevicePlan) -> Simulation:
    sim = Simulation(build_fleet(5, 1, 0), 5, START, interval=INTERVAL, fast_interval=FAST)
    sim.plans[sim.fleet.devices[0].id] = plan
    return sim


@settings(max_examples=200, deadline=None)
@given(windows, windows, fasts)
def test_ticks_skip_quiet_windows_like_stepping_does(silent, offline, fast) -> None:  # type: ignore[no-untyped-def]
    plan = DevicePlan(effects=fast, silent=silent, offline=offline)
    sim = sim_with(plan)
    end = 30_000.0
    with within(10.0):
        got = list(sim._ticks(sim.fleet.devices[0], plan, end))
    want = reference_ticks(sim, plan, end)
    assert len(got) == len(want)
    assert all(abs(a - b) < 1e-6 for a, b in zip(got, want, strict=True))


@settings(max_examples=200, deadline=None)
@given(windows, windows, fasts)
def test_endless_ticks_never_stall(silent, offline, fast) -> None:  # type: ignore[no-untyped-def]
    """Whatever the plan, the next tick (or the end of the device's stream) comes at once."""
    plan = DevicePlan(effects=fast, silent=silent, offline=offline)
    sim = sim_with(plan)
    forever = min([a for a, b in (*silent, *offline) if math.isinf(b)], default=math.inf)
    ticks = sim._ticks(sim.fleet.devices[0], plan, math.inf)
    prev = -1.0
    with within(5.0):
        for _, t in zip(range(3000), ticks, strict=False):
            assert t > prev and not plan.quiet(t) and t < forever
            prev = t


@given(windows, windows, times)
def test_quiet_until_ends_the_joined_window(silent, offline, t) -> None:  # type: ignore[no-untyped-def]
    plan = DevicePlan(silent=silent, offline=offline)
    until = plan.quiet_until(t)
    if until is None:
        assert not plan.quiet(t)
        return
    assert plan.quiet(t) and until > t
    if math.isfinite(until):
        assert not plan.quiet(until)
        assert plan.quiet(until - 1e-6) or until - 1e-6 <= t
