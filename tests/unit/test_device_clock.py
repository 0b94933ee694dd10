"""Device clocks: which stamps are believed, and that a message is never refused for its stamp
(firetower/device_clock.py, firetower/protocol.py)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firetower.device_clock import (
    AHEAD_TOLERANCE,
    BEHIND_LIMIT,
    EPOCH_FLOOR,
    classify,
    describe_offset,
    stamp,
)
from firetower.model import ClockState, DeviceKind, Event, MessageType, Status, Telemetry
from firetower.protocol import ProtocolError, decode, decode_telemetry_fast

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
YEAR = timedelta(days=365)
S = timedelta(seconds=1)


@pytest.mark.parametrize(("ts", "status", "state"), [
    (NOW, False, ClockState.OK),
    (NOW - timedelta(milliseconds=40), False, ClockState.OK),  # the usual transit
    (NOW + AHEAD_TOLERANCE, False, ClockState.OK),  # the tolerance itself is believed
    (NOW + AHEAD_TOLERANCE + S, False, ClockState.AHEAD),
    (NOW + YEAR, False, ClockState.AHEAD),
    (NOW - timedelta(days=14, hours=1), False, ClockState.OK),  # a broker backlog
    (NOW - BEHIND_LIMIT, False, ClockState.OK),
    (NOW - BEHIND_LIMIT - S, False, ClockState.BEHIND),
    (NOW - YEAR, False, ClockState.BEHIND),
    (NOW - YEAR, True, ClockState.OK),  # a retained birth message: the connect time
    (NOW + YEAR, True, ClockState.AHEAD),
    (datetime(1970, 1, 1, tzinfo=UTC), False, ClockState.RESET),
    (datetime(1970, 1, 1, tzinfo=UTC), True, ClockState.RESET),
    (EPOCH_FLOOR - timedelta(microseconds=1), False, ClockState.RESET),
    (EPOCH_FLOOR, False, ClockState.BEHIND),  # 2000 is a real instant, but 26 years old
], ids=["now", "transit", "tolerance", "just-ahead", "year-ahead", "backlog-14d", "limit",
        "just-behind", "year-behind", "status-year-behind", "status-ahead", "1970",
        "status-1970", "before-2000", "2000"])
def test_classify(ts: datetime, status: bool, state: ClockState) -> None:
    assert classify(ts, NOW, status=status) is state


_instants = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                         timezones=st.just(UTC))
_received = st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2100, 1, 1),
                         timezones=st.just(UTC))


@given(_instants, _received, st.booleans())
def test_classification_is_total_and_exclusive(ts: datetime, rx: datetime, status: bool) -> None:
    """Every stamp gets exactly one state, and the state says where the stamp lies."""
    state = classify(ts, rx, status=status)
    assert (state is ClockState.RESET) == (ts < EPOCH_FLOOR)
    if state is ClockState.OK:
        assert EPOCH_FLOOR <= ts <= rx + AHEAD_TOLERANCE
        assert status or ts >= rx - BEHIND_LIMIT
    elif state is ClockState.AHEAD:
        assert ts > rx + AHEAD_TOLERANCE
    elif state is ClockState.BEHIND:
        assert not status and ts < rx - BEHIND_LIMIT


@given(_instants, _received, st.booleans())
def test_a_stamp_not_believed_is_replaced_by_the_receive_time(ts: datetime, rx: datetime,
                                                               status: bool) -> None:
    stored, device_ts, clock = stamp(ts, rx, status=status)
    if clock is None:
        assert (stored, device_ts) == (ts, None)
        assert classify(ts, rx, status=status) is ClockState.OK
    else:
        assert stored == rx and device_ts == ts and clock is classify(ts, rx, status=status)
        assert clock is not ClockState.OK


@given(_instants, _received, _received)
def test_stamping_is_monotonic_in_the_receive_time(ts: datetime, rx1: datetime,
                                                   rx2: datetime) -> None:
    """The later a message arrives, the less its stamp can be ahead: a stamp believed once is
    not called `ahead` later; and one called `behind` stays `behind`."""
    early, late = sorted((rx1, rx2))
    a, b = classify(ts, early), classify(ts, late)
    if a is ClockState.OK:
        assert b in (ClockState.OK, ClockState.BEHIND)
    if a is ClockState.BEHIND:
        assert b is ClockState.BEHIND
    if a is ClockState.RESET:
        assert b is ClockState.RESET


@given(_instants)
def test_a_stamp_is_the_same_on_every_delivery(ts: datetime) -> None:
    """The device stamp kept for a replaced stamp is the same however often the message comes
    (the writer de-duplicates re-stamped rows on it)."""
    first = stamp(ts, NOW)
    again = stamp(ts, NOW + timedelta(hours=5))
    if first[2] is not None and again[2] is not None:
        assert first[1] == again[1]


def test_stamps_that_overflow_a_conversion_are_kept_at_the_nearest_instant() -> None:
    early = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))
    late = datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-2)))
    assert stamp(early, NOW)[1:] == (datetime.min.replace(tzinfo=UTC), ClockState.RESET)
    assert stamp(late, NOW)[1:] == (datetime.max.replace(tzinfo=UTC), ClockState.AHEAD)


@pytest.mark.parametrize(("offset", "text"), [
    (-365 * 86_400.0, "365.0 days ahead"), (150.0, "2.5 min behind"), (0.25, "0.2 s behind"),
    (-7_200.0, "2.0 h ahead"), (1_795_000_000.0, "20775.5 days behind")])
def test_describe_offset(offset: float, text: str) -> None:
    assert describe_offset(offset) == text


# -- the decoder: accepted, re-stamped, marked ------------------------------------------------

SMOKE = {"obscuration_pct_per_m": 0.8, "temperature_c": 22.5}


def _payload(ts: str, **body: object) -> bytes:
    return json.dumps({"seq": 9, "ts": ts, **body}).encode()


WRONG = [("2027-11-28T12:00:00Z", ClockState.AHEAD), ("1970-01-01T00:00:05Z", ClockState.RESET),
         ("2025-11-28T12:00:00+08:00", ClockState.BEHIND)]


@pytest.mark.parametrize(("ts", "state"), WRONG, ids=[s.value for _, s in WRONG])
def test_every_message_type_with_a_wrong_clock_is_accepted(ts: str, state: ClockState) -> None:
    device = datetime.fromisoformat(ts)
    tel = decode("d", MessageType.TELEMETRY, DeviceKind.SMOKE_DETECTOR,
                 _payload(ts, **SMOKE), NOW)
    fire = decode("p", MessageType.EVENT, DeviceKind.ALARM_PANEL,
                  _payload(ts, category="fire", active=True, zone=3, point=1), NOW)
    assert type(tel) is Telemetry and type(fire) is Event
    for m in (tel, fire):
        assert (m.ts, m.received_at, m.device_ts, m.clock) == (NOW, NOW, device, state)
    status = decode("p", MessageType.STATUS, DeviceKind.ALARM_PANEL, _payload(ts, online=True),
                    NOW)
    assert type(status) is Status
    if state is ClockState.BEHIND:  # a birth message may be old: its stamp is kept
        assert (status.ts, status.device_ts, status.clock) == (device, None, None)
    else:
        assert (status.ts, status.device_ts, status.clock) == (NOW, device, state)


def test_a_believed_stamp_leaves_the_marks_empty() -> None:
    ts = "2026-11-28T19:59:30.250+08:00"
    for m in (decode("d", MessageType.TELEMETRY, DeviceKind.SMOKE_DETECTOR,
                     _payload(ts, **SMOKE), NOW),
              decode("p", MessageType.EVENT, DeviceKind.ALARM_PANEL,
                     _payload(ts, category="fire", active=True), NOW)):
        assert m.ts == datetime.fromisoformat(ts) and m.device_ts is None and m.clock is None


@given(_instants.filter(lambda t: t.year >= 1000))
def test_the_fast_path_hands_over_every_stamp_it_does_not_believe(ts: datetime) -> None:
    text = ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    payload = _payload(text, **SMOKE)
    fast = decode_telemetry_fast("d", DeviceKind.SMOKE_DETECTOR, payload, NOW)
    full = decode("d", MessageType.TELEMETRY, DeviceKind.SMOKE_DETECTOR, payload, NOW)
    assert isinstance(full, Telemetry)
    if classify(full.device_ts or full.ts, NOW) is ClockState.OK:
        assert full.clock is None and (fast is None or fast == full)
    else:
        assert fast is None and full.ts == NOW and full.clock is not None


# -- a stamp that is no time: accepted at the receive time, clock `invalid` -------------------

FIRE = {"category": "fire", "active": True, "zone": 3, "point": 1}
_NO = object()  # no ts at all
UNREADABLE = [_NO, None, "garbage", "", "2026-11-28T12:00:00", "2026-02-30T10:00:00+08:00",
              "0000-01-01T00:00:00Z", "2026-11-28T10:00:00.000+25:00", "2026-13-28T12:00:00Z",
              "2026-11-28", 1764331200, 1764331200.5, True, [2026, 11, 28], {"t": 1}]


def _body(ts: object, **body: object) -> bytes:
    return json.dumps({"seq": 9, **({} if ts is _NO else {"ts": ts}), **body}).encode()


@pytest.mark.parametrize("ts", UNREADABLE, ids=[repr(t)[:24] for t in UNREADABLE])
def test_every_message_type_with_an_unreadable_stamp_is_accepted(ts: object) -> None:
    tel = decode("d", MessageType.TELEMETRY, DeviceKind.SMOKE_DETECTOR, _body(ts, **SMOKE), NOW)
    fire = decode("p", MessageType.EVENT, DeviceKind.ALARM_PANEL, _body(ts, **FIRE), NOW)
    status = decode("p", MessageType.STATUS, DeviceKind.ALARM_PANEL, _body(ts, online=True), NOW)
    assert type(tel) is Telemetry and type(fire) is Event and type(status) is Status
    assert fire.category == "fire" and fire.active and (fire.zone, fire.point) == (3, 1)
    for m in (tel, fire, status):
        assert (m.ts, m.received_at, m.device_ts, m.clock) == (NOW, NOW, None,
                                                               ClockState.INVALID)
        assert m.extra == (None if ts is _NO else {"ts": ts})  # what was sent, kept


def test_an_unreadable_stamp_keeps_the_other_unknown_fields() -> None:
    m = decode("p", MessageType.EVENT, DeviceKind.ALARM_PANEL,
               _body("soon", fw="1.2", **FIRE), NOW)
    assert m.extra == {"fw": "1.2", "ts": "soon"} and m.clock is ClockState.INVALID


@pytest.mark.parametrize(("body", "reason"), [
    ({"seq": "9", "ts": "garbage", **FIRE}, "wrong_type"),
    ({"seq": 9, "ts": "garbage", **FIRE, "active": "yes"}, "wrong_type"),
    ({"seq": 9, "ts": "garbage", **FIRE, "zone": 70_000}, "out_of_range"),
    ({"seq": 9, "ts": "garbage", **FIRE, "category": "smoke"}, "bad_value"),
    ({"seq": 9, "ts": "garbage", "active": True}, "missing_field"),
], ids=["seq", "active", "zone", "category", "no-category"])
def test_an_unreadable_stamp_does_not_excuse_anything_else(body: dict, reason: str) -> None:
    with pytest.raises(ProtocolError) as info:
        decode("p", MessageType.EVENT, DeviceKind.ALARM_PANEL, json.dumps(body).encode(), NOW)
    assert info.value.reason == reason


_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1),
              st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=40)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=6)
# near-misses of RFC 3339 as well as arbitrary JSON: every field of a real stamp perturbed
_near = st.builds(
    "{:04d}-{:02d}-{:02d}{}{:02d}:{:02d}:{:02d}{}{}".format,
    st.integers(0, 9999), st.integers(0, 13), st.integers(0, 32), st.sampled_from("Tt x"),
    st.integers(0, 25), st.integers(0, 61), st.integers(0, 61),
    st.sampled_from(["", ".5", ".123", ".1234567891"]),
    st.sampled_from(["", "Z", "z", "+00:00", "+08:00", "-23:59", "+24:00", "+25:00", "+0800",
                     "-00:60"]))


@given(st.one_of(_json, _near, st.just(_NO)), _received)
def test_a_fire_event_is_never_refused_for_its_stamp(ts: object, rx: datetime) -> None:
    """Whatever `ts` holds (or if it is missing), a well-formed fire event is accepted; its
    `ts` is the stamp only when the stamp is a believed time, and the receive time otherwise;
    `invalid` exactly when the stamp is not a time at all."""
    m = decode("p", MessageType.EVENT, DeviceKind.ALARM_PANEL, _body(ts, **FIRE), rx)
    assert type(m) is Event and m.category == "fire" and m.active
    named = _reading(ts) if isinstance(ts, str) else None
    if named is None:
        assert (m.ts, m.device_ts, m.clock) == (rx, None, ClockState.INVALID)
        assert m.extra == (None if ts is _NO else {"ts": ts})
    elif m.clock is None:
        assert (m.ts, m.device_ts, m.extra) == (named, None, None)
    else:
        assert m.clock is not ClockState.INVALID and m.ts == rx and m.device_ts is not None


def _reading(text: str) -> datetime | None:
    """An independent reading of RFC 3339 with an offset (the decoder's is hand-optimised):
    the instant, or None when the text names none."""
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})",
                        text):
        return None
    try:  # datetime keeps microseconds: longer fractions are cut, as the protocol says
        return datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", text.upper().replace(" ", "T")))
    except ValueError:
        return None
