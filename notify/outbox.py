"""The one writer of the notification outbox: jobs, messages, attempts, escalation state (the
links the messages carry: notify/link_store.py).

The flow (docs/notifications.md):

1. A raised alarm writes a job in its own transaction (the trigger in migrations/0016).
2. `resolve_job()` turns one job into messages, in one transaction: the policies (or the
   escalation step) give recipient roles, the organisation gives the people (unit, grid,
   contracts, rosters on duty now), their contacts give channels and addresses. Each message
   carries its sealed address, a signed one-time link, its priority (fire first), and for a
   flood of faults or offline devices a group key and the end of its window. An alarm job also
   starts the alarm's escalation when a chain applies.
3. `claim()` leases due messages to the sender; `finish()` records each attempt and either
   ends the message (sent, dead) or schedules the retry.
4. `escalate_due()` turns each escalation that fell due into a job, or stops it when the alarm
   was acknowledged (from any channel) or no longer needs anyone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from firetower import db
from firetower.alarms import AlarmClass
from firetower.webhooks.secretbox import SecretBox
from notify import compose, escalation, link_store, links
from notify.channels import ChannelError, shown, validate
from notify.config_store import policy_of_row
from notify.escalation import Chain, Step
from notify.policy import AlarmFacts, Policy, Target, group_key, plan
from notify.sender import Outcome

Conn = asyncpg.Connection | PoolConnectionProxy

# Retries: fire is retried fast, the rest with a longer backoff; a message is dead after
# MAX_ATTEMPTS or when the error is permanent (a bad address, a rejected token).
MAX_ATTEMPTS = 12


def lease_s(timeout_s: float) -> float:
    """How long a claimed message is the sender's: an attempt is bounded by the channel timeout,
    and Apprise's own socket timeouts (the same limit) may run on after it, so twice that and a
    margin. A notifier killed mid-send leaves its messages to the next claim after this."""
    return 2.0 * timeout_s + 5.0


LEASE_S = lease_s(10.0)  # at the default attempt timeout: 25 s
_ALARM = """
SELECT a.id, a.class, a.priority, a.state, a.mode, a.inhibited_by, a.type, a.device_id,
       a.point, a.zone, a.raised_at, a.acknowledged_at, a.site_id,
       s.name AS site_name, s.address AS site_address, s.unit_id, s.jurisdiction_id,
       coalesce(j.path, '{}') AS path, j.level AS site_level,
       u.name AS unit_name, u.grid_id, u.responsible_name, u.responsible_phone,
       u.manager_name, u.manager_phone, d.location
