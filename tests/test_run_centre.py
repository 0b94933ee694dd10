"""`firetower run` for real (no simulator): it leaves the machine's services alone, runs its own
broker on a free port and the private PostgreSQL, says which ports it uses, announces the
console only once it answers, refuses a FIRETOWER_MQTT_URL where nothing answers, and restarts
a service that is alive but hung (its heartbeat stale).

Each run gets a state folder of its own (FIRETOWER_VAR_DIR: its own private cluster and broker
state), and an API port of its own, so a demo running on this machine is not disturbed."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from firetower import localpg
from firetower.broker import Broker, free_port, mqtt_answers, start_broker

pytestmark = pytest.mark.integration

PROJECT = Path(__file__).resolve().parent.parent
MACHINE_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


class Centre:
    """A `firetower run` process whose output lines are collected as they come."""

    def __init__(self, var: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.var = var
        self.api_port = free_port()
        full_env = {k: v for k, v in os.environ.items()
                    if not k.startswith("FIRETOWER_")}  # the run chooses, as for a new user
        full_env.update(FIRETOWER_ENV="development", FIRETOWER_VAR_DIR=str(var),
                        FIRETOWER_API_PORT=str(self.api_port),
                        **(env or {}))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "firetower", "run", "--no-simulator", *args], cwd=PROJECT,
            env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for line in self.lines[seen:]:
                m = re.search(pattern, line)
                if m:
                    return m
            seen = len(self.lines)
            if self.proc.poll() is not None and seen == len(self.lines):
                break
            time.sleep(0.05)  # a probe's polling interval (deadline above)
        raise AssertionError(f"{pattern!r} not printed in {timeout} s:\n" + "\n".join(self.lines))

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.wait(timeout)

    def wait(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)
            raise
        finally:
            self.reader.join(5)
            if self.proc.stdout is not None and not self.reader.is_alive():
                self.proc.stdout.close()
        return code


@pytest.fixture
def var() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="firetower-run-"))
    base.chmod(0o755)  # the postgres account reaches its private cluster, as in the project
    try:
        yield base
    finally:
        localpg.stop(base / "postgresql")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def something_on_1883(tmp_path: Path) -> Iterator[None]:
    """The machine's Mosquitto on 1883 (Debian's, running here), else one started for the
    test: either way something answers MQTT on the default port."""
    started: Broker | None = None
    if not mqtt_answers(1883, 2.0):
        started = start_broker(tmp_path / "squatter", port=1883)
    try:
        yield
    finally:
        if started is not None:
            started.stop()


def _listener(port: int) -> str:
    """The listening socket and its process on `port` (ss), to see it is the same one after."""
    return subprocess.run(["ss", "-Hltnp", f"sport = :{port}"], capture_output=True, text=True,
                          check=True).stdout.strip()


async def _machine_pg() -> tuple[object, object] | None:
    """When the machine's PostgreSQL runs: its start time and its configuration load time (a
    restart or a reload changes them)."""
    try:
        conn = await asyncpg.connect(MACHINE_PG, timeout=3)
    except (OSError, asyncpg.PostgresError):
        return None
    try:
        row = await conn.fetchrow("SELECT pg_postmaster_start_time() AS s, pg_conf_load_time() AS c")
        return row["s"], row["c"]
    finally:
        await conn.close()


def test_run_leaves_the_machines_services_alone_and_uses_its_own(
        var: Path, something_on_1883: None) -> None:
    on_1883 = _listener(1883)
    machine_pg = asyncio.run(_machine_pg())
    started = time.monotonic()
    centre = Centre(var)
    try:
        database = centre.wait_for(r"^database: private PostgreSQL on 127\.0\.0\.1:(\d+)", 60)
        broker = centre.wait_for(r"^broker: own Mosquitto at mqtt://127\.0\.0\.1:(\d+)", 5)
        centre.wait_for(rf"^API: http://127\.0\.0\.1:{centre.api_port}$", 5)
        db_port, broker_port = int(database[1]), int(broker[1])
        assert db_port != 5432 and broker_port != 1883
        centre.wait_for(r"^Firetower is running: console at "
                        rf"http://127\.0\.0\.1:{centre.api_port}/console/", 90)
        # announced only once the console answers: it answers now
        assert httpx.get(f"http://127.0.0.1:{centre.api_port}/console/").status_code == 200
        print(f"firetower run: console answering {time.monotonic() - started:.1f} s after start")
        assert mqtt_answers(broker_port, 2.0)  # its own broker
        assert _listener(1883) == on_1883 and mqtt_answers(1883, 2.0)
    finally:
        assert centre.stop() == 0, "\n".join(centre.lines)
    assert not mqtt_answers(broker_port, 1.0)  # its broker went with it
    # the machine's broker and PostgreSQL: the same processes, answering, not reloaded
    assert _listener(1883) == on_1883 and mqtt_answers(1883, 2.0)
    assert asyncio.run(_machine_pg()) == machine_pg
    # the private cluster keeps running, on the port it said
    assert localpg.open_cluster(var / "postgresql").ready()


def test_a_user_broker_that_does_not_answer_is_a_clear_error(var: Path) -> None:
    dead = free_port()
    centre = Centre(var, env={"FIRETOWER_MQTT_URL": f"mqtt://127.0.0.1:{dead}"})
    assert centre.wait(timeout=30) == 1
    out = "\n".join(centre.lines)
    assert f"FIRETOWER_MQTT_URL is mqtt://127.0.0.1:{dead}, but no MQTT broker answers" in out
    assert "Firetower is running" not in out and not (var / "mosquitto").exists()


def _child(run_pid: int, service: str) -> int:
    out = subprocess.run(["pgrep", "-P", str(run_pid), "-f", f"firetower {service}"],
                         capture_output=True, text=True).stdout.split()
    assert len(out) == 1, out
    return int(out[0])


def test_a_hung_service_is_killed_and_restarted(var: Path, something_on_1883: None) -> None:
    # Services beat about once a second; 5 s without one is a hang here (60 s by default),
    # with room for a loaded machine so that no healthy service is taken for hung.
    centre = Centre(var, "--stale-after", "5", "--start-grace", "6")
    try:
        centre.wait_for(r"^Firetower is running", 90)
        hung = _child(centre.proc.pid, "dispatch")
        beat = var / "run" / "dispatch.beat"
        assert time.time() - beat.stat().st_mtime < 5  # it beats
        os.kill(hung, signal.SIGSTOP)  # alive, but does nothing: no exit to notice
        centre.wait_for(rf"dispatch \(pid {hung}\) is hung: no heartbeat for \d+ s", 20)
        # stopped processes do not act on SIGTERM: SIGKILL follows, then the restart
        centre.wait_for(r"dispatch did not stop on SIGTERM in 5 s: SIGKILL", 10)
        centre.wait_for(r"restarting dispatch", 10)
        again = _child(centre.proc.pid, "dispatch")
        assert again != hung
        deadline = time.monotonic() + 30
        while not (beat.exists() and time.time() - beat.stat().st_mtime < 5):
            assert time.monotonic() < deadline, "the restarted dispatcher does not beat"
            time.sleep(0.1)  # a probe's polling interval (deadline above)
        # the others were left alone
        assert "api (pid" not in "\n".join(centre.lines)
    finally:
        assert centre.stop() == 0, "\n".join(centre.lines)
