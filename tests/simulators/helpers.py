"""Shared helpers for the simulator tests: decode a generated message, read its body."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import msgspec

from firetower.model import MessageType
from firetower.protocol import decode, parse_topic
from simulators.fleet import Fleet, build_fleet
from simulators.stream import Outgoing

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SCHEMAS = Path(__file__).resolve().parents[2] / "firetower" / "schemas"


def small_fleet(seed: int = 7) -> Fleet:
    return build_fleet(seed, 4, 6)


def body(out: Outgoing) -> dict[str, Any]:
    return msgspec.json.decode(out.payload)


def decoded(out: Outgoing, fleet: Fleet):  # type: ignore[no-untyped-def]
    device_id, mtype = parse_topic(out.topic)
    return decode(device_id, mtype, fleet.get(device_id).kind, out.payload, out.ts)


@cache
def schema(name: str) -> dict[str, Any] | None:
    path = SCHEMAS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def schema_name(out: Outgoing, fleet: Fleet) -> str:
    device_id, mtype = parse_topic(out.topic)
    if mtype is MessageType.TELEMETRY:
        return f"telemetry.{fleet.get(device_id).kind.value}"
    return mtype.value


def series(messages: list[Outgoing], device_id: str, field: str) -> list[tuple[float, float]]:
    """(seconds since START, value) of one telemetry field of one device."""
    out = []
    for m in messages:
        if m.device_id == device_id and m.topic.endswith("/telemetry") and m.reject is None:
            b = body(m)
            if field in b:
                ts = datetime.fromisoformat(b["ts"])
                out.append(((ts - START).total_seconds(), float(b[field])))
    return out


def at(iso: str) -> float:
    return (datetime.fromisoformat(iso) - START).total_seconds()
