"""The private PostgreSQL cluster (firetower/localpg.py): created, started on a free port with
the project's settings, started again idempotently, on a new port when its old one is taken,
TimescaleDB detected as on the machine's binaries, stopped. A real cluster in a folder of its
own (not the shared one in var/, which other test runs use)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from firetower import db, localpg

pytestmark = pytest.mark.integration


@pytest.fixture
def root() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="firetower-localpg-"))
    base.chmod(0o755)  # reachable by `postgres`, as the project's folder is
    try:
        yield base / "postgresql"
    finally:
        localpg.stop(base / "postgresql")
        shutil.rmtree(base, ignore_errors=True)


async def _show(url: str, *names: str) -> list[str]:
    conn = await asyncpg.connect(url)
    try:
        return [await conn.fetchval(f"SHOW {n}") for n in names]
    finally:
        await conn.close()


def test_ensure_creates_starts_and_is_idempotent(root: Path) -> None:
    cluster, started = localpg.ensure(root)
    assert started and cluster.running() and cluster.port != 5432
    assert (root / "port").read_text().strip() == str(cluster.port)
    # deploy/postgresql/firetower.conf is in force, and only 127.0.0.1 listens
    assert asyncio.run(_show(cluster.url(), "wal_compression", "checkpoint_timeout",
                             "listen_addresses")) == ["lz4", "15min", "127.0.0.1"]
    again, started_again = localpg.ensure(root)
    assert not started_again and again.port == cluster.port


def test_a_taken_port_gives_a_new_one_and_stop_stops(root: Path) -> None:
    first, _ = localpg.ensure(root)
    assert localpg.stop(root) and not first.running()
    with socket.socket() as squatter:  # someone else listens on the remembered port now
        # the stopped server's closed connections may hold the port in TIME_WAIT (seen once
        # in a loaded CI run: EADDRINUSE); a listener may still bind it
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", first.port))
        squatter.listen()
        second, started = localpg.ensure(root)
        assert started and second.port != first.port and second.ready()
    assert localpg.stop(root) and not localpg.stop(root)


def test_timescale_detection_matches_the_machine_binaries(root: Path) -> None:
    """Where the binaries have TimescaleDB the private cluster preloads it and migrations take
    the hypertable path; where they do not (this machine), the plain path."""
    cluster, _ = localpg.ensure(root)
    installed = localpg.timescale_installed(cluster.bin)

    async def detect_and_migrate() -> tuple[bool, str]:
        url = cluster.url("ts_probe")
        await db.migrate(url)
        conn = await asyncpg.connect(url)
        try:
            # a continuous aggregate is a view to PostgreSQL too: ask TimescaleDB
            kind = "view"
            if await db.storage_flavour(conn) == "timescale" and await conn.fetchval(
                    "SELECT 1 FROM timescaledb_information.continuous_aggregates "
                    "WHERE view_name = 'telemetry_1m'"):
                kind = "aggregate"
            return await db.timescale_available(conn), kind
        finally:
            await conn.close()

    available, kind = asyncio.run(detect_and_migrate())
    assert available is installed
    assert kind == ("aggregate" if installed else "view")


def test_a_project_postgres_cannot_reach_gets_its_cluster_in_reach() -> None:
    """A project under a folder the server's account cannot enter (root's 0700 home): the
    cluster lives under /var/tmp, linked from var/postgresql, and works the same."""
    base = Path(tempfile.mkdtemp(prefix="firetower-localpg-"))  # 0700, owned by this user
    root = base / "var" / "postgresql"
    try:
        cluster, started = localpg.ensure(root)
        assert started and cluster.ready()
        if cluster.run_as is None:
            assert not root.is_symlink()  # not root: the programs run as this user, who reaches it
            return
        assert root.is_symlink()
        assert root.resolve().parent == localpg.REACHABLE_DIR
        again, started_again = localpg.ensure(root)
        assert not started_again and again.port == cluster.port
    finally:
        localpg.stop(root)
        if root.is_symlink():
            shutil.rmtree(root.resolve(), ignore_errors=True)
        shutil.rmtree(base, ignore_errors=True)


def test_the_command_needs_no_settings(root: Path) -> None:
    """`firetower localdb` works with no FIRETOWER_ENV or key (settings default to production
    and refuse to load without a key): it reads no settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIRETOWER_")}
    env["FIRETOWER_VAR_DIR"] = str(root.parent)

    def localdb(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "firetower", "localdb", *args], env=env,
                              capture_output=True, text=True, timeout=120)

    assert localdb("status").returncode == 3
    started = localdb("start")
    assert started.returncode == 0 and "private PostgreSQL started on" in started.stdout
    url = localdb("url").stdout.strip()
    assert url == localpg.open_cluster(root).url("firetower")
    assert localdb("stop").returncode == 0 and not localpg.open_cluster(root).running()
