"""A component harness: the Engine with a FakeClock and a recording sink, plus message builders.
Device time equals centre time unless a test sets `skew`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from alerting.clock import FakeClock
from alerting.config import Override, RuleConfig
from alerting.decision import Action, Decision
from alerting.device import DeviceInfo
from alerting.engine import Engine
from alerting.modes import ModeTable
from firetower.model import DeviceKind, Event, EventCategory, Lifecycle, Status, Telemetry

SMOKE, HEAT = DeviceKind.SMOKE_DETECTOR, DeviceKind.HEAT_DETECTOR
SPRINKLER, PANEL = DeviceKind.SPRINKLER_PRESSURE, DeviceKind.ALARM_PANEL


def dt(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


class Harness:
    def __init__(self, devices: list[DeviceInfo], overrides: list[Override] | None = None,
                 *, supervise: bool = False) -> None:
        self.clock = FakeClock()
        self.decisions: list[Decision] = []
        self.engine = Engine(clock=self.clock, sink=self.decisions.append,
                             config=RuleConfig(overrides), modes=ModeTable())
        life = {d.id: Lifecycle.IN_SERVICE for d in devices} if supervise else None
        self.engine.set_devices(devices, life)
        self.engine.start_supervision()
        self.seq = 0
        self.skew = 0.0

    @property
    def now(self) -> float:
        return self.clock.now()

    def advance(self, seconds: float) -> None:
        """Move the clock, running every deadline on the way (in order)."""
        end = self.clock.now() + seconds
        while True:
            nxt = self.engine.next_deadline()
            if nxt is None or nxt > end:
                break
            self.clock.t = max(self.clock.t, nxt)
            self.engine.tick()
        self.clock.t = end
        self.engine.tick()

    def _env(self) -> tuple[int, datetime, datetime]:
        self.seq += 1
        return self.seq, dt(self.now - self.skew), dt(self.now)

    def reading(self, device_id: str, **values: Any) -> None:
        seq, ts, rx = self._env()
        self.engine.on_message(Telemetry(device_id, seq, ts, rx, **values))

    def event(self, device_id: str, category: str, active: bool = True, **kw: Any) -> None:
        seq, ts, rx = self._env()
        self.engine.on_message(Event(device_id, seq, ts, rx, EventCategory(category), active,
                                     **kw))

    def status(self, device_id: str, online: bool) -> None:
        seq, ts, rx = self._env()
        self.engine.on_message(Status(device_id, seq, ts, rx, online))

    def feed(self, device_id: str, seconds: float, every: float, **series: Any) -> None:
        """Readings every `every` s for `seconds`; a value may be a function of elapsed time."""
        t0 = self.now
        n = int(seconds / every)
        for i in range(n):
            el = i * every
            values = {k: (v(el) if callable(v) else v) for k, v in series.items()}
            self.reading(device_id, **values)
            self.advance(every)
        assert abs(self.now - (t0 + n * every)) < 1e-6

    def take(self) -> list[tuple[str, str, str, str]]:
        """(action, device, type, class) of the decisions so far, then forget them."""
        out = [(d.action.value, d.key.device_id, d.key.type, d.alarm_class.value)
               for d in self.decisions]
        self.decisions.clear()
        return out

    def raised(self) -> list[Decision]:
        return [d for d in self.decisions if d.action is Action.RAISE]
