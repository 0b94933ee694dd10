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
