"""Notification contacts, policies, escalation chains, the message log, and the signed links that
acknowledge an alarm or confirm reading a prompt from any channel (docs/notifications.md).

- `GET|POST /notify/contacts`, `PATCH|DELETE /notify/contacts/{id}`: where people are reached
  (addresses sealed; only a redacted form is ever shown);
- `GET|POST /notify/policies`, `PUT|DELETE /notify/policies/{id}`: who gets what;
- `GET|POST /notify/chains`, `PUT|DELETE /notify/chains/{id}`: escalation;
- `GET /notify/messages`, `GET /notify/messages/{id}`: every message with its attempts;
  `GET /notify/escalations/{alarm_id}`: an alarm's escalation state;
- `GET|POST /public/links/{purpose}/{token}`: unauthenticated, the token is the credential
  (HMAC-signed, one-time, expiring). GET describes, POST acts.

Configuration is written through notify/config_store.py (checked, audited); the links through
firetower.alarm_store (acknowledge) and notify/watch_store.py (receipts). Scope: a scoped caller
manages and sees only what lies in its scope (policies and chains of its subtree or units,
contacts of its units, grids, companies and of itself; messages of its sites).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, status

from api.deps import PoolDep, Principal, SettingsDep, require
from api.errors import ApiError, Conflict, NotFound, refusals
from api.notify_schemas import (
    AttemptPublic,
    ChainIn,
    ChainPublic,
    ChainsPublic,
    ContactCreate,
    ContactPatch,
    ContactPublic,
    ContactsPublic,
    EscalationPublic,
    LinkResult,
    MessageDetail,
    MessagePublic,
    MessagesPublic,
    MessageStatus,
    PoliciesPublic,
    PolicyIn,
    PolicyPublic,
)
from api.permissions import Permission
from api.schemas import MAX_ID
from firetower.alarm_store import AlarmNotFound, AlarmStore
from firetower.alarms import InvalidTransition, Trigger
from firetower.webhooks.secretbox import SecretBox
from notify import config_store, link_store, links, outbox
from org.scope import visible_nodes
from org.store import Actor

router = APIRouter(tags=["notifications"])
Reader = Annotated[Principal, require(Permission.NOTIFY_READ)]
Manager = Annotated[Principal, require(Permission.NOTIFY_MANAGE)]
RowPath = Annotated[int, Path(ge=1, le=MAX_ID)]
Token = Annotated[str, Path(min_length=10, max_length=links.MAX_TOKEN_LEN,
                            pattern=r"^[0-9]{1,18}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")]
Purpose = Annotated[Literal["ack", "read"], Path()]



def _actor(user: Principal) -> Actor:
    return Actor(user.id, f"operator:{user.name}")


async def _nodes(conn: Any, user: Principal) -> frozenset[int] | None:
    return await visible_nodes(conn, user.scope, user.site_ids)


async def _units(conn: Any, user: Principal) -> set[int] | None:
    if user.site_ids is None:
        return None
    rows = await conn.fetch("SELECT DISTINCT unit_id FROM sites WHERE id = ANY($1::text[])"
                            " AND unit_id IS NOT NULL", sorted(user.site_ids))
    return {r[0] for r in rows}


async def _owned(conn: Any, user: Principal, jurisdiction_id: int | None,
                 unit_id: int | None) -> bool:
    """Whether a scoped caller may see and change a policy or chain at this place: one of its
    units, or a node of its own subtree (a city-wide one: unscoped callers only)."""
    if user.site_ids is None:
        return True
    if unit_id is not None:
        units = await _units(conn, user)
        return units is not None and unit_id in units
    if jurisdiction_id is None or user.scope.kind != "jurisdiction":
        return False
    return bool(await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM jurisdictions WHERE id = $1"
        " AND path @> ARRAY[$2]::bigint[])", jurisdiction_id, user.scope.id))


async def _contact_visible(conn: Any, user: Principal, recipient: str, ref_id: int) -> bool:
    if user.site_ids is None:
        return True
    if recipient == "user":
        return ref_id == user.id
    if recipient in ("unit_responsible", "unit_manager"):
        units = await _units(conn, user)
        return units is not None and ref_id in units
    nodes = await _nodes(conn, user) or frozenset()
    if recipient == "township_station":
        return ref_id in nodes
    if recipient == "grid_member":
        grid = await conn.fetchval("SELECT grid_id FROM grid_members WHERE id = $1", ref_id)
        return grid in nodes
    return bool(await conn.fetchval(  # maintenance_company: under contract for one of its sites
        "SELECT EXISTS (SELECT 1 FROM contracts WHERE company_id = $1"
        " AND site_id = ANY($2::text[]))", ref_id, sorted(user.site_ids)))


# -- contacts ---------------------------------------------------------------------------------
@router.get("/notify/contacts", response_model=ContactsPublic)
async def list_contacts(user: Reader, pool: PoolDep,
                        recipient: Annotated[str | None, Query(max_length=40)] = None,
                        ref_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None
                        ) -> ContactsPublic:
    """Contacts, filtered by whose they are; addresses redacted."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT {config_store.CONTACT_COLUMNS} FROM notify_contacts"
            " WHERE ($1::text IS NULL OR recipient = $1) AND ($2::bigint IS NULL OR ref_id = $2)"
            " ORDER BY id LIMIT 2000", recipient, ref_id)
        items = [ContactPublic(**dict(r)) for r in rows
                 if await _contact_visible(conn, user, r["recipient"], r["ref_id"])]
    return ContactsPublic(items=items)


