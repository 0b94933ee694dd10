"""What a scenario injected, in machine-readable form, and helpers shared by scenario plans.

Each `Injection` names the devices, the virtual window, the condition injected and the outcome
the centre is expected to reach (`Expect`), with the key instants in `details` (ISO strings),
so rule-engine tests can assert e.g. "a fire alarm for s0001-smk-0003 after panel_fire_at".
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from firetower.model import DeviceKind
from simulators.fleet import SimDevice
from simulators.stream import Simulation

ENDLESS_SPAN_S = 1800.0


class Expect(StrEnum):
    """The outcome the centre should reach for an injection."""

    NONE = "none"                     # nothing: background only
    FIRE_ALARM = "fire_alarm"         # a true fire: alarm and dispatch
    FALSE_ALARM = "false_alarm"       # an alarm signal with a nuisance pattern
    SUPERVISORY = "supervisory"       # water supply / pressure condition, not fire
    MAINTENANCE = "maintenance"       # early warning: fix it before it becomes a fault
    FAULT = "fault"                   # a trouble signal from a panel
    SILENT = "silent"                 # device stopped reporting without a will
    OFFLINE = "offline"               # device announced (or the broker sent) offline
    INHIBITED = "inhibited"           # children of an offline panel: no alarms of their own
    NO_DISPATCH = "no_dispatch"       # signals during a test: record, do not dispatch
    STORED_ONCE = "stored_once"       # duplicates: stored exactly once
    STORED_OUT_OF_ORDER = "stored_out_of_order"  # late messages: stored, not alarmed on
    REJECT = "reject"                 # malformed: rejected with details["reason"]


# How the centre shows each outcome that is an alarm: its class (firetower.alarms.AlarmClass
# values), on the device that `Injection.alarm_device` names. A false alarm is a nuisance
# pattern the rules keep at a pre-alarm (an early warning), never a fire.
ALARM_CLASSES: dict[Expect, frozenset[str]] = {
    Expect.FIRE_ALARM: frozenset({"fire"}),
    Expect.FALSE_ALARM: frozenset({"early_warning"}),
    Expect.SUPERVISORY: frozenset({"supervisory"}),
    Expect.MAINTENANCE: frozenset({"early_warning"}),
    Expect.FAULT: frozenset({"fault"}),
    Expect.SILENT: frozenset({"offline"}),
    Expect.OFFLINE: frozenset({"offline"}),
}


@dataclass(frozen=True)
class Injection:
    scenario: str
    condition: str
    expect: Expect
    device_ids: tuple[str, ...]
    start: datetime
    end: datetime | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def alarm_device(self) -> str:
        """The device whose alarm shows the outcome: the panel for a panel's fault or
        offline, else the detector or sensor the condition was injected into."""
        if self.expect in (Expect.FAULT, Expect.OFFLINE) and "panel" in self.details:
            return str(self.details["panel"])
        return str(self.details.get("primary", self.device_ids[0]))

    def as_dict(self) -> dict[str, Any]:
        return {"scenario": self.scenario, "condition": self.condition,
                "expect": self.expect.value, "device_ids": list(self.device_ids),
                "start": self.start.isoformat(), "end": self.end and self.end.isoformat(),
                "details": self.details}


class Planner:
    """Context handed to a scenario plan: the simulation, its rng and the run length."""

    def __init__(self, sim: Simulation, name: str, duration: float,
                 taken: set[str]) -> None:
        self.sim, self.name, self.duration = sim, name, duration
        self.rng = random.Random(f"scenario/{sim.seed}/{name}")
        self.taken = taken

    @property
    def fleet(self):  # type: ignore[no-untyped-def]
        return self.sim.fleet

    @property
    def endless(self) -> bool:
        """An endless run (a demo): its scenarios must show within its first half hour."""
        return math.isinf(self.duration)

    @property
    def span(self) -> float:
        """The run length scenarios place their injections in (an endless run: its first
        half hour, so a demo shows every scenario a few minutes in)."""
        return self.duration if math.isfinite(self.duration) else ENDLESS_SPAN_S

    def when(self, lo: float = 0.2, hi: float = 0.35) -> float:
        """A start instant inside the run (fractions of the span), whole seconds."""
        return float(round(self.span * self.rng.uniform(lo, hi)))

    def iso(self, t: float) -> str | None:
        return self.sim.at(t).isoformat() if math.isfinite(t) else None

    def at(self, t: float) -> datetime:
        return self.sim.at(t)

    def pick(self, kind: DeviceKind, prefer: Callable[[SimDevice], bool] | None = None,
             ) -> SimDevice | None:
        """A device of `kind` not used by another scenario of this run (preferring `prefer`)."""
        pool = [d for d in self.fleet.of_kind(kind) if d.id not in self.taken]
        if not pool:
            pool = self.fleet.of_kind(kind)
        if not pool:
            return None
        if prefer is not None:
            pool = [d for d in pool if prefer(d)] or pool
        d = pool[self.rng.randrange(len(pool))]
        self.taken.add(d.id)
        return d

    def neighbours(self, device: SimDevice, kind: DeviceKind, limit: int) -> list[SimDevice]:
        """Devices of `kind` in the same site and zone (the same floor)."""
        found = [d for d in self.fleet.at_site(device.site_id)
                 if d.kind is kind and d.zone == device.zone and d.id != device.id]
        return found[:limit]

    def event(self, t: float, panel_id: str, category: str, active: bool,
              source: SimDevice | None = None, component: str | None = None,
              zone: int | None = None, point: int | None = None) -> dict[str, Any]:
        """Schedule an event on a device's own stream; returns its body."""
        if zone is None:
            zone = source.zone if source else 0
        if point is None:
            point = source.point if source else 0
        body: dict[str, Any] = {"category": category, "active": active, "zone": zone,
                                "point": point}
        if component is not None:
            body["component"] = component
        if source is not None:
            body["location"] = source.location
        self.sim.plan(panel_id).events.append((t, body))
        return body

    def injection(self, condition: str, expect: Expect, devices: list[SimDevice],
                  t0: float, t1: float | None = None, **details: Any) -> Injection:
        end = self.at(t1) if t1 is not None and math.isfinite(t1) else None
        return Injection(self.name, condition, expect, tuple(d.id for d in devices),
                         self.at(t0), end, details)
