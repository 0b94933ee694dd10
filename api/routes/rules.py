"""`/rules/overrides` and `/modes`: rule parameters per device kind, site and device, and the
test / disabled / maintenance windows. The rule engine reloads both on change (a trigger
NOTIFYs it). Mode windows are recorded through `AlarmStore.record_mode`, so they appear in the
alarm event log and the live stream.

Override parameter names are checked by the engine, which logs and skips an unknown one; the
API checks the rule name and that every value is a finite number."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
from fastapi import APIRouter, Request

from api.deps import Needs, PoolDep, Principal
from api.errors import NotFound
from api.permissions import Permission
from api.routes.alarms import actor
from api.schemas import ModeCreate, ModePublic, RuleOverrideCreate, RuleOverridePublic
from firetower.alarm_store import AlarmStore
from firetower.alarms import Mode

router = APIRouter(tags=["rules"])
Reader = Needs(Permission.RULE_READ)
Writer = Needs(Permission.RULE_WRITE)
ModeWriter = Needs(Permission.RULE_MODE)


async def _target_site(pool: asyncpg.Pool, scope: str, target: str) -> str | None:
    if scope == "site":
        return await pool.fetchval("SELECT id FROM sites WHERE id = $1", target)
    if scope == "device":
        return await pool.fetchval("SELECT site_id FROM devices WHERE id = $1", target)
    return None


async def _check_target(pool: asyncpg.Pool, user: Principal, scope: str, target: str) -> None:
    """Site and device targets must exist and be in the caller's scope (404 otherwise)."""
    if scope == "kind":
        if user.site_ids is not None:
            raise NotFound("kind-wide settings are outside a site-scoped account")
        return
    site = await _target_site(pool, scope, target)
    if site is None or not user.sees(site):
        raise NotFound(f"{scope} {target} not found")


def _visible_sql() -> str:
    return ("($1::text[] IS NULL OR (scope = 'site' AND target = ANY($1)) OR "
            "(scope = 'device' AND target IN (SELECT id FROM devices WHERE site_id = ANY($1))))")


@router.get("/rules/overrides", response_model=list[RuleOverridePublic])
async def list_overrides(user: Reader, pool: PoolDep) -> list[RuleOverridePublic]:
    rows = await pool.fetch(f"SELECT * FROM rule_overrides WHERE {_visible_sql()} "
                            "ORDER BY scope, target, rule", user.site_filter)
    return [RuleOverridePublic(**dict(r)) for r in rows]


@router.put("/rules/overrides", response_model=RuleOverridePublic)
async def set_override(body: RuleOverrideCreate, user: Writer,
                       pool: PoolDep) -> RuleOverridePublic:
    """Create or replace the override of (`scope`, `target`, `rule`). Kind targets are
    device kinds (`smoke_detector`, ...)."""
    if body.scope == "kind" and body.target not in (
            "smoke_detector", "heat_detector", "sprinkler_pressure", "alarm_panel"):
        raise NotFound(f"device kind {body.target} not found")
    await _check_target(pool, user, body.scope, body.target)
    row = await pool.fetchrow(
        "INSERT INTO rule_overrides (scope, target, rule, params, updated_by) "
        "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (scope, target, rule) DO UPDATE SET "
        "params = EXCLUDED.params, updated_by = EXCLUDED.updated_by, updated_at = now() "
        "RETURNING *", body.scope, body.target, body.rule, body.params, actor(user))
    return RuleOverridePublic(**dict(row))


@router.delete("/rules/overrides/{override_id}", status_code=204)
async def delete_override(override_id: int, user: Writer, pool: PoolDep) -> None:
    if await pool.fetchval("DELETE FROM rule_overrides WHERE id = $1 RETURNING id",
                           override_id) is None:
        raise NotFound("override not found")


@router.get("/modes", response_model=list[ModePublic])
async def list_modes(user: Reader, pool: PoolDep, current: bool = True) -> list[ModePublic]:
    """Mode windows; by default only the current ones (not ended, not expired)."""
    rows = await pool.fetch(
        f"SELECT * FROM modes WHERE {_visible_sql()} AND (NOT $2 OR (ended_at IS NULL AND "
        "(expires_at IS NULL OR expires_at > now()))) ORDER BY starts_at DESC LIMIT 1000",
        user.site_filter, current)
    return [ModePublic(**dict(r)) for r in rows]


@router.post("/modes", response_model=ModePublic, status_code=201)
async def start_mode(body: ModeCreate, user: ModeWriter, pool: PoolDep,
                     request: Request) -> ModePublic:
    """Test, disabled or maintenance for `minutes`. Signals are still recorded and shown,
    marked with the mode; a fire in test mode is never forwarded."""
    await _check_target(pool, user, body.scope, body.target)
    store: AlarmStore = request.state.alarm_store
    now = datetime.now(UTC)
    await store.record_mode(scope=body.scope, target=body.target, point=body.point,
                            mode=Mode(body.mode), active=True, owner=actor(user),
                            reason=body.reason, at=now,
                            expires_at=now + timedelta(minutes=body.minutes))
    row = await pool.fetchrow("SELECT * FROM modes WHERE scope = $1 AND target = $2 AND "
                              "owner = $3 ORDER BY id DESC LIMIT 1", body.scope, body.target,
                              actor(user))
    return ModePublic(**dict(row))


@router.delete("/modes/{mode_id}", status_code=204)
async def end_mode(mode_id: int, user: ModeWriter, pool: PoolDep, request: Request) -> None:
    row = await pool.fetchrow("SELECT * FROM modes WHERE id = $1 AND ended_at IS NULL",
                              mode_id)
    if row is None:
        raise NotFound("mode window not found")
    await _check_target(pool, user, row["scope"], row["target"])
    store: AlarmStore = request.state.alarm_store
    await store.record_mode(scope=row["scope"], target=row["target"], point=row["point"],
                            mode=Mode(row["mode"]), active=False, owner=actor(user),
                            reason="ended from the API", at=datetime.now(UTC))
