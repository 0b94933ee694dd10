"""A condition with a duration and hysteresis: the edge detector every rule shares.

A rule classifies each reading as TRUE (at or past the raise level), FALSE (at or past the clear
level, which sits on the safe side of the raise level) or HOLD (between the two: no change).
The condition raises once TRUE has held for `for_s`, re-occurs when it turns TRUE again after a
FALSE while still raised, and clears once FALSE has held for `clear_s`. Pure: time is passed in.
"""

from __future__ import annotations

from enum import IntEnum


class Level(IntEnum):
    FALSE = 0
    HOLD = 1
    TRUE = 2


class Edge(IntEnum):
    RAISE = 1
    RECUR = 2
    CLEAR = 3


class Condition:
    __slots__ = ("active", "clear_since", "level", "pending_since", "seen", "spec", "timer_at",
                 "went_false")

    def __init__(self) -> None:
        self.level = Level.HOLD
        self.active = False
        self.pending_since: float | None = None  # device time TRUE started (not yet raised)
        self.clear_since: float | None = None  # device time FALSE started (still raised)
        self.went_false = False
        self.timer_at: float | None = None  # centre time of the scheduled timer, if any
        self.spec: tuple[float, float, str] | None = None  # (for_s, clear_s, class) for timers
        # (device time, received at) of the last reading at the raise level: the clocks of an
        # alarm that a timer raises when the duration runs out with no further reading.
        self.seen: tuple[float, float] | None = None

    def update(self, level: Level, t: float, for_s: float, clear_s: float) -> Edge | None:
        self.level = level
        if level is Level.TRUE:
            self.clear_since = None
            if self.active:
                if self.went_false:
                    self.went_false = False
                    return Edge.RECUR
                return None
            if self.pending_since is None:
                self.pending_since = t
            if t - self.pending_since >= for_s:
                self.active = True
                self.pending_since = None
                return Edge.RAISE
            return None
        self.pending_since = None
        if level is Level.FALSE and self.active:
            self.went_false = True
            if self.clear_since is None:
                self.clear_since = t
            if t - self.clear_since >= clear_s:
                self.active = False
                self.clear_since = None
                self.went_false = False
                return Edge.CLEAR
        elif self.active:  # HOLD while raised: not clearing any more
            self.clear_since = None
        return None

    def deadline(self, for_s: float, clear_s: float) -> float | None:
        """Device time at which the current level, if it persists, makes an edge."""
        if self.pending_since is not None:
            return self.pending_since + for_s
        if self.clear_since is not None:
            return self.clear_since + clear_s
        return None

    def force_clear(self) -> bool:
        """Clear at once (superseded, reset by the panel). True if it was raised."""
        was = self.active
        self.active = False
        self.pending_since = self.clear_since = None
        self.went_false = False
        self.level = Level.HOLD
        return was

    @property
    def pending(self) -> bool:
        return self.pending_since is not None

    def dump(self) -> list[object]:
        return [int(self.level), self.active, self.pending_since, self.clear_since,
                self.went_false, list(self.spec) if self.spec else None,
                list(self.seen) if self.seen else None]

    @classmethod
    def load(cls, data: list[object]) -> Condition:
        c = cls()
        c.level = Level(data[0])  # type: ignore[arg-type]
        c.active = bool(data[1])
        c.pending_since = data[2]  # type: ignore[assignment]
        c.clear_since = data[3]  # type: ignore[assignment]
        c.went_false = bool(data[4])
        spec = data[5] if len(data) > 5 else None
        c.spec = (spec[0], spec[1], spec[2]) if spec else None  # type: ignore[index]
        seen = data[6] if len(data) > 6 else None
        c.seen = (seen[0], seen[1]) if seen else None  # type: ignore[index]
        return c
