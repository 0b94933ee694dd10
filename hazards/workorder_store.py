"""The only writer of `work_orders`, `work_order_events` and `maintenance_records`.

The sweep opens an order for every open repair-class alarm (hazards/workorders.needs_order)
for the company under contract for the alarm's site today (or none: the order is then the
centre's to place, and says so), links repeat faults, and closes orders whose alarm has
cleared (the device reported normal). People respond, report repairs and decide.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from firetower.refusal import Conn, Refused, now_or
from hazards.policy import DEFAULT_POLICY, HazardPolicy
from hazards.workorders import (
    InvalidOrderTransition,
    OpenAlarm,
    OrderState,
    OrderTrigger,
    needs_order,
    order_transition,
    sla,
)


class OrderRefused(Refused):
    """A request the work order cannot take (firetower/refusal.py)."""


@dataclass(frozen=True, slots=True)
class OrderStep:
    id: int
    from_state: OrderState
    to_state: OrderState


async def _event(conn: Conn, order_id: int, kind: str, actor: str, *,
                 from_state: str | None = None, to_state: str | None = None, note: str = "",
                 details: dict[str, Any] | None = None) -> None:
    await conn.execute(
        "INSERT INTO work_order_events (work_order_id, kind, from_state, to_state, actor, note,"
        " details) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        order_id, kind, from_state, to_state, actor, note, details or {})


_CANDIDATES_SQL = """
SELECT a.id, a.device_id, a.site_id, a.class, a.type, a.mode, a.inhibited_by, a.raised_at
FROM alarms a
WHERE a.state IN ('active', 'acknowledged', 'verified')
  AND a.class = ANY($1::text[]) AND a.mode = 'normal' AND a.inhibited_by IS NULL
  AND a.raised_at <= $2
  AND NOT EXISTS (SELECT 1 FROM work_orders w WHERE w.alarm_id = a.id)
