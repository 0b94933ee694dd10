"""Property: two smoke detectors of one zone that both reach alarm confirm the zone within
`for_s` plus the network delay of the second one reaching alarm, whatever order their readings
are processed in and however their clocks disagree; a lone detector's verification is 60 s.

Each detector reports every 1-5 s with its own clock (up to two hours off the centre's); each
message takes 0-3 s to arrive (the two devices' messages interleave in any order, each device's
stay in order, as on one MQTT session); from its onset a detector reads above the alarm level
and stays there. Smoke alone (no heat, no CO), so only the zone can confirm."""

from __future__ import annotations

import random
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.config import Override
from alerting.decision import Action, Decision
from alerting.device import DeviceInfo
from firetower.alarms import AlarmClass
from firetower.model import Telemetry

from .harness import PANEL, SMOKE, Harness, dt

FOR_S = 10.0  # the confirmed hold (alerting/config.py SmokeParams.for_s)
VERIFY_S = 60.0  # a lone detector's alarm verification (SmokeParams.unconfirmed_for_s)
MAX_DELAY = 3.0
BOUND = FOR_S + MAX_DELAY + 1e-6  # confirmation after the second detector's alarm arrives
QUIET = [Override("kind", k, "supervision", {"heartbeat_s": 1e9})
         for k in ("smoke_detector", "alarm_panel")]
IDS = ("s1", "s2")


@dataclass(frozen=True)
class Detector:
    every: float  # report interval, s
    phase: float  # first report after the start, s
    offset: float  # centre time minus device time, s
    onset: float  # above the alarm level from this long after the start, s


detectors = st.builds(Detector, st.floats(1.0, 5.0), st.floats(0.0, 1.0),
                      st.floats(-7200.0, 7200.0), st.floats(0.0, 150.0))


def run(a: Detector, b: Detector, rnd: random.Random
        ) -> tuple[list[tuple[float, Decision]], dict[str, float]]:
    h = Harness([DeviceInfo("s1", SMOKE, "site", "p1", 3, "room 301"),
                 DeviceInfo("s2", SMOKE, "site", "p1", 3, "room 302"),
                 DeviceInfo("p1", PANEL, "site")], QUIET)
    log: list[tuple[float, Decision]] = []
    h.engine.sink = lambda d: log.append((h.clock.now(), d))
    start = h.now + 60.0  # a minute of clean air first
    end = start + max(a.onset, b.onset) + 5.0 + MAX_DELAY + BOUND + 5.0
    msgs: list[tuple[float, float, int, str, float, float]] = []
    for dev, det in zip(IDS, (a, b), strict=True):
        m, arrived, seq = h.now + det.phase, h.now, 0
        while m < end:
            seq += 1
            arrived = max(arrived + 1e-3, m + rnd.uniform(0.0, MAX_DELAY))  # in order
            level = 8.0 if m >= start + det.onset else 0.2
            msgs.append((arrived, rnd.random(), seq, dev, m - det.offset, level))
            m += det.every
    msgs.sort()
    first_alarm: dict[str, float] = {}
    for arrived, _, seq, dev, ts, level in msgs:
        if arrived > h.now:
            h.advance(arrived - h.now)
        if level > 1.0:
            first_alarm.setdefault(dev, arrived)
        h.engine.on_message(Telemetry(dev, seq, dt(ts), dt(arrived), obscuration_pct_per_m=level,
                                      temperature_c=21.0, co_ppm=0.0))
    h.advance(end - h.now)
    return log, first_alarm


@settings(max_examples=150, deadline=None)
@given(detectors, detectors, st.randoms(use_true_random=False))
def test_two_detectors_in_alarm_confirm_the_zone_within_seconds(
        a: Detector, b: Detector, rnd: random.Random) -> None:
    log, first_alarm = run(a, b, rnd)
    t2 = max(first_alarm.values())  # the second detector's alarm reached the centre
    fire = [(t, d) for t, d in log if d.alarm_class is AlarmClass.FIRE]
    raised = {d.key.device_id: t for t, d in reversed(fire) if d.action is Action.RAISE}
    assert set(raised) == set(IDS)
    assert all(t <= t2 + BOUND for t in raised.values()), (raised, t2)
    confirmed = [t for t, d in fire if d.evidence.get("coincidence")]
    assert confirmed and min(confirmed) <= t2 + BOUND, (confirmed, t2)
    assert min(confirmed) >= t2  # never before both are in alarm
    assert len([d for _, d in fire if d.action is Action.RAISE]) == 2  # each raised once
    for dev, t in raised.items():  # raised alone: only once its verification ran out
        if t < t2:
            assert first_alarm[dev] + VERIFY_S - MAX_DELAY <= t, (dev, t, first_alarm)
            assert t <= first_alarm[dev] + VERIFY_S + MAX_DELAY + 1e-6, (dev, t, first_alarm)
