"""Login throttling: failed logins per account and per client address in a sliding window.

`POST /auth/token` asks `LoginThrottle.check` first; over either limit, the answer is 429
with `Retry-After` (the seconds until the oldest counted attempt leaves the window) and no
password is hashed, so a guessing run costs the API nothing once throttled. Every attempt is
counted when it starts (so 40 attempts sent at once are counted as 40, not as none), and a
successful login takes its own attempt back and forgets the account's failures.

The counters live in the memory of one API process: enough for the one API process the centre
runs; several API processes would each count on their own (the limits multiply), and a
restart forgets them. The address is the TCP peer: behind a reverse proxy, every client has
the proxy's address, so the per-address limit then applies to all of them together.

Per-account throttling lets someone who knows a user name keep that user out for the window
(`FIRETOWER_LOGIN_WINDOW_S`, 5 minutes) by failing on purpose; the user's open sessions and
tokens are not affected, and an admin can see it in the log (one line per throttled attempt).
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)
# Keys kept at most (accounts + addresses); beyond it the stalest are dropped, so a flood of
# made-up names cannot grow the process without bound.
MAX_KEYS = 100_000


class LoginThrottle:
    def __init__(self, per_account: int, per_address: int, window_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = {"account": per_account, "address": per_address}
        self.window_s = window_s
        self.clock = clock
        self._attempts: dict[tuple[str, str], deque[float]] = {}

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        times = self._attempts.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._attempts[key]
        return times

    def check(self, account: str, address: str) -> tuple[float, str] | None:
        """None if an attempt may go ahead (and count it), else (seconds to wait, the limit
        reached: "account" or "address")."""
        now = self.clock()
        keys = (("account", account), ("address", address))
        for key in keys:
            times = self._recent(key, now)
            if len(times) >= self.limits[key[0]]:
                return max(times[0] + self.window_s - now, 0.0), key[0]
        if len(self._attempts) >= MAX_KEYS:
            self._prune(now)
        for key in keys:
            self._attempts.setdefault(key, deque()).append(now)
        return None

    def succeeded(self, account: str, address: str) -> None:
        """The attempt was right: it does not count against the address, and the account's
        earlier failures are forgotten."""
        self._attempts.pop(("account", account), None)
        times = self._attempts.get(("address", address))
        if times:
            times.pop()

    def _prune(self, now: float) -> None:
        for key in list(self._attempts):
            self._recent(key, now)
        if len(self._attempts) >= MAX_KEYS:  # all recent: drop the stalest half
            stalest = sorted(self._attempts, key=lambda k: self._attempts[k][-1])
            for key in stalest[: len(stalest) // 2]:
                del self._attempts[key]


def retry_after_s(wait: float) -> int:
    """Whole seconds for the Retry-After header, at least 1."""
    return max(1, math.ceil(wait))
