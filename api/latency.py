"""Latency clocks of one alarm: the stages between them and the regulatory limits they meet.

Pure functions over an alarm's clock columns (see migrations/0005 and docs/alarms.md); the
compliance report (`api.routes.stats`) applies the same limits in SQL, over many alarms.

Limits (../docs/alarms.md, "Compliance"), for fire alarms in normal mode:
- GB 50440 §3.0.2(2): device picks up a fire -> the centre displays it: <= 20 s
  (device_ts, else received_at -> shown_at);
- GB 50440 §3.0.2(3): a confirmed fire is forwarded to the 119 centre: <= 3 s
  (confirmation -> delivered_at; confirmation is the operator's verdict for basis `operator`,
  the forward decision itself for `coincidence` and `deadline`);
- NFPA 72 §26.6.3.1.10: alarm at the premises -> displayed at the station: <= 90 s;
- NFPA 72 A.26.2.1: receipt -> retransmission to the fire service: <= 90 s
  (received_at -> delivered_at).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

# Every clock, in the order a fire normally passes them.
CLOCKS = ("device_ts", "received_at", "ingested_at", "stored_at", "shown_at",
          "acknowledged_at", "verdict_at", "forwarded_at", "delivered_at")

# (stage, start clock, end clock): the steps a newcomer reads an alarm's latency by.
STAGES = (
    ("device->received", "device_ts", "received_at"),
    ("received->ingested", "received_at", "ingested_at"),
    ("ingested->stored", "ingested_at", "stored_at"),
    ("stored->shown", "stored_at", "shown_at"),
    ("shown->acknowledged", "shown_at", "acknowledged_at"),
    ("acknowledged->verdict", "acknowledged_at", "verdict_at"),
    ("verdict->forwarded", "verdict_at", "forwarded_at"),
    ("forwarded->delivered", "forwarded_at", "delivered_at"),
    ("device->shown", "device_ts", "shown_at"),
    ("device->delivered", "device_ts", "delivered_at"),
)

DISPLAY_GB_S = 20.0
FORWARD_GB_S = 3.0
NFPA_S = 90.0
Status = Literal["met", "missed", "pending"]


def stages(alarm: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The stages whose two clocks are both set. `verdict->forwarded` only when the operator's
    verdict caused the forward (a deadline forward does not wait for a verdict)."""
    out = []
    for name, start, end in STAGES:
        a, b = alarm.get(start), alarm.get(end)
        if a is None or b is None:
            continue
        if name == "verdict->forwarded" and alarm.get("forward_basis") != "operator":
            continue
        out.append({"stage": name, "start": start, "end": end,
                    "seconds": (b - a).total_seconds()})
    return out


def _check(limit: str, limit_s: float, start: datetime | None, end: datetime | None,
           now: datetime) -> dict[str, Any] | None:
    if start is None:
        return None
    if end is None:
        late = (now - start).total_seconds() > limit_s
        return {"limit": limit, "limit_s": limit_s, "seconds": None,
                "status": "missed" if late else "pending"}
    s = (end - start).total_seconds()
    return {"limit": limit, "limit_s": limit_s, "seconds": s,
            "status": "met" if s <= limit_s else "missed"}


def confirmed_at(alarm: Mapping[str, Any]) -> datetime | None:
    """When the fire counted as confirmed for forwarding (the start of the 3 s clock)."""
    basis = alarm.get("forward_basis")
    if basis == "operator" or (basis is None and alarm.get("verdict") == "true_fire"):
        return alarm.get("verdict_at")
    return alarm.get("forwarded_at")


def limits(alarm: Mapping[str, Any], now: datetime) -> list[dict[str, Any]]:
    """The limits that apply to this alarm and whether it met them (fire, normal mode only;
    an unset end clock is `pending` until the limit has passed, then `missed`)."""
    if alarm.get("class") != "fire" or alarm.get("mode", "normal") != "normal":
        return []
    origin = alarm.get("device_ts") or alarm.get("received_at")
    checks = [_check("gb50440_display_20s", DISPLAY_GB_S, origin, alarm.get("shown_at"), now),
              _check("nfpa72_display_90s", NFPA_S, origin, alarm.get("shown_at"), now)]
    forwarded = alarm.get("forwarded_at") is not None or alarm.get("verdict") == "true_fire"
    if forwarded:
        checks.append(_check("gb50440_forward_3s", FORWARD_GB_S, confirmed_at(alarm),
                             alarm.get("delivered_at"), now))
        checks.append(_check("nfpa72_retransmit_90s", NFPA_S, alarm.get("received_at"),
                             alarm.get("delivered_at"), now))
    return [c for c in checks if c is not None]
