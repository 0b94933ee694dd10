"""Quiet-day physics of each device kind: noise, slow drift, daily cycles, battery decay,
sprinkler static pressure held up by a jockey pump, panel heartbeats.

A model is seeded per device and sampled in time order with `sample(t)`, where `t` is seconds
of virtual time since the run started. Scenarios change a model through its public attributes
(`baseline_drift_per_day`, `leak_kpa_h`, `jockey_enabled`, ...) or rewrite its output.
"""

from __future__ import annotations

import math
import random
from datetime import datetime

from firetower.model import DeviceKind
from simulators.fleet import SimDevice

DAY_S = 86_400.0
LITHIUM_NOMINAL_V = 3.0
PANEL_FLOAT_V = 27.3  # 24 V lead-acid pair on float charge

Values = dict[str, float | bool]


def pct_per_ft_to_per_m(pct_per_ft: float) -> float:
    """Obscuration %/ft -> %/m over the same smoke (standards.md 3.1)."""
    return 100.0 * (1.0 - (1.0 - pct_per_ft / 100.0) ** (1.0 / 0.3048))


class Model:
    """Base: a seeded rng, ambient temperature with a daily cycle, an optional battery."""

    kind: DeviceKind

    def __init__(self, device: SimDevice, seed: int, start: datetime) -> None:
        self.device = device
        self.rng = random.Random(f"physics/{seed}/{device.id}")
        local = start.hour * 3600 + start.minute * 60 + start.second
        self._day_offset = float(local)
        rng = self.rng
        self.ambient_c = rng.uniform(19.0, 24.0) + 0.3 * device.floor
        self.daily_amp_c = rng.uniform(0.8, 2.5)
        self.temp_noise_c = 0.1
        self.battery_v0 = rng.uniform(2.98, 3.08)
        self.battery_decay_v_day = rng.uniform(0.0001, 0.0004)

    def ambient(self, t: float) -> float:
        """Room temperature: warmest mid-afternoon (15:00 in the start's time zone)."""
        hour = ((self._day_offset + t) / 3600.0) % 24.0
        return self.ambient_c + self.daily_amp_c * math.cos(2 * math.pi * (hour - 15.0) / 24.0)

    def battery(self, t: float, temp_c: float) -> float:
        """Lithium cell: slow linear decay, a little voltage lost in the cold, a little noise."""
        v = self.battery_v0 - self.battery_decay_v_day * t / DAY_S
        return v + 0.002 * (temp_c - 20.0) + self.rng.gauss(0.0, 0.003)

    def sample(self, t: float) -> Values:
        raise NotImplementedError


class SmokeModel(Model):
    kind = DeviceKind.SMOKE_DETECTOR

    def __init__(self, device: SimDevice, seed: int, start: datetime) -> None:
        super().__init__(device, seed, start)
        rng = self.rng
        self.baseline = rng.uniform(0.08, 0.35)           # clean-air reading, %/m
        self.baseline_drift_per_day = rng.uniform(0.0, 0.008)
        self.noise = 0.05
        self.has_co = rng.random() < 0.35                 # multi-sensor heads also read CO
        # alarm threshold inside the UL 268 window, typical factory setting 2.5 %/ft
        self.alarm_pct_per_m = pct_per_ft_to_per_m(rng.choice((2.0, 2.5, 3.0)))

    def clean_air(self, t: float) -> float:
        return self.baseline + self.baseline_drift_per_day * t / DAY_S

    def sample(self, t: float) -> Values:
        rng = self.rng
        temp = self.ambient(t) + rng.gauss(0.0, self.temp_noise_c)
        values: Values = {
            "obscuration_pct_per_m": max(0.0, self.clean_air(t) + rng.gauss(0.0, self.noise)),
            "temperature_c": temp,
        }
        if self.has_co:
            values["co_ppm"] = max(0.0, rng.gauss(1.0, 0.6))
        values["battery_v"] = self.battery(t, temp)
        return values


class HeatModel(Model):
    kind = DeviceKind.HEAT_DETECTOR

    def __init__(self, device: SimDevice, seed: int, start: datetime) -> None:
        super().__init__(device, seed, start)
        self.fixed_c = 57.0                 # 135 F fixed element
        self.rate_c_per_min = 8.3           # 15 F/min rate-of-rise element

    def sample(self, t: float) -> Values:
        temp = self.ambient(t) + self.rng.gauss(0.0, self.temp_noise_c)
        return {"temperature_c": temp, "battery_v": self.battery(t, temp)}


