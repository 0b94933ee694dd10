"""Bounded sample windows and the fits over them.

`Ring` keeps the last `size` (t, value) pairs: a fixed-size buffer, so per-device state stays
small however long a device reports. `Buckets` folds readings into one mean per `bucket_s` (for
trends over hours or days in a few dozen points). `slope()` is an ordinary least-squares fit:
plain Python below `NUMPY_MIN_POINTS` points (measured faster for short windows), numpy above.

Memory (docs/performance.md, "rule-engine state"): a Ring is one `array('d')` of interleaved
times and values (16 B a sample, exact), not lists of float objects (64 B a sample). A Buckets
keeps no times at all: the bucket of period k (`k * bucket_s` ≤ t < `(k + 1) * bucket_s`) lives
in slot `k % size` of one `array('f')` of means (4 B a bucket, NaN = no reading in that
period), so the window is the last `size` periods before the open one; the time of a bucket is
its centre, as before. Means are float32 (battery V, obscuration %/m, kPa: 7 significant
digits, far below the sensors' resolution); times are never float32.

`ClockWindow` is the clock rule's window over a device's clock offsets (alerting/rules/clock.py).
"""

from __future__ import annotations

import math
from array import array

import numpy as np

from firetower.model import ClockState

# Below this many points a Python loop fits faster than converting to numpy arrays.
NUMPY_MIN_POINTS = 256
_NAN = math.nan
_ZEROS = array("d", [0.0])
_NANS = array("f", [_NAN])


class Ring:
    """The last `size` (t, v) samples, in one array: buf[2i] = t, buf[2i + 1] = v."""

    __slots__ = ("buf", "n", "pos")

    def __init__(self, size: int) -> None:
        self.buf = _ZEROS * (2 * size)
        self.pos = 0  # the slot the next sample goes to
        self.n = 0

    @property
    def size(self) -> int:
        return len(self.buf) >> 1

    def add(self, t: float, v: float) -> None:
        p = self.pos
        b = self.buf
        b[2 * p] = t
        b[2 * p + 1] = v
        p += 1
        size = len(b) >> 1
        self.pos = 0 if p == size else p
        if self.n < size:
            self.n += 1

    def _ordered(self) -> tuple[list[float], list[float]]:
        b = self.buf
        n = self.n
        if n < (len(b) >> 1):
            seq = b[: 2 * n]  # not wrapped yet: slots 0 .. n-1
        else:
            cut = 2 * self.pos
            seq = b[cut:] + b[:cut]
        return seq[0::2].tolist(), seq[1::2].tolist()

    def since(self, t0: float) -> tuple[list[float], list[float]]:
        """Samples with t >= t0, oldest first."""
        ts, vs = self._ordered()
        if not ts or min(ts) >= t0:
            return ts, vs
        out_t: list[float] = []
        out_v: list[float] = []
        for t, v in zip(ts, vs, strict=True):
            if t >= t0:
                out_t.append(t)
                out_v.append(v)
        return out_t, out_v

    def count_since(self, t0: float) -> int:
        """len(self.since(t0)[0]), without building the lists."""
        ts = self._ordered()[0]
        return sum(1 for t in ts if t >= t0)

    def last(self) -> tuple[float, float] | None:
        if not self.n:
            return None
        p = self.pos - 1
        if p < 0:
            p += len(self.buf) >> 1
        return self.buf[2 * p], self.buf[2 * p + 1]

    def dump(self) -> list[object]:
        ts, vs = self._ordered()
        return [self.size, ts, vs]

    @classmethod
    def load(cls, data: list[object]) -> Ring:
        size, ts, vs = data
        r = cls(int(size))  # type: ignore[call-overload]
        for t, v in zip(ts, vs, strict=True):  # type: ignore[call-overload]
            r.add(t, v)
        return r


