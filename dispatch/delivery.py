"""One endpoint's queue: deliver its pending messages one at a time, in id order.

Exactly one message of an endpoint is in flight; a message waiting for a retry blocks the ones
behind it (per-endpoint order is a promise to receivers), until it is delivered, rejected or
dead-lettered. Every attempt is recorded together with the delivery's new state in one
statement. A crash between the receiver's answer and that record re-sends the message with the
same webhook-id after restart: delivery is at-least-once, and receivers de-duplicate by id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import httpx

from dispatch import metrics
from dispatch.health import Health
from dispatch.retry import Outcome, Policy, decide
from dispatch.transport import describe
from firetower.db import Backoff, is_transient
from firetower.webhooks import payload
from firetower.webhooks.delivery_log import NO_SECRET
from firetower.webhooks.signing import sign_headers
from firetower.webhooks.subscriptions import ActiveKey

log = logging.getLogger(__name__)
USER_AGENT = "firetower-webhooks/1"
# At most this much of a receiver's answer is read (and dropped), so a huge answer costs nothing.
RESPONSE_READ_LIMIT = 64 * 1024
# A database error (an outage) is retried after these delays, doubling.
DB_RETRY_MIN_S, DB_RETRY_MAX_S = 0.2, 5.0

_PENDING = """
SELECT d.id, d.attempts, extract(epoch FROM clock_timestamp() - d.created_at) AS age_s,
       extract(epoch FROM d.next_attempt_at - clock_timestamp()) AS wait_s,
       extract(epoch FROM clock_timestamp() - e.occurred_at)::float8 AS occurred_s,
       d.replay_of IS NOT NULL AS replay,
       e.uid, e.type, e.alarm_id, e.occurred_at, e.data
FROM webhook_deliveries d JOIN webhook_events e ON e.id = d.event_id
WHERE d.endpoint_id = $1 AND d.status = 'pending'
ORDER BY d.id LIMIT $2
"""
_RECORD = """
WITH d AS (
    UPDATE webhook_deliveries SET
        status = CASE WHEN $2 = 'retry' THEN 'pending' ELSE $2 END,
        attempts = attempts + 1,
        next_attempt_at = clock_timestamp() + make_interval(secs => $3),
        finished_at = CASE WHEN $2 = 'retry' THEN NULL ELSE clock_timestamp() END,
        last_status = $4, last_error = $5
    WHERE id = $1 AND status = 'pending' RETURNING id)
