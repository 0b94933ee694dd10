"""Publish a stream of `Outgoing` to the broker: paced by virtual time (`speed`), at a fixed
rate (`rate` msg/s), or as fast as possible; over one connection or `processes` worker
processes (one Python paho publisher tops out near 23,000 QoS 1 msg/s). Messages are
partitioned by a stable hash of the device id, so each device's order is kept.

Nothing is lost silently: every publish return code is checked, publishing waits while the
window of unacknowledged messages is full (paho refuses new QoS 1 publishes once 65,535 are
outstanding), and `publish` returns only when every PUBACK has arrived.

Birth and will. One connection carries many devices and MQTT gives a connection one will, so on
shared connections a device's birth is an ordinary retained publish, and its will (an
`Outgoing` with `will=True`) is published like any other message when the scenario takes the
device offline. A device in `dedicated` gets its own connection, opened at its birth with its
real last will registered; at its will that connection is dropped without DISCONNECT
(`AsyncMqtt.kill`) and the broker itself publishes the will.

Liveness. The loop beats `firetower.heartbeat` (the file in FIRETOWER_HEARTBEAT_FILE) as it
hands out each message and while it waits for the next one due, and gives the event loop a
turn at least every 50 ms, so SIGTERM is served within that and a supervisor sees a stuck
generator by its stale heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import sys
import time
import zlib
from collections.abc import Awaitable, Callable, Collection, Iterable

from firetower import heartbeat
from simulators.confirmations import Confirmations
from simulators.lanes import DEFAULT_WINDOW, Credentials, Lane, Pool, PublishStats
from simulators.stream import Outgoing

__all__ = ["PublishError", "PublishStats", "publish", "publish_blocking"]
_connections = itertools.count(1)   # unique client ids for dedicated connections
# The loop hands the event loop a turn at least this often (SIGTERM, PUBACKs) while it
# publishes without waiting, and a paced wait is cut into slices this long so the heartbeat
# goes on while a quiet fleet has nothing due.
YIELD_EVERY_S = 0.05
WAIT_SLICE_S = 0.5


class PublishError(RuntimeError):
    pass


class _Progress:
    """A line to stderr every `every` seconds: sent, rate, acknowledged."""

    def __init__(self, every: float, quiet: bool) -> None:
        self.every, self.quiet = every, quiet
        self.t0 = self.last_t = time.monotonic()
        self.last_n = 0

    def maybe(self, sent: int, acked: int, force: bool = False) -> None:
        now = time.monotonic()
        if self.quiet or (not force and now - self.last_t < self.every):
            return
        rate = (sent - self.last_n) / max(now - self.last_t, 1e-9)
        print(f"simulate: {sent:,} sent ({rate:,.0f}/s), {acked:,} acked, "
              f"{now - self.t0:,.0f} s", file=sys.stderr, flush=True)
        self.last_t, self.last_n = now, sent


async def publish(messages: Iterable[Outgoing], *, host: str = "127.0.0.1", port: int = 1883,
                  rate: float | None = None, speed: float | None = None, processes: int = 1,
                  credentials: Credentials = None, username: str | None = None,
                  password: str | None = None, dedicated: Collection[str] = (),
                  device_credentials: Callable[[str], Credentials] | None = None,
                  window: int = DEFAULT_WINDOW, quiet: bool = False,
                  progress_every: float = 5.0, drain_timeout: float = 120.0,
                  client_prefix: str | None = None, catch_up: bool = False,
                  confirm: bool = False) -> PublishStats:
    """Publish every message; return when all are acknowledged. `speed`: virtual seconds
    per wall second (1.0 = real time); `rate`: messages per second; neither: flat out.
    `catch_up` (with `speed`): never publish a message before the wall clock reaches its
    stamp, so a stream that starts in the past plays at `speed` until it has caught up with
    the clock and in real time from then on.
    `username`/`password` (or `credentials`) log the shared connections in; a dedicated
    device's connection uses `device_credentials(device_id)` when given.
    `confirm`: keep every event until the centre confirms it and send it again until then
    (simulators/confirmations.py); the drain then also waits for the confirmations."""
    if username is not None:
        credentials = (username, password)
    if rate is not None and speed is not None:
        raise ValueError("pace by rate or by speed, not both")
    if (rate is not None and rate <= 0) or (speed is not None and speed <= 0):
        raise ValueError("rate and speed must be positive")
    processes = max(1, processes)
    prefix = client_prefix or f"firetower-sim-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    progress = _Progress(progress_every, quiet)
    pool: Pool | None = None
    shared: Lane | None = None
    own: dict[str, Lane] = {}
    own_stats = PublishStats()
    lane_of: dict[str, int] = {}
    started = time.monotonic()
    dispatched = 0
    finished = False
    problems: list[str] = []
    conf: Confirmations | None = None

    async def route(out: Outgoing, again: bool = False) -> None:
        did = out.device_id
        if did in dedicated and (not again or did in own):
            creds = device_credentials(did) if device_credentials else credentials
            await _dedicated(out, own, own_stats, host, port, creds, prefix)
        elif pool is not None:
            lane = lane_of.get(did)
            if lane is None:
                lane = lane_of[did] = zlib.crc32(did.encode()) % processes
            await pool.add(lane, (out.topic, out.payload, out.qos, out.retain))
        else:
            assert shared is not None
            await shared.put(out.topic, out.payload, out.qos, out.retain)

    async def resend(now: float) -> None:
        if conf is not None:
            for again in list(conf.due(now)):
                await route(again, again=True)

    try:
        if confirm:
            conf = Confirmations(host, port, credentials)
            await conf.start()
        if processes > 1:
            pool = Pool(processes)
            await pool.start(host, port, credentials, window, prefix)
        else:
            shared = Lane(host, port, credentials=credentials, window=window,
                          client_id=f"{prefix}-0")
            await shared.start()
        wall0: float | None = None
        virt0 = None
        yielded = time.monotonic()
        for out in messages:
            # -- pacing ------------------------------------------------------------------
            now = time.monotonic()
            if wall0 is None:
                wall0, virt0 = now, out.ts
                started = now
            if speed is not None:
                due = wall0 + (out.ts - virt0).total_seconds() / speed
                if catch_up:
                    due = max(due, now + out.ts.timestamp() - time.time())
            elif rate is not None:
                due = wall0 + dispatched / rate
            else:
                due = now
            if due - now > 0.002:
                if pool is not None:
                    await pool.flush()
                progress.maybe(*_counts(pool, shared, own_stats, dispatched))
                await _wait_until(due, now, resend)
                now = yielded = time.monotonic()
            elif now - yielded >= YIELD_EVERY_S:   # catching up: let signals and acks in
                await asyncio.sleep(0)
                now = yielded = time.monotonic()
            heartbeat.beat(now)
            # -- routing -----------------------------------------------------------------
            await route(out)
            if conf is not None:
                conf.sent(out, now)
                await resend(now)
            dispatched += 1
            if dispatched % 2000 == 0:
                progress.maybe(*_counts(pool, shared, own_stats, dispatched))
        # -- drain ------------------------------------------------------------------------
        if conf is not None:   # every event confirmed, or given up after its last try
            if pool is not None:
                await pool.flush()
            while len(conf):
                await _wait_until(time.monotonic() + 0.1, time.monotonic(), resend)
                if pool is not None:
                    await pool.flush()
        total = PublishStats(processes=processes)
        if shared is not None:
            if not await shared.drain(drain_timeout):
                problems.append("timed out waiting for PUBACKs")
            total.add(shared.stats)
        if pool is not None:
            stats, errs = await pool.close(drain_timeout)
            pool = None
            total.add(stats)
            problems += errs
        for lane in own.values():
            await lane.drain(drain_timeout)
        total.add(own_stats)
        total.add(_sum(own.values()))
        if conf is not None:
            total.confirmed, total.resent = conf.confirmed, conf.resent
            total.unconfirmed = conf.abandoned + len(conf)
        total.elapsed = time.monotonic() - started
        progress.maybe(total.sent, total.acked, force=True)
        if problems:
            raise PublishError("; ".join(problems) + f" ({total})")
        finished = True
        return total
    finally:
        if not finished:
            progress.maybe(*_counts(pool, shared, own_stats, dispatched), force=True)
        if pool is not None:   # interrupted: stop workers
            with contextlib.suppress(Exception):
                await pool.close(5.0)
        for lane in own.values():
            with contextlib.suppress(Exception):
                await lane.stop()
        if shared is not None:
            with contextlib.suppress(Exception):
                await shared.stop()
        if conf is not None:
            with contextlib.suppress(Exception):
                await conf.stop()


async def _wait_until(due: float, now: float,
                      tick: Callable[[float], Awaitable[None]] | None = None) -> None:
    """Sleep until monotonic `due`, beating the heartbeat (the publish loop is the work) and
    calling `tick` (resends of unconfirmed events) at every slice."""
    while now < due:
        await asyncio.sleep(min(due - now, WAIT_SLICE_S))
        now = time.monotonic()
        heartbeat.beat(now)
        if tick is not None:
            await tick(now)


def publish_blocking(messages: Iterable[Outgoing], **kwargs: object) -> PublishStats:
    """`publish` from synchronous code."""
    return asyncio.run(publish(messages, **kwargs))  # type: ignore[arg-type]


async def _dedicated(out: Outgoing, own: dict[str, Lane], retired: PublishStats, host: str,
                     port: int, credentials: Credentials, prefix: str) -> None:
    """A device with its own connection: connect at birth with its will; drop at its will."""
    did = out.device_id
    lane = own.get(did)
    if out.will:
        if lane is not None:
            await lane.drain(30.0)   # everything before the will must have arrived
            lane.kill()
            await asyncio.sleep(0.05)   # let the broker see the drop before anything else
            retired.add(lane.stats)
            del own[did]
            retired.sent += 1        # the broker publishes the will for us
            retired.acked += 1
        return
    if out.will_payload is not None or lane is None:
        if lane is not None:
            await lane.drain(30.0)
            await lane.stop()
            retired.add(lane.stats)
        will = (out.topic, out.will_payload, 1, True) if out.will_payload is not None else None
        lane = Lane(host, port, credentials=credentials, window=1000, will=will,
                    client_id=f"{prefix}-{did}-{next(_connections)}")
        await lane.start()
        own[did] = lane
    await lane.put(out.topic, out.payload, out.qos, out.retain)


def _sum(lanes: Iterable[Lane]) -> PublishStats:
    total = PublishStats()
    for lane in lanes:
        total.add(lane.stats)
    return total


def _counts(pool: Pool | None, shared: Lane | None, own: PublishStats,
            dispatched: int) -> tuple[int, int]:
    if pool is not None:
        sent, acked = pool.progress()
        return sent, acked
    if shared is not None:
        return shared.stats.sent + own.sent, shared.stats.acked + own.acked
    return dispatched, own.acked
