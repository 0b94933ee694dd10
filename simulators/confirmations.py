"""The device side of event confirmation (docs/protocol.md, "Event confirmation"): keep every
event until the centre confirms it on `centre/v1/{device}/confirm`, and send it again, the
same bytes, while it is not confirmed: first after `first_s`, the wait doubling to `max_s`.

A real panel keeps its events as long as its memory lasts; the simulator gives one up after
`max_tries` sends (counted as `abandoned`), so a fleet publishing with no centre behind it,
or through a broker whose ACL does not let the simulator's connection read the confirmations,
neither grows without bound nor floods the broker. `Pending` is pure bookkeeping (the clock is
passed in); `Confirmations` adds the MQTT connection that reads the confirmations.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from firetower.mqtt import AsyncMqtt
from firetower.protocol import DOWNLINK_ROOT
from simulators.lanes import Credentials
from simulators.stream import Outgoing

FIRST_S = 2.0
MAX_S = 8.0
MAX_TRIES = 8  # sends of one event, the first included: about 45 s of resends


@dataclass
class _Entry:
    out: Outgoing
    due: float
    wait: float
    sent: int = 1


@dataclass
class Pending:
    """Events sent and not yet confirmed, by (device, seq)."""

    first_s: float = FIRST_S
    max_s: float = MAX_S
    max_tries: int = MAX_TRIES
    confirmed: int = 0
    resent: int = 0
    abandoned: int = 0
    _events: dict[tuple[str, int], _Entry] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._events)

    def sent(self, out: Outgoing, now: float) -> None:
        """`out` was handed to the network; an event is kept until confirmed."""
        if out.seq is None or not out.topic.endswith("/event") or out.reject is not None:
            return
        key = (out.device_id, out.seq)
        if key not in self._events:
            self._events[key] = _Entry(out, now + self.first_s, self.first_s)

    def confirm(self, device_id: str, seq: int) -> bool:
        """The centre has the event; True if it was pending here."""
        if self._events.pop((device_id, seq), None) is None:
            return False
        self.confirmed += 1
        return True

    def due(self, now: float) -> Iterator[Outgoing]:
        """Events to send again now (each rescheduled, or given up after `max_tries`)."""
        for key, e in list(self._events.items()):
            if now < e.due:
                continue
            if e.sent >= self.max_tries:
                del self._events[key]
                self.abandoned += 1
                continue
            e.sent += 1
            e.wait = min(e.wait * 2, self.max_s)
            e.due = now + e.wait
            self.resent += 1
            yield e.out


class Confirmations(Pending):
    """`Pending` fed by a connection subscribed to every device's confirmations."""

    def __init__(self, host: str, port: int, credentials: Credentials = None, **kw: Any) -> None:
        super().__init__(**kw)
        self.mqtt = AsyncMqtt(host, port, credentials=credentials)
        self.mqtt.set_on_message(self._on_message)
        self.mqtt.subscribe(f"{DOWNLINK_ROOT}/+/confirm", 1)

    async def start(self, timeout: float = 10.0) -> None:
        await self.mqtt.start(timeout)

    async def stop(self) -> None:
        await self.mqtt.stop()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        parts = msg.topic.split("/")
        try:
            seq = json.loads(bytes(msg.payload))["seq"]
        except (ValueError, KeyError, TypeError):
            return
        if len(parts) == 4 and isinstance(seq, int):
            self.confirm(parts[2], seq)
