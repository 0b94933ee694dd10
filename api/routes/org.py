"""The city's organisation: `/jurisdictions` (the tree down to the grid), `/departments`,
`/units`, `/companies` (maintenance companies), `/contracts`, a site's placement in them, and
`/audit`. Reads are scoped by org.scope (not yours: 404); writes go through org.store, which
writes the audit log in the same transaction.

(No `from __future__ import annotations` here: the routes below are built by one function per
resource, and FastAPI must see their body types as objects, not as names to look up.)
"""

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, Query, Request, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.deps import ApiSettingsDep, PoolDep, Principal, actor, require
from api.errors import (
    ApiError,
    Conflict,
    ErrorBody,
    Forbidden,
    NotFound,
    Unprocessable,
    responses,
)
from api.org_schemas import (
    AuditEntry,
    CompanyCreate,
    CompanyFields,
    CompanyPublic,
    ContractCreate,
    ContractPublic,
    ContractUpdate,
    DepartmentCreate,
    DepartmentPublic,
    DepartmentUpdate,
    GridMemberCreate,
    GridMemberPublic,
    GridMemberUpdate,
    ImportKind,
    ImportRefusal,
    ImportRowError,
    ImportSummary,
    JurisdictionCreate,
    JurisdictionPublic,
    JurisdictionUpdate,
    MapConfig,
    Page,
    PathStep,
    Placement,
    PlacementPublic,
    UnitCreate,
    UnitFields,
    UnitPublic,
)
from api.permissions import Permission
from api.schemas import MAX_ID, Timestamp
from org import bulk, importing, store
from org.importing import XLSX_TYPE
from org.scope import visible_ids, visible_nodes

router = APIRouter(tags=["organisation"])
# Annotated aliases (not `Needs(...)`), so that type checkers see a Principal
Reader = Annotated[Principal, require(Permission.ORG_READ)]


async def _unscoped_writer(user: Annotated[Principal, require(Permission.ORG_WRITE)]) -> Principal:
    """The organisation is the city's: an admin limited to sites or to part of it reads its
    part but changes none of it."""
    if user.site_ids is not None:
        raise Forbidden("only an admin without a site or organisation scope changes the "
                        "organisation")
    return user


Writer = Annotated[Principal, Depends(_unscoped_writer)]
Auditor = Annotated[Principal, require(Permission.AUDIT_READ)]
Limit = Annotated[int, Query(ge=1, le=10_000)]


@asynccontextmanager
async def _org_errors() -> AsyncIterator[None]:
    """org.store's refusals as the API's answers (404, 409, 422), with their reasons."""
    try:
        yield
    except store.OrgError as exc:
        cls: type[ApiError] = {404: NotFound, 409: Conflict}.get(exc.status, Unprocessable)
        raise cls(str(exc)) from None


# -- the jurisdiction tree -----------------------------------------------------------------

_J_SQL = """
SELECT j.*, (SELECT coalesce(json_agg(json_build_object('id', a.id, 'code', a.code,
                     'name', a.name, 'level', a.level) ORDER BY array_position(j.path, a.id)),
                     '[]') FROM jurisdictions a WHERE a.id = ANY(j.path)) AS path_steps,
       (SELECT count(*) FROM sites s JOIN jurisdictions d ON d.id = s.jurisdiction_id
         WHERE d.path @> ARRAY[j.id] AND ($1::text[] IS NULL OR s.id = ANY($1))) AS site_count
FROM jurisdictions j
WHERE ($2::bigint[] IS NULL OR j.id = ANY($2))
"""


def _jurisdiction(r: Any, nodes: frozenset[int] | None) -> JurisdictionPublic:
    steps = [PathStep(**s) for s in _json(r["path_steps"])
             if nodes is None or s["id"] in nodes]
    return JurisdictionPublic(
        id=r["id"], code=r["code"], name=r["name"], level=r["level"], parent_id=r["parent_id"],
        path=steps, boundary=_json(r["boundary"]),
        center_lat=r["center_lat"], center_lon=r["center_lon"], sites=r["site_count"],
        created_at=r["created_at"], updated_at=r["updated_at"])


async def _nodes(pool: asyncpg.Pool, user: Principal) -> frozenset[int] | None:
    return await visible_nodes(pool, user.scope, user.site_ids)


@router.get("/jurisdictions", response_model=Page[JurisdictionPublic])
async def list_jurisdictions(user: Reader, pool: PoolDep,
                             parent_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
                             level: Annotated[str | None, Query(max_length=20)] = None,
                             limit: Limit = 1000) -> Page[JurisdictionPublic]:
    """The nodes the caller sees (its own subtree, and the way to each of its sites), root
    first; `parent_id` lists one node's children."""
    nodes = await _nodes(pool, user)
    rows = await pool.fetch(
        _J_SQL + " AND ($3::bigint IS NULL OR j.parent_id = $3) AND ($4::text IS NULL OR "
        "j.level = $4) ORDER BY cardinality(j.path), j.code LIMIT $5",
        user.site_filter, None if nodes is None else sorted(nodes), parent_id, level, limit)
    data = [_jurisdiction(r, nodes) for r in rows]
    return Page[JurisdictionPublic](data=data, count=len(data))


