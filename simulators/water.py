"""Scenario plans on sprinkler pressure (standards.md 3.3): an open head, a slow leak, pressure
trending down to its low limit, and jockey-pump short-cycling."""

from __future__ import annotations

import math

from firetower.model import DeviceKind
from simulators.effects import AttrRamp, HeadOpen, SetAttr
from simulators.injection import Expect, Injection, Planner
from simulators.physics import SprinklerModel

SPRINKLER = DeviceKind.SPRINKLER_PRESSURE
LOW_SUPERVISORY_BELOW_KPA = 70.0   # see SprinklerModel.low_kpa
# An endless run's leak: 35 kPa below the jockey cut-in (the leak rule's margin) from anywhere
# in the pump's band within about a quarter of an hour, with the rule's four 5-minute means.
DEMO_LEAK_KPA_H = (300.0, 400.0)


def _sprinkler(p: Planner) -> tuple[object, SprinklerModel] | None:
    d = p.pick(SPRINKLER)
    if d is None:
        return None
    model = p.sim.model(d.id)
    assert isinstance(model, SprinklerModel)
    return d, model


def sprinkler_head_open(p: Planner) -> list[Injection]:
    """A head opens: pressure falls within seconds to the flowing residual, flow of one head
    (~1.3 L/s) appears and stays; the panel's flow switch reports after its retard."""
    found = _sprinkler(p)
    if found is None:
        return []
    d, model = found
    t0 = p.when()
    residual = p.rng.uniform(250.0, 350.0)
    flow = p.rng.uniform(1.1, 1.6)
    p.sim.plan(d.id).effects.append(HeadOpen(t0, fast=True, residual_kpa=residual,
                                             flow_lps=flow))
    retard = p.rng.uniform(30.0, 45.0)
    panel = p.fleet.panel_of(d.site_id)
    p.event(t0 + retard, panel.id, "fire", True, source=d, component="flow_switch", point=0)
    model.advance(t0)
    return [p.injection("sprinkler_head_open", Expect.FIRE_ALARM, [d], t0, primary=d.id,
                        panel=panel.id, drop_at=p.iso(t0),
                        pressure_before_kpa=round(model.pressure, 1),
                        residual_kpa=round(residual, 1), flow_lps=round(flow, 2),
                        panel_fire_at=p.iso(t0 + retard))]


def slow_leak(p: Planner) -> list[Injection]:
    """A leak on a system whose jockey pump is out of service (switched to manual): pressure
    declines steadily at tens of kPa per hour, no flow. In an endless run (a demo) the leak
    is a few hundred kPa per hour, so the leak supervisory comes inside its first half hour."""
    found = _sprinkler(p)
    if found is None:
        return []
    d, model = found
    t0 = p.when(0.1, 0.2)
    leak = p.rng.uniform(*(DEMO_LEAK_KPA_H if p.endless else (25.0, 45.0)))
    p.sim.plan(d.id).effects += [SetAttr(t0, attr="jockey_enabled", value=False),
                                 SetAttr(t0, attr="leak_kpa_h", value=leak)]
    model.advance(t0)
    low = model.low_kpa
    t_low = t0 + max(0.0, model.pressure - low) / leak * 3600.0
    return [p.injection("slow_leak", Expect.SUPERVISORY, [d], t0, primary=d.id,
                        leak_kpa_per_h=round(leak, 2),
                        pressure_at_start_kpa=round(model.pressure, 1),
                        low_supervisory_kpa=round(low, 1), low_pressure_at=p.iso(t_low))]


def pressure_low_trend(p: Planner) -> list[Injection]:
    """The jockey pump's pressure switch drifts: the whole cycle slides down, over days, to
    just above the low-pressure supervisory level (an early warning, not yet an alarm)."""
    found = _sprinkler(p)
    if found is None:
        return []
    d, model = found
    t0 = p.when(0.05, 0.1)
    t1 = p.duration if math.isfinite(p.duration) else t0 + 3 * 86_400.0
    target = model.cut_out_kpa - (LOW_SUPERVISORY_BELOW_KPA - 10.0)
    p.sim.plan(d.id).effects.append(AttrRamp(t0, t1, attr="cut_out_kpa", target=target))
    return [p.injection("pressure_low_trend", Expect.MAINTENANCE, [d], t0, t1, primary=d.id,
                        cut_out_from_kpa=round(model.cut_out_kpa, 1),
                        cut_out_to_kpa=round(target, 1),
                        low_supervisory_kpa=round(model.low_kpa, 1))]


def jockey_short_cycling(p: Planner) -> list[Injection]:
    """A leak the jockey pump can still make up: it now starts every few minutes instead of
    every few hours (a leak or seeping valve: a supervisory signal, as the centre raises it)."""
    found = _sprinkler(p)
    if found is None:
        return []
    d, model = found
    t0 = p.when(0.1, 0.2)
    leak = p.rng.uniform(600.0, 1200.0)   # kPa/h
    p.sim.plan(d.id).effects.append(SetAttr(t0, attr="leak_kpa_h", value=leak))
    normal_cycle = model.band_kpa / model.leak_kpa_h * 3600.0 + model.band_kpa / model.pump_kpa_s
    cycle = model.band_kpa / leak * 3600.0 + model.band_kpa / model.pump_kpa_s
    return [p.injection("jockey_short_cycling", Expect.SUPERVISORY, [d], t0, primary=d.id,
                        leak_kpa_per_h=round(leak, 1), cycle_s=round(cycle, 1),
                        normal_cycle_s=round(normal_cycle, 1))]
