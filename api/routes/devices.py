"""`/devices`: registration (one or CSV), placement, lifecycle, MQTT credentials,
commissioning tests and the unregistered devices the ingester has seen."""

from __future__ import annotations

import csv
import io
from typing import Any

import asyncpg
from fastapi import APIRouter, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from api.broker_sync import BrokerSync
from api.deps import Needs, PoolDep, Principal, SettingsDep
from api.device_clock import CLOCK_COLUMNS
from api.errors import ApiError, Conflict, ErrorBody, NotFound, Unprocessable
from api.permissions import Permission
from api.presence import ONLINE_SQL
from api.schemas import (
    DeviceCreate,
    DeviceImport,
    DevicePublic,
    DeviceRegistered,
    DevicesPublic,
    DeviceTestPublic,
    DeviceUpdate,
    ImportProblem,
    LifecycleChange,
    MqttCredentials,
    UnregisteredDevice,
    UnregisteredDevices,
)
from firetower import mqtt_auth
from firetower.model import DeviceKind, Lifecycle
from firetower.protocol import TOPIC_ROOT
from firetower.settings import Settings

router = APIRouter(prefix="/devices", tags=["devices"])
Reader = Needs(Permission.DEVICE_READ)
Writer = Needs(Permission.DEVICE_WRITE)

# Lifecycle moves an installer may make. in_service -> commissioned takes a device out of
# service for maintenance; decommissioned is final (the id stays reserved for the audit trail).
LIFECYCLE_MOVES: dict[Lifecycle, frozenset[Lifecycle]] = {
    Lifecycle.REGISTERED: frozenset({Lifecycle.COMMISSIONED, Lifecycle.DECOMMISSIONED}),
    Lifecycle.COMMISSIONED: frozenset({Lifecycle.IN_SERVICE, Lifecycle.DECOMMISSIONED}),
    Lifecycle.IN_SERVICE: frozenset({Lifecycle.COMMISSIONED, Lifecycle.DECOMMISSIONED}),
    Lifecycle.DECOMMISSIONED: frozenset(),
}
_STAMP = {Lifecycle.COMMISSIONED: "commissioned_at", Lifecycle.IN_SERVICE: "in_service_at",
          Lifecycle.DECOMMISSIONED: "decommissioned_at"}
CSV_COLUMNS = ("id", "kind", "site_id", "floor_id", "location", "x", "y", "zone", "parent_id")
# CSV import limits: the body (`import_max_bytes`, api/config.py, 413 beyond), rows and the
# length of one field (422 beyond; the longest column, `location`, takes 500 characters).
MAX_IMPORT_ROWS = 5000
CSV_FIELD_MAX_CHARS = 1000
_COLS = ("id, kind, site_id, parent_id, floor_id, location, x, y, zone, lifecycle, "
         "registered_at, commissioned_at, in_service_at, decommissioned_at, last_seen_at, "
         f"{ONLINE_SQL} AS online")  # supervision: an open offline alarm means not online

_COLS += f", {CLOCK_COLUMNS}"  # the device's clock: offset and state (api/device_clock.py)


def _sync(request: Request) -> BrokerSync:
    return request.state.broker_sync


async def load_device(conn: asyncpg.Pool | asyncpg.Connection, user: Principal,
                      device_id: str, *, lock: bool = False) -> DevicePublic:
    row = await conn.fetchrow(f"SELECT {_COLS} FROM devices WHERE id = $1"
                              + (" FOR UPDATE" if lock else ""), device_id)
    if row is None or not user.sees(row["site_id"]):
        raise NotFound("device not found")
    return DevicePublic(**dict(row))


def _credentials(settings: Settings, device_id: str, password: str) -> MqttCredentials:
    return MqttCredentials(username=device_id, password=password, host=settings.mqtt_host,
                           port=settings.mqtt_port, topic_prefix=f"{TOPIC_ROOT}/{device_id}/")


async def _register(conn: asyncpg.Connection, user: Principal, sync: BrokerSync,
                    settings: Settings, body: DeviceCreate) -> DeviceRegistered:
    if not user.sees(body.site_id) or await conn.fetchval(
            "SELECT 1 FROM sites WHERE id = $1", body.site_id) is None:
        raise NotFound(f"site {body.site_id} not found")
    if sync.reserved(body.id):
        raise Conflict(f"device id {body.id} is reserved for a service account")
    if body.parent_id is not None:
        parent = await conn.fetchval("SELECT site_id FROM devices WHERE id = $1", body.parent_id)
        if parent is None or not user.sees(parent):
            raise NotFound(f"parent device {body.parent_id} not found")
    password = mqtt_auth.new_password()
    await conn.execute(
        "INSERT INTO devices (id, kind, site_id, parent_id, floor_id, location, x, y, zone, "
        "mqtt_password_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        body.id, body.kind.value, body.site_id, body.parent_id, body.floor_id, body.location,
        body.x, body.y, body.zone, mqtt_auth.hash_password(password))
    # Claiming: the device is no longer unknown to the ingester.
    await conn.execute("DELETE FROM unregistered_devices WHERE device_id = $1", body.id)
    device = await load_device(conn, user, body.id)
    return DeviceRegistered(device=device, mqtt=_credentials(settings, body.id, password))


