"""Device clock supervision in the engine (alerting/rules/clock.py), on a FakeClock: a fire from
a wrong clock is still a fire at its receive time; a wrong clock raises a `clock` fault (at
once when it is ahead or reset, after a window when it is behind) and clears after a window of
right time; late deliveries are not a wrong clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.config import Override
from alerting.decision import Action, Decision
from alerting.device import DeviceInfo
from firetower.alarms import AlarmClass
from firetower.device_clock import stamp
from firetower.model import MessageType, Status, Telemetry
from firetower.protocol import decode

from .harness import PANEL, SMOKE, Harness, dt

YEAR = 365 * 86_400.0
WINDOW = 3600.0


def devices() -> list[DeviceInfo]:
    return [DeviceInfo("pnl-1", PANEL, "s1"), DeviceInfo("smk-1", SMOKE, "s1", "pnl-1", 3)]


def send(h: Harness, device: str, mtype: MessageType, ts: str, **body: object) -> None:
    """Through the real decoder, received now (so the stamp is judged as the ingester would)."""
    kind = PANEL if device.startswith("pnl") else SMOKE
    h.seq += 1
    m = decode(device, mtype, kind, json.dumps({"seq": h.seq, "ts": ts, **body}).encode(),
               dt(h.now))
    h.engine.on_message(m)


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")


def reading(h: Harness, device: str, error_s: float, delay_s: float = 0.0) -> None:
    """A smoke reading measured `delay_s` ago by a clock `error_s` ahead (negative: behind)."""
    h.seq += 1
    ts, device_ts, clock = stamp(dt(h.now - delay_s + error_s), dt(h.now))
    h.engine.on_message(Telemetry(device, h.seq, ts, dt(h.now), 0.4, 21.0,
                                  device_ts=device_ts, clock=clock))


def clock_decisions(h: Harness) -> list[Decision]:
    return [d for d in h.decisions if d.key.type == "clock"]


def test_a_fire_stamped_a_year_ahead_is_a_fire_now_and_the_clock_a_fault() -> None:
    h = Harness(devices())
    send(h, "pnl-1", MessageType.EVENT, iso(h.now + YEAR), category="fire", active=True,
         zone=3, point=1)
    fire = [d for d in h.raised() if d.alarm_class is AlarmClass.FIRE]
    assert len(fire) == 1 and fire[0].key.type == "panel.fire"
    assert fire[0].at == h.now and fire[0].device_ts == h.now  # the receive time, not 2027
    (fault,) = clock_decisions(h)
    assert (fault.action, fault.alarm_class, fault.key.point) == (Action.RAISE, AlarmClass.FAULT,
                                                                  "")
    assert fault.at == h.now and fault.evidence["state"] == "ahead"
    assert fault.reason == "device clock 365.0 days ahead (limit 60 s)"
    # the next fire event of the same clock is a fire too; the fault is raised once
    h.advance(5)
    send(h, "pnl-1", MessageType.EVENT, iso(h.now + YEAR), category="fire", active=True,
         zone=3, point=2)
    assert len([d for d in h.raised() if d.alarm_class is AlarmClass.FIRE]) == 2
    assert len(clock_decisions(h)) == 1


def test_a_fire_from_a_clock_reset_to_1970_is_a_fire_and_a_reset_fault() -> None:
    h = Harness(devices())
    send(h, "pnl-1", MessageType.EVENT, "1970-01-01T00:03:10Z", category="fire", active=True,
         zone=1, point=7)
    fire = [d for d in h.raised() if d.alarm_class is AlarmClass.FIRE]
    assert len(fire) == 1 and fire[0].at == h.now
    (fault,) = clock_decisions(h)
    assert fault.evidence["state"] == "reset"
    assert fault.evidence["device_stamp"] == "1970-01-01T00:03:10+00:00"
    assert fault.reason.startswith("device clock reset: it stamps 1970-01-01T00:03:10+00:00")


def test_a_clock_behind_is_a_fault_after_one_window_and_clears_after_a_right_one() -> None:
    h = Harness(devices())
    for _ in range(int(WINDOW / 60)):  # three days behind: stamps believed, offset large
        reading(h, "smk-1", -3 * 86_400)
        h.advance(60)
    assert clock_decisions(h) == []
    reading(h, "smk-1", -3 * 86_400)  # the window ends with this reading
    (fault,) = clock_decisions(h)
    assert fault.action is Action.RAISE and fault.evidence["state"] == "behind"
    assert fault.reason == "device clock 3.0 days behind (limit 60 s)"
    h.decisions.clear()
    for _ in range(int(2 * WINDOW / 60) + 1):  # the clock is set right
        reading(h, "smk-1", 0.0, delay_s=0.05)
        h.advance(60)
    (clear,) = clock_decisions(h)  # after the first whole window of right time
    assert clear.action is Action.CLEAR and clear.at == fault.at + WINDOW


def test_a_backlog_is_not_a_wrong_clock() -> None:
    """Readings measured two hours ago arrive for twenty minutes (the broker drains a
    backlog), then the live ones: the smallest offset of the window is the clock's."""
    h = Harness(devices())
    for _ in range(20 * 60):
        reading(h, "smk-1", 0.0, delay_s=7200)
        h.advance(1)
    for _ in range(int(3 * WINDOW / 60)):
        reading(h, "smk-1", 0.0, delay_s=0.2)
        h.advance(60)
    assert clock_decisions(h) == []


