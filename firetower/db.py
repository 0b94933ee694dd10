"""PostgreSQL access shared by every process: the pool factory, the database bootstrap, the
migration runner, and the one classification of database errors every writer retries by
(`is_transient`, with `Backoff`). Queries live with the module that owns each table, not here.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_MIGRATION_RE = re.compile(r"(\d{4})_([a-z0-9_]+)\.sql")
# Any constant works; it only has to be the same for every process running migrations.
_MIGRATION_LOCK = 0x46495245  # "FIRE"

# -- transient errors ---------------------------------------------------------------------------
# SQLSTATE classes (first two characters) that say "the database is unavailable for now", not
# "this statement or this data is wrong": retrying the same work later succeeds.
#   08 connection exception (lost, refused, failure)      53 insufficient resources (too many
#   40 transaction rollback (serialization, deadlock,        connections, disk full, memory)
#      statement completion unknown)                      55 not in prerequisite state (database
#   57 operator intervention: admin / crash shutdown,        not accepting connections, lock
#      cannot connect now (starting up, in recovery,         not available, object in use)
#      shutting down), query cancelled, idle timeout      3D the database does not exist (yet)
TRANSIENT_CLASSES = frozenset({"08", "40", "53", "55", "57", "3D"})
# Single states outside those classes that are transient too: the idle-in-transaction timeout
# ended the session (25P03); the server's system or I/O error (58000, 58030); asyncpg's cached
# plan went stale after a schema change (0A000 as InvalidCachedStatementError, by class below).
TRANSIENT_STATES = frozenset({"25P03", "58000", "58030"})
# ... and states inside those classes that are the statement's fault: a deferred constraint
# failing at commit (40002) and a parameter that cannot be changed now (55P02).
PERMANENT_STATES = frozenset({"40002", "55P02"})
_TRANSIENT_TYPES = (OSError,  # refused, reset, unreachable, no socket file; TimeoutError too
                    asyncpg.InterfaceError,  # the connection is closed / was lost
                    asyncpg.InvalidCachedStatementError,
                    asyncpg.exceptions._base.OutdatedSchemaCacheError)
# Client-side refusals of a query argument (asyncpg's DataError is an InterfaceError and a
# ValueError): the same call fails the same way every time.
_PERMANENT_TYPES = (ValueError, asyncpg.exceptions._base.UnsupportedClientFeatureError)


def sqlstate_transient(sqlstate: str | None) -> bool:
    """Whether a SQLSTATE says "unavailable for now" (see TRANSIENT_CLASSES)."""
    if not sqlstate:
        return False
    if sqlstate in PERMANENT_STATES:
        return False
    return sqlstate in TRANSIENT_STATES or sqlstate[:2] in TRANSIENT_CLASSES


def is_transient(exc: BaseException) -> bool:
    """True when `exc` means the database (or the way to it) is unavailable for now, so the same
    work should be retried, not given up: a lost or refused connection, a server shutting down,
    crashing, starting up or in recovery (57P01, 57P02, 57P03), too many connections (53300), a
    serialization failure or deadlock (40001, 40P01), a timeout. False for an error of the work
    itself (a constraint, bad data, a bug): retrying it would fail again. Every writer decides
    retry-or-give-up with this one function."""
    if isinstance(exc, _PERMANENT_TYPES):
        return False
    if isinstance(exc, asyncpg.PostgresError):
        return isinstance(exc, _TRANSIENT_TYPES) or sqlstate_transient(exc.sqlstate)
    return isinstance(exc, _TRANSIENT_TYPES)


class Backoff:
    """Exponential retry delays with jitter (between half and all of the step, so processes
    recovering together do not retry in lock-step): min_s, 2 x min_s, ... up to max_s."""

    def __init__(self, min_s: float = 0.1, max_s: float = 5.0, *,
                 rng: random.Random | None = None) -> None:
        self.min_s, self.max_s = min_s, max_s
        self._rng = rng or random.Random()
        self._step = min_s
        self.failures = 0

    def next(self) -> float:
        """The delay before the next attempt (counts a failure)."""
        delay = self._step * (0.5 + 0.5 * self._rng.random())
        self._step = min(self._step * 2, self.max_s)
        self.failures += 1
        return delay

    async def sleep(self) -> float:
        delay = self.next()
        await asyncio.sleep(delay)
        return delay

    def reset(self) -> None:
        self._step = self.min_s
        self.failures = 0


_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.Decoder().decode


def _encode_json(value: object) -> str:
    return _json_encode(value).decode()


async def init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, schema="pg_catalog", encoder=_encode_json,
                                  decoder=_json_decode, format="text")


async def connect(url: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(url)
    await init_connection(conn)
    return conn


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size,
                                     init=init_connection)
    assert pool is not None
    return pool


async def ensure_database(url: str) -> None:
    """Create the database named in `url` if it does not exist (needs CREATEDB)."""
    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    try:
        conn = await asyncpg.connect(url)
    except asyncpg.InvalidCatalogNameError:
        admin = urlunsplit(parts._replace(path="/postgres"))
        conn = await asyncpg.connect(admin)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        except asyncpg.DuplicateDatabaseError:
            pass
        finally:
            await conn.close()
        return
    await conn.close()


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    path: Path

    def variant(self, flavour: str) -> Path | None:
        p = self.path.with_name(f"{self.path.stem}.{flavour}.sql")
        return p if p.exists() else None


def migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        m = _MIGRATION_RE.fullmatch(path.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), path))
    return found


async def timescale_available(conn: asyncpg.Connection) -> bool:
    """True when the timescaledb extension is installed, or can be (and is preloaded)."""
    if await conn.fetchval("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'"):
        return True
    if not await conn.fetchval(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'"):
        return False
    preload = await conn.fetchval("SHOW shared_preload_libraries")
    return "timescaledb" in (preload or "")


async def migrate(url: str, *, directory: Path = MIGRATIONS_DIR,
                  use_timescale: bool | None = None) -> list[str]:
    """Apply pending migrations; idempotent and safe to run from several processes at once.

    Each migration is `NNNN_name.sql` (portable) plus an optional `NNNN_name.timescale.sql` or
    `NNNN_name.plain.sql`, chosen by whether TimescaleDB is available. The flavour is fixed the
    first time the schema is created. Returns the names applied.
    """
    await ensure_database(url)
    conn = await connect(url)
    applied: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, flavour text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())")
        done = {r["version"]: r["flavour"] for r in
                await conn.fetch("SELECT version, flavour FROM schema_migrations")}
        if done:
            flavour = next(iter(done.values()))
        else:
            if use_timescale is None:
                use_timescale = await timescale_available(conn)
            flavour = "timescale" if use_timescale else "plain"
        if flavour == "timescale":
            await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        for mig in migrations(directory):
            if mig.version in done:
                continue
            async with conn.transaction():
                await conn.execute(mig.path.read_text())
                extra = mig.variant(flavour)
                if extra is not None:
                    await conn.execute(extra.read_text())
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, flavour) VALUES ($1, $2, $3)",
                    mig.version, mig.name, flavour)
            applied.append(f"{mig.version:04d}_{mig.name} ({flavour})")
            log.info("applied migration %04d_%s (%s)", mig.version, mig.name, flavour)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
        await conn.close()
    return applied


async def storage_flavour(conn: asyncpg.Connection) -> str:
    return await conn.fetchval("SELECT flavour FROM schema_migrations LIMIT 1") or "plain"
