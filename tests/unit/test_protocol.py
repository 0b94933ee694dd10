"""Protocol v1 decoder: table of good and bad messages, and agreement with the JSON Schemas."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firetower.model import DeviceKind, Event, MessageType, RejectReason, Status, Telemetry
from firetower.protocol import (
    MAX_PAYLOAD_BYTES,
    TELEMETRY_FIELDS,
    NumberField,
    ProtocolError,
    decode,
    decode_telemetry,
    decode_telemetry_fast,
    encode,
    parse_json_object,
    parse_topic,
)

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
TS = "2026-11-28T11:59:59.250+08:00"
SCHEMAS = Path(__file__).resolve().parents[2] / "firetower" / "schemas"


def schema_for(mtype: MessageType, kind: DeviceKind) -> dict[str, Any]:
    name = f"telemetry.{kind.value}" if mtype is MessageType.TELEMETRY else mtype.value
    return json.loads((SCHEMAS / f"{name}.json").read_text())


def raw(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def reason_of(mtype: MessageType, kind: DeviceKind, payload: bytes) -> RejectReason | None:
    try:
        decode("dev-1", mtype, kind, payload, NOW)
    except ProtocolError as exc:
        return exc.reason
    return None


SMOKE = {"seq": 5, "ts": TS, "obscuration_pct_per_m": 0.8, "temperature_c": 22.5}


def test_smoke_telemetry_decodes_and_keeps_unknown_fields() -> None:
    msg = decode("dev-1", MessageType.TELEMETRY, DeviceKind.SMOKE_DETECTOR,
                 raw({**SMOKE, "co_ppm": 3, "rssi_dbm": -70}), NOW)
    assert isinstance(msg, Telemetry)
    assert (msg.seq, msg.obscuration_pct_per_m, msg.temperature_c, msg.co_ppm) == (5, 0.8, 22.5, 3.0)
    assert msg.ts == datetime(2026, 11, 28, 3, 59, 59, 250000, tzinfo=UTC)
    assert msg.received_at == NOW
    assert msg.extra == {"rssi_dbm": -70}


def test_event_and_status_decode() -> None:
    ev = decode("p-1", MessageType.EVENT, DeviceKind.ALARM_PANEL, raw(
        {"seq": 1, "ts": TS, "category": "fire", "active": True, "zone": 2, "point": 17,
         "component": "manual_call_point", "location": "B1 car park"}), NOW)
    assert isinstance(ev, Event) and ev.category == "fire" and ev.point == 17 and ev.extra is None
    st_ = decode("p-1", MessageType.STATUS, DeviceKind.ALARM_PANEL,
                 raw({"seq": 2, "ts": TS, "online": False, "fw": "1.2"}), NOW)
    assert isinstance(st_, Status) and st_.online is False and st_.extra == {"fw": "1.2"}


@pytest.mark.parametrize(
    ("kind", "mtype", "payload", "reason"),
    [
        (DeviceKind.SMOKE_DETECTOR, MessageType.TELEMETRY, b"{nope", RejectReason.BAD_JSON),
        (DeviceKind.SMOKE_DETECTOR, MessageType.TELEMETRY, b"[1, 2]", RejectReason.NOT_OBJECT),
        (DeviceKind.SMOKE_DETECTOR, MessageType.TELEMETRY, b"", RejectReason.BAD_JSON),
        (DeviceKind.SMOKE_DETECTOR, MessageType.TELEMETRY,
         raw({**SMOKE, "pad": "x" * MAX_PAYLOAD_BYTES}), RejectReason.OVERSIZED),
        (DeviceKind.SMOKE_DETECTOR, MessageType.TELEMETRY,
         raw({k: v for k, v in SMOKE.items() if k != "seq"}), RejectReason.MISSING_FIELD),
        (DeviceKind.SMOKE_DETECTOR, MessageType.TELEMETRY, raw({**SMOKE, "seq": "5"}),
         RejectReason.WRONG_TYPE),
        (DeviceKind.SMOKE_DETECTOR, MessageType.TELEMETRY, raw({**SMOKE, "seq": -1}),
         RejectReason.OUT_OF_RANGE),
        (DeviceKind.SMOKE_DETECTOR, MessageType.TELEMETRY, raw({**SMOKE, "temperature_c": "hot"}),
         RejectReason.WRONG_TYPE),
        (DeviceKind.SMOKE_DETECTOR, MessageType.TELEMETRY,
         raw(SMOKE).replace(b"22.5", b"1e999"), RejectReason.NOT_FINITE),
        (DeviceKind.SMOKE_DETECTOR, MessageType.TELEMETRY, raw(SMOKE).replace(b"22.5", b"NaN"),
         RejectReason.NOT_FINITE),
        (DeviceKind.SMOKE_DETECTOR, MessageType.TELEMETRY,
         raw({**SMOKE, "obscuration_pct_per_m": 250}), RejectReason.OUT_OF_RANGE),
        # a stamp that is no time is accepted (tests/unit/test_device_clock.py), and excuses
        # nothing else
        (DeviceKind.SMOKE_DETECTOR, MessageType.TELEMETRY,
         raw({**SMOKE, "ts": "2026-11-28T12:00:00", "temperature_c": "hot"}),
         RejectReason.WRONG_TYPE),
        (DeviceKind.SMOKE_DETECTOR, MessageType.TELEMETRY,
         raw({**SMOKE, "ts": 1764331200, "seq": 2**63}), RejectReason.OUT_OF_RANGE),
        (DeviceKind.SMOKE_DETECTOR, MessageType.TELEMETRY, b"null", RejectReason.NOT_OBJECT),
        (DeviceKind.SMOKE_DETECTOR, MessageType.TELEMETRY, raw({**SMOKE, "battery_v": None}),
         RejectReason.WRONG_TYPE),
        (DeviceKind.ALARM_PANEL, MessageType.TELEMETRY,
         raw({"seq": 1, "ts": TS, "mains_ok": 1, "battery_ok": True}), RejectReason.WRONG_TYPE),
        (DeviceKind.SPRINKLER_PRESSURE, MessageType.TELEMETRY, raw({"seq": 1, "ts": TS}),
         RejectReason.MISSING_FIELD),
        (DeviceKind.ALARM_PANEL, MessageType.EVENT,
         raw({"seq": 1, "ts": TS, "category": "smoke", "active": True}), RejectReason.BAD_VALUE),
        (DeviceKind.ALARM_PANEL, MessageType.EVENT,
         raw({"seq": 1, "ts": TS, "category": "fire", "active": True, "zone": 70000}),
         RejectReason.OUT_OF_RANGE),
        (DeviceKind.ALARM_PANEL, MessageType.EVENT,
         raw({"seq": 1, "ts": TS, "category": "fire", "active": True, "component": "Bad Name"}),
         RejectReason.BAD_VALUE),
        (DeviceKind.ALARM_PANEL, MessageType.STATUS, raw({"seq": 1, "ts": TS}),
         RejectReason.MISSING_FIELD),
    ],
)
def test_bad_payloads_are_refused_with_a_reason(kind, mtype, payload, reason) -> None:
    assert reason_of(mtype, kind, payload) == reason


@pytest.mark.parametrize(
    "topic",
    ["fire/v2/dev-1/telemetry", "fire/v1/dev 1/telemetry", "fire/v1/" + "a" * 65 + "/event",
     "fire/v1/dev-1/alarm", "fire/v1/dev-1/telemetry/x", "other/v1/dev-1/status", "fire/v1//event"],
)
def test_bad_topics(topic: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_topic(topic)
    assert info.value.reason == RejectReason.BAD_TOPIC


def test_good_topic() -> None:
    assert parse_topic("fire/v1/Bldg_7.smk-0012/status") == ("Bldg_7.smk-0012", MessageType.STATUS)


# --- the decoder and the JSON Schemas agree -----------------------------------------------

_valid_ts = st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2026, 11, 27),
                         timezones=st.sampled_from([UTC, None]).map(
                             lambda tz: tz or UTC)).map(lambda d: d.isoformat())
_junk = st.one_of(st.none(), st.booleans(), st.text(max_size=5), st.lists(st.integers(), max_size=2),
                  st.integers(min_value=-(2**40), max_value=2**40),
                  st.floats(allow_nan=False, allow_infinity=False, width=32))


def _field_value(field: Any) -> st.SearchStrategy[Any]:
    if isinstance(field, NumberField):
        good = st.floats(min_value=field.lo, max_value=field.hi, allow_nan=False)
        bad = st.one_of(st.floats(min_value=field.hi + 1, max_value=1e9), _junk)
        return st.one_of(good, st.integers(int(field.lo), int(field.hi)), bad)
    return st.one_of(st.booleans(), _junk)


@st.composite
def telemetry_candidates(draw: st.DrawFn) -> tuple[DeviceKind, dict[str, Any]]:
    kind = draw(st.sampled_from(list(DeviceKind)))
    obj: dict[str, Any] = {}
    if draw(st.integers(0, 9)):
        obj["seq"] = draw(st.one_of(st.integers(0, 2**40), _junk))
    if draw(st.integers(0, 9)):
        obj["ts"] = draw(st.one_of(_valid_ts, st.text(max_size=8)))
    for field in TELEMETRY_FIELDS[kind]:
        if draw(st.integers(0, 4)):
            obj[field.name] = draw(_field_value(field))
    if draw(st.booleans()):
        obj["vendor_x"] = draw(_junk)
    return kind, obj


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(telemetry_candidates())
def test_decoder_agrees_with_schema_on_telemetry(candidate) -> None:
    kind, obj = candidate
    schema_ok = jsonschema.Draft202012Validator(schema_for(MessageType.TELEMETRY, kind)).is_valid(obj)
    decoder_ok = reason_of(MessageType.TELEMETRY, kind, encode(obj)) is None
    assert decoder_ok == schema_ok, obj


@st.composite
def near_valid_telemetry(draw: st.DrawFn) -> tuple[DeviceKind, dict[str, Any]]:
    """Mostly well-formed telemetry with at most one thing wrong or unusual, so both the
    typed path's acceptances and its hand-overs are exercised."""
    kind = draw(st.sampled_from(list(DeviceKind)))
    ts = draw(st.datetimes(min_value=datetime(1999, 12, 31), max_value=datetime(2026, 11, 30),
                           timezones=st.just(UTC)))
    tail = draw(st.sampled_from(["Z", "+08:00", "-00:00", ".123Z", ".123456+05:30", ".5Z",
                                 ".123456789Z", "z", "+0800", ""]))
    obj: dict[str, Any] = {"seq": draw(st.integers(0, 2**63 - 1)),
                           "ts": ts.strftime("%Y-%m-%dT%H:%M:%S") + tail}
    for field in TELEMETRY_FIELDS[kind]:
        if field.required or draw(st.booleans()):
            if isinstance(field, NumberField):
                obj[field.name] = draw(st.one_of(
                    st.floats(field.lo, field.hi), st.integers(int(field.lo), int(field.hi)),
                    st.sampled_from([field.lo, field.hi])))
            else:
                obj[field.name] = draw(st.booleans())
    flaw = draw(st.sampled_from(["none", "none", "seq", "field", "drop", "extra", "null"]))
    if flaw == "seq":
        obj["seq"] = draw(st.sampled_from([-1, 2**63, 1.0, 2.5, "1", True]))
    elif flaw == "field":
        name = draw(st.sampled_from([f.name for f in TELEMETRY_FIELDS[kind]]))
        obj[name] = draw(st.one_of(_junk, st.sampled_from([-1e-9, 1e6, 1e300])))
    elif flaw == "drop":
        obj.pop(draw(st.sampled_from(sorted(obj))))
    elif flaw == "extra":
        obj[draw(st.sampled_from(["vendor_x", "pressure_kpa", "mains_ok"]))] = draw(_junk)
    elif flaw == "null":
        obj[draw(st.sampled_from(sorted(obj)))] = None
    return kind, obj


