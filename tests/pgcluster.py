"""A private PostgreSQL cluster that a test may crash (never the machine's own on 5432).

    cluster = PgCluster().init()      # initdb in a temporary folder, as the postgres user
    cluster.start()                   # its own free port on 127.0.0.1, socket in the folder
    url = await cluster.create_database("x")
    cluster.crash()                   # pg_ctl stop -m immediate: no checkpoint, every backend
                                      # killed, every client connection broken
    cluster.start_in_recovery()       # back up, but in recovery and refusing connections with
                                      # 57P03 ("the database system is not accepting
                                      # connections") for as long as the test wants ...
    cluster.end_recovery()            # ... until this (pg_ctl promote): what a long crash
                                      # recovery looks like to clients, without the WAL to replay
    cluster.start()                   # or: back up at once (a short crash recovery)
    cluster.destroy()

The recovery hold is a real server state: the cluster starts as a standby (`standby.signal`)
with `hot_standby = off`, replays its WAL and then waits for more, refusing every client with
SQLSTATE 57P03, exactly as a primary does while it replays after a crash (the 35 s of the
fault run in issue 11); `pg_ctl promote` ends recovery and it accepts connections again.

`fsync=off`: a crash here is a crash of the PostgreSQL processes, not of the machine, so what a
commit handed to the kernel survives it either way; fsync would only slow the tests down.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import asyncpg

from firetower.broker import free_port


def _bin_dir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name))
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql")
    return found[-1].parent


class PgCluster:
    def __init__(self, user: str = "postgres", *, max_connections: int = 100) -> None:
        self.user = user
        self.bin = _bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="firetower-pg-"))
        pw = pwd.getpwnam(user)
        os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self.root.chmod(0o700)
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self.max_connections = max_connections
        self.crashes = 0

    # -- lifecycle -------------------------------------------------------------------------
    def init(self) -> PgCluster:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U",
                  self.user, "--no-sync", "-E", "UTF8", "--locale", "C")
        return self

    def start(self, *, wait: bool = True) -> None:
        """Start the server; with wait=False return at once (it may still be recovering)."""
        self._pg_ctl("-l", str(self.log), "-o", self._options(), "start",
                     "-w" if wait else "-W")
        if wait:
            self.wait_ready()

    def crash(self) -> None:
        """Kill the server with no shutdown checkpoint: every client connection breaks, the
        next start runs crash recovery."""
        self._pg_ctl("stop", "-m", "immediate", "-w")
        self.crashes += 1

    def start_in_recovery(self) -> None:
        """Start, but stay in recovery, refusing clients with 57P03, until end_recovery()."""
        (self.data / "standby.signal").write_text("")
        pw = pwd.getpwnam(self.user)
        os.chown(self.data / "standby.signal", pw.pw_uid, pw.pw_gid)
        self._pg_ctl("-l", str(self.log), "-o", self._options("-c hot_standby=off"), "start",
                     "-W")
        deadline = time.monotonic() + 30
        while not self.in_recovery():
            if time.monotonic() > deadline:
                raise RuntimeError(f"cluster did not come up in recovery:\n{self.log_tail()}")
            time.sleep(0.05)

    def in_recovery(self) -> bool:
        """Up and refusing connections because it is not ready (pg_isready status 1)."""
        return self._isready() == 1

    def end_recovery(self) -> None:
        """Promote: recovery ends and the server accepts connections (restarted without the
        standby settings, as a primary restarts after a crash recovery)."""
        self._pg_ctl("promote", "-w")
        self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self._isready() != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"private PostgreSQL not ready in {timeout}s:\n"
                                   f"{self.log_tail()}")
            time.sleep(0.05)

    def running(self) -> bool:
        return self._pg_ctl("status", check=False).returncode == 0

    def stop(self) -> None:
        if self.data.exists() and self.running():
            self._pg_ctl("stop", "-m", "immediate", "-w", check=False)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- databases -------------------------------------------------------------------------
    def url(self, database: str = "postgres", user: str | None = None) -> str:
        return f"postgresql://{user or self.user}@127.0.0.1:{self.port}/{database}"

    async def create_database(self, name: str, template: str | None = None) -> str:
        conn = await asyncpg.connect(self.url())
        try:
            tpl = f' TEMPLATE "{template}"' if template else ""
            await conn.execute(f'CREATE DATABASE "{name}"{tpl}')
        finally:
            await conn.close()
        return self.url(name)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # -- helpers ---------------------------------------------------------------------------
    def _options(self, extra: str = "") -> str:
        return (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                f"-c max_connections={self.max_connections} -c shared_buffers=32MB "
                f"-c log_min_messages=warning {extra}")

    def _isready(self) -> int:
        return self._run(str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p",
                         str(self.port), check=False).returncode

    def _run(self, *args: str, check: bool = True,
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["runuser", "-u", self.user, "--", *args], check=check,
                              capture_output=True, text=True, timeout=timeout)

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), *args, check=check)
