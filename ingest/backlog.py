"""Watches what the broker holds for the centre against a memory budget, and raises an
operator alarm well before the budget is spent (docs/overload.md).

Why a budget and not a broker limit: Mosquitto 2.0 has no limit past which it refuses an MQTT
3.1.1 QoS 1 PUBLISH. A full per-client queue (`max_queued_messages`, `max_queued_bytes`) and
`memory_limit` both end with the device holding a PUBACK for a message the broker then drops
(see docs/overload.md for the source lines and the measurements). So the broker is configured
with no queue cap and no memory limit (deploy/mosquitto/firetower.conf): it drops nothing it
acknowledged, and the one thing that can stop it is the memory of its host. This module makes
that visible long before: it follows the broker's `$SYS` figures, exports them as gauges, and
keeps these FAULT alarms (device `broker:<host>:<port>`, through the one alarm write path, so
they show in the console with every other alarm) in step with them:

- `broker.backlog_high`: the broker's heap reached `warn` (50 %) of the budget;
- `broker.backlog_critical`: it reached `critical` (80 %);
  each clears once the heap is back under its watermark minus `hysteresis` (10 points);
- `broker.messages_dropped`: the broker's dropped-message counter grew (a queue cap that
  should not be there, a QoS 0 message to a full client): acknowledged messages may be lost;
  clears after `dropped_clear_s` with no new drop;
- `broker.backlog_unwatched`: no `$SYS` figure for `sys_stale_s` (the account may not read
  `$SYS/broker/#`, or the broker stopped publishing them): the backlog is not watched.

The figures arrive on one of the ingester's own sessions (QoS 0, `SYS_TOPICS`); the ingester
hands every `$SYS/` message to `BacklogWatch.on_sys`. The alarms are written from a task of
their own with its own database connection, retried every tick while the database is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

import asyncpg
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from firetower import db
from firetower.alarm_store import AlarmKey, AlarmStore, Occurrence
from firetower.alarms import OPEN_STATES_SQL, AlarmClass
from ingest import metrics

log = logging.getLogger(__name__)

HEAP = "$SYS/broker/heap/current"
STORED_MESSAGES = "$SYS/broker/store/messages/count"
STORED_BYTES = "$SYS/broker/store/messages/bytes"
DROPPED = "$SYS/broker/publish/messages/dropped"
SYS_TOPICS = (HEAP, STORED_MESSAGES, STORED_BYTES, DROPPED)
# Heap per stored message beyond its payload, measured on Mosquitto 2.0.11 (docs/overload.md):
# used to estimate the heap of a broker built without memory tracking (no heap/current).
OVERHEAD_PER_MESSAGE = 280
ACTOR = "ingest"
STORED_REFRESH_S = 60.0


class BacklogAlarm(StrEnum):
    HIGH = "broker.backlog_high"
    CRITICAL = "broker.backlog_critical"
    DROPPED = "broker.messages_dropped"
    UNWATCHED = "broker.backlog_unwatched"


class BacklogSettings(BaseSettings):
    """`FIRETOWER_BROKER_*`: the broker's memory budget and the watermarks."""

    model_config = SettingsConfigDict(env_prefix="FIRETOWER_BROKER_", extra="ignore")

    # Bytes of broker heap the backlog may take (what the broker's host can give it). Default:
    # half of this machine's memory (broker and ingester on one host, as `firetower run`).
    memory_budget: int | None = Field(default=None, ge=1)
    backlog_warn: float = Field(default=0.5, gt=0, lt=1)
    backlog_critical: float = Field(default=0.8, gt=0, lt=1)
    backlog_hysteresis: float = Field(default=0.1, ge=0, lt=1)
    sys_stale_s: float = Field(default=60.0, gt=0)
    dropped_clear_s: float = Field(default=600.0, gt=0)

    def budget(self) -> int:
        if self.memory_budget is not None:
            return self.memory_budget
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2


@dataclass(frozen=True, slots=True)
class Watermarks:
    budget: int
    warn: float = 0.5
    critical: float = 0.8
    hysteresis: float = 0.1

    def __post_init__(self) -> None:
        if self.budget <= 0:
            raise ValueError("the memory budget must be positive")
        if not 0 < self.warn < self.critical < 1:
            raise ValueError("watermarks must satisfy 0 < warn < critical < 1")
        if not 0 <= self.hysteresis < self.warn:
            raise ValueError("the hysteresis must be below the warn watermark")

    @classmethod
    def from_settings(cls, s: BacklogSettings) -> Watermarks:
        return cls(s.budget(), s.backlog_warn, s.backlog_critical, s.backlog_hysteresis)