FROM alarms a
LEFT JOIN sites s ON s.id = a.site_id
LEFT JOIN jurisdictions j ON j.id = s.jurisdiction_id
LEFT JOIN units u ON u.id = s.unit_id
LEFT JOIN devices d ON d.id = a.device_id
WHERE a.id = $1"""


@dataclass(frozen=True, slots=True)
class Person:
    recipient: str  # the role it was resolved from
    kind: str  # the contact kind (notify_contacts.recipient)
    ref_id: int
    name: str
    phone: str = ""


@dataclass(frozen=True, slots=True)
class Endpoint:
    person: Person
    channel: str
    address: str
    secret: str | None
    shown: str
    contact_id: int | None


def retry_delay(priority: int, attempts: int) -> float:
    """Seconds until the next attempt after `attempts` failed ones."""
    base, cap = (1.0, 30.0) if priority == 1 else (5.0, 600.0)
    return float(min(cap, base * 2 ** max(0, attempts - 1)))


# -- loading ----------------------------------------------------------------------------------
async def policies(conn: Conn) -> list[Policy]:
    rows = await conn.fetch("SELECT * FROM notify_policies WHERE enabled")
    return [policy_of_row(r) for r in rows]


async def chains(conn: Conn) -> list[Chain]:
    rows = await conn.fetch("SELECT * FROM escalation_chains WHERE enabled")
    return [Chain(r["id"], r["class"], tuple(Step(s["after_s"], tuple(s["recipients"]))
                                             for s in r["steps"]),
                  r["repeat_s"], r["jurisdiction_id"], r["enabled"]) for r in rows]


async def watch_factor(conn: Conn, site_id: str | None, path: Sequence[int],
                       now: datetime) -> float:
    """The heightened-watch escalation factor over a site now (1: no window)."""
    if site_id is None:
        return 1.0
    value = await conn.fetchval(
        "SELECT min((settings->>'escalation_factor')::float) FROM watch_windows"
        " WHERE cancelled_at IS NULL AND starts_at <= $1 AND ends_at > $1"
        " AND settings ? 'escalation_factor'"
        " AND ($2 = ANY(coalesce(site_ids, '{}')) OR jurisdiction_id = ANY($3::bigint[]))",
        now, site_id, list(path))
    return float(value) if value is not None else 1.0


async def people(conn: Conn, a: asyncpg.Record, role: str, now: datetime) -> list[Person]:
    """The people a recipient role names for this alarm's site, as the organisation is now."""
    unit_id, path = a["unit_id"], list(a["path"])
    if role in ("unit_responsible", "unit_manager"):
        if unit_id is None:
            return []
        key = role.removeprefix("unit_")
        name = a[f"{key}_name"] or ""
        return [Person(role, role, unit_id, name, a[f"{key}_phone"] or "")]
    if role == "grid_member":
        grid = a["grid_id"] or (a["jurisdiction_id"] if a["site_level"] == "grid" else None)
        if grid is None:
            return []
        rows = await conn.fetch("SELECT id, name, phone FROM grid_members WHERE grid_id = $1"
                                " ORDER BY id", grid)
        return [Person(role, role, r["id"], r["name"], r["phone"]) for r in rows]
    if role == "maintenance_company":
        rows = await conn.fetch(
            "SELECT DISTINCT m.id, m.name, m.phone FROM contracts c"
            " JOIN maintenance_companies m ON m.id = c.company_id"
            " WHERE c.site_id = $1 AND c.starts_on <= $2::date AND c.ends_on >= $2::date",
            a["site_id"], now)
        return [Person(role, role, r["id"], r["name"], r["phone"]) for r in rows]
    if role == "township_station":
        row = await conn.fetchrow(
            "SELECT id, name FROM jurisdictions WHERE id = ANY($1::bigint[])"
            " AND level = 'township' ORDER by cardinality(path) DESC LIMIT 1", path)
        return [Person(role, role, row["id"], row["name"])] if row else []
    if role == "unit_duty":
        if unit_id is None:
            return []
        rows = await conn.fetch(
            "SELECT DISTINCT u.id, u.name FROM duty_rosters r JOIN duty_shifts s"
            " ON s.roster_id = r.id JOIN users u ON u.id = s.user_id"
            " WHERE r.unit_id = $1 AND s.position = 'operator'"
            " AND s.starts_at <= $2 AND s.ends_at > $2 AND u.active", unit_id, now)
        return [Person(role, "user", r["id"], r["name"]) for r in rows]
    if role.startswith("duty_"):
        position = role.removeprefix("duty_")
        rows = await conn.fetch(
            "SELECT u.id, u.name, r.jurisdiction_id FROM duty_rosters r JOIN duty_shifts s"
            " ON s.roster_id = r.id JOIN users u ON u.id = s.user_id"
            " WHERE r.jurisdiction_id = ANY($1::bigint[]) AND s.position = $2"
            " AND s.starts_at <= $3 AND s.ends_at > $3 AND u.active", path, position, now)
        # the nearest level up the site's path that has someone on duty at that position
        for jid in reversed(path):
            found = sorted({(r["id"], r["name"]) for r in rows if r["jurisdiction_id"] == jid})
            if found:
                return [Person(role, "user", i, n) for i, n in found]
        return []
    return []


