"""Heightened watch (重大活动 / 节日安保) and work prompts (工作提示)
(docs/notifications.md, "Heightened watch", "Work prompts").

A watch window lays tighter settings (firetower/watch.py) over a jurisdiction subtree or a list
of sites for at most 31 days; the rule engine reloads on the NOTIFY its writer sends. A work
prompt goes to the responsible person of every unit with a site in a subtree and to every grid
member of it, each with a read receipt. Writes go through notify/watch_store.py.

Scope (org/scope.py): a scoped caller sees a window that covers one of its sites (or lies on
its own node), a prompt of its own subtree or of a node above its sites, and of a prompt's
receipts those of the units and grid members it sees; anything else answers 404. A scoped
manager opens windows and sends prompts only in its own subtree (or on sites it sees).

- `GET|POST /watch/windows`, `GET /watch/windows/{id}`, `POST /watch/windows/{id}/cancel`;
- `GET /watch/board`: the active windows with their sites, open alarms by class, offline
  devices and prompts (read progress); the upcoming ones;
- `GET|POST /watch/prompts`, `GET /watch/prompts/{id}`, `POST /watch/prompts/{id}/read`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Path, Query, status

from api.deps import PoolDep, Principal, actor, require
from api.duty_schemas import (
    BoardWindow,
    PromptCreate,
    PromptDetail,
    PromptPublic,
    PromptsPublic,
    ReceiptPublic,
    WatchBoard,
    WindowCreate,
    WindowPublic,
    WindowsPublic,
    WindowState,
)
from api.errors import Conflict, NotFound, refusals
from api.permissions import Permission, Role
from api.routes.duty import own_nodes
from api.schemas import MAX_ID
from notify import watch_store as store
from org.scope import visible_ids, visible_nodes

router = APIRouter(tags=["heightened watch"])
Reader = Annotated[Principal, require(Permission.WATCH_READ)]
Manager = Annotated[Principal, require(Permission.WATCH_MANAGE)]
Receiver = Annotated[Principal, require(Permission.PROMPT_RECEIPT)]
WindowId = Annotated[int, Path(ge=1, le=MAX_ID)]
PromptId = Annotated[int, Path(ge=1, le=MAX_ID)]
Limit = Annotated[int, Query(ge=1, le=1000)]
CONSOLE = "console"  # read_via of a reading confirmed in the console


@dataclass(frozen=True, slots=True)
class _Reach:
    """What a caller reaches (None: everything): its sites, jurisdiction nodes, units and grid
    members (org/scope.py)."""

    sites: frozenset[str] | None
    nodes: frozenset[int] | None
    own: frozenset[int]           # its own subtree (a caller attached to a node)
    units: frozenset[int] | None
    members: frozenset[int] | None

    def sees_window(self, w: Any) -> bool:
        if self.sites is None:
            return True
        return bool(self.sites.intersection(w["covered"])) or (
            w["jurisdiction_id"] is not None and self.nodes is not None
            and w["jurisdiction_id"] in self.nodes and not w["covered"])

    def holds(self, jurisdiction_id: int | None, covered: Sequence[str]) -> bool:
        """Whether it is all the caller's: a node of its own subtree, or sites it all sees."""
        if self.sites is None:
            return True
        if jurisdiction_id is not None:
            return jurisdiction_id in self.own
        return set(covered) <= self.sites

    def sees_node(self, jurisdiction_id: int) -> bool:
        return self.nodes is None or jurisdiction_id in self.nodes

    def sees_receipt(self, r: Any) -> bool:
        if self.sites is None:
            return True
        ids = self.units if r["recipient"] == "unit_responsible" else self.members
        return ids is None or r["ref_id"] in ids

    def covered(self, sites: Sequence[str]) -> list[str]:
        return list(sites) if self.sites is None else [s for s in sites if s in self.sites]


async def _reach(pool: asyncpg.Pool, user: Principal) -> _Reach:
    if user.site_ids is None:
        return _Reach(None, None, frozenset(), None, None)
    return _Reach(user.site_ids, await visible_nodes(pool, user.scope, user.site_ids),
                  await own_nodes(pool, user), await visible_ids(pool, "unit", user.scope, user.site_ids),
                  await visible_ids(pool, "grid_member", user.scope, user.site_ids))


