"""Bounded sample windows and the fits over them.

`Ring` keeps the last `size` (t, value) pairs: a fixed-size buffer, so per-device state stays
small however long a device reports. `Buckets` folds readings into one mean per `bucket_s` (for
trends over hours or days in a few dozen points). `slope()` is an ordinary least-squares fit:
plain Python below `NUMPY_MIN_POINTS` points (measured faster for short windows), numpy above.
"""

from __future__ import annotations

import numpy as np

# Below this many points a Python loop fits faster than converting to numpy arrays.
NUMPY_MIN_POINTS = 256


class Ring:
    __slots__ = ("n", "pos", "size", "ts", "vs")

    def __init__(self, size: int) -> None:
        self.size = size
        self.ts: list[float] = [0.0] * size
        self.vs: list[float] = [0.0] * size
        self.pos = 0
        self.n = 0

    def add(self, t: float, v: float) -> None:
        p = self.pos
        self.ts[p] = t
        self.vs[p] = v
        self.pos = (p + 1) % self.size
        if self.n < self.size:
            self.n += 1

    def since(self, t0: float) -> tuple[list[float], list[float]]:
        """Samples with t >= t0, oldest first."""
        ts: list[float] = []
        vs: list[float] = []
        start = (self.pos - self.n) % self.size
        for i in range(self.n):
            j = (start + i) % self.size
            if self.ts[j] >= t0:
                ts.append(self.ts[j])
                vs.append(self.vs[j])
        return ts, vs

    def last(self) -> tuple[float, float] | None:
        if not self.n:
            return None
        j = (self.pos - 1) % self.size
        return self.ts[j], self.vs[j]

    def dump(self) -> list[object]:
        ts, vs = self.since(float("-inf"))
        return [self.size, ts, vs]

    @classmethod
    def load(cls, data: list[object]) -> Ring:
        size, ts, vs = data
        r = cls(int(size))  # type: ignore[call-overload]
        for t, v in zip(ts, vs, strict=True):  # type: ignore[call-overload]
            r.add(t, v)
        return r


class Buckets:
    """One mean per `bucket_s` of device time, the last `size` buckets kept."""

    __slots__ = ("acc_n", "acc_sum", "bucket_s", "current", "ring")

    def __init__(self, bucket_s: float, size: int) -> None:
        self.bucket_s = bucket_s
        self.ring = Ring(size)
        self.current = -1.0  # start of the open bucket
        self.acc_sum = 0.0
        self.acc_n = 0

    def add(self, t: float, v: float) -> bool:
        """Add one reading; True when a bucket was closed (the trend may have changed)."""
        start = t - t % self.bucket_s
        if start == self.current:
            self.acc_sum += v
            self.acc_n += 1
            return False
        closed = False
        if self.acc_n and start > self.current:
            self.ring.add(self.current + self.bucket_s / 2, self.acc_sum / self.acc_n)
            closed = True
        elif start < self.current:  # late reading for a closed bucket: ignore
            return False
        self.current, self.acc_sum, self.acc_n = start, v, 1
        return closed

    def dump(self) -> list[object]:
        return [self.bucket_s, self.current, self.acc_sum, self.acc_n, self.ring.dump()]

    @classmethod
    def load(cls, data: list[object]) -> Buckets:
        bucket_s, current, acc_sum, acc_n, ring = data
        b = cls(float(bucket_s), 1)  # type: ignore[arg-type]
        b.current, b.acc_sum, b.acc_n = float(current), float(acc_sum), int(acc_n)  # type: ignore[arg-type, call-overload]
        b.ring = Ring.load(ring)  # type: ignore[arg-type]
        return b


def slope(ts: list[float], vs: list[float]) -> float | None:
    """Least-squares slope dv/dt (per second), or None with fewer than 2 distinct times."""
    n = len(ts)
    if n < 2:
        return None
    if n >= NUMPY_MIN_POINTS:
        t = np.asarray(ts) - ts[0]
        v = np.asarray(vs)
        tm = t.mean()
        den = float(((t - tm) ** 2).sum())
        if den == 0.0:
            return None
        return float(((t - tm) * (v - v.mean())).sum() / den)
    t0 = ts[0]
    mt = sum(ts) / n - t0
    mv = sum(vs) / n
    num = den = 0.0
    for t, v in zip(ts, vs, strict=True):
        dt = t - t0 - mt
        num += dt * (v - mv)
        den += dt * dt
    if den == 0.0:
        return None
    return num / den


def time_to_reach(ts: list[float], vs: list[float], target: float) -> tuple[float, float] | None:
    """(seconds from the last sample until the fitted line reaches `target`, slope per second),
    or None when the fit is flat or heads away from the target."""
    s = slope(ts, vs)
    if s is None or s == 0.0:
        return None
    n = len(ts)
    t_mean = sum(ts) / n
    v_now = sum(vs) / n + s * (ts[-1] - t_mean)
    eta = (target - v_now) / s
    if eta < 0:
        return None
    return eta, s