async def _load_jurisdiction(pool: asyncpg.Pool, user: Principal,
                             id_: int) -> JurisdictionPublic:
    nodes = await _nodes(pool, user)
    row = await pool.fetchrow(_J_SQL + " AND j.id = $3", user.site_filter,
                              None if nodes is None else sorted(nodes), id_)
    if row is None:
        raise NotFound("jurisdiction not found")
    return _jurisdiction(row, nodes)


@router.get("/jurisdictions/{jurisdiction_id}", response_model=JurisdictionPublic)
async def get_jurisdiction(jurisdiction_id: int, user: Reader,
                           pool: PoolDep) -> JurisdictionPublic:
    return await _load_jurisdiction(pool, user, jurisdiction_id)


@router.post("/jurisdictions", response_model=JurisdictionPublic,
             status_code=status.HTTP_201_CREATED, responses=responses(409))
async def create_jurisdiction(body: JurisdictionCreate, user: Writer,
                              pool: PoolDep) -> JurisdictionPublic:
    async with _org_errors(), pool.acquire() as conn:
        row = await store.create_jurisdiction(conn, actor(user), body.model_dump())
    return await _load_jurisdiction(pool, user, row["id"])


@router.patch("/jurisdictions/{jurisdiction_id}", response_model=JurisdictionPublic,
              responses=responses(409))
async def update_jurisdiction(jurisdiction_id: int, body: JurisdictionUpdate, user: Writer,
                              pool: PoolDep) -> JurisdictionPublic:
    """Any field; a new `parent_id` moves the node and its whole subtree (refused if it would
    hang the node under itself, break the level order or leave a code outside its parent)."""
    await _load_jurisdiction(pool, user, jurisdiction_id)
    async with _org_errors(), pool.acquire() as conn:
        await store.update_jurisdiction(conn, actor(user), jurisdiction_id,
                                        body.model_dump(exclude_unset=True))
    return await _load_jurisdiction(pool, user, jurisdiction_id)


@router.delete("/jurisdictions/{jurisdiction_id}", status_code=status.HTTP_204_NO_CONTENT,
               responses=responses(409))
