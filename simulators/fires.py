"""Scenario plans with smoke and heat: smouldering and flaming fires, cooking steam, a test.

A panel raises its own `fire` event when a detector's reading crosses the detector's alarm
threshold (a smoke head's setting inside the UL 268 window; 57 C fixed or 8.3 C/min rate of rise
for heat), so every fire-like scenario carries both the analog trend and the panel signal.
"""

from __future__ import annotations

import math

from firetower.model import DeviceKind
from simulators.effects import PowerRise, Pulse
from simulators.injection import Expect, Injection, Planner
from simulators.physics import HeatModel, SmokeModel

SMOKE, HEAT = DeviceKind.SMOKE_DETECTOR, DeviceKind.HEAT_DETECTOR
OBS, TEMP, CO = "obscuration_pct_per_m", "temperature_c", "co_ppm"


def smouldering_fire(p: Planner) -> list[Injection]:
    """Smoke first (quadratic growth over minutes, CO with it), temperature only later and
    slowly (< 8.3 C/min): a panel alarm comes from smoke, never from heat."""
    d = p.pick(SMOKE)
    if d is None:
        return []
    panel = p.fleet.panel_of(d.site_id)
    model = p.sim.model(d.id)
    assert isinstance(model, SmokeModel)
    t0 = p.when()
    t_alarm = t0 + 60.0 * p.rng.uniform(7.0, 10.0)
    rise_needed = model.alarm_pct_per_m - model.clean_air(t_alarm)
    coef = rise_needed / ((t_alarm - t0) / 60.0) ** 2
    plan = p.sim.plan(d.id)
    plan.effects.append(PowerRise(t0, fast=True, field=OBS, coef=coef, power=2.0, cap=40.0))
    plan.effects.append(PowerRise(t0, fast=True, field=CO, coef=6.0, power=1.2, cap=400.0))
    t_temp = t0 + 60.0 * p.rng.uniform(4.0, 6.0)
    plan.effects.append(PowerRise(t_temp, fast=True, field=TEMP, coef=0.12, power=2.0,
                                  cap=30.0))
    others = p.neighbours(d, SMOKE, 2)
    for i, n in enumerate(others):
        lag = 60.0 * (2.0 + 1.5 * i)
        p.sim.plan(n.id).effects.append(
            PowerRise(t0 + lag, fast=True, field=OBS, coef=coef * 0.5, power=2.0, cap=25.0))
    heat = p.neighbours(d, HEAT, 1)
    for h in heat:
        p.sim.plan(h.id).effects.append(
            PowerRise(t_temp + 120.0, fast=True, field=TEMP, coef=0.08, power=2.0, cap=25.0))
    p.event(t_alarm, panel.id, "fire", True, source=d, component="smoke_detector")
    return [p.injection("smouldering_fire", Expect.FIRE_ALARM, [d, *others, *heat], t0,
                        primary=d.id, panel=panel.id,
                        smoke_rise_at=p.iso(t0), panel_fire_at=p.iso(t_alarm),
                        temperature_rise_at=p.iso(t_temp),
                        alarm_threshold_pct_per_m=round(model.alarm_pct_per_m, 3),
                        co=model.has_co)]


def flaming_fire(p: Planner) -> list[Injection]:
    """A fast t-squared fire under a heat detector: the rate of rise passes 8.3 C/min within a
    minute and 57 C within about three; smoke heads on the floor fill quickly."""
    h = p.pick(HEAT) or p.pick(SMOKE)
    if h is None:
        return []
    panel = p.fleet.panel_of(h.site_id)
    t0 = p.when()
    model = p.sim.model(h.id)
    coef = p.rng.uniform(5.0, 8.0)                       # C per minute^2
    temp = PowerRise(t0, fast=True, field=TEMP, coef=coef, power=2.0,
                     cap=240.0 - model.ambient_c)
    p.sim.plan(h.id).effects.append(temp)
    fixed_c = model.fixed_c if isinstance(model, HeatModel) else 57.0
    t_rate = t0 + 60.0 * 8.3 / (2.0 * coef)
    t_fixed = temp.crossing(fixed_c - model.ambient(t0))
    smoke = p.neighbours(h, SMOKE, 3)
    t_smoke = math.inf
    for i, s in enumerate(smoke):
        lag = 20.0 + 15.0 * i
        rise = PowerRise(t0 + lag, fast=True, field=OBS, coef=12.0, power=1.5, cap=60.0)
        smodel = p.sim.model(s.id)
        assert isinstance(smodel, SmokeModel)
        t_smoke = min(t_smoke, rise.crossing(smodel.alarm_pct_per_m - smodel.baseline))
        p.sim.plan(s.id).effects += [
            rise, PowerRise(t0 + lag + 10.0, fast=True, field=TEMP, coef=2.5, power=2.0,
                            cap=150.0)]
    t_fire = min(t_rate, t_fixed, t_smoke)
    p.event(t_fire, panel.id, "fire", True, source=h,
            component="heat_detector" if h.kind is HEAT else "smoke_detector")
    return [p.injection("flaming_fire", Expect.FIRE_ALARM, [h, *smoke], t0,
                        primary=h.id, panel=panel.id, rate_of_rise_at=p.iso(t_rate),
                        fixed_temperature_at=p.iso(t_fixed), smoke_alarm_at=p.iso(t_smoke),
                        panel_fire_at=p.iso(t_fire), rise_c_per_min2=round(coef, 3))]