@settings(max_examples=800, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(near_valid_telemetry(), telemetry_candidates()))
def test_typed_telemetry_path_is_the_full_decoder_on_what_it_takes(candidate) -> None:
    """The one-call msgspec path may pass a payload on, never decide differently."""
    kind, obj = candidate
    payload = encode(obj)
    now = datetime(2026, 11, 28, tzinfo=UTC)
    fast = decode_telemetry_fast("dev-1", kind, payload, now)
    if fast is None:
        return
    assert fast == decode_telemetry("dev-1", kind, parse_json_object(payload), now), obj
    assert fast == decode("dev-1", MessageType.TELEMETRY, kind, payload, now)


def test_typed_telemetry_path_takes_the_common_shape() -> None:
    now = datetime(2026, 11, 28, tzinfo=UTC)
    good = encode({"seq": 7, "ts": "2026-11-27T10:00:00.123Z", "obscuration_pct_per_m": 1,
                   "temperature_c": 21.5})
    t = decode_telemetry_fast("sd-1", DeviceKind.SMOKE_DETECTOR, good, now)
    assert t is not None and t.obscuration_pct_per_m == 1.0 and t.co_ppm is None
    assert type(t.obscuration_pct_per_m) is float
    for other in ({"seq": 7.0}, {"co_ppm": None}, {"vendor": 1}, {"ts": "2026-11-27 10:00:00Z"}):
        body = {"seq": 7, "ts": "2026-11-27T10:00:00.123Z", "obscuration_pct_per_m": 1,
                "temperature_c": 21.5} | other
        assert decode_telemetry_fast("sd-1", DeviceKind.SMOKE_DETECTOR, encode(body), now) \
            is None, other


