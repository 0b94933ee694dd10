"""Device protocol v1: topics, field rules and the decoder (see docs/protocol.md).

The decoder is pure: bytes and a topic in, a `Telemetry`, `Event`, `Status` or `Reject` out.
It is on the ingester's hot path, so it validates by hand against the field tables below
rather than through a general-purpose validator; `tests/test_protocol_schema.py` proves it
agrees with the JSON Schemas in `firetower/schemas/`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from firetower.device_clock import AHEAD_TOLERANCE, BEHIND_LIMIT, EPOCH_FLOOR, stamp, unreadable
from firetower.model import (
    ClockState,
    DeviceKind,
    Event,
    EventCategory,
    MessageType,
    Reject,
    RejectReason,
    Status,
    Telemetry,
)

PROTOCOL_VERSION = "v1"
TOPIC_ROOT = f"fire/{PROTOCOL_VERSION}"
# The centre's messages to a device live in a tree of their own, which the ingester's
# `fire/#` subscription never sees and no device may publish into.
DOWNLINK_ROOT = f"centre/{PROTOCOL_VERSION}"
DEVICE_ID_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
# Largest payload accepted. GB/T 26875.3 caps an application data unit at 1,024 bytes; JSON is
# wordier, so allow four times that.
MAX_PAYLOAD_BYTES = 4096
# A stamp before 2000, too far ahead or too old is not refused: the message is accepted with
# the receive time and the clock marked (firetower/device_clock.py); so is a message with no
# stamp or one that is not a time (`_stamp`).
MIN_TS = EPOCH_FLOOR
MAX_SEQ = 2**63 - 1
MAX_TEXT = 200
RFC3339_RE = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})"
)
COMPONENT_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")


def topic_for(device_id: str, message_type: MessageType | str) -> str:
    return f"{TOPIC_ROOT}/{device_id}/{message_type}"


def confirm_topic(device_id: str) -> str:
    """Where the centre confirms a device's events once they are stored and their alarm
    decisions committed (downlink: `centre/v1/{device_id}/confirm`, payload `{"seq": N}`).
    A device keeps every event until it is confirmed and sends it again (same seq, same ts)
    while it is not: see docs/protocol.md, *Event confirmation*."""
    return f"{DOWNLINK_ROOT}/{device_id}/confirm"


def subscription(message_type: MessageType | str | None = None) -> str:
    """Topic filter for one message type, or (None) everything under `fire/`, so that messages
    on wrong versions or malformed topics are seen and recorded as rejects."""
    if message_type is None:
        return "fire/#"
    return f"{TOPIC_ROOT}/+/{message_type}"


@dataclass(frozen=True, slots=True)
class NumberField:
    """A metric with fixed unit and physical range (inclusive)."""

    name: str
    lo: float
    hi: float
    required: bool


@dataclass(frozen=True, slots=True)
class BoolField:
    name: str
    required: bool


Field = NumberField | BoolField

# Physical ranges: beyond these a sensor is broken or the message is corrupt.
_OBSCURATION = NumberField("obscuration_pct_per_m", 0.0, 100.0, True)
_TEMPERATURE = NumberField("temperature_c", -50.0, 300.0, True)
_CO = NumberField("co_ppm", 0.0, 10_000.0, False)
_BATTERY_REQUIRED = NumberField("battery_v", 0.0, 60.0, True)
_BATTERY_OPTIONAL = NumberField("battery_v", 0.0, 60.0, False)
_PRESSURE = NumberField("pressure_kpa", 0.0, 5_000.0, True)
_FLOW = NumberField("flow_lps", 0.0, 1_000.0, False)

TELEMETRY_FIELDS: dict[DeviceKind, tuple[Field, ...]] = {
    DeviceKind.SMOKE_DETECTOR: (_OBSCURATION, _TEMPERATURE, _CO, _BATTERY_OPTIONAL),
    DeviceKind.HEAT_DETECTOR: (_TEMPERATURE, _BATTERY_OPTIONAL),
    DeviceKind.SPRINKLER_PRESSURE: (_PRESSURE, _FLOW, _BATTERY_OPTIONAL),
    DeviceKind.ALARM_PANEL: (
        BoolField("mains_ok", True),
        BoolField("battery_ok", True),
        _BATTERY_OPTIONAL,
    ),
}
# Every metric column of the telemetry table, in table order.
METRIC_COLUMNS = (
    "obscuration_pct_per_m",
    "temperature_c",
    "co_ppm",
    "battery_v",
    "pressure_kpa",
    "flow_lps",
    "mains_ok",
    "battery_ok",
)
_ENVELOPE = frozenset({"seq", "ts"})
_EVENT_KEYS = frozenset({"seq", "ts", "category", "active", "zone", "point", "component",
                         "location"})
_STATUS_KEYS = frozenset({"seq", "ts", "online"})
_CATEGORIES = {c.value: c for c in EventCategory}
_MESSAGE_TYPES = {t.value: t for t in MessageType}
_decoder = msgspec.json.Decoder()


class ProtocolError(ValueError):
    """A message breaks protocol v1. `reason` is the machine code, str(self) the detail."""

    def __init__(self, reason: RejectReason, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def parse_topic(topic: str) -> tuple[str, MessageType]:
    """`fire/v1/{device_id}/{type}` -> (device_id, type); raises ProtocolError."""
    parts = topic.split("/")
    if len(parts) != 4 or parts[0] != "fire" or parts[1] != PROTOCOL_VERSION:
        raise ProtocolError(RejectReason.BAD_TOPIC, f"topic {topic[:100]!r} is not fire/v1/<id>/<type>")
    device_id, kind = parts[2], parts[3]
    if not DEVICE_ID_RE.fullmatch(device_id):
        raise ProtocolError(RejectReason.BAD_TOPIC, f"device id {device_id[:100]!r} is not 1-64 of [A-Za-z0-9_.-]")
    mtype = _MESSAGE_TYPES.get(kind)
    if mtype is None:
        raise ProtocolError(RejectReason.BAD_TOPIC,
                            f"message type {kind[:40]!r} is not telemetry, event or status")
    return device_id, mtype


def parse_json_object(payload: bytes) -> dict[str, Any]:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ProtocolError(RejectReason.OVERSIZED, f"payload is {len(payload)} bytes, limit {MAX_PAYLOAD_BYTES}")
    try:
        obj = _decoder.decode(payload)
    except UnicodeDecodeError as exc:
        raise ProtocolError(RejectReason.BAD_JSON, f"not UTF-8: {exc}") from None
    except msgspec.DecodeError as exc:
        # JSON has no NaN or infinity; say so rather than "malformed" when a device tries
        if "out of range" in str(exc):
            raise ProtocolError(RejectReason.NOT_FINITE, f"a number overflows to infinity: {exc}") from None
        if b"NaN" in payload or b"Infinity" in payload:
            raise ProtocolError(RejectReason.NOT_FINITE, "NaN and Infinity are not numbers in JSON") from None
        raise ProtocolError(RejectReason.BAD_JSON, f"not valid JSON: {exc}") from None
    if type(obj) is not dict:
        raise ProtocolError(RejectReason.NOT_OBJECT, f"payload is a JSON {type(obj).__name__}, not an object")
    return obj


def _require(obj: dict[str, Any], key: str) -> Any:
    try:
        return obj[key]
    except KeyError:
        raise ProtocolError(RejectReason.MISSING_FIELD, f"field {key!r} is required") from None


def _integer(key: str, value: Any) -> int:
    """JSON integers, and numbers with no fraction (1.0), as JSON Schema's "integer" does."""
    t = type(value)
    if t is int:
        integer: int = value
        return integer
    if t is float and value.is_integer():
        return int(value)
    if t is float and not math.isfinite(value):
        raise ProtocolError(RejectReason.NOT_FINITE, f"{key} is {value}")
    raise ProtocolError(RejectReason.WRONG_TYPE, f"{key} must be an integer, got {t.__name__}")