# -- windows ----------------------------------------------------------------------------------
_WINDOWS_SQL = """
SELECT w.*, j.name AS jurisdiction_name,
       ARRAY(SELECT s.id FROM sites s WHERE s.id = ANY(w.site_ids) OR s.jurisdiction_id IN (
             SELECT x.id FROM jurisdictions x WHERE x.path @> ARRAY[w.jurisdiction_id]))
         AS covered,
       CASE WHEN least(w.ends_at, w.cancelled_at) <= $1 THEN 'ended'
            WHEN w.starts_at <= $1 THEN 'active' ELSE 'upcoming' END AS state
FROM watch_windows w LEFT JOIN jurisdictions j ON j.id = w.jurisdiction_id"""


def _window(w: Any, reach: _Reach) -> WindowPublic:
    fields = {k: w[k] for k in WindowPublic.model_fields if k != "sites"}
    return WindowPublic(**fields, sites=len(reach.covered(w["covered"])))


async def _load_window(pool: asyncpg.Pool, reach: _Reach, window_id: int,
                       now: datetime) -> Any:
    row = await pool.fetchrow(_WINDOWS_SQL + " WHERE w.id = $2", now, window_id)
    if row is None or not reach.sees_window(row):
        raise NotFound("watch window not found")
    return row


@router.get("/watch/windows", response_model=WindowsPublic)
async def list_windows(user: Reader, pool: PoolDep, state: WindowState | None = None,
                       limit: Limit = 200) -> WindowsPublic:
    """The windows the caller sees: active, upcoming, then ended (newest first); `state`
    filters (a window cancelled before its start is ended)."""
    now = datetime.now(UTC)
    rows = await pool.fetch(
        f"SELECT * FROM ({_WINDOWS_SQL}) v WHERE ($2::text IS NULL OR v.state = $2)"
        " ORDER BY array_position(ARRAY['active', 'upcoming', 'ended'], v.state),"
        " CASE WHEN v.state = 'ended' THEN NULL ELSE v.starts_at END,"
        " v.ends_at DESC, v.id DESC", now, state)
    reach = await _reach(pool, user)
    data = [_window(r, reach) for r in rows if reach.sees_window(r)][:limit]
    return WindowsPublic(data=data, count=len(data))


@router.post("/watch/windows", response_model=WindowPublic,
             status_code=status.HTTP_201_CREATED)
async def open_window(body: WindowCreate, user: Manager, pool: PoolDep) -> WindowPublic:
    """Open a window over a jurisdiction subtree or a list of sites: `settings` as
    firetower/watch.py takes them (refused with the reason: 422), ending after it starts,
    lasting at most 31 days, not entirely past. Written with its audit row and the NOTIFY
    the rule engine reloads on."""
    reach = await _reach(pool, user)
    if reach.sites is not None:
        if body.site_ids is not None:
            for site in body.site_ids:
                if site not in reach.sites:
                    raise NotFound(f"site {site} not found")
        elif not reach.holds(body.jurisdiction_id, []):
            raise NotFound("jurisdiction not found")
    async with refusals(), pool.acquire() as conn:
        wid = await store.open_window(
            conn, actor(user), name=body.name, reason=body.reason, starts_at=body.starts_at,
            ends_at=body.ends_at, jurisdiction_id=body.jurisdiction_id, site_ids=body.site_ids,
            settings=body.settings)
    return _window(await _load_window(pool, reach, wid, datetime.now(UTC)), reach)


@router.get("/watch/windows/{window_id}", response_model=WindowPublic)
async def get_window(window_id: WindowId, user: Reader, pool: PoolDep) -> WindowPublic:
    reach = await _reach(pool, user)
    return _window(await _load_window(pool, reach, window_id, datetime.now(UTC)), reach)


