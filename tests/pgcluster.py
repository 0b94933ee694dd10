"""A private PostgreSQL cluster that a test may crash (never the machine's own, nor the
shared private cluster of firetower/localpg.py, whose mechanism it uses).

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

import asyncio
import shutil
import tempfile
import time
from pathlib import Path

import asyncpg

from firetower.localpg import Cluster


class PgCluster(Cluster):
    def __init__(self, *, max_connections: int = 100) -> None:
        root = Path(tempfile.mkdtemp(prefix="firetower-pg-"))
        super().__init__(root, max_connections=max_connections, socket_dir=root,
                         options="-c fsync=off -c shared_buffers=32MB -c log_min_messages=warning")
        self.crashes = 0

    # -- lifecycle -------------------------------------------------------------------------
    def init(self) -> PgCluster:
        super().init()
        return self

    def crash(self) -> None:
        """Kill the server with no shutdown checkpoint: every client connection breaks, the
        next start runs crash recovery."""
        self._pg_ctl("stop", "-m", "immediate", "-w")
        self.crashes += 1

    def start_in_recovery(self) -> None:
        """Start, but stay in recovery, refusing clients with 57P03, until end_recovery()."""
        (self.data / "standby.signal").write_text("")
        self._give(self.data / "standby.signal")
        self.start(wait=False, extra="-c hot_standby=off")
        deadline = time.monotonic() + 30
        while not self.in_recovery():
            if time.monotonic() > deadline:
                raise RuntimeError(f"cluster did not come up in recovery:\n{self.log_tail()}")
            time.sleep(0.05)  # a probe's polling interval (deadline above)

    def in_recovery(self) -> bool:
        """Up and refusing connections because it is not ready (pg_isready status 1)."""
        return self.isready() == 1

    def end_recovery(self) -> None:
        """Promote: recovery ends and the server accepts connections (restarted without the
        standby settings, as a primary restarts after a crash recovery)."""
        self._pg_ctl("promote", "-w")
        self.wait_ready()

    def stop(self, mode: str = "immediate") -> None:
        super().stop(mode)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    # -- databases -------------------------------------------------------------------------
    async def create_database(self, name: str, template: str | None = None) -> str:
        """Create `name`, as a copy of `template` if given. A template is copied only while no
        other session is on it; a session left there (a backend still exiting after a crash
        test, an autovacuum worker slow to stop on a loaded machine) is ended, and the copy is
        retried, rather than failing the case that merely needed a fresh database."""
        conn = await asyncpg.connect(self.url())
        try:
            tpl = f' TEMPLATE "{template}"' if template else ""
            for attempt in range(5):
                try:
                    await conn.execute(f'CREATE DATABASE "{name}"{tpl}')
                    break
                except asyncpg.ObjectInUseError:
                    if template is None or attempt == 4:
                        raise
                    await conn.execute(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = $1 AND pid <> pg_backend_pid()", template)
                    await asyncio.sleep(0.2 * (attempt + 1))  # backoff between copies
        finally:
            await conn.close()
        return self.url(name)

    async def seal_template(self, name: str) -> None:
        """Make `name` a template nobody connects to (it is only ever copied)."""
        conn = await asyncpg.connect(self.url())
        try:
            await conn.execute(f'ALTER DATABASE "{name}" WITH IS_TEMPLATE true ALLOW_CONNECTIONS false')
        finally:
            await conn.close()