def _seq(obj: dict[str, Any]) -> int:
    seq = _integer("seq", _require(obj, "seq"))
    if seq < 0 or seq > MAX_SEQ:
        raise ProtocolError(RejectReason.OUT_OF_RANGE, f"seq {seq} is outside 0..2^63-1")
    return seq


# Lengths of the common RFC 3339 shapes: seconds, or .fff / .ffffff, then Z or +hh:mm.
_FAST_TS: dict[int, Literal[True]] = {20: True, 24: True, 25: True, 27: True, 29: True, 30: True, 32: True}


def _fast_ts(value: str) -> datetime | None:
    """The common shapes, checked by position (cheaper than the regex); None: use the strict
    path, which decides."""
    if (value[4] != "-" or value[7] != "-" or value[10] != "T" or value[13] != ":"
            or value[16] != ":" or not value[:4].isdigit()):
        return None
    tail = value[19:]
    if tail[:1] == ".":
        zone = tail.lstrip(".0123456789")
        digits = len(tail) - len(zone) - 1
        if digits not in (3, 6):
            return None
    else:
        zone = tail
    if zone != "Z" and not (len(zone) == 6 and zone[0] in "+-" and zone[3] == ":"
                            and zone[1:3].isdigit() and zone[4:].isdigit()):
        return None
    if not (value[5:7].isdigit() and value[8:10].isdigit() and value[11:13].isdigit()
            and value[14:16].isdigit() and value[17:19].isdigit()):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def parse_ts(value: Any, received_at: datetime) -> datetime:
    """The instant a well-formed RFC 3339 `ts` names, whatever it is (`device_clock.stamp`
    decides whether it is believed); `received_at` is kept for the callers' symmetry."""
    if type(value) is not str:
        raise ProtocolError(RejectReason.WRONG_TYPE, f"ts must be an RFC 3339 string, got {type(value).__name__}")
    ts = _FAST_TS.get(len(value)) and _fast_ts(value)
    if ts is None:  # unusual shapes (long fractions, lower-case t/z, space): the strict path
        if not RFC3339_RE.fullmatch(value):
            raise ProtocolError(RejectReason.BAD_TIMESTAMP, f"ts {value[:60]!r} is not RFC 3339 with an offset")
        text = value.upper().replace(" ", "T")
        dot = text.find(".")
        if dot != -1:  # datetime keeps microseconds: cut longer fractions
            end = dot + 1
            while end < len(text) and text[end].isdigit():
                end += 1
            if end - dot > 7:
                text = text[: dot + 7] + text[end:]
        try:
            ts = datetime.fromisoformat(text)
        except ValueError as exc:
            raise ProtocolError(RejectReason.BAD_TIMESTAMP, f"ts {value[:60]!r}: {exc}") from None
    return ts