ORDER BY a.priority, a.raised_at
LIMIT $3"""


async def open_orders(conn: Conn, *, now: datetime | None = None,
                      policy: HazardPolicy = DEFAULT_POLICY, limit: int = 1000) -> list[int]:
    """Open a work order for each open repair-class alarm that has none; the new order ids.
    Idempotent: one order per alarm (a unique alarm_id), whoever sweeps at once."""
    t = now_or(now)
    grace = timedelta(seconds=policy.work_order_grace_s)
    rows = await conn.fetch(_CANDIDATES_SQL, list(policy.sla), t - grace, limit)
    opened: list[int] = []
    for r in rows:
        alarm = OpenAlarm(r["id"], r["device_id"], r["site_id"], r["class"], r["type"],
                          r["mode"], r["inhibited_by"], r["raised_at"])
        if not needs_order(alarm, t, grace):
            continue
        oid = await _open_one(conn, alarm, t, policy)
        if oid is not None:
            opened.append(oid)
    return opened


async def _open_one(conn: Conn, alarm: OpenAlarm, t: datetime,
                    policy: HazardPolicy) -> int | None:
    respond, repair = policy.sla_for(alarm.alarm_class)
    due = sla(t, respond, repair)
    async with conn.transaction():
        company = None
        if alarm.site_id is not None:
            company = await conn.fetchval(
                "SELECT company_id FROM contracts WHERE site_id = $1"
                " AND $2::date BETWEEN starts_on AND ends_on", alarm.site_id, t.date())
        repeat_of = await conn.fetchval(
            "SELECT w.id FROM work_orders w JOIN alarms a ON a.id = w.alarm_id"
            " WHERE w.device_id = $1 AND a.type = $2 AND w.opened_at >= $3"
            " ORDER BY w.opened_at DESC LIMIT 1",
            alarm.device_id, alarm.type, t - timedelta(seconds=policy.repeat_window_s))
        title = f"{alarm.alarm_class.replace('_', ' ')}: {alarm.type} on {alarm.device_id}"[:200]
        oid = await conn.fetchval(
            "INSERT INTO work_orders (alarm_id, device_id, site_id, company_id, alarm_class,"
            " title, state, repeat_of, respond_by, repair_by, opened_at, updated_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, 'open', $7, $8, $9, $10, $10)"
            " ON CONFLICT (alarm_id) DO NOTHING RETURNING id",
            alarm.id, alarm.device_id, alarm.site_id, company, alarm.alarm_class, title,
            repeat_of, due.respond_by, due.repair_by, t)
        if oid is None:
            return None
        await _event(conn, oid, "open", "rule:work_order", to_state="open",
                     note="" if company is not None else
                     "no maintenance contract runs for this site today: the centre places it",
                     details={"alarm_id": alarm.id, "company_id": company,
                              "repeat_of": repeat_of,
                              "respond_by": due.respond_by.isoformat(),
                              "repair_by": due.repair_by.isoformat()})
        return int(oid)


async def close_normal(conn: Conn, *, now: datetime | None = None,
                       limit: int = 1000) -> list[int]:
    """Close every open order whose alarm has cleared: the device reported normal (the rule
    engine clears an alarm only on the device's own normal readings or its return online).
    An alarm closed by an operator without clearing does not close the order."""
    t = now_or(now)
    rows = await conn.fetch(
        "SELECT w.id, a.cleared_at FROM work_orders w JOIN alarms a ON a.id = w.alarm_id"
        " WHERE w.state <> 'closed' AND a.cleared_at IS NOT NULL ORDER BY w.id LIMIT $1", limit)
    closed: list[int] = []
    for r in rows:
        try:
            await step(conn, r["id"], OrderTrigger.DEVICE_NORMAL, "device",
                       note=f"the device reported normal at {r['cleared_at'].isoformat()}", now=t)
        except OrderRefused:
            continue  # closed meanwhile by a decision
        closed.append(r["id"])
    return closed


_STAMPS: dict[OrderTrigger, tuple[str, str]] = {
    OrderTrigger.RESPOND: ("responded_at", "responded_by"),
    OrderTrigger.REPAIR: ("repaired_at", "repaired_by"),
    OrderTrigger.DEVICE_NORMAL: ("closed_at", "closed_by"),
    OrderTrigger.DECIDE: ("closed_at", "closed_by"),
}


async def step(conn: Conn, order_id: int, trigger: OrderTrigger, actor: str, *,
               note: str = "", files: tuple[str, ...] = (),
               now: datetime | None = None) -> OrderStep:
    """One step of an order. A decision needs a reason; a repair report needs a note."""
    t = now_or(now)
    if trigger in (OrderTrigger.DECIDE, OrderTrigger.REPAIR) and not note.strip():
        raise OrderRefused(f"'{trigger.value}' needs a note (what was done, or why it closes)")
    async with conn.transaction():
        row = await conn.fetchrow(
            "SELECT state, responded_at FROM work_orders WHERE id = $1 FOR UPDATE", order_id)
        if row is None:
            raise OrderRefused(f"work order {order_id} not found", missing=True)
        state = OrderState(row["state"])
        try:
            new = order_transition(state, trigger)
        except InvalidOrderTransition as exc:
            raise OrderRefused(str(exc), conflict=True,
                               allowed=[a.value for a in exc.allowed]) from None
        at_col, by_col = _STAMPS[trigger]
        args: list[Any] = [order_id, new.value, t, actor, list(files)]
        sets = ["state = $2", "updated_at = $3", f"{at_col} = $3", f"{by_col} = $4",
                "files = files || $5::text[]"]
        if trigger is OrderTrigger.REPAIR and row["responded_at"] is None:
            sets += ["responded_at = $3", "responded_by = $4"]  # responded on the same visit
        if new is OrderState.CLOSED:
            args.append(note)
            sets.append("close_reason = $6")
        await conn.execute(f"UPDATE work_orders SET {', '.join(sets)} WHERE id = $1", *args)
        await _event(conn, order_id, trigger.value, actor, from_state=state.value,
                     to_state=new.value, note=note,
                     details={"files": list(files)} if files else None)
        return OrderStep(order_id, state, new)


async def add_record(conn: Conn, *, site_id: str, company_id: int | None, kind: str,
                     done_on: date, result: str, note: str, files: tuple[str, ...],
                     actor: str, today: date) -> int:
    """A monthly check or yearly full test (GB 25201) of a site; never dated in the future."""
    if done_on > today:
        raise OrderRefused("a maintenance record cannot be dated in the future")
    return int(await conn.fetchval(
        "INSERT INTO maintenance_records (site_id, company_id, kind, done_on, result, note,"
        " files, recorded_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        site_id, company_id, kind, done_on, result, note, list(files), actor))
