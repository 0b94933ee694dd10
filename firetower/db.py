"""PostgreSQL access shared by every process: the pool factory, the database bootstrap and the
migration runner. Queries live with the module that owns each table, not here."""

from __future__ import annotations

import logging
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