_NO_TS: Any = object()  # `ts` absent from the message
# Whatever reading a stamp may raise: each means the stamp names no time.
_UNREADABLE = (ProtocolError, ValueError, OverflowError, TypeError)


def _stamp(obj: dict[str, Any], received_at: datetime, *, status: bool = False
           ) -> tuple[datetime, datetime | None, ClockState | None, Any]:
    """`device_clock.stamp()` of the message's `ts`, and what to keep of it in `extra["ts"]`
    (`_NO_TS`: nothing). A missing `ts`, or one that is not an RFC 3339 time with an offset,
    is no reason to refuse a message (a fire is a fire): the receive time, no device time,
    clock `invalid`, and the value sent is kept."""
    value = obj.get("ts", _NO_TS)
    try:
        return (*stamp(parse_ts(value, received_at), received_at, status=status), _NO_TS)
    except _UNREADABLE:
        return (*unreadable(received_at), value)


def _with_ts(extra: dict[str, Any] | None, raw: Any) -> dict[str, Any] | None:
    """`extra` with an unreadable stamp kept as sent (an absent one leaves nothing)."""
    if raw is _NO_TS:
        return extra
    return {**(extra or {}), "ts": raw}


def _number(obj: dict[str, Any], field: NumberField) -> float | None:
    value = obj.get(field.name)
    if value is None:
        if field.required:
            raise ProtocolError(RejectReason.MISSING_FIELD, f"field {field.name!r} is required")
        if field.name in obj:
            raise ProtocolError(RejectReason.WRONG_TYPE, f"{field.name} must be a number, got null")
        return None
    t = type(value)
    if t is float:
        if not math.isfinite(value):
            raise ProtocolError(RejectReason.NOT_FINITE, f"{field.name} is {value}")
    elif t is not int:
        raise ProtocolError(RejectReason.WRONG_TYPE, f"{field.name} must be a number, got {t.__name__}")
    if not field.lo <= value <= field.hi:
        raise ProtocolError(RejectReason.OUT_OF_RANGE, f"{field.name} {value} is outside {field.lo:g}..{field.hi:g}")
    return float(value)


def _bool(obj: dict[str, Any], key: str, required: bool) -> bool | None:
    value = obj.get(key)
    if value is None:
        if required:
            raise ProtocolError(RejectReason.MISSING_FIELD, f"field {key!r} is required")
        if key in obj:
            raise ProtocolError(RejectReason.WRONG_TYPE, f"{key} must be true or false, got null")
        return None
    if type(value) is not bool:
        raise ProtocolError(RejectReason.WRONG_TYPE, f"{key} must be true or false, got {type(value).__name__}")
    return value


