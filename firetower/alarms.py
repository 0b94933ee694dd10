"""The alarm lifecycle: classes, states, verdicts, triggers, the TRANSITIONS table and the pure
`transition()` function. Shared kernel: used by the rule engine (raise, re-occur, clear) and by
the API (acknowledge, verdict, close). Imports nothing from the service packages.

Lifecycle (condition = the raise condition is true; see docs/alarms.md for the full table)::

    NONE --raise--> ACTIVE --ack--> ACKNOWLEDGED --verdict--> VERIFIED
                      |                 |                        |
                    clear             clear                    clear
                      v                 v                        v
                CLEARED_UNACK --ack--> CLEARED --verdict/close--> CLOSED

An alarm is *open* (counts for the one-open-alarm-per-key rule) while its condition holds:
ACTIVE, ACKNOWLEDGED, VERIFIED. A re-occurrence while open updates the same alarm.
A fire alarm is closed only by a verdict, never by a bare close.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class AlarmClass(StrEnum):
    FIRE = "fire"
    SUPERVISORY = "supervisory"
    FAULT = "fault"
    OFFLINE = "offline"
    EARLY_WARNING = "early_warning"


class Priority(IntEnum):
    """Lower is more urgent: queues and consoles order by it (fire first, GB 50440 / NFPA 72)."""

    FIRE = 1
    SUPERVISORY = 2
    FAULT = 3
    OFFLINE = 4
    EARLY_WARNING = 5


PRIORITY: dict[AlarmClass, int] = {c: int(Priority[c.name]) for c in AlarmClass}


class AlarmState(StrEnum):
    NONE = "none"  # no alarm yet: only the start of a RAISE, never stored
    ACTIVE = "active"  # condition true, nobody acknowledged it
    ACKNOWLEDGED = "acknowledged"
    VERIFIED = "verified"  # an operator gave a verdict while the condition still holds
    CLEARED_UNACK = "cleared_unack"  # the condition went away before anyone acknowledged
    CLEARED = "cleared"  # condition gone, acknowledged, waiting for a verdict or close
    CLOSED = "closed"


OPEN_STATES: frozenset[AlarmState] = frozenset(
    {AlarmState.ACTIVE, AlarmState.ACKNOWLEDGED, AlarmState.VERIFIED})
# The SQL predicate of the same set; the partial unique index in migrations/0002 uses it.
OPEN_STATES_SQL = "('active', 'acknowledged', 'verified')"


class Verdict(StrEnum):
    TRUE_FIRE = "true_fire"
    FALSE_ALARM = "false_alarm"
    TEST = "test"
    NUISANCE = "nuisance"  # a real but harmless cause: cooking, steam, dust


class Trigger(StrEnum):
    RAISE = "raise"
    RECUR = "recur"  # the condition occurred again while the alarm is open
    ACKNOWLEDGE = "acknowledge"
    VERDICT = "verdict"
    CLEAR = "clear"  # the condition went away (after hysteresis)
    CLOSE = "close"


class Mode(StrEnum):
    """How a device or site is handled while a signal arrives (GB/T 26875.3 test / 屏蔽 bits)."""

    NORMAL = "normal"
    TEST = "test"
    DISABLED = "disabled"
    MAINTENANCE = "maintenance"


S, T = AlarmState, Trigger
TRANSITIONS: dict[tuple[AlarmState, Trigger], AlarmState] = {
    (S.NONE, T.RAISE): S.ACTIVE,
    (S.ACTIVE, T.RECUR): S.ACTIVE,
    (S.ACKNOWLEDGED, T.RECUR): S.ACKNOWLEDGED,
    (S.VERIFIED, T.RECUR): S.VERIFIED,
    (S.ACTIVE, T.ACKNOWLEDGE): S.ACKNOWLEDGED,
    (S.ACTIVE, T.VERDICT): S.VERIFIED,  # a verdict implies the acknowledgement
    (S.ACKNOWLEDGED, T.VERDICT): S.VERIFIED,
    (S.ACTIVE, T.CLEAR): S.CLEARED_UNACK,
    (S.ACKNOWLEDGED, T.CLEAR): S.CLEARED,
    (S.VERIFIED, T.CLEAR): S.CLOSED,
    (S.CLEARED_UNACK, T.ACKNOWLEDGE): S.CLEARED,
    (S.CLEARED_UNACK, T.VERDICT): S.CLOSED,
    (S.CLEARED, T.VERDICT): S.CLOSED,
    (S.CLEARED, T.CLOSE): S.CLOSED,
}
del S, T

# Triggers only the engine may apply (operators act through ACKNOWLEDGE, VERDICT, CLOSE).
ENGINE_TRIGGERS = frozenset({Trigger.RAISE, Trigger.RECUR, Trigger.CLEAR})


class InvalidTransition(ValueError):
    """The trigger is not allowed in the alarm's current state (or for its class)."""

    def __init__(self, state: AlarmState, trigger: Trigger, why: str = "") -> None:
        self.state, self.trigger = state, trigger
        super().__init__(why or f"{trigger.value} is not allowed in state {state.value}")


def transition(state: AlarmState, trigger: Trigger, *,
               alarm_class: AlarmClass | None = None,
               verdict: Verdict | None = None) -> AlarmState:
    """The next state, or InvalidTransition. Pure: persistence happens after, by the caller."""
    if trigger is Trigger.VERDICT and verdict is None:
        raise InvalidTransition(state, trigger, "a verdict trigger needs a verdict")
    if trigger is Trigger.CLOSE and alarm_class is AlarmClass.FIRE:
        raise InvalidTransition(state, trigger, "a fire alarm is closed only by a verdict")
    try:
        return TRANSITIONS[(state, trigger)]
    except KeyError:
        raise InvalidTransition(state, trigger) from None


def is_open(state: AlarmState) -> bool:
    return state in OPEN_STATES