INSERT INTO webhook_attempts (delivery_id, duration_ms, status_code, error, outcome)
SELECT id, $6, $4, $5, $2 FROM d
"""


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: int
    url: str
    keys: tuple[ActiveKey, ...]

    def signing_keys(self, now: datetime) -> list[bytes]:
        return [k.key for k in self.keys if k.expires_at is None or k.expires_at > now]


@dataclass(frozen=True, slots=True)
class Attempt:
    status: int | None
    error: str | None
    retry_after: str | None
    duration_ms: float


class EndpointWorker:
    def __init__(self, endpoint: Endpoint, pool: asyncpg.Pool, client: httpx.AsyncClient,
                 health: Health, policy: Policy, *, public_url: str, batch_size: int,
                 rescan_s: float, on_delivered: Callable[[int, str], None] | None = None,
                 ) -> None:
        self.endpoint = endpoint
        self._pool, self._client, self._health = pool, client, health
        self._policy, self._public_url = policy, public_url
        self._batch, self._rescan_s = batch_size, rescan_s
        self._on_delivered = on_delivered
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"webhook-{self.endpoint.id}")

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def _run(self) -> None:
        backoff = Backoff(DB_RETRY_MIN_S, DB_RETRY_MAX_S)
        loaded = False
        while True:
            try:
                if not loaded:
                    await self._health.load(self.endpoint.id)
                    loaded = True
                wait = await self._drain()
                backoff.reset()
            except Exception as exc:  # a worker must not die: its queue would stall
                wait = backoff.next()
                if is_transient(exc):
                    if backoff.failures % 10 == 1:
                        log.warning("webhook endpoint %s: database unavailable (%s: %s); "
                                    "retrying in %.1f s", self.endpoint.id,
                                    type(exc).__name__, exc, wait)
                else:
                    log.exception("webhook endpoint %s: unexpected error; retrying",
                                  self.endpoint.id)
            try:
                await asyncio.wait_for(self.wake.wait(), timeout=wait)
            except TimeoutError:
                pass

    async def _drain(self) -> float:
        """Deliver what is due; return how long to sleep before looking again."""
        while True:
            self.wake.clear()
            rows = await self._pool.fetch(_PENDING, self.endpoint.id, self._batch)
            fetched = time.perf_counter()
            if not rows:
                return self._rescan_s
            for row in rows:  # times from the database's clock: no skew with this host
                if row["attempts"] and row["wait_s"] > 0:
                    return min(float(row["wait_s"]), self._rescan_s)
                if await self._deliver(row, fetched) is Outcome.RETRY:
                    break  # the head of the queue must go first: re-read its schedule

    async def _deliver(self, row: asyncpg.Record, fetched: float) -> Outcome:
        """`fetched`: perf_counter() when `row` was read (its ages are as of then)."""
        ep = self.endpoint
        body = payload.body(uid=row["uid"], type_=row["type"], occurred_at=row["occurred_at"],
                            data=row["data"], alarm_id=row["alarm_id"],
                            public_url=self._public_url)
        msg_id = payload.message_id(row["uid"])
        keys = ep.signing_keys(datetime.now(UTC))
        attempt = await self._post(msg_id, body, keys)
        age = float(row["age_s"]) + attempt.duration_ms / 1000.0
        # No usable secret is our fault, not the receiver's: retried like a network error.
        decision = decide(self._policy, status=attempt.status, attempts=row["attempts"] + 1,
                          age_s=age, retry_after_header=attempt.retry_after)
        error = attempt.error
        if decision.outcome is Outcome.REJECTED and attempt.status is not None:
            error = f"HTTP {attempt.status}: not retried"
        await self._pool.execute(_RECORD, row["id"], decision.outcome.value, decision.delay_s,
                                 attempt.status, error, attempt.duration_ms)
        metrics.ATTEMPTS.labels(decision.outcome.value).inc()
        if keys:  # an attempt with no usable secret sent nothing
            metrics.ATTEMPT_SECONDS.observe(attempt.duration_ms / 1000.0)
        if decision.outcome is Outcome.DELIVERED and not row["replay"]:
            metrics.DELIVERY_SECONDS.observe(row["occurred_s"] + time.perf_counter() - fetched)
        if decision.outcome is Outcome.DELIVERED:
            await self._health.success(ep.id)
            if self._on_delivered is not None:
                self._on_delivered(ep.id, msg_id)
        else:
            if decision.outcome is Outcome.DEAD:
                log.error("webhook %s to endpoint %s dead-lettered after %d attempts (%s)",
                          msg_id, ep.id, row["attempts"] + 1, error)
            await self._health.failure(ep.id, ep.url, error or f"HTTP {attempt.status}")
        return decision.outcome

    async def _post(self, msg_id: str, body: bytes, keys: list[bytes]) -> Attempt:
        if not keys:
            return Attempt(None, NO_SECRET, None, 0.0)
        headers = sign_headers(keys, msg_id, body)
        headers["content-type"] = "application/json"
        headers["user-agent"] = USER_AGENT
        t0 = time.perf_counter()
        try:
            async with self._client.stream("POST", self.endpoint.url, content=body,
                                           headers=headers) as r:
                await _discard(r, self._client.timeout.read)
        except httpx.HTTPError as exc:
            # What failed, not what the target said: the log is shown to integrators, and a
            # target's answer or the exception's text would tell them about internal hosts.
            log.info("webhook %s to endpoint %s: %s (%s: %s)", msg_id, self.endpoint.id,
                     describe(exc), type(exc).__name__, exc)
            return Attempt(None, describe(exc), None, _ms(t0))
        err = None if r.is_success else f"HTTP {r.status_code}"
        return Attempt(r.status_code, err, r.headers.get("retry-after"), _ms(t0))


async def _discard(r: httpx.Response, timeout_s: float | None) -> None:
    """Read and drop the answer's body, at most RESPONSE_READ_LIMIT bytes within the read
    timeout (a whole small body lets the connection be reused; a larger or slower one just
    closes it). The outcome depends on the status alone; the body is never stored."""
    if not r.is_success:
        return
    read = 0
    with contextlib.suppress(httpx.HTTPError, TimeoutError):
        async with asyncio.timeout(timeout_s):
            async for chunk in r.aiter_raw():
                read += len(chunk)
                if read > RESPONSE_READ_LIMIT:
                    return


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000.0
