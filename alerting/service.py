"""AlertingService: the rule engine as a message listener of the ingester, with its writer,
its deadline timer and its configuration reloads.

Start order (restart safety): read devices, rule overrides, modes, open alarms and persisted
rule state; restore the engine (open alarms are the truth for what is raised); arm the
heartbeat deadlines; start the writer and the timer; only then return, so the ingester starts
consuming after everything is loaded. A restart neither re-raises nor forgets an alarm.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

import asyncpg

from alerting import loader, metrics
from alerting.clock import Clock, SystemClock
from alerting.config import RuleConfig
from alerting.decision import Decision
from alerting.engine import Engine
from alerting.modes import ModeTable
from alerting.writer import AlarmWriter
from alerting.writer_thread import WriterThread
from firetower import db
from firetower.alarm_store import AlarmStore, TransactionHook
from firetower.model import Event, Message, Status, Telemetry
from firetower.settings import Settings

log = logging.getLogger(__name__)
DEVICES_CHANNEL = "firetower_devices"
CONFIG_CHANNEL = "firetower_alerting_config"
# Messages of devices the engine does not know yet, kept until the registry reload (bounded).
MAX_EARLY = 10_000
# A deadline further away than this is re-checked anyway (a clock step, a missed wake-up).
MAX_SLEEP_S = 1.0
# Metrics: evaluations and gauges are published this often; the rule-state size (a sample of
# this many devices' serialised state) less often.
METRICS_S = 1.0
STATE_SAMPLE_S, STATE_SAMPLE = 30.0, 200


class AlertingService:
    def __init__(self, settings: Settings, *, clock: Clock | None = None,
                 hooks: list[TransactionHook] | None = None,
                 state_flush_s: float = 0.5, writer_thread: bool = True,
                 owns: loader.DeviceFilter | None = None) -> None:
        self.settings = settings
        self.owns = owns  # the devices this worker serves (partitioned: docs/scaling.md)
        self.clock = clock or SystemClock()
        self.hooks = hooks or []
        self.state_flush_s = state_flush_s
        self.writer_thread = writer_thread
        self.engine: Engine | None = None
        self.writer: AlarmWriter | WriterThread | None = None
        self.store: AlarmStore | None = None
        self._pool: asyncpg.Pool | None = None
        self._listen: asyncpg.Connection | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._sleep_until = 0.0
        self._reload: asyncio.Task[None] | None = None
        self._pending_devices: set[str] = set()
        self._pending_config = False
        self._early: list[Message] = []
        # Messages evaluated, by message class: plain integers on the hot path (70 ns; a
        # labelled Prometheus counter costs 1 us with its lock), published by publish_metrics().
        self.evaluated: dict[type, int] = dict.fromkeys((Telemetry, Event, Status), 0)
        self._published: dict[type, int] = dict.fromkeys(self.evaluated, 0)
        self._state_sampled = 0.0

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        pool = self._pool = await db.create_pool(self.settings.database_url, min_size=1,
                                                 max_size=3)
        self.store = AlarmStore(pool, hooks=self.hooks)
        # On its own thread, a fire's alarm commit does not wait for the ingester's telemetry
        # work on this loop: under a 5x burst with a backlog, decided -> stored max 91 ms
        # instead of 2.5 s (firetower bench e2e, docs/performance.md).
        if self.writer_thread:
            self.writer = WriterThread(self.settings.database_url, hooks=self.hooks)
        else:
            self.writer = AlarmWriter(self.store, take_dirty=list, save_states=_no_state,
                                      state_flush_s=60.0)
        await self.writer.start()
        engine = Engine(clock=self.clock, sink=self._decided)
        async with pool.acquire() as conn:
            infos, life = await loader.devices(conn, owns=self.owns)
            engine.set_config(RuleConfig(await loader.overrides(conn)))
            engine.modes = ModeTable(await loader.modes(conn))
            engine.set_devices(infos, life)
            states = await loader.rule_states(conn, self.owns)
        keys, fire_at = loader.open_keys(await self.store.open_alarms())
        engine.restore(states, keys, fire_at)
        engine.start_supervision()
        engine.on_schedule = self._scheduled
        self.engine = engine
        self._listen = await db.connect(self.settings.database_url)
        await self._listen.add_listener(DEVICES_CHANNEL, self._device_changed)
        await self._listen.add_listener(CONFIG_CHANNEL, self._config_changed)
        self._tasks = [asyncio.create_task(self._save_states_loop(), name="alerting-state"),
                       asyncio.create_task(self._timer(), name="alerting-timer"),
                       asyncio.create_task(self._metrics_loop(), name="alerting-metrics")]
        log.info("alerting started: %d devices, %d open alarms, %d rule states",
                 len(infos), len(keys), len(states))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        if self.writer is not None:
            await self.writer.drain()
            await self.save_states()
            await self.writer.stop()
            self.publish_metrics()
        if self._reload is not None:
            self._reload.cancel()
            await asyncio.gather(self._reload, return_exceptions=True)
        if self._listen is not None:
            await self._listen.close()
            self._listen = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    # -- the listener --------------------------------------------------------------------------
    def on_message(self, message: Message) -> None:
        engine = self.engine
        if engine is None:
            return
        if message.device_id not in engine.devices:
            # registered a moment ago, our reload is not through yet: keep it, replay after
            if len(self._early) < MAX_EARLY:
                self._early.append(message)
                self._pending_devices.add(message.device_id)
                self._schedule_reload()
            else:
                log.error("dropping message of unknown device %s", message.device_id)
            return
        self.evaluated[type(message)] += 1
        engine.on_message(message)

    def _decided(self, d: Decision) -> None:
        """The engine's sink: count the decision, queue it for the writer."""
        metrics.DECISIONS.labels(d.action.value, d.alarm_class.value).inc()
        assert self.writer is not None
        self.writer.put(d)

    # -- metrics -------------------------------------------------------------------------------
    def publish_metrics(self) -> None:
        """Add the evaluations since the last call to the counter; set the gauges."""
        for tp, n in self.evaluated.items():
            delta = n - self._published[tp]
            if delta:
                metrics.EVALUATIONS.labels(tp.__name__.lower()).inc(delta)
                self._published[tp] = n
        engine, writer = self.engine, self.writer
        if engine is None or writer is None:
            return
        metrics.DEVICES.set(len(engine.devices))
        metrics.WRITER_QUEUE.set(writer.enqueued - writer.done)
        now = time.monotonic()
        if now - self._state_sampled >= STATE_SAMPLE_S and engine.devices:
            self._state_sampled = now
            devices = list(engine.devices.values())
            sample = random.sample(devices, min(STATE_SAMPLE, len(devices)))
            metrics.STATE_BYTES.set(sum(len(st.dump()) for st in sample) / len(sample))

    async def _metrics_loop(self) -> None:
        while True:
            self.publish_metrics()
            await asyncio.sleep(METRICS_S)

    # -- rule state ----------------------------------------------------------------------------
    async def save_states(self) -> None:
        """Persist the changed devices' rule state, but only while every decision made so far
        is committed: then the stored state is never ahead of the stored alarms."""
        if self.engine is None or self.writer is None or self._pool is None:
            return
        if self.writer.done < self.writer.enqueued:
            return
        items = self.engine.take_dirty()  # synchronous: no decision can slip in between
        if not items:
            return
        try:
            async with self._pool.acquire() as conn:
                await loader.save_rule_states(conn, items)
        except (asyncpg.PostgresError, OSError):
            log.exception("rule state of %d devices not saved", len(items))
            for device_id, _ in items:  # try again next time
                st = self.engine.devices.get(device_id)
                if st is not None:
                    st.dirty = True
                    self.engine.mark_dirty(device_id)

    async def _save_states_loop(self) -> None:
        while True:
            await asyncio.sleep(self.state_flush_s)
            await self.save_states()

    # -- the deadline timer ----------------------------------------------------------------------
    def _scheduled(self, due: float) -> None:
        if due < self._sleep_until:
            self._wake.set()

    async def _timer(self) -> None:
        assert self.engine is not None
        while True:
            try:
                nxt = self.engine.tick()
            except Exception:  # a rule bug must not stop supervision of every other device
                log.exception("deadline processing failed")
                nxt = None
            now = self.clock.now()
            delay = MAX_SLEEP_S if nxt is None else min(max(nxt - now, 0.0), MAX_SLEEP_S)
            self._sleep_until = now + delay
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    # -- reloads on NOTIFY -----------------------------------------------------------------------
    def _device_changed(self, conn: object, pid: int, channel: str, device_id: str) -> None:
        self._pending_devices.add(device_id)
        self._schedule_reload()

    def _config_changed(self, conn: object, pid: int, channel: str, table: str) -> None:
        self._pending_config = True
        self._schedule_reload()

    def _schedule_reload(self) -> None:
        if self._reload is None or self._reload.done():
            self._reload = asyncio.get_running_loop().create_task(self._apply_reload())

    async def _apply_reload(self) -> None:
        assert self._pool is not None and self.engine is not None
        try:
            while self._pending_devices or self._pending_config:
                ids, self._pending_devices = list(self._pending_devices), set()
                config, self._pending_config = self._pending_config, False
                async with self._pool.acquire() as conn:
                    if config:
                        self.engine.set_config(RuleConfig(await loader.overrides(conn)))
                        self.engine.modes = ModeTable(await loader.modes(conn))
                    if ids:
                        infos, life = await loader.devices(conn, ids, self.owns)
                        self.engine.set_devices(infos, life)
                early, self._early = self._early, []
                for message in early:
                    if message.device_id in self.engine.devices:
                        self.evaluated[type(message)] += 1
                        self.engine.on_message(message)
        except (asyncpg.PostgresError, OSError):
            log.exception("alerting configuration reload failed")


async def _no_state(items: list[tuple[str, bytes]]) -> None:
    return None  # the service saves rule state itself (save_states)
