"""What the engine decided, queued for the writer: raise, annotate, clear, or a mode change.

Decisions are ordered by alarm priority (fire first), then by the order they were made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from firetower.alarm_store import AlarmKey
from firetower.alarms import AlarmClass, Mode


class Action(StrEnum):
    RAISE = "raise"  # raise, or count a re-occurrence of the open alarm
    ANNOTATE = "annotate"  # confidence, evidence or inhibition of the open alarm changed
    CLEAR = "clear"
    MODE = "mode"  # a mode window started or ended (panel-reported test / disabled)


@dataclass(slots=True)
class Decision:
    action: Action
    priority: int
    key: AlarmKey
    alarm_class: AlarmClass
    at: float  # condition time, epoch seconds
    site_id: str | None = None
    zone: int | None = None
    confidence: float | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    mode: Mode = Mode.NORMAL
    inhibited_by: str | None = None
    uninhibit: bool = False
    group_key: str | None = None
    device_ts: float | None = None
    received_at: float | None = None
    reason: str = ""
    seq: int | None = None  # the message's seq (idempotent re-occurrence)
    mode_active: bool = False  # MODE only
    decided: float = 0.0  # perf_counter() when decided (latency measurement)
    ingested_at: float | None = None  # latency clock: wall time when decided (epoch seconds)
