"""Scenario plans for faults, maintenance and delivery problems: silent detector, panel fault,
mains failure, panel offline, battery running down, dirty chamber, duplicate and out-of-order
delivery, malformed messages."""

from __future__ import annotations

import math

from paho.mqtt.client import topic_matches_sub

from firetower.model import DeviceKind
from firetower.protocol import subscription
from simulators.effects import BatteryFade, SetAttr
from simulators.injection import Expect, Injection, Planner
from simulators.malformed import CATALOGUE
from simulators.physics import SmokeModel
from simulators.stream import Outgoing

SMOKE, PANEL = DeviceKind.SMOKE_DETECTOR, DeviceKind.ALARM_PANEL
LOW_BATTERY_V = 2.6
# An endless run's cell falls linearly to flat over three days: the first trend the centre
# can fit (six hourly means, 6-7 hours in) already predicts 2.6 V within its week's horizon,
# and the detector's own battery fault follows about two days later.
DEMO_FADE_S = 3 * 86_400.0
_FAULTS = ("loop_short_circuit", "loop_open_circuit", "detector_removed", "earth_fault",
           "sounder_circuit_open")


def detector_silent(p: Planner) -> list[Injection]:
    """A detector stops reporting for good, with no last will (a dead battery, a theft)."""
    d = p.pick(SMOKE) or p.pick(DeviceKind.HEAT_DETECTOR)
    if d is None:
        return []
    t0 = p.when()
    p.sim.plan(d.id).silent.append((t0, math.inf))
    return [p.injection("detector_silent", Expect.SILENT, [d], t0, primary=d.id,
                        silent_from=p.iso(t0), interval_s=p.sim.interval)]


def panel_fault(p: Planner) -> list[Injection]:
    """The panel reports a fault on one loop point, cleared some minutes later."""
    panel = p.pick(PANEL)
    if panel is None:
        return []
    children = p.fleet.detectors_of(panel.id)
    src = children[p.rng.randrange(len(children))] if children else None
    component = p.rng.choice(_FAULTS)
    t0 = p.when()
    t1 = t0 + p.rng.uniform(300.0, 900.0)
    p.event(t0, panel.id, "fault", True, source=src, component=component)
    p.event(t1, panel.id, "fault", False, source=src, component=component)
    devices = [panel] + ([src] if src else [])
    return [p.injection("panel_fault", Expect.FAULT, devices, t0, t1, panel=panel.id,
                        component=component, zone=src.zone if src else 0,
                        point=src.point if src else 0, cleared_at=p.iso(t1))]


def panel_mains_fault(p: Planner) -> list[Injection]:
    """Mains supply lost: `mains_fault` event, heartbeats show mains_ok false and the standby
    battery voltage sagging; restored later."""
    panel = p.pick(PANEL)
    if panel is None:
        return []
    t0 = p.when()
    t1 = t0 + p.rng.uniform(600.0, 1800.0)
    p.sim.plan(panel.id).effects.append(SetAttr(t0, t1, attr="mains_ok", value=False))
    p.event(t0, panel.id, "mains_fault", True, component="mains_supply")
    p.event(t1, panel.id, "mains_fault", False, component="mains_supply")
    return [p.injection("panel_mains_fault", Expect.FAULT, [panel], t0, t1, panel=panel.id,
                        restored_at=p.iso(t1))]


def panel_offline(p: Planner) -> list[Injection]:
    """The panel loses its link: its last will (online false) arrives; the detectors under it
    report through it, so they fall silent too; sprinkler sensors (own link) carry on. The
    link returns later with a fresh birth. Run with a dedicated connection for the panel and
    the broker itself delivers the will."""
    panel = p.pick(PANEL)
    if panel is None:
        return []
    t0 = p.when()
    t1 = t0 + p.rng.uniform(600.0, 1200.0)
    p.sim.plan(panel.id).offline.append((t0, t1))
    children = p.fleet.detectors_of(panel.id)
    for c in children:
        p.sim.plan(c.id).silent.append((t0, t1))
    p.sim.dedicated.add(panel.id)
    return [p.injection("panel_offline", Expect.OFFLINE, [panel], t0, t1, panel=panel.id,
                        back_online_at=p.iso(t1)),
            p.injection("panel_offline", Expect.INHIBITED, children, t0, t1, panel=panel.id,
                        silent_until=p.iso(t1))]


