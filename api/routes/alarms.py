"""`/alarms`: the board list with filters, one alarm with its timeline, and the operator
actions. State changes go through `firetower.alarm_store.AlarmStore.transition` (the single
write path), and so do comments and assignment (`AlarmStore.comment`, `AlarmStore.assign`)."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request

from api.alarm_queries import alarm_detail, alarms_by_id, list_alarms
from api.deps import Needs, PoolDep, Principal
from api.errors import Conflict, NotFound
from api.metrics import ALARM_ACTIONS
from api.permissions import Permission
from api.routes.sites import load_site
from api.schemas import (
    AcknowledgeCreate,
    AlarmClassName,
    AlarmDetail,
    AlarmsPublic,
    AlarmStateName,
    AssignCreate,
    BulkAcknowledgeCreate,
    BulkCloseCreate,
    BulkRefusal,
    BulkResult,
    CloseCreate,
    CommentCreate,
    Timestamp,
    VerdictCreate,
)
from api.shown import mark_shown, unshown
from firetower.alarm_store import AlarmNotFound, AlarmStore
from firetower.alarms import InvalidTransition, Trigger, Verdict

router = APIRouter(prefix="/alarms", tags=["alarms"])
Reader = Needs(Permission.ALARM_READ)
Handler = Needs(Permission.ALARM_HANDLE)
Commenter = Needs(Permission.ALARM_COMMENT)
AlarmId = Annotated[int, Query(ge=1, le=2**62)]


def actor(user: Principal) -> str:
    return f"operator:{user.name}"


def _store(request: Request) -> AlarmStore:
    return request.state.alarm_store


@router.get("", response_model=AlarmsPublic)
async def get_alarms(user: Reader, pool: PoolDep,
                     alarm_class: Annotated[list[AlarmClassName] | None,
                                            Query(alias="class")] = None,
                     state: Annotated[list[AlarmStateName] | None, Query()] = None,
                     site_id: str | None = None, device_id: str | None = None,
                     unfinished: bool | None = None,
                     since: Timestamp | None = None, until: Timestamp | None = None,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 200,
                     offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> AlarmsPublic:
    """Filter by class, state (repeat either), site, device, `unfinished=true` (not closed)
    and raise time (`since` <= raised_at < `until`). Board order: fire, supervisory, fault,
    offline, early warning; newest first within a class."""
    data, total = await list_alarms(
        pool, user.site_filter, classes=alarm_class, states=state, site_id=site_id,
        device_id=device_id, unfinished=unfinished, since=since, until=until, limit=limit,
        offset=offset)
    mark_shown(pool, unshown(data), user, datetime.now(UTC))
    return AlarmsPublic(data=data, count=total)


async def _detail(pool: PoolDep, user: Principal, alarm_id: int) -> AlarmDetail:
    if not 1 <= alarm_id <= 2**62:
        raise NotFound("alarm not found")
    detail = await alarm_detail(pool, user.site_filter, alarm_id)
    if detail is None:
        raise NotFound("alarm not found")
    if detail.site_id is not None:
        with contextlib.suppress(NotFound):  # a site id no longer in the registry
            detail.site = await load_site(pool, user, detail.site_id)
            detail.floor = next((f for f in detail.site.floors if f.id == detail.floor_id),
                                None)
    return detail


async def _bulk(request: Request, pool: PoolDep, user: Principal, ids: list[int],
                trigger: Trigger, reason: str) -> BulkResult:
    """One trigger on many alarms, each checked for the caller's scope (another site's
    alarm is refused as not found, as a missing id is) and by the lifecycle (409), all in
    one transaction of the alarm store."""
    ids = list(dict.fromkeys(ids))
    sites = {r["id"]: r["site_id"] for r in await pool.fetch(
        "SELECT id, site_id FROM alarms WHERE id = ANY($1::bigint[])", ids)}
    visible = [i for i in ids if i in sites and user.sees(sites[i])]
    refused = [BulkRefusal(id=i, status=404, detail="alarm not found")
               for i in ids if i not in visible]
    outcome = await _store(request).transition_many(visible, trigger, actor=actor(user),
                                                    reason=reason)
    refused += [BulkRefusal(id=i, status=404, detail="alarm not found") for i in outcome.missing]
    refused += [BulkRefusal(id=i, status=409, detail=why) for i, why in outcome.refused.items()]
    for result, n in (("ok", len(outcome.changes)), ("conflict", len(outcome.refused)),
                      ("not_found", len(refused) - len(outcome.refused))):
        if n:
            ALARM_ACTIONS.labels(trigger.value, "", result).inc(n)
    done = await alarms_by_id(pool, [c.alarm_id for c in outcome.changes
                                     if c.alarm_id is not None])
    data = [done[i] for i in ids if i in done]
    return BulkResult(data=data, count=len(data), refused=sorted(refused, key=lambda r: r.id))


@router.post("/acknowledge", response_model=BulkResult)
async def acknowledge_many(body: BulkAcknowledgeCreate, user: Handler, pool: PoolDep,
                           request: Request) -> BulkResult:
    """Acknowledge up to 1,000 alarms in one call (a flood, an incident). Each alarm is
    checked like a single acknowledgement: outside the caller's sites or missing -> refused
    404, in a state that refuses it -> refused 409; the rest are acknowledged together."""
    return await _bulk(request, pool, user, body.ids, Trigger.ACKNOWLEDGE, body.reason)


@router.post("/close", response_model=BulkResult)
async def close_many(body: BulkCloseCreate, user: Handler, pool: PoolDep,
                     request: Request) -> BulkResult:
    """Close up to 1,000 cleared, acknowledged non-fire alarms in one call, with a reason
    (required). Refusals as for `POST /alarms/acknowledge`."""
    return await _bulk(request, pool, user, body.ids, Trigger.CLOSE, body.reason)


@router.get("/{alarm_id:int}", response_model=AlarmDetail)  # not /acknowledge, /close
async def get_alarm(alarm_id: int, user: Reader, pool: PoolDep) -> AlarmDetail:
    """One alarm with its evidence, full timeline (every event, oldest first), its latency
    clocks by stage and the regulatory limits it met (docs/alarms.md)."""
    detail = await _detail(pool, user, alarm_id)
    mark_shown(pool, unshown([detail]), user, datetime.now(UTC))
    return detail


async def _transition(request: Request, pool: PoolDep, user: Principal, alarm_id: int,
                      trigger: Trigger, reason: str,
                      verdict: Verdict | None = None) -> AlarmDetail:
    await _detail(pool, user, alarm_id)  # 404 outside the caller's scope
    try:
        await _store(request).transition(alarm_id, trigger, actor=actor(user), reason=reason,
                                         verdict=verdict)
    except AlarmNotFound:
        raise NotFound("alarm not found") from None
    except InvalidTransition as exc:
        raise Conflict(str(exc)) from None
    return await _detail(pool, user, alarm_id)


@router.post("/{alarm_id}/acknowledge", response_model=AlarmDetail)
async def acknowledge(alarm_id: int, body: AcknowledgeCreate, user: Handler, pool: PoolDep,
                      request: Request) -> AlarmDetail:
    """active -> acknowledged; cleared_unack -> cleared. 409 in any other state."""
    return await _transition(request, pool, user, alarm_id, Trigger.ACKNOWLEDGE, body.reason)


@router.post("/{alarm_id}/verdict", response_model=AlarmDetail)
async def verdict(alarm_id: int, body: VerdictCreate, user: Handler, pool: PoolDep,
                  request: Request) -> AlarmDetail:
    """true_fire / false_alarm / test / nuisance. Implies the acknowledgement; closes the
    alarm if its condition has already cleared."""
    return await _transition(request, pool, user, alarm_id, Trigger.VERDICT, body.reason,
                             Verdict(body.verdict))


@router.post("/{alarm_id}/close", response_model=AlarmDetail)
async def close(alarm_id: int, body: CloseCreate, user: Handler, pool: PoolDep,
                request: Request) -> AlarmDetail:
    """Close a cleared, acknowledged non-fire alarm (a fire alarm needs a verdict)."""
    return await _transition(request, pool, user, alarm_id, Trigger.CLOSE, body.reason)


@router.post("/{alarm_id}/comments", response_model=AlarmDetail, status_code=201)
async def add_comment(alarm_id: int, body: CommentCreate, user: Commenter,
                      pool: PoolDep, request: Request) -> AlarmDetail:
    await _detail(pool, user, alarm_id)
    try:
        await _store(request).comment(alarm_id, actor=actor(user), text=body.text)
    except AlarmNotFound:
        raise NotFound("alarm not found") from None
    return await _detail(pool, user, alarm_id)


@router.post("/{alarm_id}/assign", response_model=AlarmDetail)
async def assign(alarm_id: int, body: AssignCreate, user: Handler,
                 pool: PoolDep, request: Request) -> AlarmDetail:
    """Assign the alarm to a user (by name) or unassign it (`null`)."""
    await _detail(pool, user, alarm_id)
    if body.assignee is not None and await pool.fetchval(
            "SELECT 1 FROM users WHERE name = $1 AND active", body.assignee) is None:
        raise NotFound(f"user {body.assignee} not found")
    try:
        await _store(request).assign(alarm_id, actor=actor(user), assignee=body.assignee)
    except AlarmNotFound:
        raise NotFound("alarm not found") from None
    return await _detail(pool, user, alarm_id)
