"""Bulk import of the organisation (CSV/XLSX rows from org/importing.py): all or nothing,
idempotent by each kind's code, an audit row per change. The single-record writes are
org/store.py's; both write the same tables through the same checks and audit log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import asyncpg

from org.importing import Problem
from org.store import (
    STAMPS_UPDATED_AT,
    Actor,
    Conn,
    OrgError,
    admin_code,
    checked_boundary,
    jsonable,
    load_tree,
    translate,
)
from org.tree import Node, all_paths, check_nodes


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
            return await _importload_tree(conn, actor, records)
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
                if table in STAMPS_UPDATED_AT:
                    sets += ", updated_at = now()"
                row = await conn.fetchrow(
                    f"UPDATE {table} SET {sets} WHERE {key} = $1 RETURNING *",
                    old[key], *[values[c] for c in cols])
                await _audit_many(conn, actor, "import", entity, [(old, dict(row or {}))])
                result.updated += 1
        except asyncpg.PostgresError as exc:
            raise translate(exc, entity) from None
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
          jsonable(before), jsonable(after)) for before, after in changes])


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


async def _importload_tree(conn: Conn, actor: Actor, records: list[dict[str, Any]]) -> ImportResult:
    tree = await load_tree(conn)
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
                r["boundary"] = checked_boundary(r["boundary"])
            except OrgError as exc:
                problems.append(Problem(r["_row"], "boundary", str(exc)))
        tree[r["id"]] = Node(r["id"], r["parent_id"], r["level"], admin_code(r["code"], r["level"]))
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
