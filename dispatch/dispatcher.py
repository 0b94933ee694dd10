"""The dispatcher process: one leader at a time, endpoint workers, the forwarder.

Start-up takes a session advisory lock on the listening connection, so a second dispatcher
waits as a hot standby (per-endpoint order needs one sender); if the leader dies, even by
SIGKILL, PostgreSQL drops its connection and the lock, and the standby takes over. The
listening connection receives `firetower_webhooks` (an endpoint id: new messages; `config`:
endpoints or secrets changed) and `firetower_alarm_events` (wake the forwarder).

A database restart or crash does not end the process (issue 11): when the listening connection
is lost (noticed at once from the connection, or by a check every LISTEN_CHECK_S), the
dispatcher steps down at once (its leadership went with the connection: a standby may take
it), stops its endpoint workers and the forwarder, and reconnects with backoff; once it holds
the lock again it reloads the endpoints and resumes. Deliveries and forwarding pick up where
the outbox says: nothing is lost, a message in flight at the loss may be sent again with the
same webhook-id. Database errors of the workers and the forwarder are retried with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import asyncpg
import httpx

from dispatch import metrics
from dispatch.config import DispatchSettings
from dispatch.delivery import Endpoint, EndpointWorker
from dispatch.forwarding import Forwarder
from dispatch.health import Health
from dispatch.retry import Policy
from dispatch.transport import GuardedTransport
from firetower import db, heartbeat
from firetower.alarm_store import CHANNEL as ALARM_CHANNEL
from firetower.settings import Settings
from firetower.webhooks.delivery_log import CHANNEL
from firetower.webhooks.secretbox import SealError, SecretBox
from firetower.webhooks.subscriptions import active_keys, reseal

log = logging.getLogger(__name__)
LEADER_LOCK = 0x46545748  # "FTWH"
# The listening connection (which holds leadership) is checked this often; a check may take as
# long. The server drops a silent client (and its lock) after 10 + 3 x 5 s of TCP keepalive.
LISTEN_CHECK_S = 3.0
_KEEPALIVE = {"tcp_keepalives_idle": "10", "tcp_keepalives_interval": "5",
              "tcp_keepalives_count": "3"}
RECONNECT_MIN_S, RECONNECT_MAX_S = 0.2, 5.0
_PENDING_BY_ENDPOINT = """
SELECT e.id, count(d.id) AS pending FROM webhook_endpoints e
LEFT JOIN webhook_deliveries d ON d.endpoint_id = e.id AND d.status = 'pending'
WHERE e.enabled GROUP BY e.id
"""


class Dispatcher:
    def __init__(self, settings: Settings, dispatch: DispatchSettings | None = None, *,
                 on_delivered: Callable[[int, str], None] | None = None) -> None:
        self.settings = settings
        self.config = dispatch or DispatchSettings()
        self._box = SecretBox.of(settings.secret_keys)
        self._on_delivered = on_delivered
        self._workers: dict[int, EndpointWorker] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._reload = asyncio.Event()
        self.pool: asyncpg.Pool | None = None
        self._log_pool: asyncpg.Pool | None = None
        self._listen: asyncpg.Connection | None = None
        self._client: httpx.AsyncClient | None = None
        self.forwarder: Forwarder | None = None
        self.leader = asyncio.Event()
        self._next_prune = 0.0
        self._lost = asyncio.Event()  # the listening connection (and leadership) went away
        self._keeper: asyncio.Task[None] | None = None
        self.leaderships = 0  # times leadership was taken (1 + recoveries)

    async def start(self) -> None:
        c = self.config
        # No session state is ever left on these connections (LISTEN and the leader lock live
        # on `_listen`), so skip asyncpg's reset round trip on every release: it doubled the
        # database round trips per delivery.
        self.pool = await self._pool(c.pool_size // 2)
        # The queue and the delivery log are written with synchronous_commit off: a database
        # crash may forget the last fraction of a second of delivery records, which only sends
        # those messages again with the same webhook-id (receivers de-duplicate). The outbox
        # rows themselves are written durably, by the alarm change's own transaction.
        self._log_pool = await self._pool(c.pool_size - c.pool_size // 2,
                                          synchronous_commit="off")
        # Every connection checked against the SSRF policy after DNS resolution.
        self._client = httpx.AsyncClient(
            timeout=c.timeout_s, follow_redirects=False, trust_env=False,
            transport=GuardedTransport(
                self.settings.webhook_allowed_networks,
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=100)))
        self._health = Health(self.pool, failures=c.failing_alarm_failures,
                              after_s=c.failing_alarm_after_s)
        self.forwarder = Forwarder(self.pool, deadline_s=c.verification_deadline_s,
                                   on_coincidence=c.forward_on_coincidence,
                                   max_age_s=c.forward_max_age_s, rescan_s=c.rescan_s)
        await self._lead()
        self._keeper = asyncio.create_task(self._keep_leading(), name="dispatch-leadership")

    async def _lead(self) -> None:
        """Connect, wait for the leader lock, listen, load the endpoints, start the work."""
        conn = await asyncpg.connect(self.settings.database_url, server_settings=_KEEPALIVE)
        try:
            log.info("dispatcher: waiting for leadership")
            await conn.execute("SELECT pg_advisory_lock($1)", LEADER_LOCK)
            await conn.add_listener(CHANNEL, self._on_webhooks)
            await conn.add_listener(ALARM_CHANNEL, self._on_alarm)
        except BaseException:
            conn.terminate()
            raise
        self._lost.clear()
        conn.add_termination_listener(lambda _c: self._lost.set())
        self._listen = conn
        self.leader.set()
        metrics.LEADER.set(1)
        self.leaderships += 1
        log.info("dispatcher: leader")
        assert self.forwarder is not None
        self.forwarder.wake.set()  # alarms changed while nobody listened
        await self._reseal()
        await self._sync_endpoints()
        self._tasks = [asyncio.create_task(self.forwarder.run(), name="forwarder"),
                       asyncio.create_task(self._supervise(), name="dispatch-supervisor"),
                       asyncio.create_task(self._count_outbox(), name="dispatch-outbox-gauge")]

    async def _reseal(self) -> None:
        """Stored secrets in the old format or under a previous key: re-sealed with the
        current key (firetower/webhooks/secretbox.py), once per leadership."""
        assert self.pool is not None
        done, failed = await reseal(self.pool, self._box)
        if done:
            log.info("dispatcher: re-sealed %d webhook secrets with the current key", done)
        if failed:
            log.error("dispatcher: %d webhook secrets open with no known key (set the key "
                      "that sealed them in FIRETOWER_PREVIOUS_SECRET_KEYS, or rotate them)",
                      failed)

    async def _step_down(self) -> None:
        """Stop every sender at once and let go of the listening connection (and the lock)."""
        was = self.leader.is_set()
        self.leader.clear()
        if was:
            metrics.LEADER.set(0)
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for w in self._workers.values():
            await w.stop()
        self._workers.clear()
        if self._listen is not None:
            self._listen.terminate()
            self._listen = None

    async def _listening(self) -> bool:
        """Whether the listening connection is alive; waits up to LISTEN_CHECK_S for a loss."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(LISTEN_CHECK_S):
                await self._lost.wait()
        conn = self._listen
        if self._lost.is_set() or conn is None or conn.is_closed():
            return False
        try:
            async with asyncio.timeout(LISTEN_CHECK_S):
                await conn.fetchval("SELECT 1")
        except Exception as exc:
            log.warning("dispatcher: the listening connection does not answer (%s)", exc)
            return False
        return True

    async def _keep_leading(self) -> None:
        """Ride out a database restart or crash: step down when the listening connection is
        lost, reconnect with backoff, lead again."""
        backoff = db.Backoff(RECONNECT_MIN_S, RECONNECT_MAX_S)
        while True:
            # The supervisor's liveness check (firetower/heartbeat.py): this loop runs every
            # LISTEN_CHECK_S and proves the event loop and the leader connection answer.
            heartbeat.beat()
            if await self._listening():
                continue
            log.warning("dispatcher: lost the database connection that holds leadership; "
                        "deliveries stopped until it is back")
            await self._step_down()
            while True:
                try:
                    await self._lead()
                    break
                except Exception as exc:
                    await self._step_down()
                    heartbeat.beat()  # waiting for the database is this loop's work now
                    delay = backoff.next()
                    if backoff.failures % 10 == 1:
                        log.warning("dispatcher: database unavailable (%s: %s); retrying in "
                                    "%.1f s", type(exc).__name__, exc, delay)
                    await asyncio.sleep(delay)
            backoff.reset()
            log.info("dispatcher: database back, leading again; deliveries resumed")

    async def _pool(self, size: int, **server_settings: str) -> asyncpg.Pool:
        pool = await asyncpg.create_pool(self.settings.database_url, min_size=1, max_size=size,
                                         init=db.init_connection, reset=_no_reset,
                                         server_settings=server_settings or None)
        assert pool is not None
        return pool

    async def stop(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            await asyncio.gather(self._keeper, return_exceptions=True)
            self._keeper = None
        await self._step_down()
        if self._client is not None:
            await self._client.aclose()
        for pool in (self._log_pool, self.pool):
            if pool is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(pool.close(), 10)

    def _on_webhooks(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        if payload == "config":
            self._reload.set()
            return
        worker = self._workers.get(int(payload)) if payload.isdigit() else None
        if worker is not None:
            worker.wake.set()

    def _on_alarm(self, *_args: object) -> None:
        if self.forwarder is not None:
            self.forwarder.wake.set()

    async def _supervise(self) -> None:
        """Reload endpoints on `config`, and periodically (a missed NOTIFY costs a rescan)."""
        while True:
            try:
                await asyncio.wait_for(self._reload.wait(), timeout=self.config.rescan_s * 6)
            except TimeoutError:
                pass
            self._reload.clear()
            if self._listen is None or self._listen.is_closed():
                self._lost.set()  # _keep_leading steps down and reconnects
                return
            try:
                await self._sync_endpoints()
                if time.monotonic() >= self._next_prune:
                    self._next_prune = time.monotonic() + 3600
                    await prune(self.pool, self.config.retention_days)
            except Exception:  # keep supervising; the next reload may succeed
                log.exception("dispatcher: reloading endpoints failed")

    async def _count_outbox(self) -> None:
        """The outbox depth per endpoint, counted by the database every rescan interval."""
        assert self.pool is not None
        while True:
            try:
                rows = await self.pool.fetch(_PENDING_BY_ENDPOINT)
            except Exception as exc:
                log.warning("dispatcher: counting the outbox failed: %s", exc)
            else:
                metrics.set_pending({r["id"]: r["pending"] for r in rows})
            await asyncio.sleep(self.config.rescan_s)

    async def _sync_endpoints(self) -> None:
        assert self.pool is not None and self._log_pool is not None
        assert self._client is not None
        rows = await self.pool.fetch("SELECT id, url FROM webhook_endpoints WHERE enabled")
        wanted: dict[int, Endpoint] = {}
        for r in rows:
            try:
                keys = tuple(await active_keys(self.pool, self._box, r["id"]))
            except SealError as exc:  # deliveries wait (retried) until the key is fixed
                log.error("webhook endpoint %s: %s", r["id"], exc)
                keys = ()
            wanted[r["id"]] = Endpoint(r["id"], r["url"], keys)
        for eid in list(self._workers):
            if wanted.get(eid) != self._workers[eid].endpoint:
                await self._workers.pop(eid).stop()
                metrics.set_failing(eid, None)  # a replacement worker sets it again
        await self._health.clear_orphans(set(wanted))
        c = self.config
        for eid, ep in wanted.items():
            if eid in self._workers:
                continue
            w = EndpointWorker(ep, self._log_pool, self._client, self._health,
                               Policy(c.backoff_base_s, c.backoff_max_s, c.dead_letter_after_s),
                               public_url=self.settings.public_url, batch_size=c.batch_size,
                               rescan_s=c.rescan_s, on_delivered=self._on_delivered)
            self._workers[eid] = w
            w.start()


async def prune(pool: asyncpg.Pool, retention_days: int) -> int:
    """Delete finished deliveries (and their attempts) and unreferenced events older than the
    retention; pending ones are never touched. Returns the deliveries deleted."""
    async with pool.acquire() as conn, conn.transaction():
        n = await conn.fetchval(
            "WITH gone AS (DELETE FROM webhook_deliveries WHERE status <> 'pending'"
            " AND finished_at < now() - make_interval(days => $1::int) RETURNING 1)"
            " SELECT count(*) FROM gone", retention_days)
        await conn.execute(
            "DELETE FROM webhook_events e WHERE e.occurred_at < now() - make_interval(days => $1)"
            " AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = e.id)",
            retention_days)
    if n:
        log.info("dispatcher: pruned %d finished deliveries older than %s days", n,
                 retention_days)
    return n


async def _no_reset(_conn: asyncpg.Connection) -> None:
    return None


async def serve(settings: Settings, dispatch: DispatchSettings | None = None,
                ready: Callable[[], None] | None = None) -> None:
    d = Dispatcher(settings, dispatch)
    await d.start()
    if ready is not None:
        ready()
    try:
        await asyncio.Event().wait()
    finally:
        await d.stop()
