"""The one writer of notification contacts, policies and escalation chains.

Each write is checked before it is stored (a policy or chain that cannot work is refused with
the reason, at write time) and runs in one transaction with its audit_log row. Contact
addresses and robot secrets are sealed with the centre's key (firetower/webhooks/secretbox.py):
robot webhook URLs and Apprise URLs carry tokens; only a redacted form (`shown`) is readable.
"""

from __future__ import annotations

from datetime import time
from typing import Any

import asyncpg

from firetower.refusal import Conn, Refused
from firetower.webhooks.secretbox import SecretBox
from notify import escalation
from notify.channels import CHANNELS, ChannelError
from notify.channels import shown as shown_address
from notify.channels import validate as validate_address
from notify.policy import Policy, PolicyError, validate
from org.store import Actor, audit

# Where the row a contact belongs to lives, per recipient kind.
REF_TABLES: dict[str, str] = {
    "unit_responsible": "units", "unit_manager": "units", "grid_member": "grid_members",
    "maintenance_company": "maintenance_companies", "township_station": "jurisdictions",
    "user": "users",
}
CONTACT_COLUMNS = ("id, recipient, ref_id, name, channel, shown, enabled, created_at,"
                   " updated_at, secret IS NOT NULL AS signed")
POLICY_COLUMNS = ("id, name, enabled, classes, max_priority, jurisdiction_id, unit_id,"
                  " recipients, channels, quiet_start, quiet_end, timezone, group_window_s,"
                  " created_at, updated_at")
CHAIN_COLUMNS = "id, name, class, jurisdiction_id, steps, repeat_s, enabled, created_at, updated_at"


# The three kinds this module writes: table, the columns shown, the audit entity, its name.
_KINDS: dict[str, tuple[str, str, str]] = {
    "notify_contact": ("notify_contacts", CONTACT_COLUMNS, "contact"),
    "notify_policy": ("notify_policies", POLICY_COLUMNS, "policy"),
    "escalation_chain": ("escalation_chains", CHAIN_COLUMNS, "escalation chain"),
}


async def _locked(conn: Conn, entity: str, id_: int) -> asyncpg.Record:
    """The row as it is, locked for the change (in the caller's transaction); missing: 404."""
    table, columns, what = _KINDS[entity]
    row = await conn.fetchrow(f"SELECT {columns} FROM {table} WHERE id = $1 FOR UPDATE", id_)
    if row is None:
        raise Refused(f"no {what} {id_}", missing=True)
    return row


async def _delete(conn: Conn, actor: Actor, entity: str, id_: int) -> None:
    table, columns, what = _KINDS[entity]
    async with conn.transaction():
        before = await conn.fetchrow(
            f"DELETE FROM {table} WHERE id = $1 RETURNING {columns}", id_)
        if before is None:
            raise Refused(f"no {what} {id_}", missing=True)
        await audit(conn, actor, "delete", entity, id_, dict(before), None)


async def _exists(conn: Conn, table: str, id_: int) -> bool:
    return bool(await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table} WHERE id = $1)", id_))


async def _ref_checked(conn: Conn, recipient: str, ref_id: int) -> None:
    table = REF_TABLES.get(recipient)
    if table is None:
        raise Refused(f"unknown recipient kind {recipient!r} "
                            f"(kinds: {', '.join(REF_TABLES)})")
    if not await _exists(conn, table, ref_id):
        raise Refused(f"no {recipient.replace('_', ' ')} {ref_id} ({table})")
    if recipient == "township_station":
        level = await conn.fetchval("SELECT level FROM jurisdictions WHERE id = $1", ref_id)
        if level not in ("township", "district", "city"):
            raise Refused(f"jurisdiction {ref_id} is a {level}: a station belongs to a "
                                "township (or a district or city)")


# -- contacts ---------------------------------------------------------------------------------
async def create_contact(conn: Conn, box: SecretBox, actor: Actor, *, recipient: str,
                         ref_id: int, name: str = "", channel: str, address: str,
                         secret: str | None = None, enabled: bool = True) -> asyncpg.Record:
    try:
        address = validate_address(channel, address, secret)
    except ChannelError as exc:
        raise Refused(str(exc)) from exc
    async with conn.transaction():
        await _ref_checked(conn, recipient, ref_id)
        shown = shown_address(channel, address)
        row = await conn.fetchrow(
            "INSERT INTO notify_contacts (recipient, ref_id, name, channel, address, secret,"
            " shown, enabled) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
            f" RETURNING {CONTACT_COLUMNS}",
            recipient, ref_id, name, channel, box.seal(address),
            box.seal(secret) if secret else None, shown, enabled)
        assert row is not None
        await audit(conn, actor, "create", "notify_contact", row["id"], None, dict(row))
        return row


async def set_contact_enabled(conn: Conn, actor: Actor, contact_id: int,
                              enabled: bool) -> asyncpg.Record:
    async with conn.transaction():
        before = await _locked(conn, "notify_contact", contact_id)
        row = await conn.fetchrow(
            "UPDATE notify_contacts SET enabled = $2, updated_at = now() WHERE id = $1"
            f" RETURNING {CONTACT_COLUMNS}", contact_id, enabled)
        assert row is not None
        await audit(conn, actor, "update", "notify_contact", contact_id, dict(before), dict(row))
        return row


async def delete_contact(conn: Conn, actor: Actor, contact_id: int) -> None:
    await _delete(conn, actor, "notify_contact", contact_id)

