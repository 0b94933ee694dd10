"""`firetower bench e2e` end to end at a tiny scale, as a subprocess: its own broker and
database, ingest, API, dispatcher, publishers, operator client and webhook receiver."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.integration
@pytest.mark.timeout(150)
def test_bench_e2e_tiny(tmp_path: Path) -> None:
    out, png = tmp_path / "e2e.json", tmp_path / "e2e.png"
    proc = subprocess.run(
        [sys.executable, "-m", "firetower", "bench", "e2e", "--devices", "300", "--interval", "1",
         "--duration", "16", "--fires", "2", "--fire-kind", "mixed", "--burst", "2",
         "--burst-duration", "1", "--publishers", "2", "--json", str(out), "--plot", str(png),
         "--records", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=140)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r = json.loads(out.read_text())
    # the run's record (bench/records.py): its summary and its checks, all passed
    [path] = tmp_path.glob("e2e-*.json")
    record = json.loads(path.read_text())
    assert record["passed"] is True and len(record["checks"]) == 5
    assert record["checks"] == r["checks"] and all(c["passed"] for c in r["checks"])
    assert record["results"]["throughput"] == r["throughput"]
    assert "samples" not in record["results"] and record["params"]["devices"] == 300

    th = r["throughput"]
    # 310 msg/s for 16 s + the burst; the panel fire's event; the smoke fire's 2 + 13 readings
    assert th["published"] == r["published"]["telemetry"] + 1 > 5000
    # redelivered: rows the ingester's INSERT skipped as already stored (nothing here makes the
    # broker deliver twice: no restart, no reconnect)
    assert th["lost"] == 0 and th["redelivered"] == 0 and th["rejected"] == 0
    assert th["stored"] == th["published"]
    # the broker's backlog as the ingester's watch saw it: measured, far below its budget
    assert 10_000 < th["broker_heap_max_bytes"] < th["broker_budget_bytes"] / 2
    assert th["broker_alarms"] == []
    assert r["ceiling"]["lost"] == 0 and r["ceiling"]["msgs_per_s"] > 0

    f = r["fires"]
    assert f["injected"] == 2
    assert [x["kind"] for x in r["fire_records"]] == ["panel", "smoke"]
    assert r["fire_records"][0]["alarm_type"] == "panel.fire"
    assert r["fire_records"][1]["alarm_type"].startswith(("smoke.", "multi"))
    assert f["seen_by_operator"] == f["verdicts_ok"] == f["delivered_to_receiver"] == 2
    assert f["forwarded_by_operator"] == 2 and f["in_order"] == 2
    assert r["receiver"]["bad_signatures"] == 0

    # every stage measured and positive, from the client side and (where the columns exist)
    # from the alarm rows' clocks; each fire's time stamps in pipeline order
    lat = r["latency_ms"]
    # the smoke alarm is raised by its last reading, or by the rule's timer when the hold runs
    # out first (a race by design): then it has no triggering message
    by_message = 2 - f["raised_by_timer"]
    assert r["fire_records"][0]["raised_by"] == "message"
    for stage in ("device_to_received", "received_to_stored", "stored_to_shown",
                  "shown_to_verdict", "verdict_to_forwarded", "forwarded_to_delivered",
                  "fire_to_operator", "fire_to_delivered"):
        c = lat[stage]["client"]
        n = by_message if stage in ("device_to_received", "received_to_stored") else 2
        assert c["n"] == n and 0 < c["min"] <= c["p50"] <= c["max"], (stage, c)
    for rec in r["fire_records"]:
        timer = rec["raised_by"] == "timer"
        assert rec["published"] < (rec["ingested_at"] if timer else rec["received_at"]) \
            < rec["stored_at"] < rec["sse_arrival"] < rec["verdict_answered"]
        assert rec["verdict_at"] < rec["forwarded_at"] < rec["receiver_forwarded"]
        e2e = rec["client:fire_to_delivered"]
        if not timer:
            parts = ("fire_to_condition", "device_to_received", "received_to_stored",
                     "stored_to_shown")
            assert sum(rec[f"client:{p}"] for p in parts) == pytest.approx(
                rec["client:fire_to_operator"], abs=0.01)
            for clock in ("device_ts", "received_at"):
                assert rec[clock] is not None
        assert e2e > rec["client:fire_to_operator"]
        for clock in ("stored_at", "verdict_at", "forwarded_at"):
            assert rec[clock] is not None
    panel, smoke = r["fire_records"]
    assert panel["client:fire_to_condition"] == 0
    assert 9_000 < smoke["client:fire_to_condition"] < 13_000  # the smoke rule's 10 s hold
    assert smoke["clocks:fire_to_condition"] == pytest.approx(smoke["client:fire_to_condition"],
                                                              abs=5)
    for stage, values in lat.items():  # a column missing gives None, never a bogus figure
        if values["clocks"] and values["clocks"]["n"]:
            assert values["clocks"]["min"] >= 0, stage

    # per-process CPU and memory, the time series, and the plot
    for name in ("ingest", "api", "dispatch", "operator", "receiver", "mosquitto",
                 "publisher-0", "publisher-1", "postgres"):
        assert r["processes"][name]["cpu_s"] >= 0, name
    for name in ("ingest", "api", "dispatch", "publisher-0"):
        assert r["processes"][name]["peak_rss_mb"] > 10, name
    s = r["series"]
    assert len(s["t"]) >= 4 and max(s["published_per_s"]) > 100
    assert png.read_bytes()[:8] == PNG_MAGIC and png.stat().st_size > 20_000
    assert "END TO END" in proc.stdout and "broker only" in proc.stdout
    assert "broker heap max" in proc.stdout and "backlog alarms: none" in proc.stdout
