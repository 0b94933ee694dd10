"""The notifier's loops (run by `firetower notify`, cli/notify.py):

- jobs: woken by NOTIFY firetower_notify (sent by the raise trigger in the alarm's transaction)
  and polling every second besides, resolves jobs into messages (notify/outbox.py);
- delivery: claims due messages, fire first, and sends each through its channel
  (notify/sender.py) with at most `concurrency` in flight; a slow or dead channel holds only
  its own message;
- escalation: sleeps until the next escalation is due (at most 0.25 s), then turns it into a
  job or stops it;
- depth: counts the pending and recently dead messages for the metrics every 5 s;
- watch bounds: records, once a second, the heightened-watch windows that started or ended
  (notify/watch_store.py), with their audit rows.

Every loop rides out a database outage with backoff; nothing is lost meanwhile, since the jobs
and messages are rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import httpx

from firetower import db, heartbeat
from firetower.webhooks.secretbox import SecretBox
from notify import metrics, outbox, sender
from notify.channels import ChannelSettings

log = logging.getLogger(__name__)
CHANNEL = "firetower_notify"
POLL_S = 1.0
ESCALATION_TICK_S = 0.25
DEPTH_S = 5.0  # the outbox depth gauges are counted this often


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Counters:
    jobs: int = 0
    messages: int = 0
    sent: int = 0
    retried: int = 0
    dead: int = 0
    escalations: int = 0
    failed_jobs: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


class Notifier:
    def __init__(self, pool: asyncpg.Pool, box: SecretBox, *, secret_key: str, public_url: str,
                 channels: ChannelSettings, concurrency: int = 32,
                 now: Callable[[], datetime] = _now) -> None:
        self.pool = pool
        self.box = box
        self.secret_key = secret_key
        self.public_url = public_url
        self.channels = channels
        self.now = now
        self.counters = Counters()
        self._wake_jobs = asyncio.Event()
        self._wake_send = asyncio.Event()
        self._slots = asyncio.Semaphore(concurrency)
        self._inflight: set[asyncio.Task[None]] = set()
        self.phone_channels = tuple(c for c in ("sms", "voice") if channels.configured(c))
        self._client: httpx.AsyncClient | None = None  # the robots' connections, shared
        self.lease_s = outbox.lease_s(channels.timeout_s)
        sender.use_threads(concurrency)

    # -- the loops --------------------------------------------------------------------------
    async def run(self) -> None:
        self._client = httpx.AsyncClient(timeout=self.channels.timeout_s)
        listener = asyncio.create_task(self._listen(), name="notify-listen")
        try:
            await asyncio.gather(
                self._loop("jobs", self.jobs_once, self._wake_jobs),
                self._loop("delivery", self.deliver_once, self._wake_send),
                self._loop("escalation", self.escalate_once, None, ESCALATION_TICK_S),
                self._loop("watch", self.watch_once, None, POLL_S),
                self._loop("depth", self.depth_once, None, DEPTH_S))
        finally:
            listener.cancel()
            for t in list(self._inflight):
                t.cancel()
            await asyncio.gather(listener, *self._inflight, return_exceptions=True)
            await self._client.aclose()

    async def _loop(self, name: str, step: Callable[[], Awaitable[bool]],
                    wake: asyncio.Event | None, idle_s: float = POLL_S) -> None:
        backoff = db.Backoff(0.2, 5.0)
        while True:
            heartbeat.beat()
            try:
                busy = await step()
            except Exception as exc:
                if not db.is_transient(exc):
                    log.exception("notify %s: unexpected error; going on", name)
                else:
                    log.warning("notify %s: database unavailable (%s)", name, exc)
                await asyncio.sleep(backoff.next())
                continue
            backoff.reset()
            if busy:
                continue
            if wake is None:
                await asyncio.sleep(idle_s)
                continue
            try:
                async with asyncio.timeout(idle_s):
                    await wake.wait()
            except TimeoutError:
                pass
            wake.clear()

    async def _listen(self) -> None:
        """LISTEN for new jobs; reconnects after a database restart (polling covers the gap)."""
        def woke(*_: object) -> None:
            self._wake_jobs.set()
        while True:
            try:
                conn = await self.pool.acquire()
                try:
                    await conn.add_listener(CHANNEL, woke)
                    self._wake_jobs.set()
                    while not conn.is_closed():
                        await asyncio.sleep(5.0)
                        await conn.execute("SELECT 1")
                finally:
                    with contextlib.suppress(Exception):  # a lost connection has none
                        await conn.remove_listener(CHANNEL, woke)
                    await self.pool.release(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("notify: LISTEN connection lost (%s); again shortly", exc)
                await asyncio.sleep(1.0)

    # -- one step of each -------------------------------------------------------------------
    async def jobs_once(self) -> bool:
        async with self.pool.acquire() as conn:
            r = await outbox.resolve_next(conn, self.box, secret_key=self.secret_key,
                                          public_url=self.public_url,
                                          phone_channels=self.phone_channels, now=self.now())
        if r is None:
            return False
        self.counters.jobs += 1
        if r.messages < 0:
            self.counters.failed_jobs += 1
            metrics.JOBS.labels("failed").inc()
            return False
        metrics.JOBS.labels("done").inc()
        self.counters.messages += r.messages
        if r.messages:
            self._wake_send.set()
        return True

    async def deliver_once(self) -> bool:
        async with self.pool.acquire() as conn:
            claimed = await outbox.claim(conn, self.box, self.now(), lease=self.lease_s)
        for c in claimed:
            await self._slots.acquire()
            task = asyncio.create_task(self._send(c))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        return bool(claimed)

    async def _send(self, c: outbox.Claimed) -> None:
        try:
            outcome = await sender.send(c.channel, c.address, c.secret, c.subject, c.body,
                                        self.channels, client=self._client)
            backoff = db.Backoff(0.2, 5.0)
            while True:  # the outcome must be recorded: retried through a database outage
                try:
                    async with self.pool.acquire() as conn:
                        result = await outbox.finish(conn, c, outcome, self.now())
                    break
                except Exception as exc:
                    if not db.is_transient(exc):
                        raise
                    await asyncio.sleep(backoff.next())
            self.counters.outcomes[result] = self.counters.outcomes.get(result, 0) + 1
            metrics.ATTEMPTS.labels(c.channel, result).inc()
            metrics.ATTEMPT_SECONDS.labels(c.channel).observe(outcome.duration_ms / 1000.0)
            if result == "sent":
                metrics.SENT_SECONDS.labels(str(c.priority)).observe(
                    max(0.0, (self.now() - c.created_at).total_seconds()))
            if result == "sent":
                self.counters.sent += 1
            elif result == "dead":
                self.counters.dead += 1
                log.warning("notify: message %s dead on %s: %s", c.ids[0], c.channel,
                            outcome.error)
            else:
                self.counters.retried += 1
        except Exception:
            log.exception("notify: sending message %s failed; the lease retries it", c.ids[0])
        finally:
            self._slots.release()

    async def escalate_once(self) -> bool:
        async with self.pool.acquire() as conn:
            sent = await outbox.escalate_due(conn, self.now())
        if sent:
            self.counters.escalations += len(sent)
            metrics.ESCALATIONS.inc(len(sent))
            for alarm_id, step in sent:
                log.info("notify: alarm %s escalated to step %s", alarm_id, step)
            self._wake_jobs.set()
        return False

    async def depth_once(self) -> bool:
        async with self.pool.acquire() as conn:
            pending, dead = await outbox.depth(conn, self.now())
        metrics.PENDING.set(pending)
        metrics.DEAD.set(dead)
        return False

    async def watch_once(self) -> bool:
        from notify.watch_store import mark_bounds
        async with self.pool.acquire() as conn:
            for wid, what in await mark_bounds(conn, self.now()):
                log.info("notify: watch window %s %s", wid, what)
        return False
