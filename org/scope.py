"""Who sees what: the one scope rule of the centre.

A user is unscoped (sees everything), scoped to named sites (`users.site_ids`), or attached to
one organisation: a node of the jurisdiction tree (sees every site in its subtree), a
supervising department (the sites of its units), a unit (its own sites) or a maintenance
company (the sites under a contract running today). `visible_sites` turns any of them into
the set of site ids every list, detail, live stream, statistic, export and console view
filters by; everything else of the organisation (nodes, units, companies) is visible through
those sites, or through the user's own node. Not yours: 404.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from asyncpg.pool import PoolConnectionProxy

SCOPE_KINDS = ("jurisdiction", "department", "unit", "company")

# One query per kind, each with the scope's id as $1; a table, not branches.
_SITES_SQL: dict[str, str] = {
    "jurisdiction": "SELECT s.id FROM sites s JOIN jurisdictions j ON j.id = s.jurisdiction_id "
                    "WHERE j.path @> ARRAY[$1]::bigint[]",
    "department": "SELECT s.id FROM sites s JOIN units u ON u.id = s.unit_id "
                  "WHERE u.department_id = $1",
    "unit": "SELECT id FROM sites WHERE unit_id = $1",
    "company": "SELECT site_id FROM contracts WHERE company_id = $1 "
               "AND current_date BETWEEN starts_on AND ends_on",
}

# The jurisdiction nodes a scope sees: its own subtree, and the paths to its sites' nodes
# (so that a unit's staff see where their sites lie, but not their neighbours' sites).
_NODES_SQL = ("SELECT DISTINCT unnest(j.path) FROM jurisdictions j "
              "JOIN sites s ON s.jurisdiction_id = j.id WHERE s.id = ANY($1::text[])")


_TARGET_TABLES = {"jurisdiction": "jurisdictions", "department": "departments",
                  "unit": "units", "company": "maintenance_companies"}


async def scope_target_exists(conn: asyncpg.Connection | PoolConnectionProxy | asyncpg.Pool, kind: str,
                              id_: int | None) -> bool:
    table = _TARGET_TABLES.get(kind)
    if table is None or id_ is None:
        return False
    return bool(await conn.fetchval(f"SELECT 1 FROM {table} WHERE id = $1", id_))


@dataclass(frozen=True, slots=True)
class Scope:
    kind: str | None = None           # one of SCOPE_KINDS, or None
    id: int | None = None
    site_ids: frozenset[str] | None = None  # the older list of named sites

    @property
    def unscoped(self) -> bool:
        return self.kind is None and self.site_ids is None


async def visible_sites(conn: asyncpg.Connection | PoolConnectionProxy | asyncpg.Pool,
                        scope: Scope) -> frozenset[str] | None:
    """The site ids `scope` sees, or None for every site."""
    if scope.kind is None:
        return scope.site_ids
    rows = await conn.fetch(_SITES_SQL[scope.kind], scope.id)
    sites = frozenset(r[0] for r in rows)
    return sites if scope.site_ids is None else sites | scope.site_ids


async def visible_nodes(conn: asyncpg.Connection | PoolConnectionProxy | asyncpg.Pool, scope: Scope,
                        sites: frozenset[str] | None) -> frozenset[int] | None:
    """The jurisdiction node ids `scope` sees (None: all): its own subtree if attached to a
    node, and every node on the way to one of its sites."""
    if sites is None:
        return None
    nodes = {r[0] for r in await conn.fetch(_NODES_SQL, sorted(sites))}
    if scope.kind == "jurisdiction":
        nodes |= {r[0] for r in await conn.fetch(
            "SELECT id FROM jurisdictions WHERE path @> ARRAY[$1]::bigint[]", scope.id)}
    return frozenset(nodes)


UNSCOPED = Scope()

# What of the organisation a scoped user sees besides the tree: the rows tied to its sites
# ($1, text[]), and the organisation it is attached to itself ($2 kind, $3 id).
_ENTITY_SQL: dict[str, str] = {
    "unit": "SELECT unit_id FROM sites WHERE id = ANY($1::text[]) AND unit_id IS NOT NULL "
            "UNION SELECT id FROM units WHERE ($2 = 'unit' AND id = $3) "
            "OR ($2 = 'department' AND department_id = $3) "
            "OR ($2 = 'jurisdiction' AND grid_id IN (SELECT id FROM jurisdictions "
            "WHERE path @> ARRAY[$3]::bigint[]))",
    "company": "SELECT company_id FROM contracts WHERE site_id = ANY($1::text[]) "
               "UNION SELECT id FROM maintenance_companies WHERE $2 = 'company' AND id = $3",
    "contract": "SELECT id FROM contracts WHERE site_id = ANY($1::text[]) "
                "UNION SELECT id FROM contracts WHERE $2 = 'company' AND company_id = $3",
    "grid_member": "SELECT m.id FROM grid_members m WHERE m.grid_id IN (SELECT jurisdiction_id "
                   "FROM sites WHERE id = ANY($1::text[])) OR ($2 = 'jurisdiction' AND m.grid_id "
                   "IN (SELECT id FROM jurisdictions WHERE path @> ARRAY[$3]::bigint[]))",
    "department": "SELECT department_id FROM units WHERE id IN (SELECT unit_id FROM sites "
                  "WHERE id = ANY($1::text[])) AND department_id IS NOT NULL "
                  "UNION SELECT id FROM departments WHERE $2 = 'department' AND id = $3",
}


async def visible_ids(conn: asyncpg.Connection | PoolConnectionProxy | asyncpg.Pool,
                      entity: str, scope: Scope,
                      sites: frozenset[str] | None) -> frozenset[int] | None:
    """The ids of `entity` (unit, company, contract, department, grid_member) the caller sees;
    None: all."""
    if sites is None:
        return None
    rows = await conn.fetch(_ENTITY_SQL[entity], sorted(sites), scope.kind or "", scope.id or 0)
    return frozenset(r[0] for r in rows)