def cooking_steam(p: Planner) -> list[Injection]:
    """A puff of steam drifts into one smoke head: obscuration spikes past the alarm threshold
    for well under a minute, temperature barely moves, no CO, no neighbour sees it. The panel's
    alarm verification (NFPA 72 alarm verification; GB/T 26875.3 `delay`) starts and runs out
    unconfirmed, so the panel latches no fire. The pattern of a false alarm."""
    d = p.pick(SMOKE, prefer=lambda x: "kitchen" in x.location)
    if d is None:
        return []
    panel = p.fleet.panel_of(d.site_id)
    model = p.sim.model(d.id)
    assert isinstance(model, SmokeModel)
    t0 = p.when()
    t1 = t0 + p.rng.uniform(45.0, 80.0)
    peak = model.alarm_pct_per_m * p.rng.uniform(1.15, 1.6)
    steam = Pulse(t0, t1, fast=True, field=OBS, peak=peak)
    plan = p.sim.plan(d.id)
    plan.effects += [steam, Pulse(t0, t1, fast=True, field=TEMP, peak=p.rng.uniform(0.5, 2.0))]
    above = steam.above(model.alarm_pct_per_m - model.clean_air(t0))
    assert above is not None
    p.event(above[0], panel.id, "delay", True, source=d, component="smoke_detector")
    p.event(above[1], panel.id, "delay", False, source=d, component="smoke_detector")
    return [p.injection("cooking_steam", Expect.FALSE_ALARM, [d], t0, t1, primary=d.id,
                        panel=panel.id, verification_started_at=p.iso(above[0]),
                        above_threshold_until=p.iso(above[1]),
                        peak_pct_per_m=round(peak, 3))]


def test_mode(p: Planner) -> list[Injection]:
    """A maintenance test: the panel announces `test` for a zone, a technician puts test
    aerosol into one head (a panel fire signal follows), then the test ends."""
    d = p.pick(SMOKE)
    if d is None:
        return []
    panel = p.fleet.panel_of(d.site_id)
    model = p.sim.model(d.id)
    assert isinstance(model, SmokeModel)
    t0 = p.when()
    t_spray = t0 + p.rng.uniform(60.0, 180.0)
    spray = Pulse(t_spray, t_spray + 90.0, fast=True, field=OBS,
                  peak=model.alarm_pct_per_m * 2.0)
    p.sim.plan(d.id).effects.append(spray)
    above = spray.above(model.alarm_pct_per_m - model.clean_air(t_spray))
    assert above is not None
    t_end = t_spray + 90.0 + p.rng.uniform(120.0, 300.0)
    p.event(t0, panel.id, "test", True, zone=d.zone, point=0, component="zone_test")
    p.event(above[0], panel.id, "fire", True, source=d, component="smoke_detector")
    p.event(above[1] + 5.0, panel.id, "fire", False, source=d, component="smoke_detector")
    p.event(t_end, panel.id, "test", False, zone=d.zone, point=0, component="zone_test")
    return [p.injection("test_mode", Expect.NO_DISPATCH, [panel, d], t0, t_end, panel=panel.id,
                        zone=d.zone, primary=d.id, test_start_at=p.iso(t0),
                        panel_fire_at=p.iso(above[0]), test_end_at=p.iso(t_end))]
