"""`firetower bench loop` at a small size: its checks pass (exit 0) and it says what it did."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api.conftest import TEST_SECRET
from tests.conftest import Database

pytestmark = pytest.mark.integration
PROJECT = Path(__file__).resolve().parent.parent.parent


def test_a_small_backlog_is_cleared_with_every_check_passing(database: Database) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "firetower", "bench", "loop", "--sites", "20", "--alarms", "40",
         "--hazards", "30", "--batch", "10", "--no-record"],
        env={**os.environ, "FIRETOWER_ENV": "test", "FIRETOWER_DATABASE_URL": database.url,
             "FIRETOWER_SECRET_KEY": TEST_SECRET},
        capture_output=True, text=True, cwd=PROJECT, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "backlog of 40 alarms and 30 overdue hazards: 4 sweeps" in done.stdout
    assert "check FAIL" not in done.stderr
    assert done.stderr.count("check ok") == 8
