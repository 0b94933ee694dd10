"""`firetower ingest` never stores data with no alarms (issue 11, item 7): when the rule engine
cannot load, the ingester exits non-zero with one clear log line (its supervisor restarts it),
instead of consuming and acknowledging messages nobody evaluates."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import _drop, make_database

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
EXIT_RULE_ENGINE = 70  # cli/ingest.py


def run_ingest(db_url: str, mqtt_url: str, log: Path, *, prelude: str = "",
               timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    code = (f"import sys\n{prelude}\nfrom cli.main import main\n"
            f"sys.exit(main(['ingest', '--client-id', 'exit-{uuid.uuid4().hex[:8]}']))")
    env = {**os.environ, "FIRETOWER_DATABASE_URL": db_url, "FIRETOWER_MQTT_URL": mqtt_url,
           "FIRETOWER_METRICS_PORT": "0"}
    with log.open("wb") as out:
        try:
            return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                                  stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("the ingester kept running without its rule engine; log:\n"
                                 + log.read_text()[-2000:]) from None


async def stored(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT (SELECT count(*) FROM events)"
                                   " + (SELECT count(*) FROM telemetry)")
    finally:
        await conn.close()


def test_rule_engine_not_installed(clean_db, broker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    log = tmp_path / "ingest.log"
    # as if the alerting package were missing from this build
    r = run_ingest(clean_db.url, broker.url, log, prelude="sys.modules['alerting.service'] = None",
                   timeout=30)
    text = log.read_text()
    assert r.returncode == EXIT_RULE_ENGINE, text[-2000:]
    assert "the rule engine cannot load" in text and "not ingesting without alarms" in text
    assert "Ingesting" not in text and "ingesting fire/" not in text


async def test_rule_engine_fails_to_load(broker, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A damaged schema (the rule state table gone): the engine's start fails, so does the
    ingester, before it subscribes to anything."""
    d = await make_database("plain")
    try:
        conn = await asyncpg.connect(d.url)
        try:
            await conn.execute("DROP TABLE rule_state")
        finally:
            await conn.close()
        log = tmp_path / "ingest.log"
        r = run_ingest(d.url, broker.url, log, timeout=60)
        text = log.read_text()
        assert r.returncode == EXIT_RULE_ENGINE, text[-2000:]
        assert "the rule engine cannot load (UndefinedTableError" in text
        assert await stored(d.url) == 0
    finally:
        await _drop(d.url.rpartition("/")[2])