class SprinklerModel(Model):
    """Wet-pipe system pressure held between cut-in and cut-out by a jockey pump.

    Between pump runs the pressure decays linearly at `leak_kpa_h` (valve seepage); at
    cut-in the jockey starts and lifts it back to cut-out at `pump_kpa_s`. Stateful: the
    pressure is integrated exactly between successive samples.
    """

    kind = DeviceKind.SPRINKLER_PRESSURE

    def __init__(self, device: SimDevice, seed: int, start: datetime) -> None:
        super().__init__(device, seed, start)
        rng = self.rng
        self.cut_out_kpa = rng.uniform(560.0, 700.0)
        self.band_kpa = rng.uniform(35.0, 60.0)
        self.leak_kpa_h = rng.uniform(15.0, 40.0)
        self.pump_kpa_s = rng.uniform(0.4, 0.8)
        self.jockey_enabled = True
        self.noise_kpa = 0.8
        self.flow_lps = 0.0
        self.pump_starts: list[float] = []
        # low-pressure supervisory switch: about 10 psi (70 kPa) below the jockey cut-in
        self.low_kpa = self.cut_out_kpa - self.band_kpa - 70.0
        # start somewhere inside a cycle
        self.pressure = self.cut_out_kpa - rng.uniform(0.0, self.band_kpa)
        self.running = False
        self._t = 0.0

    @property
    def cut_in_kpa(self) -> float:
        return self.cut_out_kpa - self.band_kpa

    def advance(self, t: float) -> None:
        """Integrate pressure and pump state from the last sample up to `t`."""
        now = self._t
        while now < t:
            dt = t - now
            if self.running and self.jockey_enabled:
                need = max(0.0, (self.cut_out_kpa - self.pressure) / self.pump_kpa_s)
                if need <= dt:
                    self.pressure, self.running, now = self.cut_out_kpa, False, now + need
                    continue
                self.pressure += self.pump_kpa_s * dt
                break
            self.running = False
            leak_s = self.leak_kpa_h / 3600.0
            if self.jockey_enabled and leak_s > 0 and self.pressure > self.cut_in_kpa:
                need = max(0.0, (self.pressure - self.cut_in_kpa) / leak_s)
                if need <= dt:
                    self.pressure, self.running, now = self.cut_in_kpa, True, now + need
                    self.pump_starts.append(now)
                    continue
            elif self.jockey_enabled and self.pressure <= self.cut_in_kpa:
                self.running = True
                self.pump_starts.append(now)
                continue
            self.pressure = max(0.0, self.pressure - leak_s * dt)
            break
        self._t = max(self._t, t)

    def sample(self, t: float) -> Values:
        self.advance(t)
        p = max(0.0, self.pressure + self.rng.gauss(0.0, self.noise_kpa))
        return {"pressure_kpa": p, "flow_lps": self.flow_lps}


class PanelModel(Model):
    """Heartbeat: mains and battery supervision of the control panel."""

    kind = DeviceKind.ALARM_PANEL

    def __init__(self, device: SimDevice, seed: int, start: datetime) -> None:
        super().__init__(device, seed, start)
        self.float_v = PANEL_FLOAT_V + self.rng.uniform(-0.3, 0.2)
        self.mains_ok = True
        self.battery_ok = True
        self.discharge_v_h = 0.25   # while on battery
        self._mains_lost_at: float | None = None

    def sample(self, t: float) -> Values:
        if self.mains_ok:
            self._mains_lost_at = None
            v = self.float_v
        else:
            if self._mains_lost_at is None:
                self._mains_lost_at = t
            v = 25.6 - self.discharge_v_h * (t - self._mains_lost_at) / 3600.0
        return {"mains_ok": self.mains_ok, "battery_ok": self.battery_ok,
                "battery_v": max(0.0, v + self.rng.gauss(0.0, 0.02))}


MODELS: dict[DeviceKind, type[Model]] = {
    DeviceKind.SMOKE_DETECTOR: SmokeModel,
    DeviceKind.HEAT_DETECTOR: HeatModel,
    DeviceKind.SPRINKLER_PRESSURE: SprinklerModel,
    DeviceKind.ALARM_PANEL: PanelModel,
}


def model_for(device: SimDevice, seed: int, start: datetime) -> Model:
    return MODELS[device.kind](device, seed, start)


ROUNDING = {"obscuration_pct_per_m": 3, "temperature_c": 2, "co_ppm": 1, "battery_v": 3,
            "pressure_kpa": 1, "flow_lps": 2}


def rounded(values: Values) -> Values:
    """Round to the resolution a real sensor reports (keeps payloads short)."""
    out: Values = {}
    for k, v in values.items():
        digits = ROUNDING.get(k)
        out[k] = v if digits is None or isinstance(v, bool) else round(v, digits)
    return out
