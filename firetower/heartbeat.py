"""Liveness for a supervisor: a process touches a file while its main work goes on.

`firetower run` (and anything else that supervises the centre's processes) gives each child
the path of a file in `FIRETOWER_HEARTBEAT_FILE`. The child calls `beat()` from the loop that
does its real work (the publish loop, the ingest loop, the delivery loop), never from a
separate timer: a process stuck in a busy loop or a deadlock stops beating, and the supervisor
restarts it although it has not exited. Without the variable `beat()` does nothing.
"""

from __future__ import annotations

import os
import time

ENV = "FIRETOWER_HEARTBEAT_FILE"
# Touch the file at most this often (a beat costs one utime() call).
MIN_INTERVAL_S = 1.0

_last = 0.0


def beat(now: float | None = None) -> bool:
    """Touch the heartbeat file if it is due; True if it was touched."""
    global _last
    path = os.environ.get(ENV)
    if not path:
        return False
    t = time.monotonic() if now is None else now
    if t - _last < MIN_INTERVAL_S:
        return False
    _last = t
    try:
        os.utime(path)
    except FileNotFoundError:
        with open(path, "a"):
            pass
    except OSError:
        return False
    return True


def age_s(path: str, now: float | None = None) -> float | None:
    """Seconds since the file was last touched (wall clock), None if it does not exist."""
    try:
        mtime = os.stat(path).st_mtime
    except OSError:
        return None
    return (time.time() if now is None else now) - mtime


# The supervisor's defaults (`firetower run --stale-after / --start-grace`): a child is stale
# when its file is older than STALE_S once START_GRACE_S have passed since its start (a start
# loads the registry and the rule state, registers the fleet, ...). STALE_S is above the
# longest pause of every working loop: a retry delay of the database writers (5 s), a forced
# broker save under a large backlog (4 x its duration), the dispatcher's leadership check.
STALE_S = 60.0
START_GRACE_S = 60.0


class Liveness:
    """When a supervised process counts as hung (pure: the caller reads the clock and the file).

    `verdict(ran_s, age_s)`: None while it is healthy, else why it must be restarted. `ran_s`
    is how long it has run, `age_s` the age of its heartbeat file (None: never written)."""

    def __init__(self, stale_s: float = STALE_S, grace_s: float = START_GRACE_S) -> None:
        if stale_s <= MIN_INTERVAL_S:
            raise ValueError(f"stale_s must exceed the beat interval ({MIN_INTERVAL_S} s)")
        self.stale_s, self.grace_s = stale_s, grace_s

    def verdict(self, ran_s: float, age_s: float | None) -> str | None:
        if ran_s < self.grace_s:
            return None
        if age_s is None:
            return f"no heartbeat in the {ran_s:.0f} s since its start"
        # A file older than the process (left by its previous run) is judged from the start.
        silent = min(age_s, ran_s)
        if silent > self.stale_s:
            return f"no heartbeat for {silent:.0f} s (limit {self.stale_s:g} s)"
        return None
