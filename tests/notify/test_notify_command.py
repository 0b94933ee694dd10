"""`firetower notify` as a process: a malformed channel setting stops it at start (exit 78,
the reason on stderr, the password not repeated); running, it beats its heartbeat, sends a
raised fire's e-mail to a real SMTP server and counts it in its metrics, records a watch
window's start and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from aiosmtpd.controller import Controller

from firetower import db
from firetower.alarm_store import AlarmKey, AlarmStore, Occurrence
from firetower.alarms import AlarmClass
from firetower.broker import free_port
from firetower.webhooks.secretbox import SecretBox
from notify import config_store
from org.store import Actor
from tests.api.conftest import TEST_SECRET
from tests.conftest import Database
from tests.helpers import eventually
from tests.notify.test_end_to_end import Mailbox

pytestmark = pytest.mark.integration

PROJECT = Path(__file__).resolve().parent.parent.parent


def _env(database: Database, **extra: str) -> dict[str, str]:
    return {**os.environ, "FIRETOWER_ENV": "test", "FIRETOWER_DATABASE_URL": database.url,
            "FIRETOWER_SECRET_KEY": TEST_SECRET, **extra}


def test_a_malformed_channel_setting_stops_it_at_start(clean_db: Database) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "firetower", "notify", "--no-migrate"],
        env=_env(clean_db, FIRETOWER_NOTIFY_SMTP_URL="smtp://u:hunter22@mail.example.org"),
        capture_output=True, text=True, cwd=PROJECT, timeout=60)
    assert done.returncode == 78
    assert "needs ?from=" in done.stderr and "hunter22" not in done.stderr


async def test_it_sends_beats_records_watch_bounds_and_stops(clean_db: Database,
                                                            tmp_path: Path) -> None:
    mailbox = Mailbox()
    port = free_port()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=port)
    smtp.start()
    pool = await db.create_pool(clean_db.url, max_size=2)
    beat = tmp_path / "notify.beat"
    metrics_port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "firetower", "notify", "--no-migrate"],
        env=_env(clean_db, FIRETOWER_HEARTBEAT_FILE=str(beat),
                 FIRETOWER_NOTIFY_METRICS_PORT=str(metrics_port),
                 FIRETOWER_NOTIFY_SMTP_URL=f"smtp://127.0.0.1:{port}?from=c@fire.cn&starttls=0"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=PROJECT)
    try:
        await pool.execute("INSERT INTO jurisdictions (id, code, name, level, path)"
                           " VALUES (1, 'city', 'City', 'city', '{1}')")
        unit = await pool.fetchval("INSERT INTO units (name) VALUES ('U') RETURNING id")
        await pool.execute("INSERT INTO sites (id, name, jurisdiction_id, unit_id)"
                           " VALUES ('s1', 'Harbour Tower', 1, $1)", unit)
        async with pool.acquire() as conn:
            await config_store.create_contact(
                conn, SecretBox.of([TEST_SECRET]), Actor(None, "t"),
                recipient="unit_responsible", ref_id=unit, channel="email",
                address="boss@unit.cn")
            await config_store.create_policy(conn, Actor(None, "t"), {
                "name": "fire", "classes": ["fire"], "recipients": ["unit_responsible"]})
        now = datetime.now(UTC)
        wid = await pool.fetchval(
            "INSERT INTO watch_windows (name, starts_at, ends_at, site_ids, settings,"
            " created_by) VALUES ('holiday', $1, $2, '{s1}', '{\"heartbeat_s\": 60}', 't')"
            " RETURNING id", now, now + timedelta(hours=1))
        await AlarmStore(pool).raise_or_recur(Occurrence(
            AlarmKey("smk-1", "", "smoke.threshold"), AlarmClass.FIRE, now, site_id="s1",
            received_at=now, reason="test"))
        await eventually(lambda: mailbox.to("boss@unit.cn"), timeout=30)
        assert "火警" in mailbox.to("boss@unit.cn")[0]["subject"]
        assert beat.exists()

        def scraped() -> str | None:
            text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).text
            sent = 'firetower_notify_attempts_total{channel="email",outcome="sent"} 1.0'
            return text if sent in text else None
        text = await eventually(scraped, timeout=10)
        assert 'firetower_notify_sent_seconds_count{priority="1"} 1.0' in text
        assert 'firetower_notify_jobs_total{outcome="done"}' in text
        await eventually(lambda: pool.fetchval(
            "SELECT applied_at FROM watch_windows WHERE id = $1", wid), timeout=10)
        assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE entity = 'watch_window'"
                                   " AND action = 'apply'") == 1
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        assert "notify ready (gateways: email;" in out, (out, err)
        assert "Traceback" not in err, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        await pool.close()
        smtp.stop()
