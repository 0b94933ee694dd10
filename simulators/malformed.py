"""A catalogue of broken messages, each with the `RejectReason` the ingester must record.

`tests/simulators/test_malformed.py` runs every entry through `firetower.protocol.parse_topic`
and `decode` so the declared reasons stay true as the protocol evolves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from firetower.model import DeviceKind, RejectReason
from firetower.protocol import MAX_PAYLOAD_BYTES, encode, format_ts, topic_for
from simulators.fleet import SimDevice

R = RejectReason
SMOKE, PANEL = DeviceKind.SMOKE_DETECTOR, DeviceKind.ALARM_PANEL

_TELEMETRY: dict[DeviceKind, dict[str, Any]] = {
    DeviceKind.SMOKE_DETECTOR: {"obscuration_pct_per_m": 0.21, "temperature_c": 21.4,
                                "battery_v": 3.02},
    DeviceKind.HEAT_DETECTOR: {"temperature_c": 22.8, "battery_v": 3.04},
    DeviceKind.SPRINKLER_PRESSURE: {"pressure_kpa": 612.5, "flow_lps": 0.0},
    DeviceKind.ALARM_PANEL: {"mains_ok": True, "battery_ok": True, "battery_v": 27.31},
}
_EVENT = {"category": "fault", "active": True, "zone": 2, "point": 7,
          "component": "smoke_detector", "location": "2F corridor 7"}


@dataclass(frozen=True, slots=True)
class Broken:
    """How to break one message: `build(device, seq, ts)` -> (topic, payload)."""

    name: str
    reason: RejectReason
    kind: DeviceKind | None        # the device kind it needs (None: any)
    build: Callable[[SimDevice, int, datetime], tuple[str, bytes]]


def _tel(d: SimDevice, seq: int, ts: datetime, /, **change: Any) -> tuple[str, bytes]:
    body: dict[str, Any] = {"seq": seq, "ts": format_ts(ts), **_TELEMETRY[d.kind]}
    for k, v in change.items():
        if v is _DROP:
            body.pop(k, None)
        else:
            body[k] = v
    return topic_for(d.id, "telemetry"), encode(body)


def _event(d: SimDevice, seq: int, ts: datetime, /, **change: Any) -> tuple[str, bytes]:
    body: dict[str, Any] = {"seq": seq, "ts": format_ts(ts), **_EVENT}
    for k, v in change.items():
        if v is _DROP:
            body.pop(k, None)
        else:
            body[k] = v
    return topic_for(d.id, "event"), encode(body)


def _raw(d: SimDevice, payload: bytes, kind: str = "telemetry") -> tuple[str, bytes]:
    return topic_for(d.id, kind), payload


def _good(d: SimDevice, seq: int, ts: datetime) -> bytes:
    return _tel(d, seq, ts)[1]


_DROP = object()

CATALOGUE: tuple[Broken, ...] = (
    Broken("truncated_json", R.BAD_JSON, None,
           lambda d, s, ts: _raw(d, _good(d, s, ts)[:-9])),
    Broken("json_array", R.NOT_OBJECT, None,
           lambda d, s, ts: _raw(d, encode([s, format_ts(ts), 21.5]))),
    Broken("json_string", R.NOT_OBJECT, None,
           lambda d, s, ts: _raw(d, b'"temperature 21.5"')),
    Broken("empty_payload", R.BAD_JSON, None, lambda d, s, ts: _raw(d, b"")),
    Broken("invalid_utf8_outside_string", R.BAD_JSON, None,
           lambda d, s, ts: _raw(d, b'\xff\xfe{"seq": 1}')),
    Broken("missing_seq", R.MISSING_FIELD, None, lambda d, s, ts: _tel(d, s, ts, seq=_DROP)),
    Broken("string_seq", R.WRONG_TYPE, None, lambda d, s, ts: _tel(d, s, ts, seq=str(s))),
    Broken("float_seq", R.WRONG_TYPE, None, lambda d, s, ts: _tel(d, s, ts, seq=s + 0.5)),
    Broken("negative_seq", R.OUT_OF_RANGE, None, lambda d, s, ts: _tel(d, s, ts, seq=-s)),
    # No timestamp is here: a fire is a fire whatever its stamp. A stamp far ahead, before
    # 2000 or far behind, a missing one and one that names no time are all accepted with the
    # receive time and the clock marked (firetower/device_clock.py; UNREADABLE_STAMPS below).
    # Six other breaks take the places of the six stamps this catalogue had, in the same
    # order and with the same device kinds, so a planned run draws the same random numbers:
    Broken("seq_too_large", R.OUT_OF_RANGE, None, lambda d, s, ts: _tel(d, s, ts, seq=2**63)),
    Broken("null_seq", R.WRONG_TYPE, None, lambda d, s, ts: _tel(d, s, ts, seq=None)),
    Broken("boolean_seq", R.WRONG_TYPE, None, lambda d, s, ts: _tel(d, s, ts, seq=True)),
    Broken("json_null", R.NOT_OBJECT, None, lambda d, s, ts: _raw(d, b"null")),
    Broken("trailing_garbage", R.BAD_JSON, None,
           lambda d, s, ts: _raw(d, _good(d, s, ts) + b" 42")),
    Broken("status_missing_online", R.MISSING_FIELD, None,
           lambda d, s, ts: (topic_for(d.id, "status"), encode({"seq": s, "ts": format_ts(ts)}))),
    Broken("number_overflow", R.NOT_FINITE, SMOKE,
           lambda d, s, ts: _raw(d, _good(d, s, ts).replace(b'"temperature_c":21.4',
                                                            b'"temperature_c":1e999'))),
    Broken("nan_literal", R.NOT_FINITE, SMOKE,
           lambda d, s, ts: _raw(d, _good(d, s, ts).replace(b'"temperature_c":21.4',
                                                            b'"temperature_c":NaN'))),
    Broken("obscuration_out_of_range", R.OUT_OF_RANGE, SMOKE,
           lambda d, s, ts: _tel(d, s, ts, obscuration_pct_per_m=250.0)),
    Broken("negative_pressure", R.OUT_OF_RANGE, DeviceKind.SPRINKLER_PRESSURE,
           lambda d, s, ts: _tel(d, s, ts, pressure_kpa=-12.0)),
    Broken("string_temperature", R.WRONG_TYPE, SMOKE,
           lambda d, s, ts: _tel(d, s, ts, temperature_c="21.4")),
    Broken("null_required_field", R.MISSING_FIELD, SMOKE,
           lambda d, s, ts: _tel(d, s, ts, temperature_c=None)),
    Broken("null_optional_field", R.WRONG_TYPE, SMOKE,
           lambda d, s, ts: _tel(d, s, ts, battery_v=None)),
    Broken("missing_required_field", R.MISSING_FIELD, SMOKE,
           lambda d, s, ts: _tel(d, s, ts, obscuration_pct_per_m=_DROP)),
    Broken("boolean_as_number", R.WRONG_TYPE, SMOKE,
           lambda d, s, ts: _tel(d, s, ts, temperature_c=True)),
    Broken("number_as_boolean", R.WRONG_TYPE, PANEL,
           lambda d, s, ts: _tel(d, s, ts, mains_ok=1)),
    Broken("unknown_event_category", R.BAD_VALUE, PANEL,
           lambda d, s, ts: _event(d, s, ts, category="smoke_alarm")),
    Broken("event_missing_active", R.MISSING_FIELD, PANEL,
           lambda d, s, ts: _event(d, s, ts, active=_DROP)),
    Broken("event_bad_component", R.BAD_VALUE, PANEL,
           lambda d, s, ts: _event(d, s, ts, component="Flow Switch!")),
    Broken("event_zone_out_of_range", R.OUT_OF_RANGE, PANEL,
           lambda d, s, ts: _event(d, s, ts, zone=70_000)),
    Broken("event_location_too_long", R.OUT_OF_RANGE, PANEL,
           lambda d, s, ts: _event(d, s, ts, location="x" * 201)),
    Broken("status_online_string", R.WRONG_TYPE, None,
           lambda d, s, ts: (topic_for(d.id, "status"),
                             encode({"seq": s, "ts": format_ts(ts), "online": "true"}))),
    Broken("oversized_payload", R.OVERSIZED, None,
           lambda d, s, ts: _tel(d, s, ts, firmware_log="#" * (MAX_PAYLOAD_BYTES + 100))),
    Broken("topic_wrong_version", R.BAD_TOPIC, None,
           lambda d, s, ts: (f"fire/v2/{d.id}/telemetry", _good(d, s, ts))),
    Broken("topic_bad_id_chars", R.BAD_TOPIC, None,
           lambda d, s, ts: (f"fire/v1/{d.id} (copy)/telemetry", _good(d, s, ts))),
    Broken("topic_id_too_long", R.BAD_TOPIC, None,
           lambda d, s, ts: (f"fire/v1/{d.id}-{'x' * 64}/telemetry", _good(d, s, ts))),
    Broken("topic_unknown_type", R.BAD_TOPIC, None,
           lambda d, s, ts: (f"fire/v1/{d.id}/alarm", _good(d, s, ts))),
    Broken("topic_extra_level", R.BAD_TOPIC, None,
           lambda d, s, ts: (f"fire/v1/{d.id}/telemetry/raw", _good(d, s, ts))),
    Broken("invalid_utf8_in_string", R.BAD_JSON, None,
           lambda d, s, ts: _raw(d, b'{"seq": 1, "ts": "\xff\xfe"}')),
)


# Stamps that are no time at all, each with a message that is otherwise well formed: accepted,
# never refused, with `ts` = the receive time, no `device_ts`, clock `invalid` and the value
# sent kept in `extra["ts"]` (`tests/simulators/test_malformed.py` proves it on the decoder).
UNREADABLE_STAMPS: tuple[tuple[str, Callable[[SimDevice, int, datetime], tuple[str, bytes]]],
                         ...] = (
    ("missing_ts", lambda d, s, ts: _tel(d, s, ts, ts=_DROP)),
    ("ts_without_offset", lambda d, s, ts: _tel(d, s, ts, ts=format_ts(ts)[:-6])),
    ("ts_epoch_number", lambda d, s, ts: _tel(d, s, ts, ts=int(ts.timestamp()))),
    ("ts_year_zero", lambda d, s, ts: _tel(d, s, ts, ts="0000-01-01T00:00:00Z")),
    ("ts_offset_out_of_range", lambda d, s, ts: _tel(d, s, ts, ts=format_ts(ts)[:-6] + "+25:00")),
    ("ts_impossible_date", lambda d, s, ts: _tel(d, s, ts, ts="2026-02-30T10:00:00+08:00")),
    ("ts_garbage_fire", lambda d, s, ts: _event(d, s, ts, ts="garbage", category="fire")),
    ("ts_null_fire", lambda d, s, ts: _event(d, s, ts, ts=None, category="fire")),
    ("missing_ts_fire", lambda d, s, ts: _event(d, s, ts, ts=_DROP, category="fire")),
)
