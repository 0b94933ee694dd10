"""The one writer of the organisation tables, and of the audit log beside every change.

Every write runs in one transaction with its audit row (who, when, before, after), so a change
without its record cannot exist. Tree changes take a lock on `jurisdictions` first, so that two
concurrent moves cannot build a cycle between them; the placement rules are org/tree.py's.
Errors are `OrgError`s with the status a caller should answer (404, 409, 422) and a reason.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from org.codes import CodeError, admin_level, normalize_uscc
from org.tree import Node, TreeError, check_placement, subtree

# a connection, or one borrowed from a pool
Conn = asyncpg.Connection | PoolConnectionProxy


class OrgError(ValueError):
    status = 422


class OrgNotFound(OrgError):
    status = 404


class OrgConflict(OrgError):
    status = 409


@dataclass(frozen=True)
class Actor:
    """Who makes a change (the audit log's `actor_id`, `actor_name`)."""

    id: int | None
    name: str


@dataclass(frozen=True)
class Entity:
    table: str
    columns: tuple[str, ...]   # writable columns, in order
    code: str | None = None    # the unique natural key (import key), if any


ENTITIES: dict[str, Entity] = {
    "department": Entity("departments", ("code", "name", "industries"), "code"),
    "unit": Entity("units", ("credit_code", "name", "industry", "department_id", "risk_class",
                             "nine_small", "responsible_name", "responsible_phone",
                             "manager_name", "manager_phone", "address", "grid_id"),
                   "credit_code"),
    "company": Entity("maintenance_companies", ("credit_code", "name", "licence_no",
                                                "licence_level", "licence_valid_until", "phone",
                                                "address"), "credit_code"),
    "contract": Entity("contracts", ("company_id", "site_id", "starts_on", "ends_on", "scope")),
    "grid_member": Entity("grid_members", ("grid_id", "name", "phone", "user_id")),
}
_JURISDICTION_COLS = ("code", "name", "level", "parent_id", "boundary", "center_lat",
                      "center_lon")
STAMPS_UPDATED_AT = {"units", "maintenance_companies", "jurisdictions"}


def jsonable(row: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A row as plain JSON values (dates and times as ISO strings). Connections carry the
    centre's JSON codec (firetower.db), which encodes it for the jsonb column."""
    if row is None:
        return None
    out: dict[str, Any] = json.loads(json.dumps(dict(row), default=str))
    return out


async def audit(conn: Conn, actor: Actor, action: str, entity: str,
                entity_id: object, before: Mapping[str, Any] | None,
                after: Mapping[str, Any] | None) -> None:
    await conn.execute(
        "INSERT INTO audit_log (actor_id, actor_name, action, entity, entity_id, before, after) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7)", actor.id, actor.name, action,
        entity, str(entity_id), jsonable(before), jsonable(after))


def _check_codes(kind: str, values: dict[str, Any]) -> dict[str, Any]:
    if kind in ("unit", "company") and values.get("credit_code") is not None:
        try:
            values["credit_code"] = normalize_uscc(values["credit_code"])
        except CodeError as exc:
            raise OrgError(f"credit_code: {exc}") from None
    return values


def translate(exc: asyncpg.PostgresError, what: str) -> OrgError:
    """The database's refusals, as the caller's errors with a reason in words."""
    if isinstance(exc, asyncpg.UniqueViolationError):
        return OrgConflict(f"{what}: {exc.detail or 'already exists'}")
    if isinstance(exc, asyncpg.ExclusionViolationError):
        return OrgConflict(f"{what}: overlaps an existing contract for the same site "
                           f"({exc.detail or ''})".rstrip(" ()"))
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        if "is still referenced" in (exc.detail or ""):
            return OrgConflict(f"{what} is still in use: {exc.detail}")
        return OrgError(f"{what}: {exc.detail or 'refers to something that does not exist'}")
    if isinstance(exc, asyncpg.CheckViolationError):
        return OrgError(f"{what}: a value is out of range ({exc.constraint_name})")
    raise exc


async def _check_grid(conn: Conn, kind: str, values: dict[str, Any]) -> None:
    """A grid member works in a grid: a leaf of the tree, not a township."""
    if kind == "grid_member" and "grid_id" in values:
        level = await conn.fetchval("SELECT level FROM jurisdictions WHERE id = $1",
                                    values["grid_id"])
        if level is None:
            raise OrgError(f"grid_id: jurisdiction {values['grid_id']} does not exist")
        if level != "grid":
            raise OrgError(f"grid_id: jurisdiction {values['grid_id']} is a {level}, not a grid")


async def _checked(conn: Conn, kind: str,
                   values: dict[str, Any]) -> tuple[Entity, dict[str, Any], list[str]]:
    """The entity, its values with codes normalised, and the columns given; the checks that
    need no transaction (credit codes, a grid member's grid) done."""
    ent = ENTITIES[kind]
    values = _check_codes(kind, dict(values))
    await _check_grid(conn, kind, values)
    return ent, values, [c for c in ent.columns if c in values]


async def create(conn: Conn, actor: Actor, kind: str,
                 values: dict[str, Any]) -> dict[str, Any]:
    ent, values, cols = await _checked(conn, kind, values)
    async with conn.transaction():
        try:
            row = await conn.fetchrow(
                f"INSERT INTO {ent.table} ({', '.join(cols)}) VALUES "
                f"({', '.join(f'${i + 1}' for i in range(len(cols)))}) RETURNING *",
                *[values[c] for c in cols])
        except asyncpg.PostgresError as exc:
            raise translate(exc, kind) from None
        assert row is not None
        out = dict(row)
        await audit(conn, actor, "create", kind, out["id"], None, out)
    return out


async def update(conn: Conn, actor: Actor, kind: str, id_: int,
                 values: dict[str, Any]) -> dict[str, Any]:
    ent, values, cols = await _checked(conn, kind, values)
    async with conn.transaction():
        before = await conn.fetchrow(f"SELECT * FROM {ent.table} WHERE id = $1 FOR UPDATE", id_)
        if before is None:
            raise OrgNotFound(f"{kind} not found")
        if not cols:
            return dict(before)
        sets = [f"{c} = ${i + 2}" for i, c in enumerate(cols)]
        if ent.table in STAMPS_UPDATED_AT:
            sets.append("updated_at = now()")
        try:
            row = await conn.fetchrow(
                f"UPDATE {ent.table} SET {', '.join(sets)} WHERE id = $1 RETURNING *",
                id_, *[values[c] for c in cols])
        except asyncpg.PostgresError as exc:
            raise translate(exc, kind) from None
        assert row is not None
        out = dict(row)
        await audit(conn, actor, "update", kind, id_, dict(before), out)
    return out


async def delete(conn: Conn, actor: Actor, kind: str, id_: int) -> None:
    ent = ENTITIES[kind]
    async with conn.transaction():
        before = await conn.fetchrow(f"SELECT * FROM {ent.table} WHERE id = $1 FOR UPDATE", id_)
        if before is None:
            raise OrgNotFound(f"{kind} not found")
        try:
            await conn.execute(f"DELETE FROM {ent.table} WHERE id = $1", id_)
        except asyncpg.PostgresError as exc:
            raise translate(exc, kind) from None
        await audit(conn, actor, "delete", kind, id_, dict(before), None)


# -- the jurisdiction tree -------------------------------------------------------------------

async def load_tree(conn: Conn) -> dict[int, Node]:
    await conn.execute("LOCK TABLE jurisdictions IN SHARE ROW EXCLUSIVE MODE")
    rows = await conn.fetch("SELECT id, parent_id, level, code FROM jurisdictions")
    return {r["id"]: Node(r["id"], r["parent_id"], r["level"], admin_code(r["code"], r["level"]))
            for r in rows}


def admin_code(code: str, level: str) -> str | None:
    """A node's code counts as an administrative division code when it reads as one."""
    if level == "grid" or not code.isdigit():
        return None
    try:
        admin_level(code)
    except CodeError:
        return None
    return code


def checked_boundary(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    from geojson_pydantic import MultiPolygon, Polygon
    from pydantic import ValidationError

    kind = value.get("type") if isinstance(value, dict) else None
    models: dict[str, type[Polygon] | type[MultiPolygon]] = {"Polygon": Polygon,
                                                             "MultiPolygon": MultiPolygon}
    model = models.get(kind or "")
    if model is None:
        raise OrgError("boundary: a GeoJSON Polygon or MultiPolygon is required")
    try:
        model.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise OrgError(f"boundary: not valid GeoJSON ({where}: {first['msg']})") from None
    return dict(value)


async def _placed(conn: Conn, tree: dict[int, Node], node: Node) -> None:
    try:
        check_placement(tree, node)
    except TreeError as exc:
        raise OrgError(str(exc)) from None


async def create_jurisdiction(conn: Conn, actor: Actor,
                              values: dict[str, Any]) -> dict[str, Any]:
    async with conn.transaction():
        tree = await load_tree(conn)
        new_id = await conn.fetchval("SELECT nextval('jurisdictions_id_seq')")
        node = Node(new_id, values.get("parent_id"), values["level"],
                    admin_code(values["code"], values["level"]))
        await _placed(conn, tree, node)
        parent_path = [] if node.parent_id is None else list(
            await conn.fetchval("SELECT path FROM jurisdictions WHERE id = $1", node.parent_id))
        try:
            row = await conn.fetchrow(
                "INSERT INTO jurisdictions (id, code, name, level, parent_id, path, boundary, "
                "center_lat, center_lon) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9) "
                "RETURNING *", new_id, values["code"], values["name"], values["level"],
                node.parent_id, [*parent_path, new_id], checked_boundary(values.get("boundary")),
                values.get("center_lat"), values.get("center_lon"))
        except asyncpg.PostgresError as exc:
            raise translate(exc, "jurisdiction") from None
        assert row is not None
        out = dict(row)
        await audit(conn, actor, "create", "jurisdiction", new_id, None, out)
    return out


async def update_jurisdiction(conn: Conn, actor: Actor, id_: int,
                              values: dict[str, Any]) -> dict[str, Any]:
    """Change any of code, name, level, parent (a move: the subtree follows), boundary and
    centre; the placement rules hold for the node and for its children."""
    async with conn.transaction():
        tree = await load_tree(conn)
        before = await conn.fetchrow("SELECT * FROM jurisdictions WHERE id = $1", id_)
        if before is None:
            raise OrgNotFound("jurisdiction not found")
        merged = {c: before[c] for c in _JURISDICTION_COLS}
        merged.update({c: v for c, v in values.items() if c in _JURISDICTION_COLS})
        if "boundary" in values:
            merged["boundary"] = checked_boundary(values["boundary"])
        node = Node(id_, merged["parent_id"], merged["level"],
                    admin_code(merged["code"], merged["level"]))
        await _placed(conn, tree, node)
        try:
            row = await conn.fetchrow(
                "UPDATE jurisdictions SET code = $2, name = $3, level = $4, parent_id = $5, "
                "boundary = $6::jsonb, center_lat = $7, center_lon = $8, updated_at = now() "
                "WHERE id = $1 RETURNING *", id_, merged["code"], merged["name"],
                merged["level"], merged["parent_id"], merged["boundary"], merged["center_lat"],
                merged["center_lon"])
        except asyncpg.PostgresError as exc:
            raise translate(exc, "jurisdiction") from None
        if merged["parent_id"] != before["parent_id"]:
            new_prefix = [] if merged["parent_id"] is None else list(await conn.fetchval(
                "SELECT path FROM jurisdictions WHERE id = $1", merged["parent_id"]))
            old_len = len(before["path"])
            # every node of the subtree: the new prefix, then its path from the moved node on
            await conn.execute(
                "UPDATE jurisdictions SET path = $2::bigint[] || path[$3:] "
                "WHERE path @> ARRAY[$1]::bigint[]", id_, new_prefix, old_len)
            row = await conn.fetchrow("SELECT * FROM jurisdictions WHERE id = $1", id_)
        assert row is not None
        out = dict(row)
        action = "move" if merged["parent_id"] != before["parent_id"] else "update"
        await audit(conn, actor, action, "jurisdiction", id_, dict(before), out)
    return out


async def delete_jurisdiction(conn: Conn, actor: Actor, id_: int) -> None:
    """Refused (409) while the node has children, sites or units: say which."""
    async with conn.transaction():
        tree = await load_tree(conn)
        if id_ not in tree:
            raise OrgNotFound("jurisdiction not found")
        children = len(subtree(tree, id_)) - 1
        sites = await conn.fetchval("SELECT count(*) FROM sites WHERE jurisdiction_id = $1", id_)
        units = await conn.fetchval("SELECT count(*) FROM units WHERE grid_id = $1", id_)
        if children or sites or units:
            held = ", ".join(f"{n} {what}" for n, what in
                             ((children, "nodes below it"), (sites, "sites"), (units, "units"))
                             if n)
            raise OrgConflict(f"jurisdiction still owns {held}: move or delete them first")
        before = await conn.fetchrow("SELECT * FROM jurisdictions WHERE id = $1", id_)
        await conn.execute("DELETE FROM jurisdictions WHERE id = $1", id_)
        await audit(conn, actor, "delete", "jurisdiction", id_, dict(before or {}), None)


async def place_site(conn: Conn, actor: Actor, site_id: str, *,
                     unit_id: int | None, jurisdiction_id: int | None) -> dict[str, Any]:
    """Set the unit a site belongs to and the jurisdiction it lies in."""
    async with conn.transaction():
        before = await conn.fetchrow(
            "SELECT id, unit_id, jurisdiction_id FROM sites WHERE id = $1 FOR UPDATE", site_id)
        if before is None:
            raise OrgNotFound("site not found")
        try:
            row = await conn.fetchrow(
                "UPDATE sites SET unit_id = $2, jurisdiction_id = $3, jurisdiction = "
                "(SELECT code FROM jurisdictions WHERE id = $3) WHERE id = $1 "
                "RETURNING id, unit_id, jurisdiction_id", site_id, unit_id, jurisdiction_id)
        except asyncpg.PostgresError as exc:
            raise translate(exc, "site") from None
        assert row is not None
        out = dict(row)
        await audit(conn, actor, "update", "site", site_id, dict(before), out)
    return out
