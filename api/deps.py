"""Dependencies as `Annotated` aliases: the pool, settings and the authenticated principal.

A caller authenticates with `Authorization: Bearer <token>` (users, from
`POST /api/v1/auth/token`) or `X-API-Key: ftk_...` (integrations). `require(permission)`
checks the role; site scope is checked by the queries through `Principal.site_filter`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer

from api.config import ApiSettings
from api.errors import Forbidden, NotFound, Unauthorized
from api.permissions import ROLE_PERMISSIONS, Permission, Role
from api.security import Hashing, api_key_digest, read_token, split_api_key
from api.throttle import LoginThrottle
from firetower.settings import Settings
from org.scope import UNSCOPED, Scope, visible_sites
from org.store import Actor

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False)


@dataclass(frozen=True, slots=True)
class Principal:
    id: int
    name: str
    role: Role
    site_ids: frozenset[str] | None  # None: every site; else what org.scope resolved
    token_version: int = 0
    expires_at: datetime | None = None  # of the bearer token; None for an API key
    scope: Scope = UNSCOPED  # what the user is attached to (org/scope.py)

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]

    def sees(self, site_id: str | None) -> bool:
        """Whether an object of this site is visible (unassigned objects: unscoped only)."""
        return self.site_ids is None or (site_id is not None and site_id in self.site_ids)

    @property
    def site_filter(self) -> list[str] | None:
        """Bind as `$n::text[]` in `($n IS NULL OR site_id = ANY($n))`."""
        return None if self.site_ids is None else sorted(self.site_ids)

    def check_site(self, site_id: str | None, what: str = "object") -> None:
        if not self.sees(site_id):
            raise NotFound(f"{what} not found")


def actor(user: Principal) -> Actor:
    """The caller as the audit log names it."""
    return Actor(user.id, user.name)


def get_pool(request: Request) -> asyncpg.Pool:
    return request.state.pool


def get_settings(request: Request) -> Settings:
    return request.state.settings


def get_api_settings(request: Request) -> ApiSettings:
    return request.state.api_settings


def get_hashing(request: Request) -> Hashing:
    return request.state.hashing


def get_login_throttle(request: Request) -> LoginThrottle:
    return request.state.login_throttle


PoolDep = Annotated[asyncpg.Pool, Depends(get_pool)]
HashingDep = Annotated[Hashing, Depends(get_hashing)]
LoginThrottleDep = Annotated[LoginThrottle, Depends(get_login_throttle)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
ApiSettingsDep = Annotated[ApiSettings, Depends(get_api_settings)]

_USER_SQL = ("SELECT id, name, role, site_ids, token_version, scope_kind, scope_id FROM users "
             "WHERE active AND id = $1")
_KEY_SQL = """
UPDATE api_keys k SET last_used_at = now()
FROM users u
WHERE k.prefix = $1 AND k.key_sha256 = $2 AND k.revoked_at IS NULL
  AND u.id = k.user_id AND u.active
RETURNING u.id, u.name, u.role, u.site_ids, u.token_version, u.scope_kind, u.scope_id"""


async def _principal(pool: asyncpg.Pool, row: Any,
                     expires_at: datetime | None = None) -> Principal:
    """The caller, with its scope resolved to sites by the one rule (org.scope)."""
    named = row["site_ids"]
    scope = Scope(row["scope_kind"], row["scope_id"],
                  None if named is None else frozenset(named))
    sites = await visible_sites(pool, scope)
    return Principal(row["id"], row["name"], Role(row["role"]), sites, row["token_version"],
                     expires_at, scope)


async def authenticate(pool: asyncpg.Pool, settings: Settings, token: str | None,
                       api_key: str | None) -> Principal:
    if api_key:
        prefix = split_api_key(api_key)
        if prefix is not None:
            row = await pool.fetchrow(_KEY_SQL, prefix, api_key_digest(api_key))
            if row is not None:
                return await _principal(pool, row)
        raise Unauthorized("invalid API key")
    if token:
        # A token issued before the user's last password, role, sites or active change has
        # an older version than the user's: refused.
        claims = read_token(token, settings.secret_keys)
        if claims is not None:
            row = await pool.fetchrow(_USER_SQL, claims.user_id)
            if row is not None and row["token_version"] == claims.version:
                return await _principal(pool, row, claims.expires_at)
        raise Unauthorized("invalid or expired token")
    raise Unauthorized("not authenticated: send a bearer token or an X-API-Key")


async def current_principal(pool: PoolDep, settings: SettingsDep,
                            token: Annotated[str | None, Security(oauth2)],
                            api_key: Annotated[str | None, Security(api_key_header)],
                            ) -> Principal:
    return await authenticate(pool, settings, token, api_key)


CurrentUser = Annotated[Principal, Depends(current_principal)]


def require(permission: Permission) -> Any:
    """`user: Annotated[Principal, require(Permission.X)]` -> 403 unless the role has it."""

    async def check(user: CurrentUser) -> Principal:
        if not user.can(permission):
            raise Forbidden(f"role {user.role} may not {permission.value.replace(':', ' ')}")
        return user

    return Depends(check)


def Needs(permission: Permission) -> Any:  # reads as a type in signatures
    return Annotated[Principal, require(permission)]
