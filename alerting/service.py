"""AlertingService: the rule engine as a message listener of the ingester, with its writer,
its deadline timer and its configuration reloads.

Start order (restart safety): read devices, rule overrides, modes, open alarms and persisted
rule state; restore the engine (open alarms are the truth for what is raised); arm the
heartbeat deadlines; start the writer and the timer; only then return, so the ingester starts
consuming after everything is loaded. A restart neither re-raises nor forgets an alarm.

Never lose a decided alarm (issue 11):
- the writer retries a decision while the database is unavailable (alerting/writer.py);
- the ingester acknowledges a message only once every decision made up to its evaluation is
  committed (`mark()` when its batch is taken, `settled(mark)` before the ack), so a decision
  pending when the process dies is made again from the redelivered message; the rule state
  (with the event seqs already evaluated) is saved only when the writer has caught up;
- a decision the database refuses for itself (a bug, an invalid transition) is reconciled: once
  the writer has caught up, the open alarms of its key are read and the engine's condition made
  to match, so a later signal raises it again;
- the LISTEN connection, the reloads and the state saves ride out a database restart: the
  connection is re-opened with backoff and everything is reloaded (notifications sent meanwhile
  were lost with it). If the alarm writer itself stops, `fatal` is set: the process must exit.

Heightened watch windows (alerting/watch.py): loaded with the overrides (at start and on each
configuration reload), the ones active now laid over them (`RuleConfig.with_watch`). The watch
timer re-applies them at the next bound (a window's start or end), from what was loaded, so a
window applies and reverts on time without a NOTIFY and without the database; a NOTIFY on
CONFIG_CHANNEL (a window created or cancelled) reloads at once. The engine re-arms at once
(`Engine.set_config`): a shorter heartbeat bites at last_seen + the new heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time

import asyncpg

from alerting import loader, metrics, watch
from alerting.clock import Clock, SystemClock
from alerting.condition import Level
from alerting.config import RuleConfig
from alerting.decision import Action, Decision
from alerting.device import cond_key
from alerting.engine import Engine
from alerting.modes import ModeTable
from alerting.watch import WatchWindow
from alerting.writer import AlarmWriter
from alerting.writer_thread import WriterThread
from firetower import db
from firetower.alarm_store import AlarmKey, AlarmStore, TransactionHook
from firetower.alarms import OPEN_STATES_SQL
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
# Reconnecting the LISTEN connection, retrying a reload or a reconciliation: backoff bounds.
RECONNECT_MIN_S, RECONNECT_MAX_S = 0.2, 5.0
# A live LISTEN connection is checked this often (a silent loss is noticed within it).
LISTEN_CHECK_S = 5.0
_OPEN_OF_KEYS = f"""
SELECT device_id, point, type FROM alarms
WHERE state IN {OPEN_STATES_SQL} AND (device_id, point, type) IN (
    SELECT * FROM unnest($1::text[], $2::text[], $3::text[]))
