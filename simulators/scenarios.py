"""Named, seeded scenarios over a fleet. Same (fleet, seed, start, scenarios, duration,
interval) -> the same messages, byte for byte.

    run = generate(fleet, seed=7, start=..., scenarios=["smouldering_fire"])
    for out in run: ...            # time-ordered `Outgoing`, freshly generated on each pass
    run.injections                 # what was injected and what the centre should conclude

Every scenario includes the quiet background of the whole fleet; several scenarios combine
on one fleet (each picks devices the others have not taken).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from simulators import faults, fires, water
from simulators.fleet import Fleet
from simulators.injection import Expect, Injection, Planner
from simulators.stream import DEFAULT_FAST_INTERVAL_S, Outgoing, Simulation

HOUR, DAY = 3600.0, 86_400.0


@dataclass(frozen=True)
class Scenario:
    name: str
    plan: Callable[[Planner], list[Injection]]
    duration_s: float          # default run length (virtual seconds)
    interval_s: float = 60.0   # default report interval

    @property
    def description(self) -> str:
        return (self.plan.__doc__ or "").strip()

    def run(self, fleet: Fleet, seed: int, start: datetime, **kwargs: object) -> ScenarioRun:
        return generate(fleet, seed, start, [self.name], **kwargs)  # type: ignore[arg-type]


def _normal(p: Planner) -> list[Injection]:
    """The quiet background only: noise, drift, daily cycles, battery decay, jockey cycles,
    panel heartbeats."""
    return []


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("normal", _normal, 600.0),
    Scenario("smouldering_fire", fires.smouldering_fire, 1800.0),
    Scenario("flaming_fire", fires.flaming_fire, 900.0),
    Scenario("cooking_steam", fires.cooking_steam, 1200.0),
    Scenario("test_mode", fires.test_mode, 1800.0),
    Scenario("sprinkler_head_open", water.sprinkler_head_open, 900.0),
    Scenario("slow_leak", water.slow_leak, 6 * HOUR),
    Scenario("pressure_low_trend", water.pressure_low_trend, 3 * DAY, 300.0),
    Scenario("jockey_short_cycling", water.jockey_short_cycling, 2 * HOUR),
    Scenario("detector_silent", faults.detector_silent, 3 * HOUR),
    Scenario("panel_fault", faults.panel_fault, 1800.0),
    Scenario("panel_mains_fault", faults.panel_mains_fault, 2 * HOUR),
    Scenario("panel_offline", faults.panel_offline, HOUR),
    Scenario("battery_depleting", faults.battery_depleting, 14 * DAY, 900.0),
    Scenario("dirty_chamber", faults.dirty_chamber, 14 * DAY, 900.0),
    Scenario("duplicates_out_of_order", faults.duplicates_out_of_order, 600.0),
    Scenario("malformed", faults.malformed, 600.0),
)}


@dataclass
class ScenarioRun:
    """A planned run. Iterating generates the stream afresh (deterministically)."""

    sim: Simulation
    scenarios: tuple[str, ...]
    duration: float            # virtual seconds; math.inf = forever
    injections: list[Injection]

    @property
    def fleet(self) -> Fleet:
        return self.sim.fleet

    @property
    def start(self) -> datetime:
        return self.sim.start

    @property
    def dedicated(self) -> frozenset[str]:
        """Devices that need their own MQTT connection (so the broker sends their will)."""
        return frozenset(self.sim.dedicated)

    def __iter__(self) -> Iterator[Outgoing]:
        return self.sim.stream(None if math.isinf(self.duration) else self.duration)

    def messages(self) -> list[Outgoing]:
        if math.isinf(self.duration):
            raise ValueError("an endless run has no message list")
        return list(self)

    def expectations(self, expect: Expect | str) -> list[Injection]:
        return [i for i in self.injections if i.expect == expect]


def generate(fleet: Fleet, seed: int, start: datetime,
             scenarios: Sequence[str] = ("normal",), *, duration: float | None = None,
             interval: float | None = None, fast_interval: float = DEFAULT_FAST_INTERVAL_S,
             births: bool = True, seq_base: int = 0) -> ScenarioRun:
    """Plan `scenarios` on `fleet`. `duration` defaults to the longest scenario default
    (math.inf runs forever); `interval` to the shortest scenario default report interval;
    every device's seq counts from `seq_base` + 1."""
    chosen = [SCENARIOS[n] for n in dict.fromkeys(scenarios)] or [SCENARIOS["normal"]]
    if duration is None:
        duration = max(s.duration_s for s in chosen)
    if interval is None:
        interval = min(s.interval_s for s in chosen)
    if interval <= 0 or fast_interval <= 0:
        raise ValueError("intervals must be positive")
    sim = Simulation(fleet, seed, start, interval=interval, fast_interval=fast_interval,
                     births=births, seq_base=seq_base)
    taken: set[str] = set()
    injections: list[Injection] = []
    for s in chosen:
        injections += s.plan(Planner(sim, s.name, duration, taken))
    return ScenarioRun(sim, tuple(s.name for s in chosen), duration, injections)