@router.post("/watch/windows/{window_id}/cancel", response_model=WindowPublic)
async def cancel_window(window_id: WindowId, user: Manager, pool: PoolDep) -> WindowPublic:
    """End the window now (one not yet started never starts): audit row and NOTIFY. Refused
    (409) when already cancelled or ended, or when it covers sites beyond the caller's."""
    reach = await _reach(pool, user)
    row = await _load_window(pool, reach, window_id, datetime.now(UTC))
    if not reach.holds(row["jurisdiction_id"], row["covered"]):
        raise Conflict("this watch window covers sites beyond yours: a manager who sees them "
                       "all cancels it")
    async with refusals(), pool.acquire() as conn:
        await store.cancel_window(conn, actor(user), window_id)
    return _window(await _load_window(pool, reach, window_id, datetime.now(UTC)), reach)


# -- prompts ----------------------------------------------------------------------------------
_PROMPTS_SQL = """
SELECT p.*, j.name AS jurisdiction_name FROM work_prompts p
LEFT JOIN jurisdictions j ON j.id = p.jurisdiction_id"""


async def _receipts(pool: asyncpg.Pool, reach: _Reach,
                    prompt_ids: list[int]) -> dict[int, list[Any]]:
    rows = await pool.fetch("SELECT * FROM prompt_receipts WHERE prompt_id = ANY($1::bigint[])"
                            " ORDER BY prompt_id, recipient DESC, name, id", prompt_ids)
    out: dict[int, list[Any]] = {p: [] for p in prompt_ids}
    for r in rows:
        if reach.sees_receipt(r):
            out[r["prompt_id"]].append(r)
    return out


def _prompt(p: Any, receipts: list[Any]) -> dict[str, Any]:
    fields = {k: p[k] for k in ("id", "title", "body", "jurisdiction_id", "jurisdiction_name",
                                "watch_id", "created_by", "created_at")}
    read, total = store.receipt_progress(receipts)
    return {**fields, "receipts_read": read, "receipts_total": total}


async def _prompt_detail(pool: asyncpg.Pool, reach: _Reach, prompt_id: int) -> PromptDetail:
    p = await pool.fetchrow(_PROMPTS_SQL + " WHERE p.id = $1", prompt_id)
    if p is None or not reach.sees_node(p["jurisdiction_id"]):
        raise NotFound("work prompt not found")
    receipts = (await _receipts(pool, reach, [prompt_id]))[prompt_id]
    return PromptDetail(**_prompt(p, receipts), receipts=[
        ReceiptPublic(**{k: r[k] for k in ReceiptPublic.model_fields}) for r in receipts])


async def _prompts(pool: asyncpg.Pool, reach: _Reach, watch_ids: list[int] | None,
                   limit: int) -> list[PromptPublic]:
    rows = await pool.fetch(
        _PROMPTS_SQL + " WHERE ($1::bigint[] IS NULL OR p.watch_id = ANY($1))"
        " ORDER BY p.created_at DESC, p.id DESC", watch_ids)
    rows = [r for r in rows if reach.sees_node(r["jurisdiction_id"])][:limit]
    receipts = await _receipts(pool, reach, [r["id"] for r in rows])
    return [PromptPublic(**_prompt(r, receipts[r["id"]])) for r in rows]


@router.get("/watch/prompts", response_model=PromptsPublic)
async def list_prompts(user: Reader, pool: PoolDep, watch_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID)] = None, limit: Limit = 200) -> PromptsPublic:
    """The prompts the caller sees, newest first, with their read progress (of the
    receipts the caller sees)."""
    data = await _prompts(pool, await _reach(pool, user),
                          None if watch_id is None else [watch_id], limit)
    return PromptsPublic(data=data, count=len(data))


@router.post("/watch/prompts", response_model=PromptDetail, status_code=status.HTTP_201_CREATED)
async def send_prompt(body: PromptCreate, user: Manager, pool: PoolDep) -> PromptDetail:
    """Send a prompt to a jurisdiction subtree: one receipt per unit responsible person (units
    with a site in it) and per grid member of its grids; the notifier sends it."""
    reach = await _reach(pool, user)
    if not reach.holds(body.jurisdiction_id, []):
        raise NotFound("jurisdiction not found")
    if body.watch_id is not None:
        await _load_window(pool, reach, body.watch_id, datetime.now(UTC))
    async with refusals(), pool.acquire() as conn:
        pid = await store.send_prompt(conn, actor(user), title=body.title, body=body.body,
                                      jurisdiction_id=body.jurisdiction_id,
                                      watch_id=body.watch_id)
    return await _prompt_detail(pool, reach, pid)


