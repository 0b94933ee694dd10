"""Maintenance work orders (维保工单): states, triggers, the TRANSITIONS table, the SLA and the
pure decisions of the sweep (docs/hazards.md, "Work orders").

    open ──respond──▶ responded ──repair──▶ repaired
      │                   │                    │
      └───────────────────┴──── device_normal ─┴──▶ closed   (the device reported normal)
      └───────────────────┴──── decide ────────┴──▶ closed   (a reasoned decision, not the company's)

The company's "repaired" never closes an order by itself: the order closes when Firetower sees
the device report normal (its alarm cleared), or when someone with `workorder:decide` closes it
with a reason (a device removed, a false report).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class OrderState(StrEnum):
    OPEN = "open"
    RESPONDED = "responded"    # the company accepted it and is on its way
    REPAIRED = "repaired"      # the company says it is fixed; waits for the device
    CLOSED = "closed"


class OrderTrigger(StrEnum):
    RESPOND = "respond"
    REPAIR = "repair"
    DEVICE_NORMAL = "device_normal"
    DECIDE = "decide"


OS, W = OrderState, OrderTrigger

ORDER_TRANSITIONS: dict[tuple[OrderState, OrderTrigger], OrderState] = {
    (OS.OPEN, W.RESPOND): OS.RESPONDED,
    (OS.OPEN, W.REPAIR): OS.REPAIRED,          # responded and repaired in one visit
    (OS.RESPONDED, W.REPAIR): OS.REPAIRED,
    (OS.OPEN, W.DEVICE_NORMAL): OS.CLOSED,
    (OS.RESPONDED, W.DEVICE_NORMAL): OS.CLOSED,
    (OS.REPAIRED, W.DEVICE_NORMAL): OS.CLOSED,
    (OS.OPEN, W.DECIDE): OS.CLOSED,
    (OS.RESPONDED, W.DECIDE): OS.CLOSED,
    (OS.REPAIRED, W.DECIDE): OS.CLOSED,
}

ORDER_TRIGGER_PERMISSION: dict[OrderTrigger, str] = {
    W.RESPOND: "workorder:handle",
    W.REPAIR: "workorder:handle",
    W.DECIDE: "workorder:decide",
    # DEVICE_NORMAL is Firetower's own: no user may take it
}

ORDER_CLASSES = ("supervisory", "fault", "offline", "early_warning")


class InvalidOrderTransition(ValueError):
    def __init__(self, state: OrderState, trigger: OrderTrigger) -> None:
        self.state, self.trigger = state, trigger
        self.allowed = [t for (s, t) in ORDER_TRANSITIONS if s is state]
        super().__init__(f"a {state.value} work order cannot take '{trigger.value}'; allowed: "
                         f"{', '.join(t.value for t in self.allowed) or 'nothing (closed)'}")


def order_transition(state: OrderState, trigger: OrderTrigger) -> OrderState:
    try:
        return ORDER_TRANSITIONS[(state, trigger)]
    except KeyError:
        raise InvalidOrderTransition(state, trigger) from None


@dataclass(frozen=True, slots=True)
class Sla:
    respond_by: datetime
    repair_by: datetime


def sla(opened_at: datetime, respond: timedelta, repair: timedelta) -> Sla:
    return Sla(opened_at + respond, opened_at + repair)


def response_late(respond_by: datetime, responded_at: datetime | None, now: datetime) -> bool:
    return (responded_at or now) > respond_by


def repair_late(repair_by: datetime, closed_at: datetime | None, now: datetime) -> bool:
    """Late until the device reports normal (or a decision closes it), not until the company
    says it is repaired."""
    return (closed_at or now) > repair_by


@dataclass(frozen=True, slots=True)
class OpenAlarm:
    """An alarm as the sweep sees it."""
    id: int
    device_id: str
    site_id: str | None
    alarm_class: str
    type: str
    mode: str
    inhibited_by: str | None
    raised_at: datetime


def needs_order(alarm: OpenAlarm, now: datetime, grace: timedelta) -> bool:
    """An open alarm of a repair class, in normal mode, not inhibited by its panel's outage,
    open for longer than the grace period (so a flapping contact does not open orders)."""
    return (alarm.alarm_class in ORDER_CLASSES and alarm.mode == "normal"
            and alarm.inhibited_by is None and now - alarm.raised_at >= grace)
