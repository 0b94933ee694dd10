"""The one percentile of the benchmarks, and the summary every latency figure is given as.

Definition (docs/performance.md, "How the figures are made"): linear interpolation between
the closest ranks, the "inclusive" method of `statistics.quantiles` and numpy's default
(Hyndman & Fan type 7). For n sorted values x[0] <= ... <= x[n-1] and 0 <= q <= 100, let
h = (n - 1) * q / 100; the q-th percentile is x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1]
- x[floor(h)]). So p0 is the minimum, p100 the maximum, p50 the usual median, and with few
values (10 fires) p99 lies between the two largest.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def percentile(values: Iterable[float], q: float) -> float:
    """The q-th percentile (0 <= q <= 100) of `values` by linear interpolation (see the
    module docstring). Raises ValueError for no values or q outside [0, 100]."""
    s = sorted(values)
    if not s:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} outside [0, 100]")
    return _interpolate(s, q)


def _interpolate(s: Sequence[float], q: float) -> float:
    h = (len(s) - 1) * q / 100
    lo = min(math.floor(h), len(s) - 1)
    hi = min(lo + 1, len(s) - 1)
    value = s[lo] + (h - lo) * (s[hi] - s[lo])
    # rounding must not step outside the two neighbours (keeps it monotone and bounded)
    return min(max(value, s[lo]), s[hi])


def summary(values: Iterable[float], *, scale: float = 1.0, digits: int = 2,
            quantiles: Sequence[float] = (50, 95, 99)) -> dict[str, float | int]:
    """{"n", "min", "p50", "p95", "p99", "max", "mean"} of `values` times `scale` (1000: seconds
    to milliseconds), rounded to `digits`; just {"n": 0} for no values."""
    s = sorted(v * scale for v in values)
    if not s:
        return {"n": 0}
    out: dict[str, float | int] = {"n": len(s), "min": round(s[0], digits)}
    for q in quantiles:
        out[f"p{q:g}"] = round(_interpolate(s, q), digits)
    out["max"] = round(s[-1], digits)
    out["mean"] = round(math.fsum(s) / len(s), digits)
    return out
