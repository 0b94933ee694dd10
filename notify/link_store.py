"""The one writer of `notify_links`: the signed one-time links that acknowledge an alarm or
confirm reading a prompt (the tokens themselves: notify/links.py). Links are created with the
messages that carry them (notify/outbox.py) and used by the public link routes."""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from firetower.refusal import Conn
from notify import links

LINK_TTL = timedelta(hours=24)


async def create(conn: Conn, secret_key: str, purpose: str, *, channel: str, name: str,
                 now: datetime, alarm_id: int | None = None,
                 receipt_id: int | None = None) -> tuple[int, str]:
    """A new one-time link (its row and its token); the message it rides in is set later."""
    link_id = await conn.fetchval("SELECT nextval('notify_links_id_seq')")
    token = links.make(secret_key, purpose, link_id)
    await conn.execute(
        "INSERT INTO notify_links (id, purpose, token_hash, alarm_id, receipt_id, channel, name,"
        " expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)", link_id, purpose,
        links.token_hash(token), alarm_id, receipt_id, channel, name, now + LINK_TTL)
    return link_id, token


async def attach(conn: Conn, link_id: int, message_id: int) -> None:
    """The message the link rides in (written in the same transaction as both)."""
    await conn.execute("UPDATE notify_links SET message_id = $2 WHERE id = $1", link_id,
                       message_id)


class LinkRefused(ValueError):
    def __init__(self, message: str, status: int = 404) -> None:
        super().__init__(message)
        self.status = status


async def use_link(conn: Conn, v: links.Verified, purpose: str, now: datetime) -> asyncpg.Record:
    """Mark a verified link used (in the caller's transaction) and return it: once only, and
    before it expires."""
    row = await conn.fetchrow(
        "SELECT * FROM notify_links WHERE id = $1 AND token_hash = $2 AND purpose = $3"
        " FOR UPDATE", v.link_id, v.hash, purpose)
    if row is None:
        raise LinkRefused("no such link")
    if row["used_at"] is not None:
        raise LinkRefused(f"this link was used already, at {row['used_at']:%Y-%m-%d %H:%M:%S}",
                          409)
    if row["expires_at"] <= now:
        raise LinkRefused("this link has expired", 410)
    await conn.execute("UPDATE notify_links SET used_at = $2 WHERE id = $1", row["id"], now)
    return row


async def peek_link(conn: Conn, v: links.Verified, purpose: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT l.*, a.class, a.state, a.site_id, a.raised_at, a.acknowledged_at,"
        " a.acknowledged_by FROM notify_links l LEFT JOIN alarms a ON a.id = l.alarm_id"
        " WHERE l.id = $1 AND l.token_hash = $2 AND l.purpose = $3", v.link_id, v.hash, purpose)
