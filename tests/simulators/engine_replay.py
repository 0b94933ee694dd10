"""A generated run fed straight into the rule engine, on a fake centre clock that follows the
messages' stamps: what the centre would raise at speed 1, hours of it in seconds, with no
broker or database. The sprinkler switch settings are entered per device as the demo
registry enters them (simulators/registry.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

from alerting.clock import FakeClock
from alerting.config import Override, RuleConfig
from alerting.decision import Action, Decision
from alerting.device import DeviceInfo
from alerting.engine import Engine
from alerting.modes import ModeTable
from firetower.model import Lifecycle
from firetower.protocol import decode, parse_topic
from simulators.injection import ALARM_CLASSES, Injection
from simulators.registry import rule_overrides
from simulators.scenarios import ScenarioRun


@dataclass
class Raised:
    """The first raise of each (device, class, type), in seconds after the run's start."""

    first: dict[tuple[str, str, str], float] = field(default_factory=dict)

    def add(self, d: Decision, start: float) -> None:
        if d.action is Action.RAISE:
            self.first.setdefault((d.key.device_id, d.alarm_class.value, d.key.type),
                                  d.at - start)

    def expected(self, inj: Injection) -> tuple[float, str] | None:
        """When and as which type the injection's expected alarm was first raised."""
        hits = sorted((t, type_) for (dev, cls, type_), t in self.first.items()
                      if dev == inj.alarm_device and cls in ALARM_CLASSES[inj.expect])
        return hits[0] if hits else None


def replay(run: ScenarioRun, seconds: float, extra: list[Override] = ()) -> Raised:  # type: ignore[assignment]
    """Feed the first `seconds` of the run (virtual time) through the engine."""
    start = run.start.timestamp()
    clock = FakeClock(start)
    decisions: list[Decision] = []
    overrides = [Override(scope, target, rule, params)
                 for scope, target, rule, params in rule_overrides(run.fleet)] + list(extra)
    engine = Engine(clock=clock, sink=decisions.append, config=RuleConfig(overrides),
                    modes=ModeTable())
    fleet = run.fleet
    engine.set_devices([DeviceInfo(d.id, d.kind, d.site_id, d.parent_id, d.zone, d.location)
                        for d in fleet], {d.id: Lifecycle.IN_SERVICE for d in fleet})
    engine.start_supervision()
    raised = Raised()

    def advance(to: float) -> None:
        while (nxt := engine.next_deadline()) is not None and nxt <= to:
            clock.t = max(clock.t, nxt)
            engine.tick()
        clock.t = max(clock.t, to)
        engine.tick()

    end = start + seconds
    for out in run:
        t = out.ts.timestamp()
        if t > end:
            break
        advance(t)
        if out.reject is not None:
            continue
        device_id, mtype = parse_topic(out.topic)
        engine.on_message(decode(device_id, mtype, fleet.get(device_id).kind, out.payload,
                                 out.ts))
        for d in decisions:
            raised.add(d, start)
        decisions.clear()
    advance(end)
    for d in decisions:
        raised.add(d, start)
    return raised
