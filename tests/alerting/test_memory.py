"""The rule engine's in-memory state per device at steady state (every window full), measured
with tracemalloc by `firetower bench alerting`'s own method on a few thousand devices."""

from __future__ import annotations

from typing import Any

import pytest

from bench import alerting as bench_alerting

PER_KIND = 600  # 2,400 devices in all
TARGET = 1024  # docs/performance.md: rule-engine state ≤ 1 KB per device
# Measured 1,290-2,323 B after the array windows (from 2,985-7,763 B before): guard against
# regressions until the target below is met.
CEILING = 2600


@pytest.fixture(scope="module")
def measured() -> dict[str, Any]:
    bench_alerting._measure(lambda: bench_alerting._fleet(80))  # imports and caches first
    return {k: bench_alerting._measure(
        lambda k=k: [(f"t-{k[:4]}-{i:06d}", k, None, 1 + i % 5) for i in range(PER_KIND)])
        for k in bench_alerting.KINDS}


@pytest.mark.parametrize("kind", bench_alerting.KINDS)
def test_steady_state_memory_is_bounded(measured: dict[str, Any], kind: str) -> None:
    m = measured[kind]
    assert m["windows_full"] and m["devices"] == PER_KIND
    assert 0 < m["bytes_per_device"] <= CEILING, m


@pytest.mark.xfail(strict=True, reason="not met yet: see docs/performance.md, rule-engine state")
@pytest.mark.parametrize("kind", bench_alerting.KINDS)
def test_steady_state_memory_meets_the_1kb_target(measured: dict[str, Any], kind: str) -> None:
    assert measured[kind]["bytes_per_device"] <= TARGET, measured[kind]