def _extra(obj: dict[str, Any], known: frozenset[str]) -> dict[str, Any] | None:
    if len(obj) <= len(known) and known.issuperset(obj):
        return None
    extra = {k: v for k, v in obj.items() if k not in known}
    return extra or None


_KNOWN_TELEMETRY = {
    kind: frozenset(_ENVELOPE | {f.name for f in fields})
    for kind, fields in TELEMETRY_FIELDS.items()
}


# Per kind: (position in METRIC_COLUMNS, field) for each field the kind sends.
_TELEMETRY_PLAN = {
    kind: tuple((METRIC_COLUMNS.index(f.name), f) for f in fields)
    for kind, fields in TELEMETRY_FIELDS.items()
}
_NO_METRICS = (None,) * len(METRIC_COLUMNS)


# The usual timestamp shapes (what devices send): seconds, milliseconds or microseconds, Z or
# an offset. Other RFC 3339 shapes take the full decoder.
_USUAL_TS = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{3}|\.[0-9]{6})?"
    r"(?:Z|[+-][0-9]{2}:[0-9]{2})")


def _typed_telemetry(kind: DeviceKind) -> tuple[msgspec.json.Decoder[Any], Callable[..., Telemetry]]:
    """A decoder of exactly the well-formed telemetry of `kind` (msgspec validates types and
    ranges in C), and a builder of the `Telemetry` from it. It accepts a subset of what
    `decode_telemetry` accepts: anything else (unknown fields, 1.0 as seq, null, an unusual
    timestamp shape, any error) goes to the full decoder, which decides and explains."""
    fields: dict[str, Any] = {}
    seq_type = Annotated[int, msgspec.Meta(ge=0, le=MAX_SEQ)]
    annotations: dict[str, Any] = {"seq": seq_type, "ts": str}
    for f in TELEMETRY_FIELDS[kind]:
        t: Any = (Annotated[float, msgspec.Meta(ge=f.lo, le=f.hi)]
                  if type(f) is NumberField else bool)
        annotations[f.name] = t
        if not f.required:
            fields[f.name] = None  # absent -> None; an explicit null fails the type
    struct = msgspec.defstruct(
        f"Telemetry_{kind.value}",
        [(n, t, fields[n]) if n in fields else (n, t) for n, t in annotations.items()],
        forbid_unknown_fields=True, kw_only=True)
    # One positional call per message (generated from the field table: no attribute loop).
    metrics = ", ".join(f"s.{c}" if c in annotations else "None" for c in METRIC_COLUMNS)
    build = eval(f"lambda d, ts, r, s: Telemetry(d, s.seq, ts, r, {metrics}, None)",
                 {"Telemetry": Telemetry})
    return msgspec.json.Decoder(struct), build


_TYPED = {kind: _typed_telemetry(kind) for kind in TELEMETRY_FIELDS}
_TYPED_ERRORS = (msgspec.ValidationError, msgspec.DecodeError, ValueError)