@router.get("", response_model=DevicesPublic)
async def list_devices(user: Reader, pool: PoolDep, site_id: str | None = None,
                       floor_id: str | None = None, kind: DeviceKind | None = None,
                       lifecycle: Lifecycle | None = None,
                       limit: int = Query(500, ge=1, le=5000),
                       offset: int = Query(0, ge=0, le=10_000_000)) -> DevicesPublic:
    where = ("($1::text[] IS NULL OR site_id = ANY($1)) AND ($2::text IS NULL OR site_id = $2) "
             "AND ($3::text IS NULL OR floor_id = $3) AND ($4::text IS NULL OR kind = $4) "
             "AND ($5::text IS NULL OR lifecycle = $5)")
    args = (user.site_filter, site_id, floor_id, kind and kind.value,
            lifecycle and lifecycle.value)
    rows = await pool.fetch(f"SELECT {_COLS} FROM devices WHERE {where} ORDER BY id "
                            f"LIMIT {limit} OFFSET {offset}", *args)
    count = await pool.fetchval(f"SELECT count(*) FROM devices WHERE {where}", *args)
    return DevicesPublic(data=[DevicePublic(**dict(r)) for r in rows], count=count)


@router.post("", response_model=DeviceRegistered, status_code=status.HTTP_201_CREATED)
async def register_device(body: DeviceCreate, user: Writer, pool: PoolDep,
                          settings: SettingsDep, request: Request) -> DeviceRegistered:
    """Register (or claim an unregistered) device. The MQTT password is shown only here."""
    sync = _sync(request)
    async with pool.acquire() as conn, conn.transaction():
        out = await _register(conn, user, sync, settings, body)
    await sync.sync(pool)
    return out


def _too_long(fields: Any) -> bool:
    """Whether a parsed CSV row (a list, or a dict whose extra fields are a list) has a field
    longer than CSV_FIELD_MAX_CHARS."""
    values = fields.values() if isinstance(fields, dict) else fields
    return any(_too_long(v) if isinstance(v, list) else len(v or "") > CSV_FIELD_MAX_CHARS
               for v in values)


def _csv_rows(text: str) -> list[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text))
    rows = []
    try:
        if reader.fieldnames is not None and _too_long(reader.fieldnames):
            raise Unprocessable(f"CSV line 1: a field is longer than {CSV_FIELD_MAX_CHARS} "
                                "characters")
        if reader.fieldnames is None or not {"id", "kind", "site_id"} <= set(reader.fieldnames):
            raise Unprocessable(f"CSV header must include id, kind, site_id (columns: "
                                f"{', '.join(CSV_COLUMNS)})")
        for row in reader:
            if len(rows) >= MAX_IMPORT_ROWS:
                raise Unprocessable(f"at most {MAX_IMPORT_ROWS} devices per import")
            if _too_long(row):
                raise Unprocessable(f"CSV line {reader.line_num}: a field is longer than "
                                    f"{CSV_FIELD_MAX_CHARS} characters")
            values = {k: (v or "").strip() for k, v in row.items() if k in CSV_COLUMNS}
            rows.append((reader.line_num, {k: v for k, v in values.items() if v != ""}))
    except csv.Error as exc:  # e.g. a field beyond the csv module's own 128 KiB limit
        too_long = "field limit" in str(exc)
        raise Unprocessable(
            f"CSV line {reader.line_num + (1 if too_long else 0)}: " + (
                f"a field is longer than {CSV_FIELD_MAX_CHARS} characters" if too_long
                else "not valid CSV")) from None
    return rows


@router.post("/import", response_model=DeviceImport, status_code=201,
             responses={413: {"description": "CSV body larger than the import limit"},
                        422: {"model": DeviceImport | ErrorBody,
                              "description": "bad rows (each listed), or not a device CSV"}},
             openapi_extra={"requestBody": {"required": True, "content": {
                 "text/csv": {"schema": {"type": "string"}}}}})
