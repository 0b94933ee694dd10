"""The ingester: MQTT (QoS 1, persistent session, manual ack) -> validate -> batch -> COPY.

Two paths, each with its own database connection, so a fire never waits behind telemetry:
- the priority path (events and status) is written as soon as anything is in it;
- the bulk path (telemetry) is written when `batch_size` messages are waiting or the oldest
  has waited `flush_ms`.
A message is acknowledged to the broker only after the transaction holding it commits.
Accepted messages also go to the listeners (the rule engine) as soon as they are decoded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import paho.mqtt.client as paho

from firetower.model import (
    Event,
    Lifecycle,
    MessageListener,
    MessageType,
    Reject,
    RejectReason,
)
from firetower.mqtt import AsyncMqtt
from firetower.protocol import ProtocolError, decode, parse_topic, reject, subscription
from firetower.settings import Settings
from ingest import metrics
from ingest.batch import Batch, Unknown, WriteResult
from ingest.registry import DeviceRegistry
from ingest.writer import BatchWriter

log = logging.getLogger(__name__)
# How many unacknowledged QoS 1 messages the broker sends us at once is the broker's
# max_inflight_messages (deploy/mosquitto/firetower.conf); it bounds the ingester's memory and
# must exceed a batch several times over, or it throttles throughput.


class Lane:
    """One write path: a buffer, a writer and the task that flushes it."""

    def __init__(self, name: str, writer: BatchWriter, batch_size: int, flush_s: float) -> None:
        self.name = name
        self.writer = writer
        self.batch_size = batch_size
        self.flush_s = flush_s
        self.batch = Batch()
        self.wake = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()

    def add_ack(self, mid: int, generation: int) -> None:
        b = self.batch
        if not b.acks:
            b.started = time.monotonic()
            self.wake.set()  # starts the flush timer (or flushes at once on the priority lane)
        b.acks.append((mid, generation))
        if len(b.acks) >= self.batch_size:
            self.wake.set()


class Ingester:
    def __init__(self, settings: Settings, *, listeners: Sequence[MessageListener] = (),
                 client_id: str | None = None) -> None:
        self.settings = settings
        self.listeners = list(listeners)
        self.client_id = client_id or settings.ingest_client_id
        self.registry = DeviceRegistry(settings.database_url)
        self.mqtt: AsyncMqtt | None = None
        self.totals: dict[str, int] = dict.fromkeys(
            ("received", "stored", "duplicates", "rejected", "unregistered"), 0)
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self.bulk = Lane("bulk", BatchWriter(settings.database_url,
                                             reject_cap=settings.reject_payload_cap,
                                             on_retry=self._retried),
                         settings.ingest_batch_size, settings.ingest_flush_ms / 1000)
        self.priority = Lane("priority", BatchWriter(settings.database_url,
                                                     reject_cap=settings.reject_payload_cap,
                                                     on_retry=self._retried),
                             settings.ingest_batch_size, 0.0)

    # -- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        s = self.settings
        await self.registry.start()
        self.mqtt = AsyncMqtt(s.mqtt_host, s.mqtt_port, client_id=self.client_id,
                              clean_session=False, manual_ack=True,
                              credentials=s.mqtt_credentials)
        self.mqtt.set_on_message(self._on_message)
        topic = subscription()
        if s.ingest_shared_group:
            topic = f"$share/{s.ingest_shared_group}/{topic}"
        self.mqtt.subscribe(topic, 1)
        for lane in (self.priority, self.bulk):
            self._tasks.append(asyncio.create_task(self._flush_loop(lane), name=f"flush-{lane.name}"))
        await self.mqtt.start(timeout=None)
        await asyncio.wait_for(self.mqtt.connected.wait(), 30)
        log.info("ingesting %s from mqtt://%s:%s", topic, s.mqtt_host, s.mqtt_port)

    async def stop(self, *, drain: bool = True) -> None:
        """Stop taking messages, commit and ack what is pending, disconnect."""
        self._stopping = True
        if self.mqtt is not None:
            self.mqtt.pause_reading()  # so the drain below ends even under a steady stream
        if drain:
            for lane in (self.priority, self.bulk):
                lane.wake.set()
            for lane in (self.priority, self.bulk):
                while len(lane.batch) or not lane.idle.is_set():
                    lane.wake.set()
                    await asyncio.sleep(0.01)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.mqtt is not None:
            await self.mqtt.stop()
        await self.registry.stop()
        for lane in (self.priority, self.bulk):
            await lane.writer.close()

    # -- receive (event-loop thread) ---------------------------------------------------
    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        received_at = datetime.now(UTC)
        assert self.mqtt is not None
        generation = self.mqtt.generation
        topic = msg.topic
        payload = msg.payload
        self.totals["received"] += 1
        try:
            device_id, mtype = parse_topic(topic)
        except ProtocolError as exc:
            self._reject(reject(topic, payload, received_at, exc, self.settings.reject_payload_cap),
                         msg.mid, generation)
            return
        lane = self.bulk if mtype is MessageType.TELEMETRY else self.priority
        entry = self.registry.devices.get(device_id)
        if entry is None:
            lane.batch.unknown.append(Unknown(device_id, mtype, topic, payload, received_at))
            lane.add_ack(msg.mid, generation)
            return
        kind, lifecycle = entry
        if lifecycle is Lifecycle.DECOMMISSIONED:
            self._reject(Reject(topic, payload[: self.settings.reject_payload_cap], received_at,
                                RejectReason.DECOMMISSIONED, f"device {device_id} is decommissioned"),
                         msg.mid, generation)
            return
        try:
            message = decode(device_id, mtype, kind, payload, received_at)
        except ProtocolError as exc:
            self._reject(reject(topic, payload, received_at, exc, self.settings.reject_payload_cap),
                         msg.mid, generation)
            return
        b = lane.batch
        if mtype is MessageType.TELEMETRY:
            b.telemetry.append(message)  # type: ignore[arg-type]
        elif type(message) is Event:
            b.events.append(message)
        else:
            b.statuses.append(message)  # type: ignore[arg-type]
        lane.add_ack(msg.mid, generation)
        for listener in self.listeners:
            try:
                listener.on_message(message)
            except Exception:  # a listener bug must not stop ingestion
                log.exception("listener %r failed on %s", listener, message)

    def _reject(self, rej: Reject, mid: int, generation: int) -> None:
        self.priority.batch.rejects.append(rej)
        self.priority.add_ack(mid, generation)

    def _retried(self, exc: BaseException) -> None:
        metrics.DB_RETRIES.inc()

    # -- flush -------------------------------------------------------------------------
    async def _flush_loop(self, lane: Lane) -> None:
        while True:
            if not len(lane.batch):
                lane.wake.clear()
                await lane.wake.wait()
            batch = lane.batch
            if lane.flush_s > 0 and len(batch) < lane.batch_size and not self._stopping:
                remaining = batch.started + lane.flush_s - time.monotonic()
                if remaining > 0:
                    lane.wake.clear()
                    try:
                        await asyncio.wait_for(lane.wake.wait(), remaining)
                    except TimeoutError:
                        pass
            batch = lane.batch
            lane.batch = Batch()
            lane.idle.clear()
            metrics.PENDING.labels(lane.name).set(len(batch))
            t0 = time.perf_counter()
            try:
                result = await lane.writer.write(batch)
            finally:
                lane.idle.set()
            metrics.FLUSH_SECONDS.labels(lane.name).observe(time.perf_counter() - t0)
            metrics.BATCH_SIZE.labels(lane.name).observe(len(batch))
            self._count(result, batch)
            assert self.mqtt is not None
            self.mqtt.ack_many(batch.acks)

    def _count(self, r: WriteResult, batch: Batch) -> None:
        """Metrics are counted per committed batch, not per message (cheaper on the hot path)."""
        metrics.RECEIVED.labels("telemetry").inc(len(batch.telemetry))
        metrics.RECEIVED.labels("event").inc(len(batch.events))
        metrics.RECEIVED.labels("status").inc(len(batch.statuses))
        metrics.RECEIVED.labels("unknown_device").inc(len(batch.unknown))
        metrics.RECEIVED.labels("rejected").inc(len(batch.rejects))
        for rej in batch.rejects:
            metrics.REJECTED.labels(rej.reason.value).inc()
        metrics.STORED.labels("telemetry").inc(r.telemetry)
        metrics.STORED.labels("event").inc(r.events)
        metrics.STORED.labels("status").inc(r.statuses)
        metrics.DUPLICATES.inc(r.duplicates)
        metrics.UNREGISTERED.inc(r.unregistered)
        self.totals["stored"] += r.telemetry + r.events + r.statuses
        self.totals["duplicates"] += r.duplicates
        self.totals["rejected"] += r.rejects
        self.totals["unregistered"] += r.unregistered