@router.get("/watch/prompts/{prompt_id}", response_model=PromptDetail)
async def get_prompt(prompt_id: PromptId, user: Reader, pool: PoolDep) -> PromptDetail:
    """A prompt with its receipts (who read it, when, how)."""
    return await _prompt_detail(pool, await _reach(pool, user), prompt_id)


_MINE_SQL = """
SELECT r.id, r.read_at, r.read_via FROM prompt_receipts r
WHERE r.prompt_id = $1 AND (
    (r.recipient = 'grid_member' AND $2 AND r.ref_id IN (
        SELECT m.id FROM grid_members m WHERE m.user_id = $3))
 OR (r.recipient = 'unit_responsible' AND r.ref_id = $4))
ORDER BY r.id"""


@router.post("/watch/prompts/{prompt_id}/read", response_model=PromptDetail)
async def confirm_read(prompt_id: PromptId, user: Receiver, pool: PoolDep) -> PromptDetail:
    """The caller confirms reading the prompt (read_via 'console'): a grid member the receipt
    of its grid-member record, a site manager attached to a unit the unit's receipt. Not a
    recipient: 404; already confirmed: 409."""
    reach = await _reach(pool, user)
    await _prompt_detail(pool, reach, prompt_id)  # 404 unless the caller sees it
    unit = user.scope.id if user.role is Role.SITE_MANAGER and user.scope.kind == "unit" else 0
    mine = await pool.fetch(_MINE_SQL, prompt_id, user.role is Role.GRID_MEMBER, user.id, unit)
    if not mine:
        raise NotFound("this prompt has no receipt of yours: it goes to the units' responsible "
                       "persons and the grid members, each confirming their own")
    unread = [r["id"] for r in mine if r["read_at"] is None]
    if not unread:
        first = min(mine, key=lambda r: r["read_at"])
        raise Conflict(f"already confirmed at {first['read_at'].isoformat()} "
                       f"(via {first['read_via']})")
    async with pool.acquire() as conn:
        for rid in unread:
            await store.confirm_receipt(conn, rid, CONSOLE)
    return await _prompt_detail(pool, reach, prompt_id)


# -- the board --------------------------------------------------------------------------------
@router.get("/watch/board", response_model=WatchBoard)
async def board(user: Reader, pool: PoolDep) -> WatchBoard:
    """The active windows, each with its covered sites, the alarms on the board in them by
    class, its offline devices and its prompts with their read progress; then the upcoming
    windows. Counted over the sites the caller sees."""
    now = datetime.now(UTC)
    reach = await _reach(pool, user)
    rows = await pool.fetch(f"SELECT * FROM ({_WINDOWS_SQL}) v WHERE v.state <> 'ended'"
                            " ORDER BY v.starts_at, v.id", now)
    rows = [r for r in rows if reach.sees_window(r)]
    active = [r for r in rows if r["state"] == "active"]
    prompts = await _prompts(pool, reach, [r["id"] for r in active], 1000)
    data: list[BoardWindow] = []
    for w in active:
        sites = reach.covered(w["covered"])
        by_class = {r["class"]: r["n"] for r in await pool.fetch(
            "SELECT class, count(*) AS n FROM alarms WHERE state <> 'closed'"
            " AND site_id = ANY($1::text[]) GROUP BY class", sites)}
        offline = await pool.fetchval(
            "SELECT count(*) FROM devices WHERE site_id = ANY($1::text[]) AND online = false"
            " AND lifecycle <> 'decommissioned'", sites)
        data.append(BoardWindow(window=_window(w, reach), sites=len(sites),
                                open_alarms=sum(by_class.values()), alarms_by_class=by_class,
                                offline_devices=offline,
                                prompts=[p for p in prompts if p.watch_id == w["id"]]))
    upcoming = [_window(r, reach) for r in rows if r["state"] == "upcoming"]
    return WatchBoard(at=now, data=data, count=len(data), upcoming=upcoming)
