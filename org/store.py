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
from org.importing import Problem
from org.tree import Node, TreeError, all_paths, check_nodes, check_placement, subtree

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
_UPDATED_AT = {"units", "maintenance_companies", "jurisdictions"}


def _jsonable(row: Mapping[str, Any] | None) -> dict[str, Any] | None:
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
        entity, str(entity_id), _jsonable(before), _jsonable(after))


def _check_codes(kind: str, values: dict[str, Any]) -> dict[str, Any]:
    if kind in ("unit", "company") and values.get("credit_code") is not None:
        try:
            values["credit_code"] = normalize_uscc(values["credit_code"])
        except CodeError as exc:
            raise OrgError(f"credit_code: {exc}") from None
    return values


def _translate(exc: asyncpg.PostgresError, what: str) -> OrgError:
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
            raise _translate(exc, kind) from None
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
        if ent.table in _UPDATED_AT:
            sets.append("updated_at = now()")
        try:
            row = await conn.fetchrow(
                f"UPDATE {ent.table} SET {', '.join(sets)} WHERE id = $1 RETURNING *",
                id_, *[values[c] for c in cols])
        except asyncpg.PostgresError as exc:
            raise _translate(exc, kind) from None
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
            raise _translate(exc, kind) from None
        await audit(conn, actor, "delete", kind, id_, dict(before), None)


# -- the jurisdiction tree -------------------------------------------------------------------

async def _tree(conn: Conn) -> dict[int, Node]:
    await conn.execute("LOCK TABLE jurisdictions IN SHARE ROW EXCLUSIVE MODE")
    rows = await conn.fetch("SELECT id, parent_id, level, code FROM jurisdictions")
    return {r["id"]: Node(r["id"], r["parent_id"], r["level"], _admin_code(r["code"], r["level"]))
            for r in rows}


def _admin_code(code: str, level: str) -> str | None:
    """A node's code counts as an administrative division code when it reads as one."""
    if level == "grid" or not code.isdigit():
        return None
    try:
        admin_level(code)
    except CodeError:
        return None
    return code


def _boundary(value: Any) -> dict[str, Any] | None:
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
        tree = await _tree(conn)
        new_id = await conn.fetchval("SELECT nextval('jurisdictions_id_seq')")
        node = Node(new_id, values.get("parent_id"), values["level"],
                    _admin_code(values["code"], values["level"]))
        await _placed(conn, tree, node)
        parent_path = [] if node.parent_id is None else list(
            await conn.fetchval("SELECT path FROM jurisdictions WHERE id = $1", node.parent_id))
        try:
            row = await conn.fetchrow(
                "INSERT INTO jurisdictions (id, code, name, level, parent_id, path, boundary, "
                "center_lat, center_lon) VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9) "
                "RETURNING *", new_id, values["code"], values["name"], values["level"],
                node.parent_id, [*parent_path, new_id], _boundary(values.get("boundary")),
                values.get("center_lat"), values.get("center_lon"))
        except asyncpg.PostgresError as exc:
            raise _translate(exc, "jurisdiction") from None
        assert row is not None
        out = dict(row)
        await audit(conn, actor, "create", "jurisdiction", new_id, None, out)
    return out


