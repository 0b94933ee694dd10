"""Domain vocabulary shared by every Firetower process: device kinds, signal categories,
lifecycle states and the decoded message types. Pure data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol


class DeviceKind(StrEnum):
    SMOKE_DETECTOR = "smoke_detector"
    HEAT_DETECTOR = "heat_detector"
    SPRINKLER_PRESSURE = "sprinkler_pressure"
    ALARM_PANEL = "alarm_panel"


class Lifecycle(StrEnum):
    REGISTERED = "registered"
    COMMISSIONED = "commissioned"
    IN_SERVICE = "in_service"
    DECOMMISSIONED = "decommissioned"


class EventCategory(StrEnum):
    """The signal categories of GB/T 26875.3 (system and component status words)."""

    FIRE = "fire"
    PRE_ALARM = "pre_alarm"
    FAULT = "fault"
    SUPERVISORY = "supervisory"
    DISABLED = "disabled"
    START = "start"
    FEEDBACK = "feedback"
    DELAY = "delay"
    MAINS_FAULT = "mains_fault"
    BATTERY_FAULT = "battery_fault"
    RESET = "reset"
    TEST = "test"
    SILENCE = "silence"


class MessageType(StrEnum):
    TELEMETRY = "telemetry"
    EVENT = "event"
    STATUS = "status"


class ClockState(StrEnum):
    """What the centre made of a message's own timestamp (firetower/device_clock.py). A message
    whose stamp is not believed is stored with the receive time as `ts`, the device's stamp in
    `device_ts` (NULL when it is `invalid`) and this mark in `clock`; `None` on a message means
    the stamp was used."""

    OK = "ok"
    AHEAD = "ahead"  # later than the receive time by more than the tolerance
    BEHIND = "behind"  # older than anything the broker or a gateway may still be holding
    RESET = "reset"  # before 2000: a clock that restarted (1970 after a power loss)
    INVALID = "invalid"  # no stamp, or not a time (no offset, 2026-02-30, not a string)


class RejectReason(StrEnum):
    """Why the ingester refused a message. Stored as text in `rejects.reason`."""

    BAD_TOPIC = "bad_topic"
    OVERSIZED = "oversized"
    BAD_JSON = "bad_json"
    NOT_OBJECT = "not_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    NOT_FINITE = "not_finite"
    OUT_OF_RANGE = "out_of_range"
    BAD_TIMESTAMP = "bad_timestamp"  # no longer given (a ts is never refused); kept for old rows
    BAD_VALUE = "bad_value"
    DECOMMISSIONED = "decommissioned"
    STORAGE_ERROR = "storage_error"  # the database refused the row itself (tests/ingest/test_poison_batch.py)


# The three decoded message types are built once per MQTT message on the ingester's hot path.
# They are slotted but not frozen: a frozen dataclass costs about four times as much to build
# (every field goes through object.__setattr__). Treat them as immutable all the same.


@dataclass(slots=True)
class Telemetry:
    """One accepted telemetry message. Metric fields are None when the device did not send them."""

    device_id: str
    seq: int
    ts: datetime
    received_at: datetime
    obscuration_pct_per_m: float | None = None
    temperature_c: float | None = None
    co_ppm: float | None = None
    battery_v: float | None = None
    pressure_kpa: float | None = None
    flow_lps: float | None = None
    mains_ok: bool | None = None
    battery_ok: bool | None = None
    extra: dict[str, Any] | None = None
    # set only when the device's own stamp was not believed (then `ts` is `received_at`)
    device_ts: datetime | None = None
    clock: ClockState | None = None


@dataclass(slots=True)
class Event:
    """One accepted event (a GB/T 26875.3 signal) from a panel or a device."""

    device_id: str
    seq: int
    ts: datetime
    received_at: datetime
    category: EventCategory
    active: bool
    zone: int = 0
    point: int = 0
    component: str | None = None
    location: str | None = None
    extra: dict[str, Any] | None = None
    device_ts: datetime | None = None
    clock: ClockState | None = None


@dataclass(slots=True)
class Status:
    """Birth message (online) or last will (offline) of a device."""

    device_id: str
    seq: int
    ts: datetime
    received_at: datetime
    online: bool
    extra: dict[str, Any] | None = None
    device_ts: datetime | None = None
    clock: ClockState | None = None


Message = Telemetry | Event | Status


@dataclass(frozen=True, slots=True)
class Reject:
    """A message the ingester refused, with a reason code and a human-readable detail."""

    topic: str
    payload: bytes
    received_at: datetime
    reason: RejectReason
    detail: str


class MessageListener(Protocol):
    """Receives every accepted message as soon as it is decoded (before it is stored).

    The ingester calls it on its event loop; it must not block. The rule engine implements it.
    """

    def on_message(self, message: Message) -> None: ...