@st.composite
def event_candidates(draw: st.DrawFn) -> dict[str, Any]:
    obj: dict[str, Any] = {"seq": draw(st.one_of(st.integers(0, 2**40), _junk)),
                           "ts": draw(_valid_ts)}
    if draw(st.integers(0, 9)):
        obj["category"] = draw(st.one_of(st.sampled_from(["fire", "fault", "test", "reset"]), _junk))
    if draw(st.integers(0, 9)):
        obj["active"] = draw(st.one_of(st.booleans(), _junk))
    for key in ("zone", "point"):
        if draw(st.booleans()):
            obj[key] = draw(st.one_of(st.integers(0, 70000), _junk))
    if draw(st.booleans()):
        obj["component"] = draw(st.one_of(st.sampled_from(["smoke_detector", "pressure_switch",
                                                           "Bad"]), _junk))
    if draw(st.booleans()):
        obj["location"] = draw(st.one_of(st.text(max_size=250), _junk))
    return obj


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(event_candidates())
def test_decoder_agrees_with_schema_on_events(obj) -> None:
    schema_ok = jsonschema.Draft202012Validator(
        schema_for(MessageType.EVENT, DeviceKind.ALARM_PANEL)).is_valid(obj)
    decoder_ok = reason_of(MessageType.EVENT, DeviceKind.ALARM_PANEL, encode(obj)) is None
    assert decoder_ok == schema_ok, obj