async def update_jurisdiction(conn: Conn, actor: Actor, id_: int,
                              values: dict[str, Any]) -> dict[str, Any]:
    """Change any of code, name, level, parent (a move: the subtree follows), boundary and
    centre; the placement rules hold for the node and for its children."""
    async with conn.transaction():
        tree = await _tree(conn)
        before = await conn.fetchrow("SELECT * FROM jurisdictions WHERE id = $1", id_)
        if before is None:
            raise OrgNotFound("jurisdiction not found")
        merged = {c: before[c] for c in _JURISDICTION_COLS}
        merged.update({c: v for c, v in values.items() if c in _JURISDICTION_COLS})
        if "boundary" in values:
            merged["boundary"] = _boundary(values["boundary"])
        node = Node(id_, merged["parent_id"], merged["level"],
                    _admin_code(merged["code"], merged["level"]))
        await _placed(conn, tree, node)
        try:
            row = await conn.fetchrow(
                "UPDATE jurisdictions SET code = $2, name = $3, level = $4, parent_id = $5, "
                "boundary = $6::jsonb, center_lat = $7, center_lon = $8, updated_at = now() "
                "WHERE id = $1 RETURNING *", id_, merged["code"], merged["name"],
                merged["level"], merged["parent_id"], merged["boundary"], merged["center_lat"],
                merged["center_lon"])
        except asyncpg.PostgresError as exc:
            raise _translate(exc, "jurisdiction") from None
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
        tree = await _tree(conn)
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
            raise _translate(exc, "site") from None
        assert row is not None
        out = dict(row)
        await audit(conn, actor, "update", "site", site_id, dict(before), out)
    return out


# -- bulk import: all or nothing, idempotent by each kind's code ----------------------------

@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0