async def delete_jurisdiction(jurisdiction_id: int, user: Writer, pool: PoolDep) -> Response:
    """Refused with 409 while nodes, sites or units still hang under it."""
    await _load_jurisdiction(pool, user, jurisdiction_id)
    async with _org_errors(), pool.acquire() as conn:
        await store.delete_jurisdiction(conn, actor(user), jurisdiction_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- departments, units, companies, contracts: one shape, built once per resource ----------

def _resource(kind: str, path: str, table: str, create_model: type[BaseModel],
              update_model: type[BaseModel], public: type[BaseModel],
              order: str = "id") -> None:
    page = Page[public]  # type: ignore[valid-type]

    async def visible(pool: asyncpg.Pool, user: Principal) -> frozenset[int] | None:
        return await visible_ids(pool, kind, user.scope, user.site_ids)

    async def load(pool: asyncpg.Pool, user: Principal, id_: int) -> Any:
        ids = await visible(pool, user)
        row = await pool.fetchrow(f"SELECT * FROM {table} WHERE id = $1", id_)
        if row is None or (ids is not None and id_ not in ids):
            raise NotFound(f"{kind} not found")
        return public(**dict(row))

    async def list_all(user: Reader, pool: PoolDep, limit: Limit = 1000) -> Any:
        ids = await visible(pool, user)
        rows = await pool.fetch(
            f"SELECT * FROM {table} WHERE ($1::bigint[] IS NULL OR id = ANY($1)) "
            f"ORDER BY {order} LIMIT $2", None if ids is None else sorted(ids), limit)
        return page(data=[public(**dict(r)) for r in rows], count=len(rows))

    async def get_one(id: int, user: Reader, pool: PoolDep) -> Any:
        return await load(pool, user, id)

    async def create(body: create_model, user: Writer, pool: PoolDep) -> Any:  # type: ignore[valid-type]
        async with _org_errors(), pool.acquire() as conn:
            row = await store.create(conn, actor(user), kind, body.model_dump(exclude_none=True))  # type: ignore[attr-defined]
        return public(**row)

    async def update(id: int, body: update_model, user: Writer, pool: PoolDep) -> Any:  # type: ignore[valid-type]
        await load(pool, user, id)
        async with _org_errors(), pool.acquire() as conn:
            row = await store.update(conn, actor(user), kind, id,
                                     body.model_dump(exclude_unset=True))  # type: ignore[attr-defined]
        return public(**row)

    async def delete(id: int, user: Writer, pool: PoolDep) -> Response:
        await load(pool, user, id)
        async with _org_errors(), pool.acquire() as conn:
            await store.delete(conn, actor(user), kind, id)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    for fn, verb in ((list_all, "list"), (get_one, "get"), (create, "create"),
                     (update, "update"), (delete, "delete")):
        fn.__name__ = f"{verb}_{kind}"
    router.add_api_route(f"/{path}", list_all, methods=["GET"], response_model=page,
                         name=f"list_{path.replace('-', '_')}")
    router.add_api_route(f"/{path}/{{id}}", get_one, methods=["GET"], response_model=public)
    router.add_api_route(f"/{path}", create, methods=["POST"], response_model=public,
                         status_code=status.HTTP_201_CREATED, responses=responses(409))
    router.add_api_route(f"/{path}/{{id}}", update, methods=["PATCH"], response_model=public,
                         responses=responses(409))
    router.add_api_route(f"/{path}/{{id}}", delete, methods=["DELETE"],
                         status_code=status.HTTP_204_NO_CONTENT, responses=responses(409))


_resource("department", "departments", "departments", DepartmentCreate, DepartmentUpdate,
          DepartmentPublic, "code")
_resource("unit", "units", "units", UnitCreate, UnitFields, UnitPublic, "name, id")
_resource("company", "companies", "maintenance_companies", CompanyCreate, CompanyFields,
          CompanyPublic, "name, id")
_resource("contract", "contracts", "contracts", ContractCreate, ContractUpdate, ContractPublic,
          "site_id, starts_on")
_resource("grid_member", "grid-members", "grid_members", GridMemberCreate, GridMemberUpdate,
          GridMemberPublic, "grid_id, name")


# -- a site's place in the organisation, and the audit log ---------------------------------

@router.put("/sites/{site_id}/placement", response_model=PlacementPublic, tags=["sites"])
async def place_site(site_id: str, body: Placement, user: Writer,
                     pool: PoolDep) -> PlacementPublic:
    """The unit the site belongs to and the jurisdiction (usually a grid) it lies in; both are
    what scope follows."""
    if not user.sees(site_id):
        raise NotFound("site not found")
    async with _org_errors(), pool.acquire() as conn:
        row = await store.place_site(conn, actor(user), site_id, unit_id=body.unit_id,
                                     jurisdiction_id=body.jurisdiction_id)
    return PlacementPublic(**row)


@router.get("/audit", response_model=Page[AuditEntry])
async def audit_log(_: Auditor, pool: PoolDep,
                    entity: Annotated[str | None, Query(max_length=32)] = None,
                    entity_id: Annotated[str | None, Query(max_length=64)] = None,
                    since: Timestamp | None = None,
                    limit: Limit = 200) -> Page[AuditEntry]:
    """Changes to the tree, organisations, contracts, placements and users, newest first."""
    rows = await pool.fetch(
        "SELECT * FROM audit_log WHERE ($1::text IS NULL OR entity = $1) AND "
        "($2::text IS NULL OR entity_id = $2) AND ($3::timestamptz IS NULL OR at >= $3) "
        "ORDER BY id DESC LIMIT $4", entity, entity_id, since, limit)
    data = [AuditEntry(**{**dict(r), "before": _json(r["before"]), "after": _json(r["after"])})
            for r in rows]
    return Page[AuditEntry](data=data, count=len(data))


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value



# -- bulk import and export ----------------------------------------------------------------

_IMPORT_BODY = {"requestBody": {"required": True, "content": {
    "text/csv": {"schema": {"type": "string"}},
    XLSX_TYPE: {"schema": {"type": "string", "format": "binary"}}}}}


@router.post("/org/import/{kind}", response_model=ImportSummary, responses={
    413: {"description": "file larger than the import limit"},
    422: {"model": ImportRefusal | ErrorBody,
          "description": "bad rows (each listed with its row, column and reason), or a file "
                         "that cannot be read; nothing was imported"}},
             openapi_extra=_IMPORT_BODY)
async def import_org(kind: ImportKind, request: Request, user: Writer,
                     pool: PoolDep) -> Any:
    """Create or update `kind` from a CSV (UTF-8 or GBK) or XLSX file with a header row
    (docs/organisation.md lists the columns). All or nothing, and idempotent by each kind's
    code: importing the same file again changes nothing."""
    raw = await request.body()  # at most FIRETOWER_ORG_IMPORT_MAX_BYTES: api/limits.py, 413
    try:
        records, problems = importing.parse(
            kind, importing.table(raw, request.headers.get("content-type", "")))
        if not problems:
            async with pool.acquire() as conn:
                result = await bulk.import_records(conn, actor(user), kind, records)
    except importing.FileError as exc:
        raise Unprocessable(str(exc)) from None
    except bulk.ImportRefused as exc:
        problems = exc.problems
    except store.OrgError as exc:
        raise {404: NotFound, 409: Conflict}.get(exc.status, Unprocessable)(str(exc)) from None
    if problems:
        body = ImportRefusal(detail=f"{len(problems)} bad rows; nothing imported",
                             errors=[ImportRowError(row=p.row, column=p.column, reason=p.reason)
                                     for p in problems[:1000]])
        return JSONResponse(body.model_dump(mode="json"), status_code=422)
    return ImportSummary(kind=kind, created=result.created, updated=result.updated,
                         unchanged=result.unchanged)


_EXPORT_SQL: dict[str, str] = {
    "jurisdictions": "SELECT j.code, j.name, j.level, p.code AS parent_code, j.center_lat, "
                     "j.center_lon, j.boundary FROM jurisdictions j LEFT JOIN jurisdictions p "
                     "ON p.id = j.parent_id WHERE ($1::bigint[] IS NULL OR j.id = ANY($1)) "
                     "ORDER BY cardinality(j.path), j.code",
    "departments": "SELECT code, name, array_to_string(industries, ';') AS industries "
                   "FROM departments WHERE ($1::bigint[] IS NULL OR id = ANY($1)) ORDER BY code",
    "units": "SELECT u.credit_code, u.name, u.industry, d.code AS department_code, u.risk_class, "
             "u.nine_small, u.responsible_name, u.responsible_phone, u.manager_name, "
             "u.manager_phone, u.address, g.code AS grid_code FROM units u LEFT JOIN "
             "departments d ON d.id = u.department_id LEFT JOIN jurisdictions g ON "
             "g.id = u.grid_id WHERE u.credit_code IS NOT NULL AND ($1::bigint[] IS NULL OR "
             "u.id = ANY($1)) ORDER BY u.credit_code",
    "companies": "SELECT credit_code, name, licence_no, licence_level, licence_valid_until, "
                 "phone, address FROM maintenance_companies WHERE ($1::bigint[] IS NULL OR "
                 "id = ANY($1)) ORDER BY credit_code",
    "sites": "SELECT s.id, s.name, s.address, s.latitude, s.longitude, u.credit_code AS "
             "unit_credit_code, j.code AS jurisdiction_code FROM sites s LEFT JOIN units u ON "
             "u.id = s.unit_id LEFT JOIN jurisdictions j ON j.id = s.jurisdiction_id WHERE "
             "($1::text[] IS NULL OR s.id = ANY($1)) ORDER BY s.id",
    "contracts": "SELECT c.site_id, c.starts_on, c.ends_on, m.credit_code AS "
                 "company_credit_code, c.scope FROM contracts c JOIN maintenance_companies m ON "
                 "m.id = c.company_id WHERE ($1::bigint[] IS NULL OR c.id = ANY($1)) "
                 "ORDER BY c.site_id, c.starts_on",
}
_EXPORT_ENTITY = {"departments": "department", "units": "unit", "companies": "company",
                  "contracts": "contract"}


@router.get("/org/export/{kind}", responses={200: {"content": {
    "text/csv": {"schema": {"type": "string"}},
    XLSX_TYPE: {"schema": {"type": "string", "format": "binary"}}},
    "description": "the file, in the import format"}})
async def export_org(kind: ImportKind, user: Reader, pool: PoolDep,
                     format: Annotated[str, Query(pattern="^(csv|xlsx)$")] = "csv") -> Response:
    """What the caller sees of `kind`, in the columns the import reads back."""
    ids: frozenset[int] | None = None
    if kind == "jurisdictions":
        ids = await _nodes(pool, user)
    elif kind != "sites":
        ids = await visible_ids(pool, _EXPORT_ENTITY[kind], user.scope, user.site_ids)
    rows = await pool.fetch(_EXPORT_SQL[kind], user.site_filter if kind == "sites" else
                            None if ids is None else sorted(ids))
    columns = list(importing.COLUMNS[kind])
    data = [[_cell(r[c]) for c in columns] for r in rows]
    name = f"{kind}.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{name}"'}
    if format == "xlsx":
        return Response(importing.xlsx_bytes(columns, data), media_type=XLSX_TYPE,
                        headers=headers)
    return Response(importing.csv_text(columns, data), media_type="text/csv; charset=utf-8",
                    headers=headers)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


@router.get("/map/config", response_model=MapConfig)
async def map_config(_: Reader, api_settings: ApiSettingsDep) -> MapConfig:
    """The console's city map: the base-map tile URL template and its attribution (none
    configured: boundaries and markers on a blank ground)."""
    return MapConfig(tile_url=api_settings.map_tile_url,
                     attribution=api_settings.map_attribution)