def levels(ratio: float, open_now: frozenset[BacklogAlarm], wm: Watermarks
           ) -> frozenset[BacklogAlarm]:
    """The backlog alarms that should be open at `ratio` (heap / budget), given those open
    now: raised at their watermark, cleared only below it minus the hysteresis."""
    out = set()
    for alarm, mark in ((BacklogAlarm.HIGH, wm.warn), (BacklogAlarm.CRITICAL, wm.critical)):
        if ratio >= mark or (alarm in open_now and ratio >= mark - wm.hysteresis):
            out.add(alarm)
    return frozenset(out)


@dataclass(slots=True)
class BrokerFigures:
    """The broker's latest `$SYS` figures (None until received) and when they last arrived."""

    heap: int | None = None
    stored_messages: int | None = None
    stored_bytes: int | None = None
    dropped: int | None = None
    updated: float | None = None  # monotonic
    drops_seen: int = 0  # drops counted since this watch started (across broker restarts)
    last_drop: float | None = None  # monotonic time the dropped counter last grew
    _dropped_base: int | None = field(default=None, repr=False)

    def update(self, topic: str, payload: bytes, now: float) -> bool:
        """Take one `$SYS` message; False if it is not one of ours or not a number."""
        try:
            value = int(payload)
        except ValueError:
            return False
        if topic == HEAP:
            self.heap = value
        elif topic == STORED_MESSAGES:
            self.stored_messages = value
        elif topic == STORED_BYTES:
            self.stored_bytes = value
        elif topic == DROPPED:
            self._dropped(value, now)
        else:
            return False
        self.updated = now
        return True

    def _dropped(self, value: int, now: float) -> None:
        base = self._dropped_base
        if base is None:  # the broker's total before we watched: drops we did not see happen
            self.dropped = self._dropped_base = value
            return
        if value < base:  # the broker restarted: its counter starts again from 0
            base = 0
        if value > base:
            self.drops_seen += value - base
            self.last_drop = now
        self.dropped = self._dropped_base = value

    def usage(self) -> int | None:
        """Heap bytes the broker uses (estimated from its store if it has no heap figure)."""
        if self.heap is not None:
            return self.heap
        if self.stored_bytes is not None and self.stored_messages is not None:
            return self.stored_bytes + OVERHEAD_PER_MESSAGE * self.stored_messages
        return None


