"""The ingester: MQTT (QoS 1, persistent session, manual ack) -> validate -> batch -> COPY.

Two paths, each with its own database connection, so a fire never waits behind telemetry:
- the priority path (events and status) is written as soon as anything is in it;
- the bulk path (telemetry) is written when `batch_size` messages are waiting or the oldest
  has waited `flush_ms`.
A message is acknowledged to the broker only after the transaction holding it commits, and
after the alarm decisions made up to its evaluation commit (listeners with `settled`).
Accepted messages also go to the listeners (the rule engine) as soon as they are decoded.

Fire first at the broker too: the broker keeps one FIFO queue per session, so a backlog of
telemetry would hold a fire event back. Every bulk session therefore has a priority session
(client id `<bulk id>-priority`) for events and status, read by the same event loop.

With one partition (the default) the bulk session subscribes `fire/#` (so malformed topics are
seen and recorded) and the priority session `fire/v1/+/event` and `fire/v1/+/status`; the
bulk session's copies of events and status are acknowledged and dropped once the priority
session's subscription stands (before that, at a first start, they are handled: storage is
idempotent and the engine drops a repeated event seq). Partitioned (`ingest_partitions`
P > 1, docs/scaling.md) it runs a session pair per partition it owns, client ids
`{ingest_client_id}-p{p}` and `...-p{p}-priority`, subscribed to the exact topics of the
registered devices of that partition (`fire/v1/{device}/telemetry`; `.../event`,
`.../status`): every message of a device then reaches one worker, each type in the order the
broker received it, and a worker's rule engine sees only its own devices. The lanes and their
database connections are shared by the sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import paho.mqtt.client as paho

from firetower import heartbeat
from firetower.model import (
    Event,
    Lifecycle,
    MessageListener,
    MessageType,
    Reject,
    RejectReason,
)
from firetower.mqtt import AsyncMqtt
from firetower.protocol import (
    ProtocolError,
    confirm_topic,
    decode,
    encode,
    parse_topic,
    reject,
    subscription,
)
from firetower.settings import Settings
from ingest import metrics
from ingest.backlog import SYS_TOPICS
from ingest.batch import Batch, Unknown, WriteResult
from ingest.partition import (
    Partitioning,
    priority_client_id,
    priority_filters,
    session_client_id,
    topic_filter,
)
from ingest.registry import DeviceRegistry
from ingest.writer import BatchWriter

log = logging.getLogger(__name__)
# How many unacknowledged QoS 1 messages the broker sends us at once is the broker's
# max_inflight_messages (deploy/mosquitto/firetower.conf); it bounds the ingester's memory and
# must exceed a batch several times over, or it throttles throughput.

# An ack is (mid, generation). With several sessions, session i counts its connections from
# i << _SESSION_SHIFT, so the generation also says which session a message came in on.
_SESSION_SHIFT = 32
# Ids of devices this worker does not serve that are remembered for a one-time warning.
_MAX_STRAYS_LOGGED = 1000

# An idle flush loop wakes this often to beat the supervisor's heartbeat.
BEAT_IDLE_S = 1.0


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
                 client_id: str | None = None,
                 sys_listener: Callable[[str, bytes], None] | None = None) -> None:
        self.settings = settings
        self.listeners = list(listeners)
        # the broker's $SYS figures (ingest/backlog.py), read on the first session at QoS 0
        self.sys_listener = sys_listener
        # Listeners whose work must be committed before a message is acknowledged (the rule
        # engine: `mark()`, `settled_now(mark)`, `await settled(mark)`). A message is acked
        # only after its own commit and the commit of every alarm decision made up to its
        # evaluation, so an ingester that dies before an alarm commit gets the message again
        # (issue 11). One wait per batch, on a watermark: never per message.
        self._barriers = [x for x in self.listeners if hasattr(x, "settled")]
        self.client_id = client_id or settings.ingest_client_id
        self.partitioning = Partitioning.from_settings(settings)
        partitioned = self.partitioning.partitioned
        self.registry = DeviceRegistry(settings.database_url,
                                       self.partitioning if partitioned else None,
                                       self._devices_changed if partitioned else None)
        # one persistent MQTT session per owned partition (partition 0 alone when P = 1), and
        # its priority session for events and status
        self.sessions: dict[int, AsyncMqtt] = {}
        self.priority_sessions: dict[int, AsyncMqtt] = {}
        self._priority_ready = False  # P = 1: the priority subscription stands
        self._acked = 0  # messages acknowledged after their commit (in flight = received - it)
        self._by_index: list[AsyncMqtt] = []
        self._strays: set[str] = set()
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
        part = self.partitioning
        if part.partitioned:
            for p in part.owned:
                cid = session_client_id(self.client_id, p)
                self._session(p, cid)
                self._session(p, priority_client_id(cid), priority=True)
            # the first load subscribes every owned device (sent once connected)
            await self.registry.start()
            what = (f"partitions {','.join(map(str, part.owned))} of {part.partitions} "
                    f"({len(self.registry.devices)} devices)")
        else:
            await self.registry.start()
            share = f"$share/{s.ingest_shared_group}/" if s.ingest_shared_group else ""
            topic = share + subscription()
            self._session(0, self.client_id).subscribe(topic, 1)
            prio = self._session(0, priority_client_id(self.client_id), priority=True)
            prio.client.on_subscribe = self._priority_subscribed
            prio.subscribe_many([share + subscription(MessageType.EVENT),
                                 share + subscription(MessageType.STATUS)], 1)
            what = f"{topic} (events and status first on their own session)"
        for lane in (self.priority, self.bulk):
            self._tasks.append(asyncio.create_task(self._flush_loop(lane), name=f"flush-{lane.name}"))
        metrics.serve_in_flight(lambda: self.totals["received"] - self._acked)
        sessions = self._by_index
        if self.sys_listener is not None:
            sessions[0].subscribe_many(SYS_TOPICS, 0)
        await asyncio.gather(*(m.start(timeout=None) for m in sessions))
        await asyncio.wait_for(asyncio.gather(*(m.connected.wait() for m in sessions)), 30)
        log.info("ingesting %s from mqtt://%s:%s", what, s.mqtt_host, s.mqtt_port)

    def _priority_subscribed(self, *args: object) -> None:
        self._priority_ready = True

    def _session(self, partition: int, client_id: str, *, priority: bool = False) -> AsyncMqtt:
        s = self.settings
        mqtt = AsyncMqtt(s.mqtt_host, s.mqtt_port, client_id=client_id, clean_session=False,
                         manual_ack=True, credentials=s.mqtt_session_credentials(client_id))
        mqtt.generation = len(self._by_index) << _SESSION_SHIFT
        mqtt.client.user_data_set(mqtt)  # _on_message learns which session delivered
        mqtt.set_on_message(self._on_message)
        (self.priority_sessions if priority else self.sessions)[partition] = mqtt
        self._by_index.append(mqtt)
        return mqtt

    def _devices_changed(self, arrived: dict[int, list[str]], left: list[str]) -> None:
        """Registry callback (partitioned): subscribe the devices that arrived in an owned
        partition. A device that left (deleted, or moved to another site and so possibly to
        another partition) keeps its subscription: its messages are still stored, only not
        given to the rule engine, so nothing is lost while its new owner has not subscribed
        yet (docs/scaling.md, "Moving devices")."""
        for p, ids in arrived.items():
            # priority first: a device's events are never routed to nobody while its
            # telemetry already flows
            self.priority_sessions[p].subscribe_many(
                [f for i in ids for f in priority_filters(i)], 1)
            new = self.sessions[p].subscribe_many([topic_filter(i) for i in ids], 1)
            if new and self._tasks:  # after the start, when the first load is logged anyway
                log.info("partition %d: subscribed %d new device(s)", p, new)
        if left:
            log.info("%d device(s) left this worker's partitions (deleted or moved): %s",
                     len(left), ", ".join(left[:10]))

    async def stop(self, *, drain: bool = True) -> None:
        """Stop taking messages, commit and ack what is pending, disconnect."""
        self._stopping = True
        for mqtt in self._by_index:
            mqtt.pause_reading()  # so the drain below ends even under a steady stream
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
        await asyncio.gather(*(mqtt.stop() for mqtt in self._by_index))
        await self.registry.stop()
        for lane in (self.priority, self.bulk):
            await lane.writer.close()

    # -- receive (event-loop thread) ---------------------------------------------------
    def _on_message(self, client: paho.Client, userdata: AsyncMqtt, msg: paho.MQTTMessage) -> None:
        received_at = datetime.now(UTC)
        generation = userdata.generation
        topic = msg.topic
        payload = msg.payload
        try:
            device_id, mtype = parse_topic(topic)
        except ProtocolError as exc:
            if self.sys_listener is not None and topic.startswith("$SYS/"):
                self.sys_listener(topic, payload)  # QoS 0: nothing to acknowledge
                return
            self.totals["received"] += 1
            self._reject(reject(topic, payload, received_at, exc, self.settings.reject_payload_cap),
                         msg.mid, generation)
            return
        if mtype is MessageType.TELEMETRY:
            lane = self.bulk
        else:
            lane = self.priority
            if self._priority_ready and userdata is self.sessions.get(0) and \
                    self.registry.partitioning is None:
                # the copy of what the priority session delivers (P = 1 subscribes fire/#)
                userdata.ack(msg.mid, generation)
                return
        self.totals["received"] += 1
        entry = self.registry.devices.get(device_id)
        if entry is None:
            if self.registry.partitioning is not None:
                self._stray(device_id)
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

    def _stray(self, device_id: str) -> None:
        """Partitioned, a message of a device this worker does not serve: a subscription left
        from before a site or partition change. It is stored (the writer looks the id up) but
        not given to the rule engine, whose device is another worker's."""
        if device_id not in self._strays and len(self._strays) < _MAX_STRAYS_LOGGED:
            self._strays.add(device_id)
            log.warning("message of %s, which is not in this worker's partitions: stored, not "
                        "evaluated (a subscription from before a site or partition change; "
                        "see docs/scaling.md)", device_id)

    def _reject(self, rej: Reject, mid: int, generation: int) -> None:
        self.priority.batch.rejects.append(rej)
        self.priority.add_ack(mid, generation)

    def _retried(self, exc: BaseException) -> None:
        metrics.DB_RETRIES.inc()
        heartbeat.beat()  # waiting out a database outage is the flush loop's work too

    # -- flush -------------------------------------------------------------------------
    async def _flush_loop(self, lane: Lane) -> None:
        while True:
            heartbeat.beat()  # the supervisor's liveness check (firetower/heartbeat.py)
            if not len(lane.batch):
                lane.wake.clear()
                # idle: wake at least every BEAT_IDLE_S to beat (nothing else to do)
                # (asyncio.timeout, not wait_for: 3.11's wait_for can swallow the cancel of
                # stop() when the wake-up comes at the same moment)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(BEAT_IDLE_S):
                        await lane.wake.wait()
                if not len(lane.batch):
                    continue
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
            # Every message of the batch is evaluated by now (listeners run on receipt): the
            # marks cover the alarm decisions made up to it (see _barriers).
            marks = [(b, b.mark()) for b in self._barriers]
            metrics.PENDING.labels(lane.name).set(len(batch))
            t0 = time.perf_counter()
            try:
                result = await lane.writer.write(batch)
                metrics.FLUSH_SECONDS.labels(lane.name).observe(time.perf_counter() - t0)
                metrics.BATCH_SIZE.labels(lane.name).observe(len(batch))
                self._count(result, batch)
                for barrier, mark in marks:
                    if not barrier.settled_now(mark):
                        await barrier.settled(mark)
                self._ack(batch.acks)
                if batch.events and self.settings.ingest_confirm_events:
                    self._confirm(batch.events)
            finally:
                lane.idle.set()

    def _ack(self, acks: list[tuple[int, int]]) -> None:
        self._acked += len(acks)
        sessions = self._by_index
        if len(sessions) == 1:
            sessions[0].ack_many(acks)
            return
        per_session: dict[int, list[tuple[int, int]]] = {}
        for ack in acks:
            per_session.setdefault(ack[1] >> _SESSION_SHIFT, []).append(ack)
        for index, session_acks in per_session.items():
            sessions[index].ack_many(session_acks)

    def _confirm(self, events: list[Event]) -> None:
        """Tell each device its events are the centre's now: stored (or already stored: a
        resend) and their alarm decisions committed. The broker's PUBACK only says the broker
        has the message, and a broker that crashes with a queue loses what it took since its
        last save (docs/broker.md); a device keeps an event until this confirmation and sends
        it again, so no fire event depends on the broker's disk. Fire-and-forget at QoS 1: a
        confirmation lost on the way costs one resend, which storage and the engine de-duplicate."""
        sessions = self.priority_sessions or self.sessions
        session = sessions[min(sessions)]
        for ev in events:
            session.publish(confirm_topic(ev.device_id), encode({"seq": ev.seq}), 1)
        metrics.CONFIRMED.inc(len(events))

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