async def endpoints(conn: Conn, box: SecretBox, person: Person, allowed: frozenset[str] | None,
                    phone_channels: Sequence[str]) -> list[Endpoint]:
    """A person's enabled contacts, plus their phone from the organisation for the SMS and
    voice gateways configured (`phone_channels`), within the channels a policy allows."""
    rows = await conn.fetch(
        "SELECT id, channel, address, secret, shown FROM notify_contacts"
        " WHERE recipient = $1 AND ref_id = $2 AND enabled ORDER BY id", person.kind,
        person.ref_id)
    out = [Endpoint(person, r["channel"], box.open(r["address"]),
                    box.open(r["secret"]) if r["secret"] is not None else None, r["shown"],
                    r["id"]) for r in rows if allowed is None or r["channel"] in allowed]
    have = {e.channel for e in out}
    for ch in phone_channels:
        if person.phone and ch not in have and (allowed is None or ch in allowed):
            try:
                number = validate(ch, person.phone)
            except ChannelError:
                continue  # a malformed phone in the organisation: its other channels still go
            out.append(Endpoint(person, ch, number, None, shown(ch, number), None))
    return out


# -- jobs -> messages -------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Resolved:
    job_id: int
    messages: int
    first_priority: int


async def _insert(conn: Conn, box: SecretBox, job: asyncpg.Record, e: Endpoint, *,
                  subject: str, body: str, priority: int, site_id: str | None,
                  alarm_id: int | None, prompt_id: int | None, due: datetime,
                  group: str | None, link_id: int | None) -> int:
    mid: int = await conn.fetchval(
        "INSERT INTO notify_messages (job_id, alarm_id, prompt_id, site_id, recipient, ref_id,"
        " name, contact_id, channel, address, secret, shown, priority, step, subject, body,"
        " group_key, next_attempt_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,"
        " $12, $13, $14, $15, $16, $17, $18) RETURNING id",
        job["id"], alarm_id, prompt_id, site_id, e.person.recipient, e.person.ref_id,
        e.person.name, e.contact_id, e.channel, box.seal(e.address),
        box.seal(e.secret) if e.secret else None, e.shown, priority, job["step"], subject, body,
        group, due)
    if link_id is not None:
        await link_store.attach(conn, link_id, mid)
    return mid


async def _alarm_job(conn: Conn, box: SecretBox, job: asyncpg.Record, *, secret_key: str,
                     public_url: str, phone_channels: Sequence[str], now: datetime) -> int:
    a = await conn.fetchrow(_ALARM, job["alarm_id"])
    if a is None or a["mode"] != "normal" or a["inhibited_by"]:
        return 0  # test, maintenance, disabled or inhibited: nobody is woken for it
    cls = AlarmClass(a["class"])
    path = tuple(a["path"])
    facts = AlarmFacts(cls, a["priority"], a["site_id"], a["unit_id"], path)
    step = job["step"]
    if job["kind"] == "alarm":
        targets = plan(facts, await policies(conn), now)
        chain = escalation.choose(await chains(conn), cls.value, path)
        if chain is not None:
            factor = await watch_factor(conn, a["site_id"], path, now)
            await conn.execute(
                "INSERT INTO alarm_escalations (alarm_id, chain_id, next_step, next_at)"
                " VALUES ($1, $2, 0, $3) ON CONFLICT (alarm_id) DO NOTHING",
                a["id"], chain.id, escalation.due_at(chain, 0, job["created_at"], factor))
    else:  # an escalation step: its recipients, every channel they have, never held
        row = await conn.fetchrow("SELECT chain_id FROM alarm_escalations WHERE alarm_id = $1",
                                  a["id"])
        chain = next((c for c in await chains(conn) if row and c.id == row["chain_id"]), None)
        if chain is None:
            return 0
        targets = [Target(r, None, now, 0) for r in escalation.recipients(chain, step - 1)]
    unacked = (now - job["created_at"]).total_seconds() if step else None
    seen: set[tuple[str, str]] = set()
    count = 0
    for t in targets:
        for person in await people(conn, a, t.recipient, now):
            for e in await endpoints(conn, box, person, t.channels, phone_channels):
                if (e.channel, e.address) in seen:
                    continue  # one person in two roles, or two roles sharing an address
                seen.add((e.channel, e.address))
                link_id, token = await link_store.create(conn, secret_key, "ack", channel=e.channel,
                                             name=person.name, now=now, alarm_id=a["id"])
                subject, body = compose.alarm(
                    dict(a), link=links.url(public_url, "ack", token), step=step,
                    unacked_s=unacked)
                group, due = None, t.deliver_at
                if t.group_window_s:
                    group, due = group_key(f"{e.channel}:{e.address}", a["site_id"],
                                           max(now, t.deliver_at), t.group_window_s)
                await _insert(conn, box, job, e, subject=subject, body=body,
                              priority=a["priority"], site_id=a["site_id"], alarm_id=a["id"],
                              prompt_id=None, due=due, group=group, link_id=link_id)
                count += 1
    return count