async def import_devices(request: Request, user: Writer, pool: PoolDep,
                         settings: SettingsDep) -> Any:
    """Bulk-register devices from CSV (`text/csv` body; header row with at least
    `id,kind,site_id`; optional `floor_id,location,x,y,zone,parent_id`). All or nothing:
    any bad row -> 422 listing every problem, and nothing is registered. Limits: the body
    (`FIRETOWER_IMPORT_MAX_BYTES`, 413), 5,000 rows and 1,000 characters a field (422)."""
    raw = await request.body()  # at most FIRETOWER_IMPORT_MAX_BYTES: api/limits.py, 413
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Unprocessable("CSV must be UTF-8") from None
    if "\x00" in text:
        raise Unprocessable("CSV contains a NUL character")
    problems: list[ImportProblem] = []
    bodies: list[tuple[int, DeviceCreate]] = []
    for line, values in _csv_rows(text):
        try:
            bodies.append((line, DeviceCreate.model_validate(values)))
        except ValidationError as exc:
            err = exc.errors()[0]
            loc = ".".join(str(p) for p in err["loc"])
            problems.append(ImportProblem(line=line, message=f"{loc}: {err['msg']}"))
    if not problems and not bodies:
        raise Unprocessable("CSV has no device rows")
    created: list[DeviceRegistered] = []
    sync = _sync(request)
    if not problems:
        async with pool.acquire() as conn:
            tx = conn.transaction()
            await tx.start()
            try:
                for line, body in bodies:
                    try:
                        async with conn.transaction():  # savepoint: report every bad row
                            created.append(await _register(conn, user, sync, settings, body))
                    except (ApiError, asyncpg.IntegrityConstraintViolationError) as exc:
                        msg = exc.message if isinstance(exc, ApiError) else str(exc)
                        problems.append(ImportProblem(line=line, message=msg))
            finally:
                if problems:
                    await tx.rollback()
                else:
                    await tx.commit()
    if problems:
        return JSONResponse(DeviceImport(created=[], errors=problems).model_dump(mode="json")
                            | {"detail": f"{len(problems)} bad rows; nothing imported"},
                            status_code=422)
    await sync.sync(pool)
    return DeviceImport(created=created, errors=[])


@router.get("/unregistered", response_model=UnregisteredDevices)
async def list_unregistered(user: Writer, pool: PoolDep,
                            limit: int = Query(500, ge=1, le=5000)) -> UnregisteredDevices:
    """Ids the ingester has seen publishing but that are not registered: claim one by
    registering it with `POST /devices`."""
    rows = await pool.fetch("SELECT * FROM unregistered_devices ORDER BY last_seen_at DESC "
                            f"LIMIT {limit}")
    total = await pool.fetchval("SELECT count(*) FROM unregistered_devices")
    return UnregisteredDevices(data=[UnregisteredDevice(**dict(r)) for r in rows], count=total)


@router.get("/{device_id}", response_model=DevicePublic)
async def get_device(device_id: str, user: Reader, pool: PoolDep) -> DevicePublic:
    return await load_device(pool, user, device_id)


@router.patch("/{device_id}", response_model=DevicePublic)
async def update_device(device_id: str, body: DeviceUpdate, user: Writer,
                        pool: PoolDep) -> DevicePublic:
    fields = body.model_dump(exclude_unset=True)
    if "site_id" in fields:
        if fields["site_id"] is None:
            raise Unprocessable("site_id: may not be null")
        if not user.sees(fields["site_id"]) or await pool.fetchval(
                "SELECT 1 FROM sites WHERE id = $1", fields["site_id"]) is None:
            raise NotFound(f"site {fields['site_id']} not found")
    if "location" in fields and fields["location"] is None:
        fields["location"] = ""
    async with pool.acquire() as conn, conn.transaction():
        await load_device(conn, user, device_id, lock=True)
        if fields:
            cols = list(fields)
            sets = ", ".join(f"{c} = ${i + 2}" for i, c in enumerate(cols))
            await conn.execute(f"UPDATE devices SET {sets} WHERE id = $1", device_id,
                               *(fields[c] for c in cols))
        return await load_device(conn, user, device_id)


