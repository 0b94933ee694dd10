"""Effects: what a scenario does to one device's physics over a window of virtual time.

`before(t, model)` may change model parameters before it is sampled; `after(t, values)` may
rewrite the sample. While an effect with `fast=True` is active the device reports every
`fast_interval` seconds instead of every `interval` (smart sensors report on change).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from simulators.physics import Model, Values

INF = math.inf


@dataclass
class Effect:
    t0: float
    t1: float = INF
    fast: bool = False

    def active(self, t: float) -> bool:
        return self.t0 <= t < self.t1

    def before(self, t: float, model: Model) -> None:
        pass

    def after(self, t: float, values: Values) -> None:
        pass


@dataclass
class PowerRise(Effect):
    """Adds `coef * minutes**power` to a field from t0 (capped at `cap`)."""

    field: str = ""
    coef: float = 0.0
    power: float = 2.0
    cap: float = INF

    def delta(self, t: float) -> float:
        if t < self.t0:
            return 0.0
        return min(self.cap, self.coef * ((t - self.t0) / 60.0) ** self.power)

    def crossing(self, rise: float) -> float:
        """Virtual time at which the added amount first reaches `rise`."""
        if rise <= 0:
            return self.t0
        if rise > self.cap or self.coef <= 0:
            return INF
        return self.t0 + 60.0 * (rise / self.coef) ** (1.0 / self.power)

    def rate_per_min(self, t: float) -> float:
        m = (t - self.t0) / 60.0
        if m <= 0 or self.delta(t) >= self.cap:
            return 0.0
        return self.coef * self.power * m ** (self.power - 1)

    def after(self, t: float, values: Values) -> None:
        if t >= self.t0 and self.field in values:
            values[self.field] = float(values[self.field]) + self.delta(t)


@dataclass
class Pulse(Effect):
    """A bump of height `peak` between t0 and t1 (sin^2 shape): steam, test aerosol."""

    field: str = ""
    peak: float = 0.0

    def delta(self, t: float) -> float:
        if not self.active(t):
            return 0.0
        return self.peak * math.sin(math.pi * (t - self.t0) / (self.t1 - self.t0)) ** 2

    def above(self, level: float) -> tuple[float, float] | None:
        """The window in which the added amount exceeds `level`, if any."""
        if level >= self.peak:
            return None
        if level <= 0:
            return self.t0, self.t1
        x = math.asin(math.sqrt(level / self.peak)) / math.pi
        span = self.t1 - self.t0
        return self.t0 + x * span, self.t1 - x * span

    def after(self, t: float, values: Values) -> None:
        if self.active(t) and self.field in values:
            values[self.field] = float(values[self.field]) + self.delta(t)


@dataclass
class SetAttr(Effect):
    """Sets a model attribute at t0 (restores the old value at t1 if t1 is finite)."""

    attr: str = ""
    value: Any = None
    _saved: Any = None
    _done: bool = False

    def before(self, t: float, model: Model) -> None:
        if t >= self.t0 and not self._done:
            self._saved = getattr(model, self.attr)
            setattr(model, self.attr, self.value)
            self._done = True
        if t >= self.t1 and self._done:
            setattr(model, self.attr, self._saved)
            self.t1 = INF  # restore once


@dataclass
class AttrRamp(Effect):
    """Moves a model attribute linearly from its value at t0 to `target` at t1."""

    attr: str = ""
    target: float = 0.0
    _from: float | None = None

    def before(self, t: float, model: Model) -> None:
        if t < self.t0:
            return
        if self._from is None:
            self._from = float(getattr(model, self.attr))
        frac = min(1.0, (t - self.t0) / (self.t1 - self.t0))
        setattr(model, self.attr, self._from + (self.target - self._from) * frac)

    def active(self, t: float) -> bool:
        return t >= self.t0


@dataclass
class HeadOpen(Effect):
    """A sprinkler head opens at t0: pressure falls within seconds to the flowing residual
    pressure and the flow rises to one head's discharge, until t1."""

    residual_kpa: float = 300.0
    flow_lps: float = 1.33
    drop_tau_s: float = 4.0
    _p0: float | None = None

    def after(self, t: float, values: Values) -> None:
        if not self.active(t):
            return
        p = float(values["pressure_kpa"])
        if self._p0 is None:
            self._p0 = p
        k = math.exp(-(t - self.t0) / self.drop_tau_s)
        wobble = (p - round(p)) * 3.0  # reuse the sample's noise, turbulent flow is noisier
        values["pressure_kpa"] = max(0.0, self.residual_kpa + (self._p0 - self.residual_kpa) * k
                                     + wobble)
        values["flow_lps"] = max(0.0, self.flow_lps * (1.0 - k) + wobble * 0.01)


@dataclass
class BatteryFade(Effect):
    """End of a lithium cell's life: from `v_start` at t0 to `v_end` at t1, slow then fast."""

    v_start: float = 2.85
    v_end: float = 2.5
    power: float = 2.5

    def voltage(self, t: float) -> float:
        frac = min(1.0, max(0.0, (t - self.t0) / (self.t1 - self.t0)))
        return self.v_start - (self.v_start - self.v_end) * frac ** self.power

    def crossing(self, volts: float) -> float:
        if volts >= self.v_start:
            return self.t0
        if volts < self.v_end:
            return INF
        frac = ((self.v_start - volts) / (self.v_start - self.v_end)) ** (1.0 / self.power)
        return self.t0 + frac * (self.t1 - self.t0)

    def active(self, t: float) -> bool:
        return t >= self.t0

    def after(self, t: float, values: Values) -> None:
        if t >= self.t0 and "battery_v" in values:
            noise = float(values["battery_v"]) % 0.004 - 0.002
            values["battery_v"] = self.voltage(t) + noise


@dataclass
class Override(Effect):
    """Holds a field at a fixed value inside the window (mains lost, flags)."""

    field: str = ""
    value: float | bool = 0.0

    def after(self, t: float, values: Values) -> None:
        if self.active(t):
            values[self.field] = self.value
