"""The webhook body, version 1 (documented in docs/webhooks.md).

    {"version": "1", "id": "evt_<32 hex>", "type": "alarm.raised",
     "timestamp": "<when the alarm change was committed, RFC 3339>",
     "data": {"alarm": {...}, "change": {...}},
     "links": {"console": "...", "api": "..."}}

`data` is the snapshot the outbox trigger took in the transaction of the change
(migrations/0004 `webhook_alarm_data`), so a retry or a replay sends the same facts. `id` is
also the `webhook-id` header: receivers de-duplicate on it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

VERSION = "1"
EVENT_TYPES = ("alarm.raised", "alarm.acknowledged", "alarm.verdict", "alarm.forwarded",
               "alarm.cleared")
PING = "webhook.ping"

_encode = msgspec.json.Encoder().encode


def message_id(uid: UUID) -> str:
    return f"evt_{uid.hex}"


def links(public_url: str, alarm_id: int | None) -> dict[str, str]:
    if alarm_id is None:
        return {}
    base = public_url.rstrip("/")
    return {"console": f"{base}/console/#alarm={alarm_id}",
            "api": f"{base}/api/v1/alarms/{alarm_id}"}


def body(*, uid: UUID, type_: str, occurred_at: datetime, data: dict[str, Any],
         alarm_id: int | None, public_url: str) -> bytes:
    return _encode({"version": VERSION, "id": message_id(uid), "type": type_,
                    "timestamp": occurred_at.isoformat(), "data": data,
                    "links": links(public_url, alarm_id)})
