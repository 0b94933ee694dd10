"""The only writer of `hazards` and `hazard_events`: recording, every step of the lifecycle,
deadlines and escalation, each change and its event in one transaction.

Decisions are the pure functions of hazards/model.py and hazards/escalation.py; this module
reads the row under a lock, asks them, and writes what they answered. `actor` is how the event
log names who acted: `user:<name>`, `rule:<rule>`, `public`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from firetower.refusal import Conn, Refused, now_or
from hazards.escalation import Node, escalation, listing_for
from hazards.model import (
    NEEDS_NOTE,
    OWING,
    HazardDraft,
    HazardState,
    InvalidTransition,
    Trigger,
    transition,
)
from hazards.policy import DEFAULT_POLICY, HazardPolicy


class HazardRefused(Refused):
    """A request the hazard loop cannot take (firetower/refusal.py)."""


@dataclass(frozen=True, slots=True)
class StepResult:
    id: int
    from_state: HazardState
    to_state: HazardState


async def node_path(conn: Conn, node_id: int | None) -> list[Node]:
    """The path from the root to `node_id` (itself last); empty for None."""
    if node_id is None:
        return []
    rows = await conn.fetch(
        "SELECT p.id, p.level FROM jurisdictions j CROSS JOIN LATERAL unnest(j.path) "
        "WITH ORDINALITY AS u(id, n) JOIN jurisdictions p ON p.id = u.id "
        "WHERE j.id = $1 ORDER BY u.n", node_id)
    return [Node(r["id"], r["level"]) for r in rows]


async def _event(conn: Conn, hazard_id: int, kind: str, actor: str, *,
                 from_state: str | None = None, to_state: str | None = None, note: str = "",
                 details: dict[str, Any] | None = None) -> None:
    await conn.execute(
        "INSERT INTO hazard_events (hazard_id, kind, from_state, to_state, actor, note, details)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        hazard_id, kind, from_state, to_state, actor, note, details or {})


async def create_hazard(conn: Conn, actor: str, draft: HazardDraft, *,
                        now: datetime | None = None,
                        policy: HazardPolicy = DEFAULT_POLICY) -> int:
    """Record a hazard and its `found` event; the id. Idempotent per (source, source_ref):
    a second draft with the same reference answers the first hazard's id and writes nothing.
    Where it lies defaults from the site (its unit, its node); the deadline from the severity.
    """
    t = now_or(now)
    if draft.deadline is not None and draft.deadline <= t:
        raise HazardRefused("the deadline is in the past")
    async with conn.transaction():
        if draft.source_ref:
            existing = await conn.fetchval(
                "SELECT id FROM hazards WHERE source = $1 AND source_ref = $2",
                draft.source.value, draft.source_ref)
            if existing is not None:
                return int(existing)
        unit_id, node_id = draft.unit_id, draft.jurisdiction_id
        if draft.site_id is not None:
            site = await conn.fetchrow("SELECT unit_id, jurisdiction_id FROM sites WHERE id = $1",
                                       draft.site_id)
            if site is None:
                raise HazardRefused(f"site {draft.site_id} does not exist")
            unit_id = unit_id if unit_id is not None else site["unit_id"]
            node_id = node_id if node_id is not None else site["jurisdiction_id"]
        if node_id is None and unit_id is not None:
            node_id = await conn.fetchval("SELECT grid_id FROM units WHERE id = $1", unit_id)
        path = await node_path(conn, node_id)
        if node_id is not None and not path:
            raise HazardRefused(f"jurisdiction {node_id} does not exist")
        listed_by = listing_for(draft.severity, path, policy)
        deadline = draft.deadline or t + policy.deadline(draft.severity)
        row = await conn.fetchrow(
            "INSERT INTO hazards (source, source_ref, title, description, category, legal_basis,"
            " severity, state, site_id, unit_id, jurisdiction_id, owner_id, responsible_name,"
            " responsible_phone, campaign, deadline, listed, listed_by_id, files_before,"
            " found_by, found_at, updated_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, 'found', $8, $9, $10, $10, $11, $12, $13, $14,"
            " $15, $16, $17, $18, $19, $19)"
            " ON CONFLICT (source, source_ref) WHERE source_ref <> '' DO NOTHING RETURNING id",
            draft.source.value, draft.source_ref, draft.title, draft.description,
            draft.category, draft.legal_basis, draft.severity.value, draft.site_id, unit_id,
            node_id, draft.responsible_name, draft.responsible_phone, draft.campaign, deadline,
            listed_by is not None, listed_by.id if listed_by else None,
            list(draft.files_before), actor, t)
        if row is None:  # a concurrent writer recorded the same reference first
            return int(await conn.fetchval(
                "SELECT id FROM hazards WHERE source = $1 AND source_ref = $2",
                draft.source.value, draft.source_ref))
        hid = int(row["id"])
        await _event(conn, hid, "found", actor, to_state="found",
                     details={"source": draft.source.value, "source_ref": draft.source_ref,
                              "severity": draft.severity.value,
                              "deadline": deadline.isoformat()})
        if listed_by is not None:
            await _event(conn, hid, "list", actor,
                         note="major hazard: listed for supervision (挂牌督办)",
                         details={"listed_by": listed_by.id})
        return hid


_STAMP = {
    HazardState.NOTIFIED: "notified_at",
    HazardState.RECTIFYING: "receipt_at",
    HazardState.SUBMITTED: "submitted_at",
    HazardState.VERIFIED: "verified_at",
    HazardState.CLOSED: "closed_at",
}


async def step(conn: Conn, hazard_id: int, trigger: Trigger, actor: str, *, note: str = "",
               files: tuple[str, ...] = (), now: datetime | None = None,
               policy: HazardPolicy = DEFAULT_POLICY) -> StepResult:
    """Take one step of the lifecycle. Refused (HazardRefused, conflict, with the allowed
    triggers) when the state does not allow it; a rejection or a submission without a note,
    a submission without a photo (policy), and a verification by the one who submitted it
    are refused too."""
    t = now_or(now)
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT state, submitted_by FROM hazards WHERE id = $1 FOR UPDATE", hazard_id)
        if row is None:
            raise HazardRefused(f"hazard {hazard_id} not found", missing=True)
        state = HazardState(row["state"])
        try:
            new = transition(state, trigger)
        except InvalidTransition as exc:
            raise HazardRefused(str(exc), conflict=True,
                                allowed=[a.value for a in exc.allowed]) from None
        if trigger in NEEDS_NOTE and not note.strip():
            raise HazardRefused(f"'{trigger.value}' needs a note saying what was done or why")
        if (new is HazardState.SUBMITTED and policy.photo_required_on_submit and not files):
            raise HazardRefused("a rectification needs at least one photo or file of the result")
        if trigger is Trigger.VERIFY and row["submitted_by"] == actor:
            raise HazardRefused("a rectification is verified by someone other than the one "
                                "who submitted it", conflict=True)
        sets = ["state = $2", "updated_at = $3"]
        args: list[Any] = [hazard_id, new.value, t]
        stamp = _STAMP.get(new)
        if stamp is not None:
            sets.append(f"{stamp} = $3")
        if new is HazardState.SUBMITTED:
            args.append(actor)
            sets.append(f"submitted_by = ${len(args)}")
            args.append(list(files))
            sets.append(f"files_after = files_after || ${len(args)}::text[]")
        await conn.execute(f"UPDATE hazards SET {', '.join(sets)} WHERE id = $1", *args)
        await _event(conn, hazard_id, trigger.value, actor, from_state=state.value,
                     to_state=new.value, note=note,
                     details={"files": list(files)} if files else None)
        return StepResult(hazard_id, state, new)


async def set_deadline(conn: Conn, hazard_id: int, deadline: datetime, actor: str, note: str,
                       *, now: datetime | None = None) -> None:
    """A supervisor moves the deadline (an extension granted, 延期); never into the past."""
    t = now_or(now)
    if deadline <= t:
        raise HazardRefused("the deadline is in the past")
    if not note.strip():
        raise HazardRefused("a new deadline needs a note saying why")
    async with conn.transaction():
        old = await conn.fetchrow("SELECT deadline, state FROM hazards WHERE id = $1 FOR UPDATE",
                                  hazard_id)
        if old is None:
            raise HazardRefused(f"hazard {hazard_id} not found", missing=True)
        if HazardState(old["state"]) not in OWING:
            raise HazardRefused("the deadline of a hazard already submitted cannot change",
                                conflict=True)
        await conn.execute("UPDATE hazards SET deadline = $2, updated_at = $3 WHERE id = $1",
                           hazard_id, deadline, t)
        await _event(conn, hazard_id, "deadline", actor, note=note,
                     details={"from": old["deadline"].isoformat() if old["deadline"] else None,
                              "to": deadline.isoformat()})


async def escalate_due(conn: Conn, *, now: datetime | None = None,
                       policy: HazardPolicy = DEFAULT_POLICY, limit: int = 500) -> list[int]:
    """Escalate every overdue hazard once for its deadline; the ids escalated. Each hazard in
    its own transaction under its row lock, so two sweeps at once escalate it once."""
    t = now_or(now)
    ids = [r["id"] for r in await conn.fetch(
        "SELECT id FROM hazards WHERE state = ANY($1::text[]) AND deadline < $2"
        " AND escalated_for IS DISTINCT FROM deadline ORDER BY deadline LIMIT $3",
        [s.value for s in OWING], t, limit)]
    done: list[int] = []
    for hid in ids:
        async with conn.transaction():
            row = await conn.fetchrow(
                "SELECT state, deadline, escalated_for, owner_id, listed FROM hazards"
                " WHERE id = $1 FOR UPDATE", hid)
            if row is None:
                continue
            path = await node_path(conn, row["owner_id"])
            esc = escalation(HazardState(row["state"]), row["deadline"], row["escalated_for"],
                             path, row["listed"], t, policy)
            if esc is None:
                continue
            await conn.execute(
                "UPDATE hazards SET owner_id = $2, deadline = $3, escalated_for = $4,"
                " escalations = escalations + 1, listed = listed OR $5,"
                " listed_by_id = COALESCE($6, listed_by_id), updated_at = $7 WHERE id = $1",
                hid, esc.to_owner, esc.new_deadline, esc.old_deadline,
                esc.listed_by is not None, esc.listed_by, t)
            await _event(conn, hid, "escalate", "rule:overdue",
                         note="overdue: escalated one level",
                         details={"from_owner": esc.from_owner, "to_owner": esc.to_owner,
                                  "old_deadline": esc.old_deadline.isoformat(),
                                  "new_deadline": esc.new_deadline.isoformat()})
            if esc.listed_by is not None:
                await _event(conn, hid, "list", "rule:overdue",
                             note="overdue: listed for supervision (挂牌督办)",
                             details={"listed_by": esc.listed_by})
            done.append(hid)
    return done
