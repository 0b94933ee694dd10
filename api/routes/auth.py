"""`/auth`: OAuth2 password flow, the caller's own account, users and API keys (admin)."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Security, status
from fastapi.security import OAuth2PasswordRequestForm

from api.deps import (
    ApiSettingsDep,
    CurrentUser,
    HashingDep,
    LoginThrottleDep,
    Needs,
    PoolDep,
    Principal,
    SettingsDep,
    actor,
    api_key_header,
    oauth2,
)
from api.errors import (
    Conflict,
    Forbidden,
    NotFound,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
    responses,
)
from api.permissions import ROLE_PERMISSIONS, Permission, Role
from api.schemas import (
    ApiKeyCreate,
    ApiKeyPublic,
    Token,
    UserCreate,
    UserPublic,
    UsersPublic,
    UserUpdate,
)
from api.security import create_token, new_api_key
from api.throttle import retry_after_s
from api.users import (
    USER_COLS,
    UserError,
    UserTargetMissing,
    add_user,
    check_scope,
    check_scope_target,
)
from org.store import audit

log = logging.getLogger(__name__)
router = APIRouter(tags=["auth"])
Admin = Needs(Permission.USER_ADMIN)


def _user(row: object) -> UserPublic:
    r = dict(row)  # type: ignore[call-overload]
    return UserPublic(**r, permissions=sorted(ROLE_PERMISSIONS[Role(r["role"])]))


@router.post("/auth/token", response_model=Token, responses=responses(401, 429))
async def login(form: Annotated[OAuth2PasswordRequestForm, Depends()], request: Request,
                pool: PoolDep, settings: SettingsDep, api_settings: ApiSettingsDep,
                hashing: HashingDep, throttle: LoginThrottleDep) -> Token:
    """OAuth2 password flow: name + password -> a short-lived bearer token. Too many failed
    logins for the account or from the address within the window: 429 with Retry-After."""
    name = form.username[:64].replace("\x00", "")
    address = request.client.host if request.client else "-"
    refused = throttle.check(name.lower(), address)
    if refused is not None:
        wait, limit = refused
        log.warning("login throttled: %s %r from %s", limit, name, address)
        raise TooManyRequests(f"too many failed logins for this {limit}; try again later",
                              retry_after_s(wait))
    row = await pool.fetchrow("SELECT id, role, password_hash, token_version FROM users "
                              "WHERE name = $1 AND active", name)
    ok = await hashing.verify(form.password, row["password_hash"] if row else None)
    if row is None or not ok:
        raise Unauthorized("wrong user name or password")
    throttle.succeeded(name.lower(), address)
    token, expires = create_token(row["id"], row["role"], settings.secret_key.get_secret_value(),
                                  api_settings.api_token_minutes, row["token_version"])
    return Token(access_token=token, expires_in=expires)


@router.post("/auth/refresh", response_model=Token)
async def refresh(user: CurrentUser, settings: SettingsDep, api_settings: ApiSettingsDep,
                  token: Annotated[str | None, Security(oauth2)],
                  api_key: Annotated[str | None, Security(api_key_header)]) -> Token:
    """A fresh bearer token for the holder of a valid, unexpired one: the console renews its
    token while it is open. The caller is checked like any request (an expired token, a
    disabled user, a token from before a password, role or sites change: 401), and the new
    token carries the user's current role and token version. API keys are not exchanged for
    tokens."""
    if api_key or not token:
        raise Unauthorized("only a bearer token can be renewed")
    new, expires = create_token(user.id, user.role.value, settings.secret_key.get_secret_value(),
                                api_settings.api_token_minutes, user.token_version)
    return Token(access_token=new, expires_in=expires)


@router.get("/auth/me", response_model=UserPublic)
async def me(user: CurrentUser) -> UserPublic:
    return UserPublic(id=user.id, name=user.name, role=user.role,
                      site_ids=None if user.site_ids is None else sorted(user.site_ids),
                      scope_kind=user.scope.kind, scope_id=user.scope.id,  # type: ignore[arg-type]
                      permissions=sorted(ROLE_PERMISSIONS[user.role]))


@router.get("/users", response_model=UsersPublic)
async def list_users(_: Admin, pool: PoolDep) -> UsersPublic:
    rows = await pool.fetch(f"SELECT {USER_COLS} FROM users ORDER BY id")
    return UsersPublic(data=[_user(r) for r in rows], count=len(rows))


def _check_grant(admin: Principal, sites: list[str] | None, scope_kind: str | None = None) -> None:
    """An admin limited to sites grants only those: it may not create or change a user (itself
    included) to see other sites or every site, so it cannot widen its own reach. Organisation
    scopes (which grow as sites are added under them) are granted by unscoped admins only."""
    if admin.site_ids is not None and (sites is None or not set(sites) <= admin.site_ids
                                       or scope_kind is not None):
        raise Forbidden("an admin limited to sites may only grant those sites")


@router.post("/users", response_model=UserPublic, status_code=status.HTTP_201_CREATED)
async def create_user(body: UserCreate, admin: Admin, pool: PoolDep,
                      hashing: HashingDep) -> UserPublic:
    _check_grant(admin, body.site_ids, body.scope_kind)
    pw_hash = await hashing.hash(body.password) if body.password else None
    async with pool.acquire() as conn, conn.transaction():
        try:
            row = await add_user(conn, body.name, body.role, body.password, body.site_ids,
                                 password_hash=pw_hash, scope_kind=body.scope_kind,
                                 scope_id=body.scope_id)
        except UserTargetMissing as exc:  # a body naming what is not there: 404
            raise NotFound(str(exc)) from None
        except UserError as exc:
            raise Unprocessable(str(exc)) from None
        await audit(conn, actor(admin), "create", "user", row["id"], None, row)
    return _user(row)


@router.patch("/users/{user_id}", response_model=UserPublic)
async def update_user(user_id: int, body: UserUpdate, admin: Admin, pool: PoolDep,
                      hashing: HashingDep, request: Request) -> UserPublic:
    """Change a user's role, sites, password or active flag. Any of these but re-enabling bumps
    the user's token version: every token issued before is refused, and its open live
    streams close. Nobody changes its own role or disables itself; an admin limited to sites
    changes only users within its sites, and grants only those."""
    fields = body.model_dump(exclude_unset=True)
    pw = fields.get("password")
    pw_hash = await hashing.hash(pw) if pw else None
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow("SELECT * FROM users WHERE id = $1 FOR UPDATE", user_id)
        if row is None:
            raise NotFound("user not found")
        role = Role(fields.get("role") or row["role"])
        sites = fields["site_ids"] if "site_ids" in fields else row["site_ids"]
        # the pair changes together: one of them null alone clears the organisation scope
        if "scope_kind" in fields or "scope_id" in fields:
            scope_kind, scope_id = fields.get("scope_kind"), fields.get("scope_id")
        else:
            scope_kind, scope_id = row["scope_kind"], row["scope_id"]
        if user_id == admin.id and role.value != row["role"]:
            raise Forbidden("you may not change your own role")
        if user_id == admin.id and fields.get("active") is False:
            raise Forbidden("you may not disable yourself")
        # the user as it is, then as it will be: within the admin's sites
        _check_grant(admin, row["site_ids"], row["scope_kind"])
        _check_grant(admin, sites, scope_kind)
        try:
            await check_scope_target(conn, scope_kind, scope_id)
        except UserTargetMissing as exc:
            raise NotFound(str(exc)) from None
        except UserError as exc:
            raise Unprocessable(str(exc)) from None
        try:
            check_scope(role, sites, scope_kind)
        except UserError as exc:  # with the user's stored role or sites: a conflict
            raise Conflict(str(exc)) from None
        active = fields["active"] if fields.get("active") is not None else row["active"]
        changed = (pw_hash is not None or role.value != row["role"] or sites != row["site_ids"]
                   or scope_kind != row["scope_kind"] or scope_id != row["scope_id"]
                   or (row["active"] and not active))
        new = await conn.fetchrow(
            "UPDATE users SET role = $2, site_ids = $3, password_hash = $4, active = $5, "
            "token_version = token_version + $6, scope_kind = $7, scope_id = $8 WHERE id = $1 "
            f"RETURNING {USER_COLS}",
            user_id, role.value, sites, pw_hash or row["password_hash"], active, int(changed),
            scope_kind, scope_id)
        assert new is not None
        await audit(conn, actor(admin), "update", "user", user_id,
                    {k: row[k] for k in USER_COLS.split(", ")}, dict(new))
    if changed:
        request.state.hub.users_changed()  # open streams re-check their user now
    return _user(new)


@router.post("/auth/api-keys", response_model=ApiKeyPublic, status_code=201)
async def create_api_key(body: ApiKeyCreate, admin: Admin, pool: PoolDep) -> ApiKeyPublic:
    """Issue an API key (sent as `X-API-Key`). The key is shown in this response only."""
    row = await pool.fetchrow("SELECT site_ids, scope_kind FROM users WHERE id = $1",
                              body.user_id)
    if row is None:
        raise NotFound("user not found")
    _check_grant(admin, row["site_ids"], row["scope_kind"])
    key, prefix, digest = new_api_key()
    row = await pool.fetchrow(
        "INSERT INTO api_keys (prefix, key_sha256, user_id, name) VALUES ($1, $2, $3, $4) "
        "RETURNING id, prefix, user_id, name, created_at, last_used_at, revoked_at",
        prefix, digest, body.user_id, body.name)
    return ApiKeyPublic(**dict(row), key=key)


@router.get("/auth/api-keys", response_model=list[ApiKeyPublic])
async def list_api_keys(_: Admin, pool: PoolDep) -> list[ApiKeyPublic]:
    rows = await pool.fetch("SELECT id, prefix, user_id, name, created_at, last_used_at, "
                            "revoked_at FROM api_keys ORDER BY id")
    return [ApiKeyPublic(**dict(r)) for r in rows]


@router.delete("/auth/api-keys/{key_id}", status_code=204)
async def revoke_api_key(key_id: int, _: Admin, pool: PoolDep, request: Request) -> None:
    done = await pool.fetchval("UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) "
                               "WHERE id = $1 RETURNING id", key_id)
    if done is None:
        raise NotFound("API key not found")
    request.state.hub.users_changed()  # streams read with the key end now