def battery_depleting(p: Planner) -> list[Injection]:
    """A detector's lithium cell reaches end of life: slow then faster decline; the detector
    raises its own `battery_fault` at 2.6 V. Early warning should come well before. In an
    endless run (a demo) the cell fades linearly over three days (see DEMO_FADE_S)."""
    d = p.pick(SMOKE) or p.pick(DeviceKind.HEAT_DETECTOR)
    if d is None:
        return []
    t0 = p.when(0.05, 0.1)
    model = p.sim.model(d.id)
    v_now = model.battery_v0 - model.battery_decay_v_day * t0 / 86_400.0
    if p.endless:   # a demo: a cell already failing, flat within days (see DEMO_FADE_S)
        fade = BatteryFade(t0, t0 + DEMO_FADE_S, v_start=v_now, v_end=p.rng.uniform(2.4, 2.5),
                           power=1.0)
    else:
        fade = BatteryFade(t0, p.duration * 0.95, v_start=v_now, v_end=p.rng.uniform(2.4, 2.5))
    p.sim.plan(d.id).effects.append(fade)
    t_low = fade.crossing(LOW_BATTERY_V)
    p.event(t_low, d.id, "battery_fault", True, source=d, component="battery")
    return [p.injection("battery_depleting", Expect.MAINTENANCE, [d], t0, fade.t1, primary=d.id,
                        low_battery_v=LOW_BATTERY_V, battery_fault_at=p.iso(t_low),
                        v_start=round(fade.v_start, 3))]


def dirty_chamber(p: Planner) -> list[Injection]:
    """Dust in the optical chamber: the clean-air reading climbs steadily, eating the margin
    to the alarm threshold (a nuisance alarm waiting to happen)."""
    d = p.pick(SMOKE)
    if d is None:
        return []
    model = p.sim.model(d.id)
    assert isinstance(model, SmokeModel)
    t0 = p.when(0.05, 0.1)
    drift = p.rng.uniform(0.2, 0.35)   # %/m per day
    p.sim.plan(d.id).effects.append(SetAttr(t0, attr="baseline_drift_per_day", value=drift))
    half = model.alarm_pct_per_m / 2.0
    t_half = t0 + max(0.0, half - model.clean_air(t0)) / drift * 86_400.0
    return [p.injection("dirty_chamber", Expect.MAINTENANCE, [d], t0, primary=d.id,
                        drift_pct_per_m_per_day=round(drift, 3),
                        baseline_at_start=round(model.clean_air(t0), 3),
                        half_threshold_pct_per_m=round(half, 3),
                        half_threshold_at=p.iso(t_half))]


def duplicates_out_of_order(p: Planner) -> list[Injection]:
    """Some devices deliver a message twice (a QoS 1 resend) or a message after its
    successor. `details` lists the exact seqs: stored once, and a late one is not news."""
    field_devices = [d for d in p.fleet.devices if d.kind is not PANEL] or list(p.fleet.devices)
    count = max(1, len(field_devices) // 50)
    chosen = p.rng.sample(field_devices, min(count, len(field_devices)))
    span = p.span
    per_device = max(3, int(span / p.sim.interval))
    out: list[Injection] = []
    for d in sorted(chosen, key=lambda x: x.id):
        plan = p.sim.plan(d.id)
        first = 3                             # 1 = birth, 2 = reserved for the will
        last = first + per_device - 2
        seqs = list(range(first, max(first + 1, last)))
        dup = sorted(p.rng.sample(seqs, min(2, len(seqs))))
        rest = [s for s in seqs if s not in dup and s - 1 not in dup and s + 1 not in dup]
        late = sorted(p.rng.sample(rest, min(1, len(rest))))
        plan.duplicate_seqs.update(dup)
        plan.late_seqs.update(late)
        t0 = p.sim.phase(d)
        base = p.sim.seq_base   # the plan counts from 1, the messages from base + 1
        out.append(p.injection("duplicate", Expect.STORED_ONCE, [d], t0,
                               seqs=[s + base for s in dup]))
        if late:
            out.append(p.injection("out_of_order", Expect.STORED_OUT_OF_ORDER, [d], t0,
                                   seqs=[s + base for s in late], after_seq=late[0] + 1 + base))
    return out


def malformed(p: Planner) -> list[Injection]:
    """Every entry of the malformed catalogue once, from a device of the kind it needs, at a
    random moment of the run. Each injection's details give the expected reject reason, and
    `subscribed`: false for topics outside fire/v1/+/+, which the centre never receives."""
    out: list[Injection] = []
    span = p.span
    for broken in CATALOGUE:
        pool = [d for d in p.fleet.devices if broken.kind is None or d.kind is broken.kind]
        if not pool:
            continue
        d = pool[p.rng.randrange(len(pool))]
        t = float(round(span * p.rng.uniform(0.05, 0.95), 3))
        ts = p.at(t)
        topic, payload = broken.build(d, p.rng.randint(100, 100_000), ts)
        p.sim.extra.append((t, Outgoing(topic, payload, 1, False, d.id, None, ts,
                                        reject=broken.reason)))
        out.append(p.injection(f"malformed:{broken.name}", Expect.REJECT, [d], t,
                               name=broken.name, reason=broken.reason.value, topic=topic,
                               size=len(payload),
                               subscribed=topic_matches_sub(subscription(), topic)))
    return out