async def _prompt_job(conn: Conn, box: SecretBox, job: asyncpg.Record, *, secret_key: str,
                      public_url: str, phone_channels: Sequence[str], now: datetime) -> int:
    p = await conn.fetchrow("SELECT * FROM work_prompts WHERE id = $1", job["prompt_id"])
    if p is None:
        return 0
    receipts = await conn.fetch(
        "SELECT r.id, r.recipient, r.ref_id, r.name,"
        " CASE r.recipient WHEN 'grid_member' THEN g.phone ELSE u.responsible_phone END AS phone"
        " FROM prompt_receipts r"
        " LEFT JOIN grid_members g ON r.recipient = 'grid_member' AND g.id = r.ref_id"
        " LEFT JOIN units u ON r.recipient = 'unit_responsible' AND u.id = r.ref_id"
        " WHERE r.prompt_id = $1 ORDER BY r.id", p["id"])
    count = 0
    for r in receipts:
        person = Person(r["recipient"], r["recipient"], r["ref_id"], r["name"], r["phone"] or "")
        for e in await endpoints(conn, box, person, None, phone_channels):
            link_id, token = await link_store.create(conn, secret_key, "read", channel=e.channel,
                                         name=person.name, now=now, receipt_id=r["id"])
            subject, body = compose.prompt(p["title"], p["body"],
                                           link=links.url(public_url, "read", token))
            await _insert(conn, box, job, e, subject=subject, body=body, priority=3,
                          site_id=None, alarm_id=None, prompt_id=p["id"], due=now, group=None,
                          link_id=link_id)
            count += 1
    return count


async def resolve_next(conn: Conn, box: SecretBox, *, secret_key: str, public_url: str,
                       phone_channels: Sequence[str], now: datetime) -> Resolved | None:
    """Resolve the oldest pending job into messages, in one transaction; None when none is
    pending. A job that fails is counted and retried; it never blocks the ones behind it."""
    async with conn.transaction():
        job = await conn.fetchrow(
            "SELECT * FROM notify_jobs WHERE done_at IS NULL"
            " AND (retry_at IS NULL OR retry_at <= $1::timestamptz)"
            " ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED", now)
        if job is None:
            return None
        try:
            async with conn.transaction():  # a savepoint: a failed job leaves no half messages
                kw: dict[str, Any] = {"secret_key": secret_key, "public_url": public_url,
                                      "phone_channels": phone_channels, "now": now}
                n = await (_prompt_job(conn, box, job, **kw) if job["kind"] == "prompt"
                           else _alarm_job(conn, box, job, **kw))
        except Exception as exc:  # recorded and retried; never stops the others
            if db.is_transient(exc):
                raise  # the database is going away: the loop backs off, the job stays

            await conn.execute(
                "UPDATE notify_jobs SET attempts = attempts + 1, error = $2,"
                " retry_at = $3::timestamptz + make_interval(secs => least(300, 2 ^ attempts))"
                " WHERE id = $1", job["id"], f"{type(exc).__name__}: {exc}"[:500], now)
            return Resolved(job["id"], -1, 5)
        await conn.execute("UPDATE notify_jobs SET done_at = clock_timestamp(), error = NULL"
                           " WHERE id = $1", job["id"])
        prio = await conn.fetchval("SELECT min(priority) FROM notify_messages WHERE job_id = $1",
                                   job["id"])
        return Resolved(job["id"], n, prio or 5)


