"""The one transactional write path for alarm state: nothing else writes `alarms` or
`alarm_events` (`git grep "INSERT INTO alarm_events"` finds this module only).

Every change - an occurrence (raise or re-occurrence), an annotation (confidence, evidence,
inhibition), a lifecycle transition (clear by the engine; acknowledge, verdict, close by an
operator, one or many at once), a note (comment, assignment), the forwarding of a fire to the
brigade and a mode change - runs in one transaction that

1. locks or upserts the `alarms` row (`INSERT ... ON CONFLICT` on the partial unique index of
   open alarms, or `SELECT ... FOR UPDATE`), so concurrent writers never make two open alarms
   for one (device, point, type) and never lose a transition;
2. computes the new state with the pure `firetower.alarms.transition()`;
3. appends one row to `alarm_events` (who, when, why); the database trigger
   `alarm_events_webhooks` (migrations/0004) writes the webhook outbox rows for it in the
   same transaction;
4. runs the transaction hooks given to the store, if any, in the same transaction;
5. `pg_notify('firetower_alarm_events', <event id>)`, delivered only if it commits.

The one write without an event is `mark_shown`, the console's first-shown latency clock.

A hook is `async def hook(conn, change) -> None`: `AlarmStore(pool, hooks=[hook])`; it runs
inside the transaction and an exception rolls the change back. No production process passes
one today (the outbox is the trigger above); the tests use them to refuse changes.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from firetower.alarms import (
    OPEN_STATES_SQL,
    PRIORITY,
    AlarmClass,
    AlarmState,
    InvalidTransition,
    Mode,
    Trigger,
    Verdict,
    transition,
)

CHANNEL = "firetower_alarm_events"
ENGINE = "engine"
# The connection of an open `AlarmStore.transaction()` in this task, joined by every call.
_CURRENT: contextvars.ContextVar[asyncpg.Connection | None] = contextvars.ContextVar(
    "alarm_store_tx", default=None)


class AlarmNotFound(LookupError):
    """No alarm with this id (or no open alarm with this key)."""


@dataclass(frozen=True, slots=True)
class AlarmKey:
    device_id: str
    point: str
    type: str


@dataclass(frozen=True, slots=True)
class Occurrence:
    """The raise condition of `type` holds for (device, point): raise, or count a re-occurrence."""

    key: AlarmKey
    alarm_class: AlarmClass
    at: datetime  # when the condition became true (device clock for readings)
    site_id: str | None = None
    zone: int | None = None
    confidence: float = 1.0
    evidence: dict[str, Any] = field(default_factory=dict)
    mode: Mode = Mode.NORMAL
    inhibited_by: str | None = None
    group_key: str | None = None
    device_ts: datetime | None = None
    received_at: datetime | None = None
    reason: str = ""
    seq: int | None = None  # the message's seq: a redelivered message is no new occurrence
    ingested_at: datetime | None = None  # the rule engine decided (validated and evaluated)


@dataclass(frozen=True, slots=True)
class AlarmChange:
    """What one committed transaction did: the alarm, its event and the (old, new) states."""

    alarm_id: int | None
    event_id: int
    kind: str
    from_state: AlarmState | None
    to_state: AlarmState | None
    count: int = 0


@dataclass(slots=True)
class BulkOutcome:
    """What `AlarmStore.transition_many` did: the changes it committed, the alarms whose
    state refused the trigger (id -> why) and the ids that do not exist."""

    changes: list[AlarmChange] = field(default_factory=list)
    refused: dict[int, str] = field(default_factory=dict)
    missing: list[int] = field(default_factory=list)


# Runs inside the transaction, after the event row is written and before NOTIFY and commit.
TransactionHook = Callable[[asyncpg.Connection, AlarmChange], Awaitable[None]]

_UPSERT = f"""
INSERT INTO alarms AS a (device_id, site_id, point, zone, type, class, priority, state,
                         confidence, evidence, mode, inhibited_by, group_key, raised_at, last_at,
                         device_ts, received_at, last_seq, ingested_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, 'active', $8, $9, $10, $11, $12, $13, $13, $14, $15, $16,
        $17)
ON CONFLICT (device_id, point, type) WHERE state IN {OPEN_STATES_SQL}
DO UPDATE SET count = a.count + 1,
              last_at = greatest(a.last_at, EXCLUDED.last_at),
              last_seq = EXCLUDED.last_seq,
              confidence = greatest(a.confidence, EXCLUDED.confidence),
              evidence = a.evidence || EXCLUDED.evidence,
              updated_at = clock_timestamp()
    WHERE EXCLUDED.last_seq IS NULL OR a.last_seq IS DISTINCT FROM EXCLUDED.last_seq
