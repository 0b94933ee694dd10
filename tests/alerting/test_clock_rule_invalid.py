"""Unreadable stamps in the engine (alerting/rules/clock.py), on a FakeClock: a fire whose
`ts` is garbage or missing is a fire at its receive time; its device gets a `clock` fault at
once (state `invalid`), which stays open while such stamps come and clears after a whole
window of right time; an unreadable stamp measures no offset."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.decision import Action, Decision
from alerting.device import DeviceInfo
from firetower.alarms import AlarmClass
from firetower.model import ClockState, MessageType
from firetower.protocol import decode

from .harness import PANEL, SMOKE, Harness, dt

WINDOW = 3600.0
_NO = object()  # no ts at all


def devices() -> list[DeviceInfo]:
    return [DeviceInfo("pnl-1", PANEL, "s1"), DeviceInfo("smk-1", SMOKE, "s1", "pnl-1", 3)]


def send(h: Harness, device: str, mtype: MessageType, ts: Any, seq: int | None = None,
         **body: Any) -> None:
    """Through the real decoder, received now."""
    kind = PANEL if device.startswith("pnl") else SMOKE
    if seq is None:
        h.seq += 1
        seq = h.seq
    m = decode(device, mtype, kind, json.dumps(
        {"seq": seq, **({} if ts is _NO else {"ts": ts}), **body}).encode(), dt(h.now))
    h.engine.on_message(m)


def fire(h: Harness, ts: Any, point: int, seq: int | None = None) -> None:
    send(h, "pnl-1", MessageType.EVENT, ts, seq, category="fire", active=True, zone=2,
         point=point)


def right_reading(h: Harness, ts: Any = None) -> None:
    send(h, "smk-1", MessageType.TELEMETRY,
         dt(h.now - 0.05).isoformat(timespec="milliseconds") if ts is None else ts,
         obscuration_pct_per_m=0.3, temperature_c=21.0)


def clock_decisions(h: Harness) -> list[Decision]:
    return [d for d in h.decisions if d.key.type == "clock"]


def fires(h: Harness) -> list[Decision]:
    return [d for d in h.raised() if d.alarm_class is AlarmClass.FIRE]


def test_a_fire_with_a_garbage_stamp_is_a_fire_now_and_the_clock_a_fault_at_once() -> None:
    h = Harness(devices())
    fire(h, "garbage", 1)
    (alarm,) = fires(h)
    assert alarm.key.type == "panel.fire" and alarm.at == h.now and alarm.device_ts == h.now
    (fault,) = clock_decisions(h)
    assert (fault.action, fault.alarm_class, fault.key.point, fault.at) == (
        Action.RAISE, AlarmClass.FAULT, "", h.now)
    assert fault.evidence["state"] == "invalid" and fault.evidence["offset_s"] is None
    assert fault.evidence["device_stamp"] == '"garbage"'
    assert fault.reason == 'device clock unreadable: ts "garbage" is not a time'
    h.advance(5)  # another fire, with no ts: a fire too, the fault raised once
    fire(h, _NO, 2)
    assert [d.key.point for d in fires(h)] == ["2/1", "2/2"]
    assert len(clock_decisions(h)) == 1


def test_a_missing_stamp_says_so() -> None:
    h = Harness(devices())
    fire(h, _NO, 1)
    (fault,) = clock_decisions(h)
    assert fault.evidence["device_stamp"] is None
    assert fault.reason == "device clock unreadable: no ts"


def test_a_long_unreadable_stamp_is_cut_in_the_fault() -> None:
    h = Harness(devices())
    fire(h, {"when": "x" * 500}, 1)
    (fault,) = clock_decisions(h)
    assert len(fault.evidence["device_stamp"]) == 64 and fault.evidence["device_stamp"][-1] == "…"


def test_a_counter_restarted_with_unreadable_stamps_still_raises_its_fires() -> None:
    """The same seq after a power cycle is not taken for a redelivery by the engine."""
    h = Harness(devices())
    fire(h, "garbage", 1, seq=4)
    h.advance(120)
    fire(h, _NO, 3, seq=4)
    assert [d.key.point for d in fires(h)] == ["2/1", "2/3"]


def test_an_unreadable_stamp_between_right_ones_raises_the_fault_at_once() -> None:
    """A clock 5 s ahead (within the limit) sets the window's smallest offset to -5 s; an
    unreadable stamp then (taken at its receive time: offset 0, no new smallest) is still
    seen by the clock rule."""
    h = Harness(devices())
    for _ in range(3):
        right_reading(h, dt(h.now + 5).isoformat(timespec="milliseconds"))
        h.advance(60)
    assert clock_decisions(h) == []
    right_reading(h, "yesterday")
    (fault,) = clock_decisions(h)
    assert fault.at == h.now and fault.evidence["state"] == "invalid"


def test_the_fault_stays_while_stamps_are_unreadable_and_clears_after_a_right_window() -> None:
    h = Harness(devices())
    t0 = h.now
    for i in range(int(2 * WINDOW / 60)):  # two hours, one reading in ten unreadable
        right_reading(h, "2026-02-30T10:00:00+08:00" if i % 10 == 0 else None)
        h.advance(60)
    assert [(d.action, d.at) for d in clock_decisions(h)] == [(Action.RAISE, t0)]
    h.decisions.clear()
    for _ in range(int(2 * WINDOW / 60) + 2):  # the firmware is fixed
        right_reading(h)
        h.advance(60)
    (clear,) = clock_decisions(h)
    assert clear.action is Action.CLEAR
    assert clear.evidence["offset_s"] < 1  # measured from the right stamps only


@settings(max_examples=60, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=50), st.floats(0.01, 30))
def test_an_unreadable_stamp_never_counts_as_a_measured_offset(unreadable: list[bool],
                                                              behind_s: float) -> None:
    """Readings a minute apart (within the first window) from a clock `behind_s` behind, some
    with unreadable stamps: the window's smallest offset is that of the readable ones (an
    unreadable one, taken at its receive time, would read as a perfect clock), and the fault
    is raised exactly when an unreadable stamp came."""
    h = Harness(devices())
    for bad in unreadable:
        send(h, "smk-1", MessageType.TELEMETRY,
             _NO if bad else dt(h.now - behind_s).isoformat(timespec="microseconds"),
             obscuration_pct_per_m=0.3, temperature_c=21.0)
        h.advance(60)
    low = h.engine.devices["smk-1"].clock.low
    if all(unreadable):
        assert low == float("inf")
    else:
        assert abs(low - behind_s) < 1e-3
    raised = [d.evidence["state"] for d in clock_decisions(h) if d.action is Action.RAISE]
    assert raised == ([ClockState.INVALID.value] if any(unreadable) else [])
