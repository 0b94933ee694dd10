"""Escalation chains: who is told next when an alarm stays unacknowledged, and when.

A chain (table `escalation_chains`) belongs to an alarm class, optionally to a jurisdiction
subtree (the deepest one on the site's path wins, else the city-wide one). Its steps are
measured from the raise: step k is due at raised_at + steps[k].after_s * factor, where factor
is the heightened-watch escalation factor (1 outside a watch window). After the last step,
the last step repeats every repeat_s * factor until the alarm is acknowledged.

Typical chain: operator (raise) → shift leader (60 s) → county duty officer (180 s) → repeat.
Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from firetower.alarms import AlarmClass
from notify.policy import RECIPIENTS

MAX_STEPS = 10
MAX_AFTER_S = 86400


class ChainError(ValueError):
    """A chain is refused at write time; the message says why."""


@dataclass(frozen=True, slots=True)
class Step:
    after_s: int
    recipients: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Chain:
    id: int
    alarm_class: str
    steps: tuple[Step, ...]
    repeat_s: int = 300
    jurisdiction_id: int | None = None
    enabled: bool = True


def parse_steps(raw: object) -> tuple[Step, ...]:
    """Steps from their JSON form, checked: ChainError names the first problem."""
    if not isinstance(raw, list) or not raw:
        raise ChainError("steps must be a non-empty list of {after_s, recipients}")
    if len(raw) > MAX_STEPS:
        raise ChainError(f"at most {MAX_STEPS} steps")
    steps: list[Step] = []
    last = 0
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or set(item) - {"after_s", "recipients"}:
            raise ChainError(f"step {i + 1} must be an object with after_s and recipients")
        after, recips = item.get("after_s"), item.get("recipients")
        if type(after) is not int or not 1 <= after <= MAX_AFTER_S:
            raise ChainError(f"step {i + 1}: after_s must be a whole number of seconds "
                             f"between 1 and {MAX_AFTER_S}")
        if after <= last:
            raise ChainError(f"step {i + 1}: after_s must be later than the step before "
                             f"({after} ≤ {last}); steps are measured from the raise")
        if not isinstance(recips, list) or not recips:
            raise ChainError(f"step {i + 1}: recipients must be a non-empty list")
        for r in recips:
            if r not in RECIPIENTS:
                raise ChainError(f"step {i + 1}: unknown recipient {r!r} "
                                 f"(recipients: {', '.join(RECIPIENTS)})")
        steps.append(Step(after, tuple(recips)))
        last = after
    return tuple(steps)


def steps_json(steps: Sequence[Step]) -> list[dict[str, Any]]:
    return [{"after_s": s.after_s, "recipients": list(s.recipients)} for s in steps]


def validate_class(alarm_class: str) -> None:
    if alarm_class not in AlarmClass.__members__.values():
        raise ChainError(f"unknown alarm class {alarm_class!r} "
                         f"(classes: {', '.join(a.value for a in AlarmClass)})")


def choose(chains: Sequence[Chain], alarm_class: str, path: Sequence[int]) -> Chain | None:
    """The chain for an alarm: its class, the deepest jurisdiction on the path, else city-wide."""
    best: Chain | None = None
    best_depth = -1
    for c in chains:
        if not c.enabled or c.alarm_class != alarm_class:
            continue
        if c.jurisdiction_id is None:
            depth = 0
        elif c.jurisdiction_id in path:
            depth = 1 + list(path).index(c.jurisdiction_id)
        else:
            continue
        if depth > best_depth:
            best, best_depth = c, depth
    return best


def due_at(chain: Chain, step: int, raised_at: datetime, factor: float = 1.0) -> datetime:
    """When step `step` (0-based) is due; past the last step, the last one's first due time."""
    s = chain.steps[min(step, len(chain.steps) - 1)]
    return raised_at + timedelta(seconds=s.after_s * factor)


def after_step(chain: Chain, step: int, raised_at: datetime, sent_at: datetime,
               factor: float = 1.0) -> tuple[int, datetime]:
    """The step that follows `step` and when it is due. Past the last step the last one is
    repeated every repeat_s * factor from when it was sent."""
    nxt = step + 1
    if nxt < len(chain.steps):
        return nxt, due_at(chain, nxt, raised_at, factor)
    return len(chain.steps) - 1, sent_at + timedelta(seconds=chain.repeat_s * factor)


def recipients(chain: Chain, step: int) -> tuple[str, ...]:
    return chain.steps[min(step, len(chain.steps) - 1)].recipients