"""


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
        self._early_in = 0  # messages ever put in _early
        self._early_out = 0  # ... and ever taken out of it (evaluated or discarded)
        self._replay_mark = 0  # the writer's tickets issued after the last replay
        # the ingester's acknowledgements wait on these: (ticket, early count, future)
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        # refused decisions: keys to reconcile, and the keys being reconciled now (a decision
        # for one of those while its open alarms are read puts it back for the next round)
        self._resync: set[AlarmKey] = set()
        self._refused_seqs: dict[str, set[int]] = {}  # device -> event seqs never stored
        self._watching: set[AlarmKey] = set()
        self._touched: set[AlarmKey] = set()
        self._resync_wake = asyncio.Event()
        self._listen_lost = asyncio.Event()
        self._pending_all = False
        self.fatal: asyncio.Future[BaseException] | None = None
        # Messages evaluated, by message class: plain integers on the hot path (70 ns; a
        # labelled Prometheus counter costs 1 us with its lock), published by publish_metrics().
        self.evaluated: dict[type, int] = dict.fromkeys((Telemetry, Event, Status), 0)
        self._published: dict[type, int] = dict.fromkeys(self.evaluated, 0)
        self._state_sampled = 0.0
        # heightened watch: the overrides as loaded, the windows current or to come, and the
        # ones applied now (id -> window); the watch timer waits on `_watch_wake` for a reload
        self._base_config = RuleConfig()
        self._windows: list[WatchWindow] = []
        self._applied: dict[int, WatchWindow] = {}
        self._watch_wake = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self.fatal = asyncio.get_running_loop().create_future()
        pool = self._pool = await db.create_pool(self.settings.database_url, min_size=1,
                                                 max_size=3)
        self.store = AlarmStore(pool, hooks=self.hooks)
        # On its own thread, a fire's alarm commit does not wait for the ingester's telemetry
        # work on this loop: under a 5x burst with a backlog, decided -> stored max 91 ms
        # instead of 2.5 s (firetower bench e2e, docs/performance.md).
        if self.writer_thread:
            self.writer = WriterThread(self.settings.database_url, hooks=self.hooks,
                                       on_refused=self._refused, on_progress=self._progress,
                                       on_fatal=self._fatal)
        else:
            self.writer = AlarmWriter(self.store, on_refused=self._refused,
                                      on_progress=self._progress)
        await self.writer.start()
        engine = Engine(clock=self.clock, sink=self._decided)
        async with pool.acquire() as conn:
            infos, life = await loader.devices(conn, owns=self.owns)
            self._set_config(engine, RuleConfig(await loader.overrides(conn)),
                             await loader.watch_windows(conn))
            engine.modes = ModeTable(await loader.modes(conn))
            engine.set_devices(infos, life)
            states = await loader.rule_states(conn, self.owns)
        keys, fire_at = loader.open_keys(await self.store.open_alarms())
        engine.restore(states, keys, fire_at)
        engine.start_supervision()
        engine.on_schedule = self._scheduled
        self.engine = engine
        await self._connect_listener()
        self._tasks = [asyncio.create_task(self._save_states_loop(), name="alerting-state"),
                       asyncio.create_task(self._timer(), name="alerting-timer"),
                       asyncio.create_task(self._watch_timer(), name="alerting-watch"),
                       asyncio.create_task(self._metrics_loop(), name="alerting-metrics"),
                       asyncio.create_task(self._listen_loop(), name="alerting-listen"),
                       asyncio.create_task(self._resync_loop(), name="alerting-resync")]
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
        for _, _, fut in self._waiters:
            if not fut.done():
                fut.cancel()
        self._waiters = []
        if self._listen is not None:
            self._listen.terminate()
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
                self._early_in += 1
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
        if self._watching and d.key in self._watching:
            self._touched.add(d.key)
        assert self.writer is not None
        self.writer.put(d)

    # -- acknowledgement barrier (the ingester) --------------------------------------------------
    def mark(self) -> tuple[int, int]:
        """Where the decisions stand now: every message evaluated so far (or waiting in the
        early list for its device's reload) is covered by `settled(mark())`."""
        assert self.writer is not None
        return self.writer.enqueued, self._early_in

    def settled_now(self, mark: tuple[int, int]) -> bool:
        ticket, early = mark
        if early > self._early_out:
            return False
        if early:
            ticket = max(ticket, self._replay_mark)
        return self.writer is not None and self.writer.low >= ticket

    async def settled(self, mark: tuple[int, int]) -> None:
        """Return once every decision made up to `mark` is committed (or refused)."""
        if self.settled_now(mark):
            return
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append((*mark, fut))
        await fut

    def _progress(self) -> None:
        """The writer's watermark moved (or an early replay finished): wake what it covers."""
        if not self._waiters:
            return
        keep = []
        for ticket, early, fut in self._waiters:
            if fut.done():
                continue
            if self.settled_now((ticket, early)):
                fut.set_result(None)
            else:
                keep.append((ticket, early, fut))
        self._waiters = keep

    def _fatal(self, exc: BaseException) -> None:
        if self.fatal is not None and not self.fatal.done():
            self.fatal.set_result(exc)

    # -- refused decisions: the engine follows the table ---------------------------------------
    def _refused(self, d: Decision) -> None:
        if d.action in (Action.RAISE, Action.CLEAR):
            self._resync.add(d.key)
            if d.seq is not None:  # a redelivery of that message is no repeat
                self._refused_seqs.setdefault(d.key.device_id, set()).add(d.seq)
            self._resync_wake.set()

    async def _resync_loop(self) -> None:
        """Reconcile the keys of refused decisions once the writer has caught up: then the
        table holds every decision made so far, and a decision for one of the keys made while
        its open alarms are read sends it round again."""
        backoff = db.Backoff(RECONNECT_MIN_S, RECONNECT_MAX_S)
        while True:
            await self._resync_wake.wait()
            writer, engine, pool = self.writer, self.engine, self._pool
            assert writer is not None and engine is not None and pool is not None
            while writer.done < writer.enqueued:
                await asyncio.sleep(0.05)
            self._resync_wake.clear()
            keys, self._resync = list(self._resync), set()
            self._watching, self._touched = set(keys), set()
            try:
                rows = await pool.fetch(_OPEN_OF_KEYS, [k.device_id for k in keys],
                                        [k.point for k in keys], [k.type for k in keys])
            except Exception as exc:
                self._resync.update(keys)
                self._resync_wake.set()
                self._watching = set()
                log.warning("reconciling %d refused alarm decision(s) failed (%s); retrying",
                            len(keys), exc)
                await backoff.sleep()
                continue
            backoff.reset()
            open_now = {AlarmKey(r["device_id"], r["point"], r["type"]) for r in rows}
            for key in keys:
                if key in self._touched:
                    self._resync.add(key)
                    self._resync_wake.set()
                else:
                    self._reconcile(key, key in open_now)
            self._watching, self._touched = set(), set()

    def _reconcile(self, key: AlarmKey, is_open: bool) -> None:
        """Make the engine's condition of `key` raised exactly when an alarm of it is open."""
        engine = self.engine
        assert engine is not None
        st = engine.devices.get(key.device_id)
        seqs = self._refused_seqs.pop(key.device_id, None)
        if st is None:
            return
        if seqs and not is_open:
            st.event_seqs = tuple(x for x in st.event_seqs if x not in seqs)
        ck = cond_key(key.type, key.point)
        c = st.conds.get(ck)
        if (c is not None and c.active) == is_open:
            return
        if is_open:
            c = st.cond(ck)
            c.active, c.level, c.pending_since = True, Level.HOLD, None
        else:
            assert c is not None
            c.force_clear()  # a later signal raises it again
            zk = engine.zone_key(st, int(key.point.split("/")[0]) if "/" in key.point
                                 else None)
            if zk is not None:  # a fire that is not open confirms nothing in its zone
                engine.zones.remove(zk, (key.device_id, key.point))
            if st.hb_at is None and key.type == "offline":
                engine.start_supervision()  # re-arm its heartbeat deadline
        st.dirty = True
        engine.mark_dirty(key.device_id)
        log.warning("alarm %s/%s/%s: the engine had it %s, the table has it %s; the engine "
                    "follows the table", key.device_id, key.point or "-", key.type,
                    "closed" if is_open else "open", "open" if is_open else "not open")

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
        except Exception as exc:  # an outage (or a bug) must not end the save loop
            if db.is_transient(exc):
                log.warning("rule state of %d devices not saved: database unavailable (%s); "
                            "kept for the next save", len(items), exc)
            else:
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

    # -- heightened watch windows ---------------------------------------------------------------
    def _set_config(self, engine: Engine, base: RuleConfig,
                    windows: list[WatchWindow]) -> None:
        """New overrides and windows (a reload): the windows active now laid over them."""
        self._base_config, self._windows = base, windows
        self._apply_watch(engine)
        self._watch_wake.set()  # the next bound may have moved

    def _apply_watch(self, engine: Engine) -> None:
        """Give the engine the overrides under the windows active now; log what changed."""
        now = self.clock.now()
        self._windows = [w for w in self._windows if w.ends_at > now]  # ended: done with
        active = {w.id: w for w in watch.active(self._windows, now)}
        engine.set_config(self._base_config.with_watch(active.values()))
        for wid, w in active.items():
            if self._applied.get(wid) != w:
                log.info("watch window %d (%s) applied: %d sites, %s", wid, w.name,
                         len(w.site_ids), w.settings.to_json())
        for wid, w in self._applied.items():
            if wid not in active:
                log.info("watch window %d (%s) reverted: %d sites", wid, w.name,
                         len(w.site_ids))
        self._applied = active

    async def _watch_timer(self) -> None:
        """Apply and revert the windows at their bounds (by the service's clock). Re-checked at
        least every MAX_SLEEP_S while a bound is ahead (a clock step, a fake clock)."""
        while True:
            now = self.clock.now()
            if self.engine is not None and (
                    {w.id: w for w in watch.active(self._windows, now)} != self._applied):
                try:
                    self._apply_watch(self.engine)
                except Exception:  # a bug here must not end the timer of every later bound
                    log.exception("applying the watch windows failed")
            nxt = watch.next_bound(self._windows, now)
            delay = None if nxt is None else min(max(nxt - now, 0.0), MAX_SLEEP_S)
            self._watch_wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._watch_wake.wait()

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
        """Apply pending reloads; retried with backoff while the database is unavailable (the
        pending work is kept), so a device or configuration change is never forgotten."""
        assert self._pool is not None and self.engine is not None
        backoff = db.Backoff(RECONNECT_MIN_S, RECONNECT_MAX_S)
        while self._pending_devices or self._pending_config or self._pending_all:
            ids, self._pending_devices = list(self._pending_devices), set()
            config, self._pending_config = self._pending_config, False
            everything, self._pending_all = self._pending_all, False
            try:
                async with self._pool.acquire() as conn:
                    if config or everything:
                        overrides = await loader.overrides(conn)
                        windows = await loader.watch_windows(conn)
                        self._set_config(self.engine, RuleConfig(overrides), windows)
                        self.engine.modes = ModeTable(await loader.modes(conn))
                    if everything:
                        infos, life = await loader.devices(conn, None, self.owns)
                        self.engine.set_devices(infos, life)
                    elif ids:
                        infos, life = await loader.devices(conn, ids, self.owns)
                        self.engine.set_devices(infos, life)
            except Exception as exc:
                self._pending_devices.update(ids)
                self._pending_config |= config
                self._pending_all |= everything
                if db.is_transient(exc):
                    log.warning("alerting reload failed: database unavailable (%s); retrying",
                                exc)
                else:
                    log.exception("alerting reload failed; retrying")
                await backoff.sleep()
                continue
            backoff.reset()
            early, self._early = self._early, []
            for message in early:
                if message.device_id in self.engine.devices:
                    self.evaluated[type(message)] += 1
                    self.engine.on_message(message)
            self._early_out += len(early)
            if early:
                assert self.writer is not None
                self._replay_mark = self.writer.enqueued
                self._progress()

    # -- the LISTEN connection -------------------------------------------------------------------
    async def _connect_listener(self) -> None:
        conn = await db.connect(self.settings.database_url)
        try:
            await conn.add_listener(DEVICES_CHANNEL, self._device_changed)
            await conn.add_listener(CONFIG_CHANNEL, self._config_changed)
        except BaseException:
            conn.terminate()
            raise
        self._listen_lost.clear()
        conn.add_termination_listener(lambda _c: self._listen_lost.set())
        self._listen = conn

    async def _listen_loop(self) -> None:
        """Re-open the LISTEN connection when it is lost (a database restart or crash), then
        reload everything: the notifications sent meanwhile were lost with it."""
        backoff = db.Backoff(RECONNECT_MIN_S, RECONNECT_MAX_S)
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(LISTEN_CHECK_S):
                    await self._listen_lost.wait()
            conn = self._listen
            if conn is not None and not conn.is_closed() and not self._listen_lost.is_set():
                try:
                    async with asyncio.timeout(LISTEN_CHECK_S):
                        await conn.fetchval("SELECT 1")
                    continue
                except Exception as exc:
                    log.warning("alerting: LISTEN connection check failed (%s)", exc)
            if conn is not None:
                conn.terminate()
            self._listen = None
            log.warning("alerting: LISTEN connection lost; reconnecting")
            while True:
                try:
                    await self._connect_listener()
                    break
                except Exception as exc:
                    delay = backoff.next()
                    if backoff.failures % 10 == 1:
                        log.warning("alerting: LISTEN reconnect failed (%s: %s); retrying",
                                    type(exc).__name__, exc)
                    await asyncio.sleep(delay)
            backoff.reset()
            log.info("alerting: LISTEN connection back; reloading devices and configuration")
            self._pending_all = True
            self._schedule_reload()
