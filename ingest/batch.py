"""A batch of decoded messages on its way to the database, with the broker acks it releases."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from firetower.model import Event, MessageType, Reject, Status, Telemetry


@dataclass(slots=True)
class Unknown:
    """A message from an id not in the in-memory registry: resolved again at write time."""

    device_id: str
    message_type: MessageType
    topic: str
    payload: bytes
    received_at: datetime


@dataclass(slots=True)
class Batch:
    telemetry: list[Telemetry] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    statuses: list[Status] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    unknown: list[Unknown] = field(default_factory=list)
    # (mid, connection generation) of every message in the batch, acked after commit
    acks: list[tuple[int, int]] = field(default_factory=list)
    started: float = 0.0  # monotonic time of the first message

    def __len__(self) -> int:
        return len(self.acks)


@dataclass(frozen=True, slots=True)
class WriteResult:
    telemetry: int = 0
    events: int = 0
    statuses: int = 0
    duplicates: int = 0
    rejects: int = 0
    unregistered: int = 0
    late_registered: int = 0
