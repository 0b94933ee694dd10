"""User accounts: the queries shared by the `users` routes and `firetower user add`."""

from __future__ import annotations

from typing import Any

import asyncpg

from api.permissions import SCOPED_ROLES, Role
from api.security import hash_password


class UserError(ValueError):
    pass


def check_scope(role: Role, site_ids: list[str] | None) -> None:
    if role in SCOPED_ROLES and not site_ids:
        raise UserError(f"a {role} must be limited to at least one site (--site)")


async def add_user(conn: asyncpg.Connection | asyncpg.Pool, name: str, role: Role,
                   password: str | None, site_ids: list[str] | None, *,
                   password_hash: str | None = None) -> dict[str, Any]:
    """`password_hash`: the password already hashed (the API hashes through its bounded
    `api.security.Hashing`); else it is hashed here."""
    check_scope(role, site_ids)
    if role is not Role.INTEGRATION and not password:
        raise UserError("a password is required (integration accounts use API keys)")
    pw_hash = password_hash or (hash_password(password) if password else None)
    row = await conn.fetchrow(
        "INSERT INTO users (name, role, site_ids, password_hash) VALUES ($1, $2, $3, $4) "
        "RETURNING id, name, role, site_ids, active", name, role.value,
        sorted(set(site_ids)) if site_ids is not None else None, pw_hash)
    return dict(row)
