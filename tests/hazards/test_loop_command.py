"""`firetower loop` as a process: one sweep (`--once`) opens the work order and records the
hazard of a device offline for a day; a bad policy file stops it at start (exit 78)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from firetower import db
from firetower.alarm_store import AlarmKey, AlarmStore, Occurrence
from firetower.alarms import AlarmClass
from tests.api.conftest import TEST_SECRET
from tests.conftest import Database

pytestmark = pytest.mark.integration

PROJECT = Path(__file__).resolve().parent.parent.parent


def _loop(database: Database, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "firetower", "loop", "--once", "--no-migrate"],
        env={**os.environ, "FIRETOWER_ENV": "test", "FIRETOWER_DATABASE_URL": database.url,
             "FIRETOWER_SECRET_KEY": TEST_SECRET, **env},
        capture_output=True, text=True, cwd=PROJECT, timeout=120)


async def test_one_sweep_opens_the_order_and_records_the_hazard(clean_db: Database,
                                                                tmp_path: Path) -> None:
    pool = await db.create_pool(clean_db.url, max_size=2)
    try:
        await pool.execute("INSERT INTO sites (id, name) VALUES ('s1', 'Harbour Tower')")
        await pool.execute("INSERT INTO devices (id, kind, site_id) VALUES "
                           "('pnl-1', 'alarm_panel', 's1')")
        since = datetime.now(UTC) - timedelta(hours=30)
        change = await AlarmStore(pool).raise_or_recur(Occurrence(
            AlarmKey("pnl-1", "", "offline"), AlarmClass.OFFLINE, since, site_id="s1",
            received_at=since, reason="test: silent"))
        assert change is not None
        policy = tmp_path / "policy.json"
        policy.write_text(json.dumps({"offline_hazard_s": 86400, "sla": {"offline": [60, 3600]}}))
        done = _loop(clean_db, FIRETOWER_HAZARD_POLICY=str(policy))
        assert done.returncode == 0, done.stderr
        order = await pool.fetchrow("SELECT alarm_id, company_id, respond_by, opened_at"
                                    " FROM work_orders")
        assert order is not None
        assert order["alarm_id"] == change.alarm_id and order["company_id"] is None
        assert order["respond_by"] - order["opened_at"] == timedelta(seconds=60)
        hazard = await pool.fetchrow("SELECT source, source_ref, site_id, state FROM hazards")
        assert hazard is not None
        assert dict(hazard) == {"source": "rule", "source_ref": f"rule:offline:{change.alarm_id}",
                                "site_id": "s1", "state": "found"}
        assert _loop(clean_db).returncode == 0
        assert await pool.fetchval("SELECT count(*) FROM hazards") == 1
        assert await pool.fetchval("SELECT count(*) FROM work_orders") == 1
    finally:
        await pool.close()


async def test_a_bad_policy_file_stops_it_at_start(clean_db: Database, tmp_path: Path) -> None:
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"offline_hazard_hours": 24}))
    done = _loop(clean_db, FIRETOWER_HAZARD_POLICY=str(policy))
    assert done.returncode == 78
    assert "unknown hazard policy keys: offline_hazard_hours" in done.stderr


async def test_it_beats_its_heartbeat_while_it_sweeps(clean_db: Database, tmp_path: Path) -> None:
    """`firetower run` restarts a child whose heartbeat file goes stale: the loop touches it
    from its sweep loop, sweep after sweep."""
    from tests.helpers import eventually

    beat = tmp_path / "loop.beat"
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps({"sweep_interval_s": 1}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "firetower", "loop", "--no-migrate"],
        env={**os.environ, "FIRETOWER_ENV": "test", "FIRETOWER_DATABASE_URL": clean_db.url,
             "FIRETOWER_SECRET_KEY": TEST_SECRET, "FIRETOWER_HEARTBEAT_FILE": str(beat),
             "FIRETOWER_HAZARD_POLICY": str(policy)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=PROJECT)
    try:
        first = await eventually(lambda: beat.exists() and beat.stat().st_mtime, timeout=60,
                                 what="a first heartbeat")
        await eventually(lambda: beat.stat().st_mtime > first, timeout=30,
                         what="a later heartbeat")
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(30)