def test_a_stale_retained_birth_message_is_not_a_wrong_clock() -> None:
    h = Harness(devices())
    for _ in range(int(2 * WINDOW / 60) + 2):
        h.seq += 1
        h.engine.on_message(Status("pnl-1", h.seq, dt(h.now - 40 * 86_400), dt(h.now), True))
        h.advance(60)
    assert clock_decisions(h) == []


def test_the_limit_is_a_rule_parameter() -> None:
    h = Harness(devices(), [Override("device", "smk-1", "clock", {"limit_s": 600})])
    reading(h, "smk-1", 300.0)  # five minutes ahead: re-stamped and marked, no fault yet
    assert clock_decisions(h) == []
    reading(h, "smk-1", 900.0)
    assert [d.evidence["state"] for d in clock_decisions(h)] == ["ahead"]


@settings(max_examples=80, deadline=None)
@given(error=st.floats(-2 * 86_400, 2 * 86_400),
       late=st.lists(st.floats(61, 3 * 3600), min_size=130, max_size=130),
       phase=st.integers(0, 29))
def test_the_fault_follows_the_clock_whatever_the_deliveries(error: float, late: list[float],
                                                           phase: int) -> None:
    """A reading a minute for over two hours from a clock `error` s ahead (negative: behind);
    all are delivered more than a minute late, up to three hours, except one in thirty (so
    every window has an on-time reading). A clock within the limit never gets a fault; one
    beyond it always does: ahead, on its first on-time reading; behind, at the end of the first
    window."""
    h = Harness(devices())
    t0 = h.now
    for i, delay in enumerate(late):
        reading(h, "smk-1", error, delay_s=0.0 if i % 30 == phase else delay)
        h.advance(60)
    raised = [d for d in clock_decisions(h) if d.action is Action.RAISE]
    if abs(error) <= 60:
        assert raised == [], raised[0].reason
    else:
        assert len(raised) == 1, [d.reason for d in raised]
        if error > 0:
            assert raised[0].evidence["state"] == "ahead"
            assert raised[0].at <= t0 + 60 * phase
        else:
            assert raised[0].evidence["state"] == "behind"
            assert raised[0].at == t0 + WINDOW
    assert [d.action for d in clock_decisions(h)] == [Action.RAISE] * len(raised)


def test_no_fault_for_a_right_clock_and_only_the_clock_rule_sees_the_stamp() -> None:
    h = Harness(devices())
    h.feed("smk-1", 2 * WINDOW, 30, obscuration_pct_per_m=0.3, temperature_c=21.0)
    assert clock_decisions(h) == []
    assert timedelta(seconds=h.engine.devices["smk-1"].skew) < timedelta(seconds=1)


def test_a_panel_reset_to_1970_with_its_counter_restarted_still_raises_its_fires() -> None:
    """A power cycle resets the clock and the counter: the next fire has a seq the engine has
    seen before. With a wrong clock a seq alone does not mark a redelivery."""
    h = Harness(devices())
    for zone in (1, 2):  # before and after the power cycle: the same seq
        h.engine.on_message(decode("pnl-1", MessageType.EVENT, PANEL, json.dumps(
            {"seq": 4, "ts": "1970-01-01T00:00:09Z", "category": "fire", "active": True,
             "zone": zone, "point": 1}).encode(), dt(h.now)))
        h.advance(120)
    fires = [d.key.point for d in h.raised() if d.alarm_class is AlarmClass.FIRE]
    assert fires == ["1/1", "2/1"]