RETURNING id, state, count, (xmax = 0) AS inserted
"""
_EVENT = """
INSERT INTO alarm_events (alarm_id, kind, from_state, to_state, actor, reason, details)
VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id
"""
# The fire alarms the forwarder still has to decide on. Must match the partial index
# alarms_forward_pending_idx (migrations/0004).
FORWARD_PENDING_SQL = ("class = 'fire' AND forwarded_at IS NULL AND mode = 'normal'"
                       " AND (verdict IS NULL OR verdict = 'true_fire')")
_LOCK_OPEN = f"""
SELECT id, state, class, count FROM alarms
WHERE device_id = $1 AND point = $2 AND type = $3 AND state IN {OPEN_STATES_SQL}
FOR UPDATE
"""


class AlarmStore:
    """Write alarm changes through one code path. Takes a pool, or one connection owned by a
    single writer task (then calls must not overlap)."""

    def __init__(self, db: asyncpg.Pool | asyncpg.Connection, *,
                 hooks: Sequence[TransactionHook] = ()) -> None:
        self._db = db
        self.hooks = list(hooks)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """Group several changes in one transaction (one commit): every call made inside, in
        this task, joins it. All of them commit, with their events and NOTIFYs, or none."""
        async with self._tx() as conn:
            token = _CURRENT.set(conn)
            try:
                yield
            finally:
                _CURRENT.reset(token)

    @contextlib.asynccontextmanager
    async def _tx(self) -> AsyncIterator[asyncpg.Connection]:
        current = _CURRENT.get()
        if current is not None:
            yield current
        elif isinstance(self._db, asyncpg.Pool):
            async with self._db.acquire() as conn, conn.transaction():
                yield conn
        else:
            async with self._db.transaction():
                yield self._db

    async def _finish(self, conn: asyncpg.Connection, alarm_id: int | None, kind: str,
                      old: AlarmState | None, new: AlarmState | None, actor: str, reason: str,
                      details: dict[str, Any], count: int = 0) -> AlarmChange:
        event_id = await conn.fetchval(_EVENT, alarm_id, kind, old and old.value,
                                       new and new.value, actor, reason, details)
        change = AlarmChange(alarm_id, event_id, kind, old, new, count)
        for hook in self.hooks:
            await hook(conn, change)
        await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, str(event_id))
        return change

    # -- engine side ---------------------------------------------------------------------
    async def raise_or_recur(self, occ: Occurrence, *,
                             actor: str = ENGINE) -> AlarmChange | None:
        """Open an alarm for `occ.key`, or count a re-occurrence of the open one. None when
        `occ.seq` is the seq of the open alarm's last occurrence (a redelivered message)."""
        k = occ.key
        async with self._tx() as conn:
            row = await conn.fetchrow(
                _UPSERT, k.device_id, occ.site_id, k.point, occ.zone, k.type,
                occ.alarm_class.value, PRIORITY[occ.alarm_class], occ.confidence, occ.evidence,
                occ.mode.value, occ.inhibited_by, occ.group_key, occ.at, occ.device_ts,
                occ.received_at, occ.seq, occ.ingested_at)
            if row is None:
                return None
            if row["inserted"]:
                old, trig = AlarmState.NONE, Trigger.RAISE
            else:
                old, trig = AlarmState(row["state"]), Trigger.RECUR
            new = transition(old, trig, alarm_class=occ.alarm_class)
            details = {"confidence": occ.confidence, "mode": occ.mode.value,
                       "at": occ.at.isoformat()}
            if occ.inhibited_by:
                details["inhibited_by"] = occ.inhibited_by
            return await self._finish(conn, row["id"], trig.value, old, new, actor,
                                      occ.reason, details, row["count"])

    async def annotate(self, key: AlarmKey, *, confidence: float | None = None,
                       evidence: dict[str, Any] | None = None,
                       inhibited_by: str | None = None, uninhibit: bool = False,
                       reason: str = "", actor: str = ENGINE) -> AlarmChange | None:
        """Change confidence, evidence or inhibition of the open alarm; None if none is open."""
        async with self._tx() as conn:
            row = await conn.fetchrow(_LOCK_OPEN, key.device_id, key.point, key.type)
            if row is None:
                return None
            await conn.execute(
                "UPDATE alarms SET confidence = coalesce($2, confidence),"
                " evidence = evidence || coalesce($3, '{}'::jsonb),"
                " inhibited_by = CASE WHEN $5 THEN NULL ELSE coalesce($4, inhibited_by) END,"
                " updated_at = clock_timestamp() WHERE id = $1",
                row["id"], confidence, evidence, inhibited_by, uninhibit)
            state = AlarmState(row["state"])
            details: dict[str, Any] = {}
            if confidence is not None:
                details["confidence"] = confidence
            if inhibited_by or uninhibit:
                details["inhibited_by"] = inhibited_by
            return await self._finish(conn, row["id"], "update", state, state, actor, reason,
                                      details, row["count"])

    async def clear(self, key: AlarmKey, *, at: datetime, reason: str,
                    actor: str = ENGINE) -> AlarmChange | None:
        """The raise condition went away: clear the open alarm; None if none is open."""
        async with self._tx() as conn:
            row = await conn.fetchrow(_LOCK_OPEN, key.device_id, key.point, key.type)
            if row is None:
                return None
            return await self._apply(conn, row, Trigger.CLEAR, actor=actor, reason=reason,
                                     verdict=None, at=at)

    # -- operator side (API) ---------------------------------------------------------------
    async def transition(self, alarm_id: int, trigger: Trigger, *, actor: str,
                         reason: str = "", verdict: Verdict | None = None,
                         at: datetime | None = None) -> AlarmChange:
        """Apply an operator trigger (acknowledge, verdict, close). Raises AlarmNotFound or
        InvalidTransition; nothing is written then."""
        async with self._tx() as conn:
            row = await conn.fetchrow(
                "SELECT id, state, class, count FROM alarms WHERE id = $1 FOR UPDATE", alarm_id)
            if row is None:
                raise AlarmNotFound(f"no alarm {alarm_id}")
            return await self._apply(conn, row, trigger, actor=actor, reason=reason,
                                     verdict=verdict, at=at)

    async def transition_many(self, alarm_ids: Sequence[int], trigger: Trigger, *, actor: str,
                              reason: str = "", verdict: Verdict | None = None,
                              ) -> BulkOutcome:
        """Apply one operator trigger to many alarms in one transaction (a bulk acknowledge
        or close): each alarm through the same `transition()`, with its own event and NOTIFY.
        An alarm that does not exist or whose state refuses the trigger is left unchanged and
        reported; the others commit together. Rows are locked in id order."""
        outcome = BulkOutcome()
        async with self._tx() as conn:
            rows = await conn.fetch(
                "SELECT id, state, class, count FROM alarms WHERE id = ANY($1::bigint[])"
                " ORDER BY id FOR UPDATE", sorted(set(alarm_ids)))
            found = {r["id"] for r in rows}
            outcome.missing = [i for i in dict.fromkeys(alarm_ids) if i not in found]
            for row in rows:
                try:
                    outcome.changes.append(await self._apply(
                        conn, row, trigger, actor=actor, reason=reason, verdict=verdict,
                        at=None))
                except InvalidTransition as exc:
                    outcome.refused[row["id"]] = str(exc)
        return outcome

    async def _apply(self, conn: asyncpg.Connection, row: asyncpg.Record, trigger: Trigger, *,
                     actor: str, reason: str, verdict: Verdict | None,
                     at: datetime | None) -> AlarmChange:
        old = AlarmState(row["state"])
        if trigger in (Trigger.RAISE, Trigger.RECUR):
            raise InvalidTransition(old, trigger, "use raise_or_recur")
        new = transition(old, trigger, alarm_class=AlarmClass(row["class"]), verdict=verdict)
        sets = ["state = $2", "updated_at = clock_timestamp()"]
        args: list[Any] = [row["id"], new.value]
        when = "coalesce($3, clock_timestamp())"
        args.append(at)
        if trigger is Trigger.CLEAR:
            sets.append(f"cleared_at = {when}")
        if trigger in (Trigger.ACKNOWLEDGE, Trigger.VERDICT):
            sets.append(f"acknowledged_at = coalesce(acknowledged_at, {when})")
            sets.append("acknowledged_by = coalesce(acknowledged_by, $4)")
            args.append(actor)
        if trigger is Trigger.VERDICT:
            assert verdict is not None
            sets += [f"verdict_at = {when}", "verdict_by = $4", "verdict = $5"]
            args.append(verdict.value)
        if new is AlarmState.CLOSED:
            sets.append(f"closed_at = {when}")
        await conn.execute(f"UPDATE alarms SET {', '.join(sets)} WHERE id = $1", *args)
        details: dict[str, Any] = {"verdict": verdict.value} if verdict else {}
        return await self._finish(conn, row["id"], trigger.value, old, new, actor, reason,
                                  details, row["count"])

    async def comment(self, alarm_id: int, *, actor: str, text: str) -> AlarmChange:
        """A comment on the alarm's timeline; no state changes. Raises AlarmNotFound."""
        return await self._note(alarm_id, "comment", actor, text, {})

    async def assign(self, alarm_id: int, *, actor: str, assignee: str | None) -> AlarmChange:
        """Assign the alarm to a user, or unassign it (None). No `alarms` column changes: the
        current assignee is the latest `assign` event. Raises AlarmNotFound."""
        return await self._note(alarm_id, "assign", actor,
                                f"assigned to {assignee}" if assignee else "unassigned",
                                {"assignee": assignee})

    async def _note(self, alarm_id: int, kind: str, actor: str, reason: str,
                    details: dict[str, Any]) -> AlarmChange:
        async with self._tx() as conn:
            row = await conn.fetchrow(
                "SELECT state, count FROM alarms WHERE id = $1 FOR UPDATE", alarm_id)
            if row is None:
                raise AlarmNotFound(f"no alarm {alarm_id}")
            state = AlarmState(row["state"])
            return await self._finish(conn, alarm_id, kind, state, state, actor, reason,
                                      details, row["count"])

    async def mark_shown(self, alarm_ids: Sequence[int], *, at: datetime, to: str) -> None:
        """The first time these alarms reached an operator (`shown_at`, `shown_to`); alarms
        already shown keep their first time. A latency clock, not a change: no event, no
        NOTIFY."""
        async with self._tx() as conn:
            await conn.execute("UPDATE alarms SET shown_at = $2, shown_to = $3"
                               " WHERE id = ANY($1::bigint[]) AND shown_at IS NULL",
                               list(alarm_ids), at, to)

    # -- dispatch side ---------------------------------------------------------------------
    async def forward(self, alarm_id: int, basis: str, *, actor: str, reason: str,
                      details: dict[str, Any]) -> AlarmChange | None:
        """Record that a fire was forwarded to the brigade on `basis` (operator, coincidence,
        deadline). None if it no longer qualifies (forwarded already, a verdict other than
        true_fire, or basis `operator` without that verdict / another basis with it)."""
        async with self._tx() as conn:
            row = await conn.fetchrow(
                "SELECT state, verdict, count FROM alarms"
                f" WHERE id = $1 AND {FORWARD_PENDING_SQL} FOR UPDATE", alarm_id)
            if row is None or (basis == "operator") != (row["verdict"] == "true_fire"):
                return None
            await conn.execute(
                "UPDATE alarms SET forwarded_at = clock_timestamp(), forward_basis = $2,"
                " updated_at = clock_timestamp() WHERE id = $1", alarm_id, basis)
            state = AlarmState(row["state"])
            return await self._finish(conn, alarm_id, "forward", state, state, actor, reason,
                                      details, row["count"])

    # -- modes -----------------------------------------------------------------------------
    async def record_mode(self, *, scope: str, target: str, point: str | None, mode: Mode,
                          active: bool, owner: str, reason: str, at: datetime,
                          expires_at: datetime | None = None,
                          mode_id: int | None = None) -> AlarmChange:
        """Start or end a mode window (a panel reporting 屏蔽 or test, or an operator). Ending
        ends window `mode_id`, or every open window of (scope, target, point, mode)."""
        async with self._tx() as conn:
            if active:
                mode_id = await conn.fetchval(
                    "INSERT INTO modes (scope, target, point, mode, owner, reason, starts_at,"
                    " expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
                    scope, target, point, mode.value, owner, reason, at, expires_at)
            elif mode_id is not None:
                await conn.execute("UPDATE modes SET ended_at = $2 WHERE id = $1"
                                   " AND ended_at IS NULL", mode_id, at)
            else:
                await conn.execute(
                    "UPDATE modes SET ended_at = $5 WHERE scope = $1 AND target = $2"
                    " AND point IS NOT DISTINCT FROM $3 AND mode = $4 AND ended_at IS NULL",
                    scope, target, point, mode.value, at)
            details = {"scope": scope, "target": target, "point": point, "mode": mode.value,
                       "active": active, "at": at.isoformat(), "mode_id": mode_id}
            return await self._finish(conn, None, "mode", None, None, owner, reason, details)

    # -- reads used at start ---------------------------------------------------------------
    async def open_alarms(self) -> list[asyncpg.Record]:
        q = f"SELECT * FROM alarms WHERE state IN {OPEN_STATES_SQL} ORDER BY id"
        if isinstance(self._db, asyncpg.Pool):
            return await self._db.fetch(q)
        return await self._db.fetch(q)