# -- delivery ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Claimed:
    ids: list[int]  # the carrier first, then the messages grouped into it
    channel: str
    address: str
    secret: str | None
    subject: str
    body: str
    priority: int
    attempts: int
    created_at: datetime


async def claim(conn: Conn, box: SecretBox, now: datetime, limit: int = 50,
                lease: float = LEASE_S) -> list[Claimed]:
    """Lease due messages (fire first) to the sender for `lease` s; a grouped message takes its
    whole group along and is sent as one."""
    async with conn.transaction():
        rows = await conn.fetch(
            "SELECT * FROM notify_messages WHERE status = 'pending' AND next_attempt_at <= $1"
            " ORDER BY priority, next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED",
            now, limit)
        out: list[Claimed] = []
        taken: set[int] = set()
        for r in rows:
            if r["id"] in taken:
                continue
            members = [r]
            if r["group_key"] is not None:
                members = list(await conn.fetch(
                    "SELECT * FROM notify_messages WHERE status = 'pending' AND group_key = $1"
                    " ORDER BY id FOR UPDATE SKIP LOCKED", r["group_key"])) or [r]
                members = [m for m in members if m["id"] not in taken]
            taken.update(m["id"] for m in members)
            subject, body = r["subject"], r["body"]
            if len(members) > 1:
                subject, body = compose.grouped(r["subject"], [m["body"] for m in members],
                                                len(members))
            out.append(Claimed([m["id"] for m in members], r["channel"], box.open(r["address"]),
                               box.open(r["secret"]) if r["secret"] is not None else None,
                               subject, body, r["priority"], r["attempts"], r["created_at"]))
        if taken:
            await conn.execute(
                "UPDATE notify_messages SET next_attempt_at = $2::timestamptz + make_interval(secs => $3::float8)"
                " WHERE id = ANY($1::bigint[])", list(taken), now, lease)
        return out


async def finish(conn: Conn, c: Claimed, outcome: Outcome, now: datetime) -> str:
    """Record the attempt; end the message (sent or dead) or schedule its retry."""
    attempts = c.attempts + 1
    if outcome.ok:
        result = "sent"
    elif outcome.permanent or attempts >= MAX_ATTEMPTS:
        result = "dead"
    else:
        result = "retry"
    carrier, rest = c.ids[0], c.ids[1:]
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO notify_attempts (message_id, duration_ms, outcome, error)"
            " VALUES ($1, $2, $3, $4)", carrier, outcome.duration_ms, result, outcome.error)
        if result == "retry":
            await conn.execute(
                "UPDATE notify_messages SET attempts = $2, last_error = $3,"
                " next_attempt_at = $4 WHERE id = ANY($1::bigint[])", c.ids, attempts,
                outcome.error, now + timedelta(seconds=retry_delay(c.priority, attempts)))
            return result
        await conn.execute(
            "UPDATE notify_messages SET status = $2, attempts = $3, last_error = $4,"
            " sent_at = CASE WHEN $2::text = 'sent' THEN $5::timestamptz END WHERE id = $1",
            carrier, result, attempts, outcome.error, now)
        if rest:
            await conn.execute(
                "UPDATE notify_messages SET status = CASE WHEN $3::text = 'sent' THEN 'grouped'"
                " ELSE 'dead' END, grouped_into = $2, attempts = $4, last_error = $5,"
                " sent_at = CASE WHEN $3::text = 'sent' THEN $6::timestamptz END"
                " WHERE id = ANY($1::bigint[])", rest, carrier, result, attempts, outcome.error,
                now)
    return result


