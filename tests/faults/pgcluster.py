"""A private PostgreSQL cluster that a test may crash.

`initdb` in a temporary folder as the `postgres` user (the tests run as root), its own port on
127.0.0.1 and its unix socket in the same folder, started and stopped with `pg_ctl`. A crash is
`pg_ctl stop -m immediate` (every backend killed with no checkpoint; the next start runs crash
recovery from the WAL). Never the machine's own cluster on 5432.

`fsync=off`: a crash here is a crash of the PostgreSQL processes, not of the machine, so what a
commit wrote to the kernel survives it either way; fsync would only slow the tests.
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
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda p: int(p.parent.parent.name))
    if not versions:
        raise RuntimeError("PostgreSQL server binaries not found under /usr/lib/postgresql")
    return versions[-1].parent


class PgCluster:
    """`start()`, `crash()`, `restart()`, `stop()`; `url(name)` for a database in it."""

    def __init__(self, user: str = "postgres") -> None:
        self.user = user
        self.bin = _bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="firetower-pg-"))
        pw = pwd.getpwnam(user)
        os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self.root.chmod(0o700)
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = free_port()
        self.crashes = 0

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["runuser", "-u", self.user, "--", *args], check=check,
                              capture_output=True, text=True, timeout=timeout)

    def init(self) -> PgCluster:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", self.user,
                  "--no-sync", "-E", "UTF8", "--locale", "C")
        return self

    def _pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), *args, check=check)

    def start(self, *, wait: bool = True) -> None:
        """Start the postmaster. With wait=False, return at once: during crash recovery the
        server answers 57P03 ("the database system is starting up") until it is ready."""
        opts = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c max_connections=200 -c shared_buffers=64MB -c log_min_messages=warning")
        self._pg_ctl("-l", str(self.log), "-o", opts, "start", *(["-w"] if wait else ["-W"]))
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self._run(str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p",
                          str(self.port), check=False)
            if r.returncode == 0:
                return
            time.sleep(0.05)
        raise RuntimeError(f"private PostgreSQL not ready in {timeout}s:\n{self.log_tail()}")

    def crash(self) -> None:
        """Kill the server with no shutdown checkpoint (every client connection breaks)."""
        self._pg_ctl("stop", "-m", "immediate", "-w")
        self.crashes += 1

    def running(self) -> bool:
        return self._pg_ctl("status", check=False).returncode == 0

    def stop(self) -> None:
        if self.data.exists() and self.running():
            self._pg_ctl("stop", "-m", "immediate", "-w", check=False)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def create_database(self, name: str, template: str | None = None) -> str:
        conn = await asyncpg.connect(self.url())
        try:
            tpl = f' TEMPLATE "{template}"' if template else ""
            await conn.execute(f'CREATE DATABASE "{name}"{tpl}')
        finally:
            await conn.close()
        return self.url(name)
