"""User accounts: the queries shared by the `users` routes and `firetower user add`."""

from __future__ import annotations

from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from api.permissions import SCOPED_ROLES, Role
from api.security import hash_password
from org.scope import scope_target_exists


class UserError(ValueError):
    pass


class UserTargetMissing(UserError):
    """The jurisdiction, department, unit or company a user is attached to does not exist."""


USER_COLS = "id, name, role, site_ids, scope_kind, scope_id, active"


def check_scope(role: Role, site_ids: list[str] | None, scope_kind: str | None = None) -> None:
    if role in SCOPED_ROLES and not site_ids and scope_kind is None:
        raise UserError(f"a {role} must be limited to at least one site (--site) or attached "
                        "to a jurisdiction, department, unit or maintenance company")


async def check_scope_target(conn: asyncpg.Connection | PoolConnectionProxy | asyncpg.Pool, scope_kind: str | None,
                             scope_id: int | None) -> None:
    if (scope_kind is None) != (scope_id is None):
        raise UserError("scope_kind and scope_id go together")
    if scope_kind is not None and not await scope_target_exists(conn, scope_kind, scope_id):
        raise UserTargetMissing(f"{scope_kind} {scope_id} does not exist")


async def add_user(conn: asyncpg.Connection | PoolConnectionProxy | asyncpg.Pool, name: str, role: Role,
                   password: str | None, site_ids: list[str] | None, *,
                   password_hash: str | None = None, scope_kind: str | None = None,
                   scope_id: int | None = None) -> dict[str, Any]:
    """`password_hash`: the password already hashed (the API hashes through its bounded
    `api.security.Hashing`); else it is hashed here."""
    check_scope(role, site_ids, scope_kind)
    await check_scope_target(conn, scope_kind, scope_id)
    if role is not Role.INTEGRATION and not password:
        raise UserError("a password is required (integration accounts use API keys)")
    pw_hash = password_hash or (hash_password(password) if password else None)
    row = await conn.fetchrow(
        "INSERT INTO users (name, role, site_ids, password_hash, scope_kind, scope_id) "
        f"VALUES ($1, $2, $3, $4, $5, $6) RETURNING {USER_COLS}", name, role.value,
        sorted(set(site_ids)) if site_ids is not None else None, pw_hash, scope_kind, scope_id)
    return dict(row)