class BacklogWatch:
    """Keeps the backlog gauges and alarms of one broker. Feed it with `on_sys`; `start`
    runs the tick task; `stop` ends it."""

    def __init__(self, database_url: str, broker: str, settings: BacklogSettings | None = None,
                 *, tick_s: float = 1.0) -> None:
        self.settings = settings or BacklogSettings()
        self.watermarks = Watermarks.from_settings(self.settings)
        self.database_url = database_url
        self.device_id = f"broker:{broker}"
        self.figures = BrokerFigures()
        self.tick_s = tick_s
        self.open: frozenset[BacklogAlarm] = frozenset()  # as wanted by the last tick
        self.stored: set[BacklogAlarm] | None = None  # as stored (None: not read yet)
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = time.monotonic()
        self._read_at = 0.0  # monotonic time `stored` was last read from the database

    def key(self, alarm: BacklogAlarm) -> AlarmKey:
        return AlarmKey(self.device_id, "", alarm.value)

    # -- input (event-loop thread) ---------------------------------------------------------
    def on_sys(self, topic: str, payload: bytes) -> None:
        self.figures.update(topic, payload, time.monotonic())

    @property
    def ratio(self) -> float | None:
        used = self.figures.usage()
        return None if used is None else used / self.watermarks.budget

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self._started = time.monotonic()
        metrics.serve_broker_gauges(self._gauge_values)
        self._task = asyncio.create_task(self._loop(), name="backlog-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None

    def _gauge_values(self) -> dict[str, float]:
        f = self.figures
        nan = math.nan

        def num(v: int | None) -> float:
            return nan if v is None else float(v)

        ratio = self.ratio
        return {
            "heap": num(f.usage()), "stored_messages": num(f.stored_messages),
            "stored_bytes": num(f.stored_bytes), "dropped": num(f.dropped),
            "budget": float(self.watermarks.budget),
            "ratio": nan if ratio is None else ratio,
            "age": nan if f.updated is None else time.monotonic() - f.updated,
            **{f"alarm:{a.value}": float(a in self.open) for a in BacklogAlarm},
        }

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception:  # never let the watch die: log, and try again next tick
                log.exception("backlog watch tick failed")
            await asyncio.sleep(self.tick_s)

    # -- decide and write ----------------------------------------------------------------------
    def wanted(self, now: float) -> frozenset[BacklogAlarm]:
        """The alarms that should be open now (pure but for the figures it reads)."""
        s, f = self.settings, self.figures
        out: set[BacklogAlarm] = set()
        ratio = self.ratio
        if ratio is not None:
            out |= levels(ratio, self.open, self.watermarks)
        else:  # no figure yet: keep what is open (a restart must not clear a real backlog)
            out |= self.open & {BacklogAlarm.HIGH, BacklogAlarm.CRITICAL}
        seen = f.updated if f.updated is not None else self._started
        if now - seen > s.sys_stale_s:
            out.add(BacklogAlarm.UNWATCHED)
        if f.last_drop is not None and now - f.last_drop < s.dropped_clear_s:
            out.add(BacklogAlarm.DROPPED)
        return frozenset(out)

    async def tick(self) -> None:
        now = time.monotonic()
        wanted = self.wanted(now)
        for alarm in wanted - self.open:
            log.warning("%s: %s", alarm.value, self._describe(alarm))
        for alarm in self.open - wanted:
            log.info("%s cleared: %s", alarm.value, self._describe(alarm))
        self.open = wanted
        if now - self._read_at > STORED_REFRESH_S:
            self.stored = None  # follow what is stored (an operator, another worker)
        await self._sync()

    def _describe(self, alarm: BacklogAlarm) -> str:
        f, wm = self.figures, self.watermarks
        used = f.usage()
        if alarm is BacklogAlarm.UNWATCHED:
            return (f"no $SYS figures from the broker for over {self.settings.sys_stale_s:.0f} s "
                    "(can the ingester's account read $SYS/broker/#?)")
        if alarm is BacklogAlarm.DROPPED:
            return (f"the broker dropped {f.drops_seen} message(s) since this ingester started "
                    "(a queue limit was reached: acknowledged messages may be lost)")
        pct = "?" if used is None else f"{100 * used / wm.budget:.0f} %"
        return (f"the broker holds {used or 0:,} bytes ({f.stored_messages or 0:,} messages), "
                f"{pct} of its {wm.budget:,}-byte budget")

    async def _sync(self) -> None:
        """Make the stored alarms what `self.open` says; on a database error, next tick."""
        try:
            conn = await self._connection()
            if self.stored is None:
                rows = await conn.fetch(
                    f"SELECT type FROM alarms WHERE device_id = $1 AND state IN {OPEN_STATES_SQL}",
                    self.device_id)
                self.stored = {BacklogAlarm(r["type"]) for r in rows
                               if r["type"] in BacklogAlarm._value2member_map_}
                self._read_at = time.monotonic()
                if not self.open and self.figures.updated is None:
                    # started with no figure yet: what is stored stays until figures say else
                    self.open = frozenset(self.stored - {BacklogAlarm.UNWATCHED})
            store = AlarmStore(conn)
            at = datetime.now(UTC)
            for alarm in sorted(self.open - self.stored):
                await store.raise_or_recur(Occurrence(
                    self.key(alarm), AlarmClass.FAULT, at, received_at=at,
                    evidence=self._evidence_now(), reason=self._describe(alarm)), actor=ACTOR)
                self.stored.add(alarm)
            for alarm in sorted(self.stored - self.open):
                await store.clear(self.key(alarm), at=at, reason=self._describe(alarm),
                                  actor=ACTOR)
                self.stored.discard(alarm)
        except Exception as exc:
            if not db.is_transient(exc):
                raise
            log.warning("backlog alarms not written yet (database: %s); retrying", exc)
            if self._conn is not None:
                self._conn.terminate()
                self._conn = None

    def _evidence_now(self) -> dict[str, object]:
        f = self.figures
        return {"heap_bytes": f.usage(), "heap_measured": f.heap is not None,
                "stored_messages": f.stored_messages, "stored_bytes": f.stored_bytes,
                "dropped_since_start": f.drops_seen, "budget_bytes": self.watermarks.budget,
                "ratio": None if self.ratio is None else round(self.ratio, 4),
                "warn": self.watermarks.warn, "critical": self.watermarks.critical}

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            self._conn = await db.connect(self.database_url)
        return self._conn