@router.post("/{device_id}/lifecycle", response_model=DevicePublic)
async def change_lifecycle(device_id: str, body: LifecycleChange, user: Writer, pool: PoolDep,
                           request: Request) -> DevicePublic:
    """registered -> commissioned (needs an arrived test signal) -> in_service;
    in_service -> commissioned (maintenance); any -> decommissioned (final)."""
    async with pool.acquire() as conn, conn.transaction():
        device = await load_device(conn, user, device_id, lock=True)
        if body.to not in LIFECYCLE_MOVES[device.lifecycle]:
            raise Conflict(f"cannot move a device from {device.lifecycle} to {body.to}")
        if device.lifecycle is Lifecycle.REGISTERED and body.to is Lifecycle.COMMISSIONED:
            await refresh_tests(conn, device_id)
            if not await conn.fetchval("SELECT 1 FROM device_tests WHERE device_id = $1 "
                                       "AND arrived_at IS NOT NULL LIMIT 1", device_id):
                raise Conflict("commissioning needs a test signal: request one with "
                               "POST /devices/{id}/tests and trigger the device")
        await conn.execute(f"UPDATE devices SET lifecycle = $2, {_STAMP[body.to]} = now() "
                           "WHERE id = $1", device_id, body.to.value)
        out = await load_device(conn, user, device_id)
    if body.to is Lifecycle.DECOMMISSIONED:
        await _sync(request).sync(pool)
    return out


@router.post("/{device_id}/credentials", response_model=MqttCredentials)
async def rotate_credentials(device_id: str, user: Writer, pool: PoolDep, settings: SettingsDep,
                             request: Request) -> MqttCredentials:
    """Issue a new MQTT password (the old one stops working at the broker's reload)."""
    password = mqtt_auth.new_password()
    async with pool.acquire() as conn, conn.transaction():
        device = await load_device(conn, user, device_id, lock=True)
        if device.lifecycle is Lifecycle.DECOMMISSIONED:
            raise Conflict("device is decommissioned")
        await conn.execute("UPDATE devices SET mqtt_password_hash = $2 WHERE id = $1",
                           device_id, mqtt_auth.hash_password(password))
    await _sync(request).sync(pool)
    return _credentials(settings, device_id, password)


# -- commissioning tests ------------------------------------------------------------------
_ARRIVAL_SQL = """
UPDATE device_tests t SET (arrived_at, signal) = (
    SELECT received_at, signal FROM (
        (SELECT received_at, 'event:' || category AS signal FROM events
          WHERE device_id = t.device_id AND received_at >= t.requested_at
          ORDER BY received_at LIMIT 1)
        UNION ALL
        (SELECT received_at, CASE WHEN online THEN 'status:online' ELSE 'status:offline' END
           FROM device_status
          WHERE device_id = t.device_id AND received_at >= t.requested_at
          ORDER BY received_at LIMIT 1)
    ) c ORDER BY received_at LIMIT 1
)
WHERE t.device_id = $1 AND t.arrived_at IS NULL"""


async def refresh_tests(conn: asyncpg.Connection | asyncpg.Pool, device_id: str) -> None:
    """Mark waiting tests answered by the first event or status received after them."""
    await conn.execute(_ARRIVAL_SQL, device_id)


def _test(r: Any) -> DeviceTestPublic:
    latency = (r["arrived_at"] - r["requested_at"]).total_seconds() if r["arrived_at"] else None
    return DeviceTestPublic(id=r["id"], device_id=r["device_id"], requested_at=r["requested_at"],
                            arrived_at=r["arrived_at"], signal=r["signal"], latency_s=latency,
                            status="arrived" if r["arrived_at"] else "waiting")


@router.post("/{device_id}/tests", response_model=DeviceTestPublic, status_code=201)
async def request_test(device_id: str, user: Writer, pool: PoolDep) -> DeviceTestPublic:
    """Ask for a test signal: trigger the device's test (or any event); poll
    `GET /devices/{id}/tests/{test_id}` to see when it arrived."""
    device = await load_device(pool, user, device_id)
    if device.lifecycle is Lifecycle.DECOMMISSIONED:
        raise Conflict("device is decommissioned")
    row = await pool.fetchrow("INSERT INTO device_tests (device_id, requested_by) "
                              "VALUES ($1, $2) RETURNING *", device_id, user.id)
    return _test(row)


@router.get("/{device_id}/tests", response_model=list[DeviceTestPublic])
async def list_tests(device_id: str, user: Reader, pool: PoolDep) -> list[DeviceTestPublic]:
    await load_device(pool, user, device_id)
    await refresh_tests(pool, device_id)
    rows = await pool.fetch("SELECT * FROM device_tests WHERE device_id = $1 "
                            "ORDER BY requested_at DESC LIMIT 100", device_id)
    return [_test(r) for r in rows]


@router.get("/{device_id}/tests/{test_id}", response_model=DeviceTestPublic)
async def get_test(device_id: str, test_id: int, user: Reader, pool: PoolDep) -> DeviceTestPublic:
    await load_device(pool, user, device_id)
    await refresh_tests(pool, device_id)
    row = await pool.fetchrow("SELECT * FROM device_tests WHERE device_id = $1 AND id = $2",
                              device_id, test_id)
    if row is None:
        raise NotFound("test not found")
    return _test(row)