@given(st.integers(0, 2**62), st.floats(0, 100), st.floats(-50, 300))
def test_roundtrip_keeps_values(seq: int, obsc: float, temp: float) -> None:
    body = {"seq": seq, "ts": TS, "obscuration_pct_per_m": obsc, "temperature_c": temp}
    msg = decode("d", MessageType.TELEMETRY, DeviceKind.SMOKE_DETECTOR, encode(body), NOW)
    assert isinstance(msg, Telemetry)
    assert msg.seq == seq and math.isclose(msg.obscuration_pct_per_m, obsc)
    assert msg.temperature_c == temp


@given(st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2026, 11, 27)),
       st.sampled_from(["", ".123", ".123456", ".123456789", ".5"]),
       st.sampled_from(["Z", "z", "+00:00", "+08:00", "-05:30"]),
       st.sampled_from(["T", "t", " "]))
def test_timestamp_shapes_parse_to_the_same_instant(dt: datetime, frac: str, zone: str,
                                                    sep: str) -> None:
    from firetower.protocol import parse_ts

    text = dt.strftime("%Y-%m-%d") + sep + dt.strftime("%H:%M:%S") + frac + zone
    offset = timedelta(0) if zone in ("Z", "z") else timedelta(
        hours=int(zone[1:3]), minutes=int(zone[4:6])) * (1 if zone[0] == "+" else -1)
    micro = int((frac[1:] + "000000")[:6]) if frac else 0
    expected = (dt.replace(microsecond=micro, tzinfo=UTC) - offset)
    assert parse_ts(text, NOW) == expected


def test_metric_columns_follow_the_telemetry_fields() -> None:
    """decode_telemetry builds Telemetry positionally in METRIC_COLUMNS order."""
    import dataclasses

    from firetower.protocol import METRIC_COLUMNS

    names = [f.name for f in dataclasses.fields(Telemetry)]
    assert names[4:4 + len(METRIC_COLUMNS)] == list(METRIC_COLUMNS)
    assert names[4 + len(METRIC_COLUMNS):] == ["extra", "device_ts", "clock"]