class ImportRefused(OrgError):
    """Rows that refer to what does not exist or break a rule; nothing was written."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} bad rows; nothing imported")
        self.problems = problems


# table, key column, column -> (SQL type, value when the file leaves it blank)
_IMPORT: dict[str, tuple[str, str, dict[str, tuple[str, Any]]]] = {
    "departments": ("departments", "code", {
        "code": ("text", None), "name": ("text", None), "industries": ("text[]", [])}),
    "units": ("units", "credit_code", {
        "credit_code": ("text", None), "name": ("text", None), "industry": ("text", ""),
        "department_id": ("bigint", None), "risk_class": ("text", "general"),
        "nine_small": ("boolean", False), "responsible_name": ("text", ""),
        "responsible_phone": ("text", ""), "manager_name": ("text", ""),
        "manager_phone": ("text", ""), "address": ("text", ""), "grid_id": ("bigint", None)}),
    "companies": ("maintenance_companies", "credit_code", {
        "credit_code": ("text", None), "name": ("text", None), "licence_no": ("text", ""),
        "licence_level": ("text", ""), "licence_valid_until": ("date", None),
        "phone": ("text", ""), "address": ("text", "")}),
    "sites": ("sites", "id", {
        "id": ("text", None), "name": ("text", None), "address": ("text", ""),
        "latitude": ("double precision", None), "longitude": ("double precision", None),
        "unit_id": ("bigint", None), "jurisdiction_id": ("bigint", None),
        "jurisdiction": ("text", None)}),
    "contracts": ("contracts", "id", {
        "id": ("bigint", None), "company_id": ("bigint", None), "site_id": ("text", None),
        "starts_on": ("date", None), "ends_on": ("date", None), "scope": ("text", "")}),
}
# file column holding a code -> (column it fills, table and key the code is looked up in)
_REFS: dict[str, tuple[str, str, str]] = {
    "department_code": ("department_id", "departments", "code"),
    "grid_code": ("grid_id", "jurisdictions", "code"),
    "unit_credit_code": ("unit_id", "units", "credit_code"),
    "jurisdiction_code": ("jurisdiction_id", "jurisdictions", "code"),
    "company_credit_code": ("company_id", "maintenance_companies", "credit_code"),
}
_ENTITY_OF = {"departments": "department", "units": "unit", "companies": "company",
              "sites": "site", "contracts": "contract", "jurisdictions": "jurisdiction"}


async def import_records(conn: Conn, actor: Actor, kind: str,
                         records: list[dict[str, Any]]) -> ImportResult:
    """Create what is new and update what changed, by the kind's code, in one transaction with
    an audit row per change; ImportRefused (every bad row) and nothing written otherwise."""
    async with conn.transaction():
        if kind == "jurisdictions":
            return await _import_tree(conn, actor, records)
        problems: list[Problem] = []
        await _resolve_refs(conn, records, problems)
        if kind == "sites":
            for r in records:
                if "jurisdiction_id" in r:
                    r["jurisdiction"] = r.get("jurisdiction_code")
        if kind == "contracts":
            await _contract_ids(conn, records)
        if problems:
            raise ImportRefused(problems)
        table, key, types = _IMPORT[kind]
        present = sorted({c for r in records for c in r if c in types} | {key})
        existing = {row[key]: dict(row) for row in await conn.fetch(
            f"SELECT * FROM {table} WHERE {key} = ANY($1::{types[key][0]}[])",
            [r[key] for r in records if r.get(key) is not None])}
        new, changed, result = [], [], ImportResult()
        for r in records:
            old = existing.get(r.get(key))
            if old is None:
                new.append({c: r.get(c, types[c][1]) for c in present if c != key or
                            r.get(key) is not None})
            elif any(_differs(old[c], r[c]) for c in present if c in r):
                changed.append(({c: r[c] for c in present if c in r}, old))
            else:
                result.unchanged += 1
        entity = _ENTITY_OF[kind]
        try:
            if new:
                cols = sorted({c for n in new for c in n})
                defs = ", ".join(f"{c} {types[c][0]}" for c in cols)
                rows = await conn.fetch(
                    f"INSERT INTO {table} ({', '.join(cols)}) SELECT {', '.join(cols)} FROM "
                    f"jsonb_to_recordset($1::jsonb) AS x({defs}) RETURNING *", new)
                await _audit_many(conn, actor, "import", entity, [(None, dict(r)) for r in rows])
                result.created = len(rows)
            for values, old in changed:
                cols = [c for c in values if c != key]
                sets = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(cols))
                if table in _UPDATED_AT:
                    sets += ", updated_at = now()"
                row = await conn.fetchrow(
                    f"UPDATE {table} SET {sets} WHERE {key} = $1 RETURNING *",
                    old[key], *[values[c] for c in cols])
                await _audit_many(conn, actor, "import", entity, [(old, dict(row or {}))])
                result.updated += 1
        except asyncpg.PostgresError as exc:
            raise _translate(exc, entity) from None
        return result


def _differs(old: Any, new: Any) -> bool:
    if isinstance(old, float) and isinstance(new, float):
        return abs(old - new) > 1e-12
    return bool(old != new)


async def _audit_many(conn: Conn, actor: Actor, action: str, entity: str,
                      changes: list[tuple[Mapping[str, Any] | None, Mapping[str, Any]]]) -> None:
    if not changes:
        return
    await conn.executemany(
        "INSERT INTO audit_log (actor_id, actor_name, action, entity, entity_id, before, after) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7)",
        [(actor.id, actor.name, action, entity, str(after.get("id", after.get("code"))),
          _jsonable(before), _jsonable(after)) for before, after in changes])


async def _resolve_refs(conn: Conn, records: list[dict[str, Any]],
                        problems: list[Problem]) -> None:
    """Codes in the file (a unit's department, a site's unit and jurisdiction, ...) to ids."""
    for column, (target, table, key) in _REFS.items():
        codes = sorted({r[column] for r in records if column in r})
        if not codes:
            continue
        ids = {row[0]: row[1] for row in await conn.fetch(
            f"SELECT {key}, id FROM {table} WHERE {key} = ANY($1::text[])", codes)}
        for r in records:
            if column in r:
                if r[column] in ids:
                    r[target] = ids[r[column]]
                else:
                    problems.append(Problem(r["_row"], column, f"no {table[:-1]} with code "
                                                               f"{r[column]}"))


async def _contract_ids(conn: Conn, records: list[dict[str, Any]]) -> None:
    """A contract's import key is its site and start day: find the ids of those that exist."""
    rows = await conn.fetch("SELECT id, site_id, starts_on FROM contracts WHERE site_id = "
                            "ANY($1::text[])", sorted({r["site_id"] for r in records}))
    ids = {(r["site_id"], r["starts_on"]): r["id"] for r in rows}
    for r in records:
        r["id"] = ids.get((r["site_id"], r["starts_on"]))


