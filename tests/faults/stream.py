"""A steady device stream: each device on its own MQTT connection, authenticated as itself
(username = client id = device id), publishing QoS 1 readings at a fixed rate, with panels
reporting fire events throughout. Every message is recorded with paho's delivery info, so the
checks know exactly which messages the broker acknowledged (PUBACK).

A device whose connection drops reconnects and sends again what was not acknowledged (paho
keeps unacknowledged QoS 1 messages and resends them on the next connection), as a real
device does. A panel also keeps each event until the centre confirms it
(`centre/v1/{id}/confirm`, docs/protocol.md) and sends it again, same seq and stamp, every
`resend_s` (doubling to 8 s) while it is not confirmed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as paho

from firetower.mqtt import AsyncMqtt
from firetower.protocol import confirm_topic, encode, format_ts, topic_for
from tests.faults.centre import Device

# A panel's clock: device time for a message sent now.
Clock = Callable[[datetime], datetime]


def true_clock(now: datetime) -> datetime:
    return now


def year_ahead(now: datetime) -> datetime:
    return now + timedelta(days=365)


def epoch_1970(now: datetime) -> datetime:
    # a panel whose clock reset to the Unix epoch at power-up and has run since
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=time.monotonic() % 86_400)


@dataclass
class Sent:
    device: str
    mtype: str  # telemetry | event | status
    seq: int
    info: paho.MQTTMessageInfo
    zone: int = 0  # fire events: the zone/point they report
    point: int = 0

    @property
    def acked(self) -> bool:
        # set by paho when the PUBACK arrives, also for a message first queued while the
        # connection was down (`is_published()` raises for those, whatever happens later)
        return self.info._published


def reading(kind: str, seq: int, ts: datetime, rng: random.Random) -> dict[str, object]:
    """A quiet reading (nothing near an alarm level)."""
    b: dict[str, object] = {"seq": seq, "ts": format_ts(ts)}
    if kind == "smoke_detector":
        b.update(obscuration_pct_per_m=round(0.05 + rng.uniform(0, 0.02), 3),
                 temperature_c=round(21 + rng.uniform(-0.2, 0.2), 2), battery_v=3.0)
    elif kind == "heat_detector":
        b.update(temperature_c=round(21 + rng.uniform(-0.2, 0.2), 2), battery_v=3.0)
    elif kind == "sprinkler_pressure":
        b.update(pressure_kpa=round(600 + rng.uniform(-0.5, 0.5), 1), flow_lps=0.0)
    else:
        b.update(mains_ok=True, battery_ok=True, battery_v=27.1)
    return b


async def probe_once(port: int, device: Device, seq: int) -> None:
    """One reading and one status from the probe device, each acknowledged by the broker."""
    c = AsyncMqtt("127.0.0.1", port, client_id=device.id, credentials=(device.id, device.password))
    await c.start(timeout=10)
    try:
        now = datetime.now(UTC)
        infos = [c.publish(topic_for(device.id, "telemetry"),
                           encode(reading(device.kind, seq, now, random.Random(seq))), 1),
                 c.publish(topic_for(device.id, "status"),
                           encode({"seq": seq, "ts": format_ts(now), "online": True}), 1)]
        deadline = time.monotonic() + 5
        while not all(i._published for i in infos) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)  # a probe's polling interval (deadline above)
    finally:
        await c.stop()


@dataclass
class Stream:
    """`start()`, then `stop()`; `sent` holds every message, `acked()` those with a PUBACK."""

    port: int
    devices: list[Device]  # sensors and panels (the probe is not streamed)
    rate_hz: float = 10.0  # readings per device per second
    fire_every_s: float = 1.5  # per panel
    clocks: dict[str, Clock] = field(default_factory=dict)  # panel -> clock (default: true)
    fires_only: set[str] = field(default_factory=set)  # panels that send only fire events
    sent: list[Sent] = field(default_factory=list)
    clients: dict[str, AsyncMqtt] = field(default_factory=dict)
    resend_s: float = 2.0  # first resend of an unconfirmed event (0: panels never resend)
    confirmed: set[tuple[str, int]] = field(default_factory=set)  # (device, seq) of events
    resends: int = 0
    _task: asyncio.Task[None] | None = None
    _resender: asyncio.Task[None] | None = None
    _seq: dict[str, int] = field(default_factory=dict)
    _zone: dict[str, int] = field(default_factory=dict)
    # (device, seq) -> (topic, payload, next resend at, current backoff)
    _unconfirmed: dict[tuple[str, int], tuple[str, bytes, float, float]] = field(
        default_factory=dict)

    async def start(self) -> None:
        for d in self.devices:
            c = AsyncMqtt("127.0.0.1", self.port, client_id=d.id, credentials=(d.id, d.password))
            if d.kind == "alarm_panel":
                c.set_on_message(self._on_confirm)
                c.subscribe(confirm_topic(d.id), 1)
            self.clients[d.id] = c
        try:
            await asyncio.gather(*(c.start(timeout=15) for c in self.clients.values()))
        except BaseException:
            await asyncio.gather(*(c.stop() for c in self.clients.values()),
                                 return_exceptions=True)
            raise
        self._task = asyncio.create_task(self._run(), name="faults-stream")
        if self.resend_s > 0:
            self._resender = asyncio.create_task(self._resend(), name="faults-resend")

    async def stop(self, settle_s: float = 15.0) -> None:
        """Stop publishing; give unacknowledged messages and unconfirmed events up to
        `settle_s` (a device keeps resending), then disconnect."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        deadline = time.monotonic() + settle_s
        while (any(not s.acked for s in self.sent) or (self._resender and self._unconfirmed)) \
                and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # a probe's polling interval (deadline settle_s)
        if self._resender is not None:
            self._resender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._resender
            self._resender = None
        await asyncio.gather(*(c.stop() for c in self.clients.values()))

    def publish(self, device: Device, mtype: str, body: dict[str, object], **extra: int) -> None:
        client = self.clients[device.id]
        topic, payload, seq = topic_for(device.id, mtype), encode(body), int(body["seq"])  # type: ignore[call-overload]
        info = client.publish(topic, payload, 1)
        self.sent.append(Sent(device.id, mtype, seq, info, **extra))
        if mtype == "event" and (device.id, seq) not in self.confirmed:
            self._unconfirmed[(device.id, seq)] = (topic, payload,
                                                   time.monotonic() + self.resend_s, self.resend_s)

    def _on_confirm(self, client: object, userdata: object, msg: object) -> None:
        device = msg.topic.split("/")[2]  # type: ignore[attr-defined]
        seq = int(json.loads(msg.payload)["seq"])  # type: ignore[attr-defined]
        self.confirmed.add((device, seq))
        self._unconfirmed.pop((device, seq), None)

    async def _resend(self) -> None:
        """Send every event that is still unconfirmed when its resend is due (same bytes)."""
        while True:
            await asyncio.sleep(0.1)  # the resender's period
            now = time.monotonic()
            for key, (topic, payload, due, backoff) in list(self._unconfirmed.items()):
                if now < due:
                    continue
                with contextlib.suppress(Exception):  # no connection now: paho keeps it
                    self.clients[key[0]].publish(topic, payload, 1)
                    self.resends += 1
                backoff = min(backoff * 2, 8.0)
                self._unconfirmed[key] = (topic, payload, now + backoff, backoff)

    def next_seq(self, device: str) -> int:
        self._seq[device] = self._seq.get(device, 0) + 1
        return self._seq[device]

    def fire(self, panel: Device) -> None:
        zone = self._zone[panel.id] = self._zone.get(panel.id, 0) + 1
        now = datetime.now(UTC)
        ts = self.clocks.get(panel.id, true_clock)(now)
        self.publish(panel, "event", {
            "seq": self.next_seq(panel.id), "ts": format_ts(ts), "category": "fire",
            "active": True, "zone": zone, "point": 1, "component": "smoke_detector",
            "location": f"zone {zone}"}, zone=zone, point=1)

    async def _run(self) -> None:
        rng = random.Random(11)
        period = 1.0 / self.rate_hz
        panels = [d for d in self.devices if d.kind == "alarm_panel"]
        next_fire = {p.id: time.monotonic() + period * (i + 1) for i, p in enumerate(panels)}
        tick = time.monotonic()
        while True:
            now = datetime.now(UTC)
            for d in self.devices:
                if d.id in self.fires_only:
                    continue
                clock = self.clocks.get(d.id, true_clock)
                self.publish(d, "telemetry", reading(d.kind, self.next_seq(d.id), clock(now), rng))
            mono = time.monotonic()
            for p in panels:
                if mono >= next_fire[p.id]:
                    next_fire[p.id] += self.fire_every_s
                    self.fire(p)
            tick += period
            await asyncio.sleep(max(0.0, tick - time.monotonic()))  # pacing: the stream's rate

    # -- what happened ------------------------------------------------------------------
    def acked(self) -> list[Sent]:
        return [s for s in self.sent if s.acked]

    def fires(self) -> list[Sent]:
        return [s for s in self.sent if s.mtype == "event"]

    def summary(self) -> str:
        acked = self.acked()
        return (f"{len(self.sent)} published, {len(acked)} acknowledged, "
                f"{sum(1 for s in acked if s.mtype == 'event')} of {len(self.fires())} fire "
                f"events acknowledged, {len(self.confirmed)} confirmed by the centre, "
                f"{self.resends} resent")
