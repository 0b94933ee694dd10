"""`firetower bench alerting` runs and reports its figures (tiny sizes)."""

from __future__ import annotations

import argparse

import pytest

from bench import alerting as bench_alerting
from tests.conftest import settings_for


def test_throughput_figures() -> None:
    t = bench_alerting.throughput(200, 4000)
    assert t["readings"] == 3800 and t["readings_per_s"] > 0 and t["decisions"] == 0
    assert 0 < t["state_bytes_per_device"] <= 1024


@pytest.mark.integration
async def test_latency_figures(database, broker) -> None:  # type: ignore[no-untyped-def]
    p = argparse.ArgumentParser()
    bench_alerting.configure(p)
    args = p.parse_args(["--devices", "200", "--events", "20", "--rate", "2000"])
    lat = await bench_alerting.latency(settings_for(database.url, broker), args)
    assert lat["events"] == lat["alarms_stored"] == 20
    assert lat["arrival_to_commit_ms"]["p50"] < 1000
    report = {"throughput": bench_alerting.throughput(200, 2000), "latency": lat}
    assert "p99" in bench_alerting.render(report)
    # the run's correctness checks (they decide `firetower bench alerting`'s exit status)
    checks = bench_alerting.checks(report)
    assert [c.name for c in checks if not c.passed] == [] and len(checks) == 2