# -- policies ---------------------------------------------------------------------------------
def policy_of(values: dict[str, Any], id_: int = 0) -> Policy:
    chans = values.get("channels")
    return Policy(
        id=id_, name=values["name"], classes=tuple(values["classes"]),
        recipients=tuple(values["recipients"]), max_priority=values.get("max_priority", 5),
        jurisdiction_id=values.get("jurisdiction_id"), unit_id=values.get("unit_id"),
        channels=tuple(chans) if chans is not None else None,
        quiet_start=values.get("quiet_start"), quiet_end=values.get("quiet_end"),
        timezone=values.get("timezone") or "Asia/Shanghai",
        group_window_s=values.get("group_window_s", 0), enabled=values.get("enabled", True))


def policy_of_row(r: asyncpg.Record) -> Policy:
    return policy_of(dict(r), r["id"])


async def _policy_checked(conn: Conn, values: dict[str, Any]) -> Policy:
    p = policy_of(values)
    try:
        validate(p, CHANNELS)
    except PolicyError as exc:
        raise Refused(str(exc)) from exc
    if p.jurisdiction_id is not None and not await _exists(conn, "jurisdictions",
                                                           p.jurisdiction_id):
        raise Refused(f"no jurisdiction {p.jurisdiction_id}")
    if p.unit_id is not None and not await _exists(conn, "units", p.unit_id):
        raise Refused(f"no unit {p.unit_id}")
    return p


def _policy_args(p: Policy) -> tuple[Any, ...]:
    return (p.name, p.enabled, list(p.classes), p.max_priority, p.jurisdiction_id, p.unit_id,
            list(p.recipients), list(p.channels) if p.channels is not None else None,
            p.quiet_start, p.quiet_end, p.timezone, p.group_window_s)


async def create_policy(conn: Conn, actor: Actor, values: dict[str, Any]) -> asyncpg.Record:
    async with conn.transaction():
        p = await _policy_checked(conn, values)
        row = await conn.fetchrow(
            "INSERT INTO notify_policies (name, enabled, classes, max_priority, jurisdiction_id,"
            " unit_id, recipients, channels, quiet_start, quiet_end, timezone, group_window_s)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
            f" RETURNING {POLICY_COLUMNS}", *_policy_args(p))
        assert row is not None
        await audit(conn, actor, "create", "notify_policy", row["id"], None, dict(row))
        return row


async def replace_policy(conn: Conn, actor: Actor, policy_id: int,
                         values: dict[str, Any]) -> asyncpg.Record:
    async with conn.transaction():
        before = await _locked(conn, "notify_policy", policy_id)
        p = await _policy_checked(conn, values)
        row = await conn.fetchrow(
            "UPDATE notify_policies SET name = $2, enabled = $3, classes = $4,"
            " max_priority = $5, jurisdiction_id = $6, unit_id = $7, recipients = $8,"
            " channels = $9, quiet_start = $10, quiet_end = $11, timezone = $12,"
            " group_window_s = $13, updated_at = now() WHERE id = $1"
            f" RETURNING {POLICY_COLUMNS}", policy_id, *_policy_args(p))
        assert row is not None
        await audit(conn, actor, "update", "notify_policy", policy_id, dict(before), dict(row))
        return row


async def delete_policy(conn: Conn, actor: Actor, policy_id: int) -> None:
    await _delete(conn, actor, "notify_policy", policy_id)

# -- escalation chains ------------------------------------------------------------------------
async def _chain_checked(conn: Conn, values: dict[str, Any]) -> tuple[Any, ...]:
    try:
        escalation.validate_class(values["class"])
        steps = escalation.parse_steps(values["steps"])
    except escalation.ChainError as exc:
        raise Refused(str(exc)) from exc
    jid = values.get("jurisdiction_id")
    if jid is not None and not await _exists(conn, "jurisdictions", jid):
        raise Refused(f"no jurisdiction {jid}")
    return (values["name"], values["class"], jid, escalation.steps_json(steps),
            values.get("repeat_s", 300), values.get("enabled", True))


async def create_chain(conn: Conn, actor: Actor, values: dict[str, Any]) -> asyncpg.Record:
    async with conn.transaction():
        args = await _chain_checked(conn, values)
        try:
            row = await conn.fetchrow(
                "INSERT INTO escalation_chains (name, class, jurisdiction_id, steps, repeat_s,"
                f" enabled) VALUES ($1, $2, $3, $4, $5, $6) RETURNING {CHAIN_COLUMNS}", *args)
        except asyncpg.UniqueViolationError as exc:
            raise Refused(f"a chain for class {values['class']!r} at this jurisdiction "
                                "exists already: change it instead", conflict=True) from exc
        assert row is not None
        await audit(conn, actor, "create", "escalation_chain", row["id"], None, dict(row))
        return row


async def replace_chain(conn: Conn, actor: Actor, chain_id: int,
                        values: dict[str, Any]) -> asyncpg.Record:
    async with conn.transaction():
        before = await _locked(conn, "escalation_chain", chain_id)
        args = await _chain_checked(conn, values)
        try:
            row = await conn.fetchrow(
                "UPDATE escalation_chains SET name = $2, class = $3, jurisdiction_id = $4,"
                " steps = $5, repeat_s = $6, enabled = $7, updated_at = now() WHERE id = $1"
                f" RETURNING {CHAIN_COLUMNS}", chain_id, *args)
        except asyncpg.UniqueViolationError as exc:
            raise Refused(f"a chain for class {values['class']!r} at this jurisdiction "
                                "exists already", conflict=True) from exc
        assert row is not None
        await audit(conn, actor, "update", "escalation_chain", chain_id, dict(before), dict(row))
        return row


async def delete_chain(conn: Conn, actor: Actor, chain_id: int) -> None:
    await _delete(conn, actor, "escalation_chain", chain_id)

def quiet(value: str | None) -> time | None:
    """A 'HH:MM' quiet-hours bound."""
    return time.fromisoformat(value) if value else None
