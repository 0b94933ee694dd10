"""Every benchmark run writes its record (bench/records.py), and a failed correctness check
makes the command exit 1 (issue 14)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from bench import alerting, broker, e2e_report, ingest, records, webhooks
from cli import main as cli_main


def _args(tmp_path: Path, **values: Any) -> argparse.Namespace:
    return argparse.Namespace(records=tmp_path, no_record=False, bench_module="bench.x",
                              command="bench", module="cli.bench", **values)


def test_a_passing_run_writes_its_record_and_exits_0(tmp_path: Path) -> None:
    begun = records.start()
    rc = records.finish("ingest", _args(tmp_path, messages=10, profile=Path("/tmp/p")), begun,
                        {"x": 1.5, "nan": float("nan")}, [records.equal("ok", 1, 1)])
    assert rc == 0
    [path] = tmp_path.glob("ingest-*.json")
    r = json.loads(path.read_text())
    assert r["benchmark"] == "ingest" and r["passed"] is True and r["format"] == 1
    assert r["params"] == {"messages": 10, "profile": "/tmp/p"}  # the CLI's plumbing left out
    assert r["results"] == {"x": 1.5, "nan": None}
    assert r["checks"] == [{"name": "ok", "passed": True, "detail": "1 (want 1)"}]
    m = r["machine"]
    assert m["cpus"] >= 1 and m["python"].startswith("3.") and len(m["git_commit"]) == 40
    assert m["load_average_start"] is not None and m["load_average_end"] is not None
    assert path.name == f"ingest-{r['started'].replace('-', '').replace(':', '')}.json"


def test_a_failed_check_exits_1_and_is_recorded(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    rc = records.finish("webhooks", _args(tmp_path), records.start(), {},
                        [records.equal("ok", 1, 1), records.equal("lost", 3, 0)])
    assert rc == 1
    r = json.loads(next(tmp_path.glob("webhooks-*.json")).read_text())
    assert r["passed"] is False and [c["passed"] for c in r["checks"]] == [True, False]
    assert "check FAIL lost: 3 (want 0)" in capsys.readouterr().err


def test_a_run_without_checks_fails(tmp_path: Path) -> None:
    assert records.finish("e2e", _args(tmp_path), records.start(), {}, []) == 1


def test_no_record(tmp_path: Path) -> None:
    args = _args(tmp_path)
    args.no_record = True
    assert records.finish("e2e", args, records.start(), {}, [records.equal("ok", 1, 1)]) == 0
    assert not list(tmp_path.iterdir())


def test_two_runs_in_one_second_keep_both(tmp_path: Path) -> None:
    begun = records.start()
    for _ in range(2):
        records.finish("alerting", _args(tmp_path), begun, {}, [records.equal("ok", 1, 1)])
    assert len(list(tmp_path.glob("alerting-*.json"))) == 2


# -- each benchmark's checks fail on what they guard ---------------------------------------------
def _failed(checks: list[records.Check]) -> list[str]:
    return [c.name for c in checks if not c.passed]


def test_ingest_checks() -> None:
    r: dict[str, Any] = {"messages": 100, "ingest": {"stored": 100, "rejected": 0},
                         "ceiling": {"lost": 0}}
    assert _failed(ingest.checks(r)) == []
    r["ingest"]["stored"] = 99
    r["ceiling"]["lost"] = 1
    assert len(_failed(ingest.checks(r))) == 2


def test_alerting_checks() -> None:
    r: dict[str, Any] = {"throughput": {"decisions": 0},
                         "memory": {"mixed": {"windows_full": True}, "max_bytes_per_device": 9},
                         "latency": {"alarms_stored": 400, "events": 400}}
    assert _failed(alerting.checks(r)) == []
    r["latency"]["alarms_stored"] = 399
    r["memory"]["mixed"]["windows_full"] = False
    assert len(_failed(alerting.checks(r))) == 2


def test_webhooks_checks() -> None:
    r: dict[str, Any] = {
        "latency": {"verdicts": 5, "bad_signatures": 0, "verdict_ms": {"n": 5},
                    "forwarded_ms": {"n": 5}},
        "throughput": {"1_endpoint": {"deliveries": 10, "expected": 10, "bad_signatures": 0}}}
    assert _failed(webhooks.checks(r)) == []
    r["latency"]["forwarded_ms"] = {"n": 0}
    r["throughput"]["1_endpoint"]["deliveries"] = 9
    assert len(_failed(webhooks.checks(r))) == 2


def test_the_command_exits_1_when_a_check_fails(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Through `firetower bench alerting` itself: quiet telemetry that made a decision."""
    argv = ["bench", "alerting", "--devices", "100", "--readings", "1000", "--memory-devices",
            "0", "--no-db", "--records", str(tmp_path)]
    assert cli_main.main(argv) == 0
    real = alerting.throughput

    def noisy(devices: int, readings: int) -> dict[str, Any]:
        return {**real(devices, readings), "decisions": 1}

    monkeypatch.setattr(alerting, "throughput", noisy)
    assert cli_main.main(argv) == 1
    passed = sorted(json.loads(p.read_text())["passed"] for p in tmp_path.glob("*.json"))
    assert passed == [False, True]


def test_e2e_checks() -> None:
    th, fires = {"lost": 0, "rejected": 0}, {"injected": 2, "seen_by_operator": 2,
                                             "delivered_to_receiver": 2}
    assert _failed(e2e_report.checks(th, fires, {"bad_signatures": 0})) == []
    fires["delivered_to_receiver"] = 1
    assert _failed(e2e_report.checks(th, fires, {"bad_signatures": 1})) == [
        "every fire's alarm.forwarded delivered to the receiver", "no bad webhook signature"]


def test_broker_kill_checks() -> None:
    cycle = {"lost_acked_before_save": 0}
    r: dict[str, Any] = {"timer-1s": {
        "kill": {"cycles": [cycle, {"lost_acked_before_save": None}]},
        "throughput": {"rounds": [100.0, 90.0]},
        "backlog": {"complete": True, "queued": 5, "drained": 5}}}
    assert _failed(broker.checks(r)) == []
    cycle["lost_acked_before_save"] = 2
    r["timer-1s"]["backlog"]["drained"] = 4
    assert len(_failed(broker.checks(r))) == 2