@router.post("/notify/contacts", response_model=ContactPublic,
             status_code=status.HTTP_201_CREATED)
async def create_contact(body: ContactCreate, user: Manager, pool: PoolDep,
                         settings: SettingsDep) -> ContactPublic:
    """Add a way to reach a person: the address is checked for its channel (an e-mail address,
    a phone number, the robot webhook URL as DingTalk / WeCom / Feishu give it, or an Apprise
    URL) and refused with the reason; it is sealed at rest."""
    async with pool.acquire() as conn:
        if not await _contact_visible(conn, user, body.recipient, body.ref_id):
            raise NotFound(f"no {body.recipient.replace('_', ' ')} {body.ref_id}")
        async with refusals():
            row = await config_store.create_contact(
                conn, SecretBox.of(settings.secret_keys), _actor(user),
                recipient=body.recipient, ref_id=body.ref_id, name=body.name,
                channel=body.channel, address=body.address, secret=body.secret,
                enabled=body.enabled)
    return ContactPublic(**dict(row))


async def _contact_in_scope(conn: Any, user: Principal, contact_id: int) -> None:
    row = await conn.fetchrow("SELECT recipient, ref_id FROM notify_contacts WHERE id = $1",
                              contact_id)
    if row is None or not await _contact_visible(conn, user, row["recipient"], row["ref_id"]):
        raise NotFound(f"no contact {contact_id}")


@router.patch("/notify/contacts/{contact_id}", response_model=ContactPublic)
async def patch_contact(contact_id: RowPath, body: ContactPatch, user: Manager,
                        pool: PoolDep) -> ContactPublic:
    """Enable or disable a contact (a disabled one is skipped; its history stays)."""
    async with pool.acquire() as conn:
        await _contact_in_scope(conn, user, contact_id)
        async with refusals():
            row = await config_store.set_contact_enabled(conn, _actor(user), contact_id,
                                                         body.enabled)
    return ContactPublic(**dict(row))