async def _import_tree(conn: Conn, actor: Actor, records: list[dict[str, Any]]) -> ImportResult:
    tree = await _tree(conn)
    rows = {r["code"]: dict(r) for r in await conn.fetch("SELECT * FROM jurisdictions")}
    by_code = {code: r["id"] for code, r in rows.items()}
    fresh = [r["code"] for r in records if r["code"] not in by_code]
    for code, new_id in zip(fresh, [x[0] for x in await conn.fetch(
            "SELECT nextval('jurisdictions_id_seq') FROM generate_series(1, $1)", len(fresh))],
            strict=True):
        by_code[code] = new_id
    problems: list[Problem] = []
    for r in records:
        parent = r.get("parent_code")
        if parent is not None and parent not in by_code:
            problems.append(Problem(r["_row"], "parent_code", f"no jurisdiction with code {parent}"))
            continue
        r["id"] = by_code[r["code"]]
        r["parent_id"] = None if parent is None else by_code[parent]
        if "boundary" in r:
            try:
                r["boundary"] = _boundary(r["boundary"])
            except OrgError as exc:
                problems.append(Problem(r["_row"], "boundary", str(exc)))
        tree[r["id"]] = Node(r["id"], r["parent_id"], r["level"], _admin_code(r["code"], r["level"]))
    refused = check_nodes(tree, [r["id"] for r in records if "id" in r])
    for r in records:
        if r.get("id") in refused:
            problems.append(Problem(r["_row"], "parent_code", refused[r["id"]]))
    if problems:
        raise ImportRefused(problems)
    paths = all_paths(tree)
    result = ImportResult()
    incoming: dict[str, dict[str, Any] | None] = {r["code"]: r for r in records}
    new, changed = [], []
    for code, node_id in by_code.items():
        old = rows.get(code)
        rec = incoming.get(code)
        if old is None:
            assert rec is not None
            new.append({"id": node_id, "code": code, "name": rec["name"], "level": rec["level"],
                        "parent_id": rec["parent_id"], "path": list(paths[node_id]),
                        "boundary": rec.get("boundary"), "center_lat": rec.get("center_lat"),
                        "center_lon": rec.get("center_lon")})
            continue
        want: dict[str, Any] = {"path": list(paths[node_id])}
        if rec is not None:
            want |= {k: rec[k] for k in ("name", "level", "parent_id", "boundary", "center_lat",
                                         "center_lon") if k in rec}
        if any(_differs(old[k], v) for k, v in want.items()):
            changed.append((old, want))
        elif rec is not None:
            result.unchanged += 1
    if new:
        out = await conn.fetch(
            "INSERT INTO jurisdictions (id, code, name, level, parent_id, path, boundary, "
            "center_lat, center_lon) SELECT id, code, name, level, parent_id, path, boundary, "
            "center_lat, center_lon FROM jsonb_to_recordset($1::jsonb) AS x(id bigint, code "
            "text, name text, level text, parent_id bigint, path bigint[], boundary jsonb, "
            "center_lat double precision, center_lon double precision) RETURNING *", new)
        await _audit_many(conn, actor, "import", "jurisdiction", [(None, dict(r)) for r in out])
        result.created = len(out)
    for old, want in changed:
        cols = list(want)
        sets = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(cols))
        row = await conn.fetchrow(
            f"UPDATE jurisdictions SET {sets}, updated_at = now() WHERE id = $1 RETURNING *",
            old["id"], *[want[c] for c in cols])
        await _audit_many(conn, actor, "import", "jurisdiction", [(old, dict(row or {}))])
        if old["code"] in incoming:
            result.updated += 1
    return result