class Buckets:
    """One mean per `bucket_s` of device time over the last `size` periods (see the module
    docstring): slot k % size holds the mean of period k, NaN when nothing was read in it."""

    __slots__ = ("acc_n", "acc_sum", "bucket_s", "current", "means")

    def __init__(self, bucket_s: float, size: int) -> None:
        self.bucket_s = bucket_s
        self.means = _NANS * size
        self.current = -1.0  # start of the open bucket
        self.acc_sum = 0.0
        self.acc_n = 0

    @property
    def size(self) -> int:
        return len(self.means)

    def add(self, t: float, v: float) -> bool:
        """Add one reading; True when a bucket was closed (the trend may have changed)."""
        start = t - t % self.bucket_s
        if start == self.current:
            self.acc_sum += v
            self.acc_n += 1
            return False
        closed = False
        if self.acc_n and start > self.current:
            self._close(start)
            closed = True
        elif start < self.current:  # late reading for a closed bucket: ignore
            return False
        self.current, self.acc_sum, self.acc_n = start, v, 1
        return closed

    def _close(self, new_start: float) -> None:
        bs = self.bucket_s
        m = self.means
        size = len(m)
        k_old = round(self.current / bs)
        k_new = round(new_start / bs)
        m[k_old % size] = self.acc_sum / self.acc_n
        for k in range(k_old + 1, min(k_new, k_old + 1 + size)):  # periods with no reading
            m[k % size] = _NAN

    def since(self, t0: float) -> tuple[list[float], list[float]]:
        """(centre time, mean) of the closed buckets of the window with t >= t0, oldest
        first."""
        ts: list[float] = []
        vs: list[float] = []
        if self.current < 0 and not self.acc_n:
            return ts, vs
        bs = self.bucket_s
        cur = self.current
        kc = round(cur / bs)
        half = bs / 2
        m = self.means
        size = len(m)
        for back in range(size, 0, -1):
            v = m[(kc - back) % size]
            if v == v:  # not NaN
                t = cur - back * bs + half
                if t >= t0:
                    ts.append(t)
                    vs.append(v)
        return ts, vs

    def last(self) -> tuple[float, float] | None:
        """The newest closed bucket of the window."""
        if self.current < 0 and not self.acc_n:
            return None
        bs = self.bucket_s
        kc = round(self.current / bs)
        m = self.means
        size = len(m)
        for back in range(1, size + 1):
            v = m[(kc - back) % size]
            if v == v:
                return self.current - back * bs + bs / 2, v
        return None

    @property
    def full(self) -> bool:
        return all(v == v for v in self.means)

    def dump(self) -> list[object]:
        return [self.bucket_s, self.current, self.acc_sum, self.acc_n, self.means.tobytes()]

    @classmethod
    def load(cls, data: list[object]) -> Buckets:
        """Load a dump; also the format before the means array (version 1 of the rule state:
        the last element is a Ring dump [size, centre times, means])."""
        bucket_s, current, acc_sum, acc_n, body = data
        b = cls.__new__(cls)
        b.bucket_s = float(bucket_s)  # type: ignore[arg-type]
        b.current, b.acc_sum, b.acc_n = float(current), float(acc_sum), int(acc_n)  # type: ignore[arg-type, call-overload]
        if isinstance(body, bytes | bytearray):
            b.means = array("f")
            b.means.frombytes(body)
            return b
        size, ts, vs = body  # type: ignore[misc]
        b.means = _NANS * int(size)
        kc = round(b.current / b.bucket_s)
        for t, v in zip(ts, vs, strict=True):
            k = math.floor(t / b.bucket_s)  # t is the bucket's centre
            if kc - int(size) <= k < kc:
                b.means[k % int(size)] = v
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


class ClockWindow:
    """One device's clock-supervision window (alerting/rules/clock.py): when it started and
    ends (centre time), the smallest offset in it (centre minus device, s; inf until a reading
    or event), the last wrong stamp seen in it. The engine calls `observe` only when a message
    may change something: a stamp not believed, a new smallest offset, the end of the window
    (a few times a window)."""

    __slots__ = ("low", "since", "until", "wrong")

    def __init__(self, since: float, window_s: float) -> None:
        self.since = since
        self.until = since + window_s
        self.low = math.inf
        self.wrong: ClockState | None = None