@router.delete("/notify/contacts/{contact_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_contact(contact_id: RowPath, user: Manager, pool: PoolDep) -> None:
    async with pool.acquire() as conn:
        await _contact_in_scope(conn, user, contact_id)
        async with refusals():
            await config_store.delete_contact(conn, _actor(user), contact_id)


# -- policies ---------------------------------------------------------------------------------
def _policy_public(r: Any) -> PolicyPublic:
    d = dict(r)
    for k in ("quiet_start", "quiet_end"):
        d[k] = d[k].strftime("%H:%M") if d[k] is not None else None
    return PolicyPublic(**d)


def _policy_values(body: PolicyIn) -> dict[str, Any]:
    v = body.model_dump()
    v["quiet_start"] = config_store.quiet(body.quiet_start)
    v["quiet_end"] = config_store.quiet(body.quiet_end)
    return v


@router.get("/notify/policies", response_model=PoliciesPublic)
async def list_policies(user: Reader, pool: PoolDep) -> PoliciesPublic:
    async with pool.acquire() as conn:
        rows = await conn.fetch(f"SELECT {config_store.POLICY_COLUMNS} FROM notify_policies"
                                " ORDER BY id LIMIT 2000")
        items = [_policy_public(r) for r in rows
                 if await _owned(conn, user, r["jurisdiction_id"], r["unit_id"])]
    return PoliciesPublic(items=items)


@router.post("/notify/policies", response_model=PolicyPublic,
             status_code=status.HTTP_201_CREATED)
async def create_policy(body: PolicyIn, user: Manager, pool: PoolDep) -> PolicyPublic:
    """Who gets what. Refused with the reason when it cannot work (quiet hours on a fire-only
    policy, an unknown time zone, a unit and a jurisdiction at once, ...)."""
    async with pool.acquire() as conn:
        if not await _owned(conn, user, body.jurisdiction_id, body.unit_id):
            raise NotFound("no such jurisdiction or unit in your scope")
        async with refusals():
            row = await config_store.create_policy(conn, _actor(user), _policy_values(body))
    return _policy_public(row)


async def _policy_in_scope(conn: Any, user: Principal, policy_id: int) -> None:
    row = await conn.fetchrow("SELECT jurisdiction_id, unit_id FROM notify_policies"
                              " WHERE id = $1", policy_id)
    if row is None or not await _owned(conn, user, row["jurisdiction_id"], row["unit_id"]):
        raise NotFound(f"no policy {policy_id}")


@router.put("/notify/policies/{policy_id}", response_model=PolicyPublic)
async def replace_policy(policy_id: RowPath, body: PolicyIn, user: Manager,
                         pool: PoolDep) -> PolicyPublic:
    async with pool.acquire() as conn:
        await _policy_in_scope(conn, user, policy_id)
        if not await _owned(conn, user, body.jurisdiction_id, body.unit_id):
            raise NotFound("no such jurisdiction or unit in your scope")
        async with refusals():
            row = await config_store.replace_policy(conn, _actor(user), policy_id,
                                                    _policy_values(body))
    return _policy_public(row)


@router.delete("/notify/policies/{policy_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_policy(policy_id: RowPath, user: Manager, pool: PoolDep) -> None:
    async with pool.acquire() as conn:
        await _policy_in_scope(conn, user, policy_id)
        async with refusals():
            await config_store.delete_policy(conn, _actor(user), policy_id)


# -- escalation chains ------------------------------------------------------------------------
def _chain_public(r: Any) -> ChainPublic:
    d = dict(r)
    d["alarm_class"] = d.pop("class")
    return ChainPublic(**d)


def _chain_values(body: ChainIn) -> dict[str, Any]:
    return {"name": body.name, "class": body.alarm_class, "jurisdiction_id": body.jurisdiction_id,
            "steps": [s.model_dump() for s in body.steps], "repeat_s": body.repeat_s,
            "enabled": body.enabled}


@router.get("/notify/chains", response_model=ChainsPublic, response_model_by_alias=True)
async def list_chains(user: Reader, pool: PoolDep) -> ChainsPublic:
    async with pool.acquire() as conn:
        rows = await conn.fetch(f"SELECT {config_store.CHAIN_COLUMNS} FROM escalation_chains"
                                " ORDER BY id LIMIT 1000")
        items = [_chain_public(r) for r in rows
                 if await _owned(conn, user, r["jurisdiction_id"], None)]
    return ChainsPublic(items=items)


@router.post("/notify/chains", response_model=ChainPublic, response_model_by_alias=True,
             status_code=status.HTTP_201_CREATED)
async def create_chain(body: ChainIn, user: Manager, pool: PoolDep) -> ChainPublic:
    """An escalation chain for an alarm class: steps measured from the raise, the last one
    repeated every `repeat_s` until the alarm is acknowledged."""
    async with pool.acquire() as conn:
        if not await _owned(conn, user, body.jurisdiction_id, None):
            raise NotFound("no such jurisdiction in your scope")
        async with refusals():
            row = await config_store.create_chain(conn, _actor(user), _chain_values(body))
    return _chain_public(row)


async def _chain_in_scope(conn: Any, user: Principal, chain_id: int) -> None:
    row = await conn.fetchrow("SELECT jurisdiction_id FROM escalation_chains WHERE id = $1",
                              chain_id)
    if row is None or not await _owned(conn, user, row["jurisdiction_id"], None):
        raise NotFound(f"no escalation chain {chain_id}")


@router.put("/notify/chains/{chain_id}", response_model=ChainPublic,
            response_model_by_alias=True)
async def replace_chain(chain_id: RowPath, body: ChainIn, user: Manager,
                        pool: PoolDep) -> ChainPublic:
    async with pool.acquire() as conn:
        await _chain_in_scope(conn, user, chain_id)
        if not await _owned(conn, user, body.jurisdiction_id, None):
            raise NotFound("no such jurisdiction in your scope")
        async with refusals():
            row = await config_store.replace_chain(conn, _actor(user), chain_id,
                                                   _chain_values(body))
    return _chain_public(row)


@router.delete("/notify/chains/{chain_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_chain(chain_id: RowPath, user: Manager, pool: PoolDep) -> None:
    async with pool.acquire() as conn:
        await _chain_in_scope(conn, user, chain_id)
        async with refusals():
            await config_store.delete_chain(conn, _actor(user), chain_id)


# -- the message log --------------------------------------------------------------------------
_MESSAGE_COLUMNS = ("id, alarm_id, prompt_id, site_id, recipient, name, channel, shown, step,"
                    " subject, status, grouped_into, attempts, created_at, next_attempt_at,"
                    " sent_at, last_error")


@router.get("/notify/messages", response_model=MessagesPublic)
async def list_messages(user: Reader, pool: PoolDep,
                        alarm_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
                        prompt_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
                        message_status: Annotated[MessageStatus | None,
                                                  Query(alias="status")] = None,
                        before_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
                        limit: Annotated[int, Query(ge=1, le=500)] = 100) -> MessagesPublic:
    """Messages, newest first: who was told what, by which channel, and how each attempt went.
    A scoped caller sees the messages of its sites."""
    rows = await pool.fetch(
        f"SELECT {_MESSAGE_COLUMNS} FROM notify_messages"
        " WHERE ($1::bigint IS NULL OR alarm_id = $1) AND ($2::bigint IS NULL OR prompt_id = $2)"
        " AND ($3::text IS NULL OR status = $3) AND ($4::bigint IS NULL OR id < $4)"
        " AND ($5::text[] IS NULL OR site_id = ANY($5))"
        " ORDER BY id DESC LIMIT $6", alarm_id, prompt_id, message_status, before_id,
        user.site_filter, limit)
    escalation = None
    if alarm_id is not None:
        row = await pool.fetchrow(
            "SELECT e.*, a.site_id FROM alarm_escalations e JOIN alarms a ON a.id = e.alarm_id"
            " WHERE e.alarm_id = $1", alarm_id)
        if row is not None and (user.site_ids is None or user.sees(row["site_id"])):
            escalation = EscalationPublic(**{k: v for k, v in dict(row).items()
                                             if k != "site_id"})
    return MessagesPublic(items=[MessagePublic(**dict(r)) for r in rows], escalation=escalation)


@router.get("/notify/messages/{message_id}", response_model=MessageDetail)
async def get_message(message_id: RowPath, user: Reader, pool: PoolDep) -> MessageDetail:
    row = await pool.fetchrow(f"SELECT {_MESSAGE_COLUMNS}, body FROM notify_messages"
                              " WHERE id = $1", message_id)
    if row is None or (user.site_ids is not None and not user.sees(row["site_id"])):
        raise NotFound(f"no message {message_id}")
    attempts = await pool.fetch("SELECT at, duration_ms, outcome, error FROM notify_attempts"
                                " WHERE message_id = $1 ORDER BY id", message_id)
    return MessageDetail(**dict(row),
                         attempt_log=[AttemptPublic(**dict(a)) for a in attempts])


@router.get("/notify/escalations/{alarm_id}", response_model=EscalationPublic)
async def get_escalation(alarm_id: RowPath, user: Reader, pool: PoolDep) -> EscalationPublic:
    row = await pool.fetchrow(
        "SELECT e.*, a.site_id FROM alarm_escalations e JOIN alarms a ON a.id = e.alarm_id"
        " WHERE e.alarm_id = $1", alarm_id)
    if row is None or (not user.sees(row["site_id"]) and user.site_ids is not None):
        raise NotFound(f"alarm {alarm_id} has no escalation")
    d = dict(row)
    d.pop("site_id")
    return EscalationPublic(**d)


# -- signed links (public) --------------------------------------------------------------------
def _verified(settings: Any, purpose: str, token: str) -> links.Verified:
    try:
        return links.verify(settings.secret_keys, purpose, token)
    except links.LinkError:
        raise NotFound("no such link") from None


def _link_error(exc: link_store.LinkRefused) -> ApiError:
    if exc.status == 409:
        return Conflict(str(exc))
    if exc.status == 410:
        return _Gone(str(exc))
    return NotFound(str(exc))


class _Gone(ApiError, status=410): ...


@router.get("/public/links/{purpose}/{token}", response_model=LinkResult,
            responses={410: {"description": "the link has expired"}})
async def describe_link(purpose: Purpose, token: Token, pool: PoolDep,
                        settings: SettingsDep) -> LinkResult:
    """What a link will do (changes nothing: mail scanners and chat previews open links)."""
    v = _verified(settings, purpose, token)
    async with pool.acquire() as conn:
        row = await link_store.peek_link(conn, v, purpose)
    if row is None:
        raise NotFound("no such link")
    if row["used_at"] is not None:
        return LinkResult(purpose=purpose, done=True, message="this link was used already")
    if purpose == "ack":
        state = row["state"]
        text = (f"acknowledge {row['class']} alarm #{row['alarm_id']} at site "
                f"{row['site_id'] or '-'} (state {state})")
        if row["acknowledged_at"] is not None:
            text += f"; already acknowledged by {row['acknowledged_by']}"
        return LinkResult(purpose=purpose, done=False, message=text)
    return LinkResult(purpose=purpose, done=False, message="confirm that you read the prompt")


@router.post("/public/links/{purpose}/{token}", response_model=LinkResult,
             responses={410: {"description": "the link has expired"}})
async def use_link(purpose: Purpose, token: Token, pool: PoolDep,
                   settings: SettingsDep) -> LinkResult:
    """Do what the link says, once: acknowledge the alarm (written to its event log with the
    channel and the person the link was sent to) or confirm reading the prompt."""
    v = _verified(settings, purpose, token)
    now = datetime.now(UTC)
    async with pool.acquire() as conn, conn.transaction():
        try:
            link = await link_store.use_link(conn, v, purpose, now)
        except link_store.LinkRefused as exc:
            raise _link_error(exc) from None
        if purpose == "read":
            from notify.watch_store import confirm_receipt
            first = await confirm_receipt(conn, link["receipt_id"], link["channel"])
            return LinkResult(purpose=purpose, done=True,
                              message="reading confirmed" if first else "already confirmed")
        actor = f"link:{link['channel']}:{link['name'] or 'recipient'}"
        try:
            await AlarmStore(conn).transition(  # type: ignore[arg-type]
                link["alarm_id"], Trigger.ACKNOWLEDGE, actor=actor,
                reason=f"acknowledged by {link['channel']} link (message {link['message_id']})")
        except AlarmNotFound:
            raise NotFound("no such alarm") from None
        except InvalidTransition:
            await outbox.stop_escalation(conn, link["alarm_id"], "acknowledged", now)
            return LinkResult(purpose=purpose, done=True,
                              message="the alarm was acknowledged already")
        await outbox.stop_escalation(conn, link["alarm_id"], "acknowledged", now)
    return LinkResult(purpose=purpose, done=True, message="alarm acknowledged")