def decode_telemetry_fast(device_id: str, kind: DeviceKind, payload: bytes,
                          received_at: datetime) -> Telemetry | None:
    """The common case in one C call: a well-formed payload with only the kind's fields and
    a usual timestamp shape. None: use `decode_telemetry`, which accepts or refuses it."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return None
    decoder, build = _TYPED[kind]
    try:
        s = decoder.decode(payload)
        raw = s.ts
        if _USUAL_TS.fullmatch(raw) is None:
            return None
        ts = datetime.fromisoformat(raw)
    except _TYPED_ERRORS:
        return None
    if ts < MIN_TS or ts > received_at + AHEAD_TOLERANCE or ts < received_at - BEHIND_LIMIT:
        return None  # a clock not believed: the full decoder stamps it
    return build(device_id, ts, received_at, s)


def decode_telemetry(device_id: str, kind: DeviceKind, obj: dict[str, Any],
                     received_at: datetime) -> Telemetry:
    seq = _seq(obj)
    ts, device_ts, clock, raw = _stamp(obj, received_at)
    values: list[Any] = list(_NO_METRICS)  # per slot: a float or a bool metric, or None
    for index, field in _TELEMETRY_PLAN[kind]:
        if type(field) is NumberField:
            values[index] = _number(obj, field)
        else:
            values[index] = _bool(obj, field.name, field.required)
    # mypy cannot count a starred list followed by positionals: the plan fills every metric slot
    return Telemetry(device_id, seq, ts, received_at, *values,  # type: ignore[call-arg]
                     _with_ts(_extra(obj, _KNOWN_TELEMETRY[kind]), raw), device_ts, clock)


def _small_int(obj: dict[str, Any], key: str) -> int:
    value = _integer(key, obj.get(key, 0))
    if not 0 <= value <= 65535:
        raise ProtocolError(RejectReason.OUT_OF_RANGE, f"{key} {value} is outside 0..65535")
    return value


def _text(obj: dict[str, Any], key: str, pattern: re.Pattern[str] | None = None) -> str | None:
    value = obj.get(key)
    if value is None:
        if key in obj:
            raise ProtocolError(RejectReason.WRONG_TYPE, f"{key} must be a string, got null")
        return None
    if type(value) is not str:
        raise ProtocolError(RejectReason.WRONG_TYPE, f"{key} must be a string, got {type(value).__name__}")
    if len(value) > MAX_TEXT:
        raise ProtocolError(RejectReason.OUT_OF_RANGE, f"{key} is {len(value)} characters, limit {MAX_TEXT}")
    if pattern is not None and not pattern.fullmatch(value):
        raise ProtocolError(RejectReason.BAD_VALUE, f"{key} {value[:40]!r} must match {pattern.pattern}")
    return value


def decode_event(device_id: str, obj: dict[str, Any], received_at: datetime) -> Event:
    seq = _seq(obj)
    ts, device_ts, clock, sent_ts = _stamp(obj, received_at)
    raw = _require(obj, "category")
    if type(raw) is not str:
        raise ProtocolError(RejectReason.WRONG_TYPE, f"category must be a string, got {type(raw).__name__}")
    category = _CATEGORIES.get(raw)
    if category is None:
        raise ProtocolError(RejectReason.BAD_VALUE, f"category {raw[:40]!r} is not a GB/T 26875.3 category")
    active = _bool(obj, "active", True)
    assert active is not None
    return Event(
        device_id, seq, ts, received_at, category, active,
        zone=_small_int(obj, "zone"),
        point=_small_int(obj, "point"),
        component=_text(obj, "component", COMPONENT_RE),
        location=_text(obj, "location"),
        extra=_with_ts(_extra(obj, _EVENT_KEYS), sent_ts),
        device_ts=device_ts,
        clock=clock,
    )


def decode_status(device_id: str, obj: dict[str, Any], received_at: datetime) -> Status:
    seq = _seq(obj)
    ts, device_ts, clock, raw = _stamp(obj, received_at, status=True)
    online = _bool(obj, "online", True)
    assert online is not None
    return Status(device_id, seq, ts, received_at, online,
                  extra=_with_ts(_extra(obj, _STATUS_KEYS), raw), device_ts=device_ts, clock=clock)


def decode(device_id: str, message_type: MessageType, kind: DeviceKind, payload: bytes,
           received_at: datetime) -> Telemetry | Event | Status:
    """Decode and validate one payload of a registered device; raises ProtocolError, and only
    ProtocolError: whatever else goes wrong is a refusal too, never a crash of the ingester."""
    try:
        if message_type is MessageType.TELEMETRY:
            fast = decode_telemetry_fast(device_id, kind, payload, received_at)
            if fast is not None:
                return fast
        obj = parse_json_object(payload)
        if message_type is MessageType.TELEMETRY:
            return decode_telemetry(device_id, kind, obj, received_at)
        if message_type is MessageType.EVENT:
            return decode_event(device_id, obj, received_at)
        return decode_status(device_id, obj, received_at)
    except ProtocolError:
        raise
    except Exception as exc:  # a decoder gap: refuse the message, keep the reason
        raise ProtocolError(RejectReason.BAD_VALUE, f"undecodable: {type(exc).__name__}: {exc}") from None


def reject(topic: str, payload: bytes, received_at: datetime, error: ProtocolError,
           cap: int = 1024) -> Reject:
    return Reject(topic, payload[:cap], received_at, error.reason, str(error))


# --- encoding (simulator side) -------------------------------------------------------------

_encoder = msgspec.json.Encoder()


def format_ts(ts: datetime) -> str:
    return ts.isoformat(timespec="milliseconds")


def encode(body: dict[str, Any]) -> bytes:
    return _encoder.encode(body)
