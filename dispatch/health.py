"""Endpoint health: failure counters on the endpoint row, and an operator-visible FAULT alarm
(`webhook.failing`, device `webhook:<id>`) while an endpoint keeps failing, raised and cleared
through the one alarm write path (firetower.alarm_store) so it shows in the console."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import asyncpg

from dispatch import metrics
from firetower.alarm_store import AlarmKey, AlarmStore, Occurrence
from firetower.alarms import OPEN_STATES_SQL, AlarmClass

log = logging.getLogger(__name__)
ALARM_TYPE = "webhook.failing"


def alarm_key(endpoint_id: int) -> AlarmKey:
    return AlarmKey(f"webhook:{endpoint_id}", "", ALARM_TYPE)


class Health:
    def __init__(self, pool: asyncpg.Pool, *, failures: int, after_s: float) -> None:
        self._pool = pool
        self._store = AlarmStore(pool)
        self._failures = failures
        self._after_s = after_s
        self._failing: dict[int, bool] = {}  # endpoint -> has failures recorded
        self._alarmed: dict[int, bool] = {}

    async def load(self, endpoint_id: int) -> None:
        row = await self._pool.fetchrow(
            "SELECT consecutive_failures > 0 AS failing, EXISTS (SELECT 1 FROM alarms"
            f" WHERE device_id = $2 AND type = $3 AND state IN {OPEN_STATES_SQL}) AS alarmed"
            " FROM webhook_endpoints WHERE id = $1",
            endpoint_id, alarm_key(endpoint_id).device_id, ALARM_TYPE)
        self._failing[endpoint_id] = bool(row and row["failing"])
        self._alarmed[endpoint_id] = bool(row and row["alarmed"])
        metrics.set_failing(endpoint_id, self._alarmed[endpoint_id])

    async def success(self, endpoint_id: int) -> None:
        if not self._failing.get(endpoint_id):
            return  # the hot path: nothing to write
        await self._pool.execute(
            "UPDATE webhook_endpoints SET consecutive_failures = 0, failing_since = NULL,"
            " last_success_at = now() WHERE id = $1", endpoint_id)
        self._failing[endpoint_id] = False
        if self._alarmed.get(endpoint_id):
            await self._store.clear(alarm_key(endpoint_id), at=datetime.now(UTC),
                                    reason="webhook endpoint delivering again",
                                    actor="dispatch")
            self._alarmed[endpoint_id] = False
            metrics.set_failing(endpoint_id, False)

    async def clear_orphans(self, endpoint_ids: set[int]) -> None:
        """Clear the failing alarms of endpoints that were deleted or disabled."""
        rows = await self._pool.fetch(
            f"SELECT device_id FROM alarms WHERE type = $1 AND state IN {OPEN_STATES_SQL}",
            ALARM_TYPE)
        for r in rows:
            eid = r["device_id"].partition(":")[2]
            if eid.isdigit() and int(eid) not in endpoint_ids:
                await self._store.clear(alarm_key(int(eid)), at=datetime.now(UTC),
                                        reason="webhook endpoint deleted or disabled",
                                        actor="dispatch")
                self._alarmed.pop(int(eid), None)
                metrics.set_failing(int(eid), None)

    async def failure(self, endpoint_id: int, url: str, error: str) -> None:
        row = await self._pool.fetchrow(
            "UPDATE webhook_endpoints SET consecutive_failures = consecutive_failures + 1,"
            " failing_since = coalesce(failing_since, now()), last_error = $2 WHERE id = $1"
            " RETURNING consecutive_failures, extract(epoch FROM now() - failing_since) AS age",
            endpoint_id, error[:500])
        self._failing[endpoint_id] = True
        if row is None or self._alarmed.get(endpoint_id):
            return
        if row["consecutive_failures"] >= self._failures and row["age"] >= self._after_s:
            now = datetime.now(UTC)
            log.warning("webhook endpoint %s (%s) keeps failing: %s", endpoint_id, url, error)
            await self._store.raise_or_recur(Occurrence(
                alarm_key(endpoint_id), AlarmClass.FAULT, now, received_at=now,
                evidence={"endpoint_id": endpoint_id, "url": url, "last_error": error[:500],
                          "consecutive_failures": row["consecutive_failures"]},
                reason=f"webhook endpoint {url} keeps failing: {error[:200]}"),
                actor="dispatch")
            self._alarmed[endpoint_id] = True
            metrics.set_failing(endpoint_id, True)