# -- escalation -------------------------------------------------------------------------------
async def escalate_due(conn: Conn, now: datetime) -> list[tuple[int, int]]:
    """Each escalation due now becomes a job for its step (or stops: acknowledged, closed, a
    non-fire alarm cleared, a mode other than normal). Returns (alarm id, step) sent."""
    sent: list[tuple[int, int]] = []
    async with conn.transaction():
        rows = await conn.fetch(
            "SELECT e.alarm_id, e.chain_id, e.next_step, e.next_at, a.acknowledged_at, a.state,"
            " a.class, a.mode, a.site_id, coalesce(j.path, '{}') AS path,"
            " (SELECT min(created_at) FROM notify_jobs WHERE alarm_id = e.alarm_id"
            "  AND kind = 'alarm') AS base_at"
            " FROM alarm_escalations e JOIN alarms a ON a.id = e.alarm_id"
            " LEFT JOIN sites s ON s.id = a.site_id"
            " LEFT JOIN jurisdictions j ON j.id = s.jurisdiction_id"
            " WHERE e.stopped_at IS NULL AND e.next_at <= $1"
            " ORDER BY e.next_at LIMIT 200 FOR UPDATE OF e SKIP LOCKED", now)
        if not rows:
            return sent
        by_id = {c.id: c for c in await chains(conn)}
        for r in rows:
            reason = None
            if r["acknowledged_at"] is not None:
                reason = "acknowledged"
            elif r["state"] == "closed":
                reason = "closed"
            elif r["mode"] != "normal":
                reason = f"mode {r['mode']}"
            elif r["class"] != "fire" and r["state"] in ("cleared_unack", "cleared"):
                reason = "cleared"
            chain = by_id.get(r["chain_id"])
            if chain is None and reason is None:
                reason = "chain removed or disabled"
            if reason is not None or chain is None:
                await conn.execute("UPDATE alarm_escalations SET stopped_at = $2,"
                                   " stopped_reason = $3 WHERE alarm_id = $1", r["alarm_id"],
                                   now, reason)
                continue
            step = r["next_step"]
            await conn.execute(
                "INSERT INTO notify_jobs (kind, alarm_id, step, created_at)"
                " VALUES ('escalation', $1, $2, $3)", r["alarm_id"], step + 1,
                r["base_at"] or now)
            factor = await watch_factor(conn, r["site_id"], list(r["path"]), now)
            nxt, at = escalation.after_step(chain, step, r["base_at"] or now, now, factor)
            await conn.execute("UPDATE alarm_escalations SET next_step = $2, next_at = $3"
                               " WHERE alarm_id = $1", r["alarm_id"], nxt, at)
            sent.append((r["alarm_id"], step + 1))
    return sent


async def stop_escalation(conn: Conn, alarm_id: int, reason: str, now: datetime) -> None:
    await conn.execute("UPDATE alarm_escalations SET stopped_at = $2, stopped_reason = $3"
                       " WHERE alarm_id = $1 AND stopped_at IS NULL", alarm_id, now, reason)


async def depth(conn: Conn, now: datetime) -> tuple[int, int]:
    """(messages pending, messages dead in the last 24 h) for the metrics."""
    row = await conn.fetchrow(
        "SELECT (SELECT count(*) FROM notify_messages WHERE status = 'pending') AS pending,"
        " (SELECT count(*) FROM notify_messages WHERE status = 'dead'"
        "  AND created_at > $1::timestamptz - interval '24 hours') AS dead", now)
    assert row is not None
    return int(row["pending"]), int(row["dead"])
