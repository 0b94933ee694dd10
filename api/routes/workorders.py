"""Maintenance work orders (维保工单) and maintenance records (docs/hazards.md, "Work orders").

Orders are opened and closed by `firetower loop` (an alarm that needs a repair opens one for
the site's contracted company; the device's normal report closes it). People respond and report
repairs (`workorder:handle`, the maintenance company) or close with a reason
(`workorder:decide`). Reads are scoped by the caller's sites: a company's staff see the orders
of the sites under their contracts.

- `GET /work-orders`, `GET /work-orders/{id}`, `POST /work-orders/{id}/steps`;
- `GET|POST /maintenance/records`: monthly checks and yearly full tests (GB 25201);
- `GET /maintenance/transmission-tests?month=`: GB 50440's >= 2 simulated fire transmissions a
  month per transmitting device, counted from the test-mode fire alarms already stored.
"""

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import APIRouter, Path, Query, status

from api.attachments import check_attachable
from api.deps import PoolDep, Principal, require
from api.errors import Forbidden, NotFound, refusals
from api.hazard_schemas import (
    MaintenanceRecordCreate,
    MaintenanceRecordPublic,
    MaintenanceRecordsPublic,
    OrderStateName,
    OrderStep,
    StepInfo,
    TransmissionTestReport,
    TransmissionTests,
    WorkOrderDetail,
    WorkOrderEvent,
    WorkOrderPublic,
    WorkOrdersPublic,
)
from api.permissions import Permission
from api.schemas import MAX_ID, Id
from hazards import workorder_store as store
from hazards.workorders import (
    ORDER_TRANSITIONS,
    ORDER_TRIGGER_PERMISSION,
    OrderState,
    OrderTrigger,
    repair_late,
    response_late,
)

router = APIRouter(tags=["work orders"])
Reader = Annotated[Principal, require(Permission.WORKORDER_READ)]
Handler = Annotated[Principal, require(Permission.WORKORDER_HANDLE)]
OrderId = Annotated[int, Path(ge=1, le=MAX_ID)]
RowQuery = Annotated[int | None, Query(ge=1, le=MAX_ID)]
Month = Annotated[str, Query(pattern=r"^(19|20)\d{2}-(0[1-9]|1[0-2])$")]  # 1900-2099
# GB 50440 ch. 8: at least this many simulated fire transmissions a month per device
REQUIRED_TRANSMISSION_TESTS = 2
# the devices that transmit a building's fire signals to the centre
TRANSMITTING_KINDS = ("alarm_panel",)


_SELECT = """
SELECT w.*, c.name AS company_name, s.name AS site_name FROM work_orders w
LEFT JOIN maintenance_companies c ON c.id = w.company_id LEFT JOIN sites s ON s.id = w.site_id
WHERE ($1::text[] IS NULL OR w.site_id = ANY($1))"""


# what each of the people's steps needs: a note; photos welcome on a repair report
_NEEDS: dict[OrderTrigger, tuple[bool, Literal["required", "optional", "none"]]] = {
    OrderTrigger.RESPOND: (False, "none"),
    OrderTrigger.REPAIR: (True, "optional"),
    OrderTrigger.DECIDE: (True, "none"),
}


def _public(r: Any, now: datetime, user: Principal,
            cls: type[WorkOrderPublic] = WorkOrderPublic, **extra: Any) -> Any:
    state = OrderState(r["state"])
    fields = {k: r[k] for k in (
        "id", "alarm_id", "device_id", "site_id", "site_name", "company_id", "company_name",
        "alarm_class", "title", "state", "repeat_of", "respond_by", "repair_by", "opened_at",
        "responded_at", "responded_by", "repaired_at", "repaired_by", "closed_at", "closed_by",
        "close_reason", "files")}
    steps = [t for (s, t) in ORDER_TRANSITIONS if s is state and t in ORDER_TRIGGER_PERMISSION]
    return cls(**fields, response_late=response_late(r["respond_by"], r["responded_at"], now),
               repair_late=repair_late(r["repair_by"], r["closed_at"], now),
               allowed=[t.value for t in steps],
               my_steps=[StepInfo(trigger=t.value, needs_note=_NEEDS[t][0], photo=_NEEDS[t][1])
                         for t in steps if user.can(Permission(ORDER_TRIGGER_PERMISSION[t]))],
               **extra)


@router.get("/work-orders", response_model=WorkOrdersPublic)
async def list_orders(user: Reader, pool: PoolDep, state: OrderStateName | None = None,
                      company_id: RowQuery = None, site_id: Id | None = None,
                      open: bool | None = None, late: bool | None = None,
                      limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> WorkOrdersPublic:
    """The orders the caller sees, the most overdue first. `late=true`: past the response or
    repair deadline; `open=true`: not closed."""
    now = datetime.now(UTC)
    rows = await pool.fetch(
        _SELECT + " AND ($2::text IS NULL OR w.state = $2) AND ($3::bigint IS NULL OR"
        " w.company_id = $3) AND ($4::text IS NULL OR w.site_id = $4)"
        " AND ($5::boolean IS NULL OR (w.state <> 'closed') = $5)"
        " AND ($6::boolean IS NULL OR ((w.responded_at IS NULL AND $7 > w.respond_by)"
        "   OR coalesce(w.responded_at, $7) > w.respond_by"
        "   OR coalesce(w.closed_at, $7) > w.repair_by) = $6)"
        " ORDER BY w.state = 'closed', w.repair_by, w.id LIMIT $8",
        user.site_filter, state, company_id, site_id, open, late, now, limit)
    data = [_public(r, now, user) for r in rows]
    return WorkOrdersPublic(data=data, count=len(data))


async def _load(pool: asyncpg.Pool, user: Principal, order_id: int) -> Any:
    row = await pool.fetchrow(_SELECT + " AND w.id = $2", user.site_filter, order_id)
    if row is None:
        raise NotFound("work order not found")
    return row


@router.get("/work-orders/{order_id}", response_model=WorkOrderDetail)
async def get_order(order_id: OrderId, user: Reader, pool: PoolDep) -> WorkOrderDetail:
    """An order with its event log."""
    row = await _load(pool, user, order_id)
    events = await pool.fetch(
        "SELECT * FROM work_order_events WHERE work_order_id = $1 ORDER BY id", order_id)
    return _public(row, datetime.now(UTC), user, WorkOrderDetail,
                   events=[WorkOrderEvent(**dict(e)) for e in events])


@router.post("/work-orders/{order_id}/steps", response_model=WorkOrderDetail)
async def order_step(order_id: OrderId, body: OrderStep, user: Reader,
                     pool: PoolDep) -> WorkOrderDetail:
    """respond, repair (with a note, and photos), or decide (close with a reason). An order
    never closes on the company's word alone: `repair` waits for the device to report normal."""
    trigger = OrderTrigger(body.trigger)
    if not user.can(Permission(ORDER_TRIGGER_PERMISSION[trigger])):
        raise Forbidden(f"role {user.role} may not {trigger.value} a work order")
    await _load(pool, user, order_id)
    await check_attachable(pool, user, body.files)
    async with refusals(), pool.acquire() as conn:
        await store.step(conn, order_id, trigger, f"user:{user.name}", note=body.note,
                         files=tuple(body.files))
    return await get_order(order_id, user, pool)


@router.get("/maintenance/records", response_model=MaintenanceRecordsPublic)
async def list_records(user: Reader, pool: PoolDep, site_id: Id | None = None,
                       kind: Annotated[str | None, Query(pattern="^(monthly_check|yearly_test)$")]
                       = None,
                       limit: Annotated[int, Query(ge=1, le=5000)] = 500,
                       ) -> MaintenanceRecordsPublic:
    rows = await pool.fetch(
        "SELECT * FROM maintenance_records WHERE ($1::text[] IS NULL OR site_id = ANY($1))"
        " AND ($2::text IS NULL OR site_id = $2) AND ($3::text IS NULL OR kind = $3)"
        " ORDER BY done_on DESC, id DESC LIMIT $4", user.site_filter, site_id, kind, limit)
    data = [MaintenanceRecordPublic(**dict(r)) for r in rows]
    return MaintenanceRecordsPublic(data=data, count=len(data))


@router.post("/maintenance/records", response_model=MaintenanceRecordPublic,
             status_code=status.HTTP_201_CREATED)
async def add_record(body: MaintenanceRecordCreate, user: Handler,
                     pool: PoolDep) -> MaintenanceRecordPublic:
    """Record a monthly check or the yearly full test of a site the caller maintains (the
    company under contract today is recorded with it)."""
    user.check_site(body.site_id, "site")
    if not await pool.fetchval("SELECT 1 FROM sites WHERE id = $1", body.site_id):
        raise NotFound("site not found")
    await check_attachable(pool, user, body.files)
    company = await pool.fetchval(
        "SELECT company_id FROM contracts WHERE site_id = $1"
        " AND current_date BETWEEN starts_on AND ends_on", body.site_id)
    async with refusals(), pool.acquire() as conn:
        rid = await store.add_record(
            conn, site_id=body.site_id, company_id=company, kind=body.kind,
            done_on=body.done_on, result=body.result, note=body.note, files=tuple(body.files),
            actor=f"user:{user.name}", today=datetime.now(UTC).date())
    row = await pool.fetchrow("SELECT * FROM maintenance_records WHERE id = $1", rid)
    assert row is not None  # just written; records are never deleted but with their site
    return MaintenanceRecordPublic(**dict(row))


@router.get("/maintenance/transmission-tests", response_model=TransmissionTestReport)
async def transmission_tests(user: Reader, pool: PoolDep, month: Month,
                             site_id: Id | None = None) -> TransmissionTestReport:
    """Per transmitting device (the fire-alarm panels), the simulated fire transmissions of the
    month: fire alarms raised while the device was in test mode. GB 50440 asks for at least 2."""
    start = date.fromisoformat(month + "-01")
    end = date(start.year + (start.month == 12), start.month % 12 + 1, 1)
    rows = await pool.fetch(
        "SELECT d.id AS device_id, d.site_id, count(a.id) AS tests FROM devices d"
        " LEFT JOIN alarms a ON a.device_id = d.id AND a.class = 'fire' AND a.mode = 'test'"
        "  AND a.raised_at >= $3 AND a.raised_at < $4"
        " WHERE d.kind = ANY($5::text[]) AND ($1::text[] IS NULL OR d.site_id = ANY($1))"
        "  AND ($2::text IS NULL OR d.site_id = $2)"
        " GROUP BY d.id, d.site_id ORDER BY count(a.id), d.id",
        user.site_filter, site_id, datetime(start.year, start.month, 1, tzinfo=UTC),
        datetime(end.year, end.month, 1, tzinfo=UTC), list(TRANSMITTING_KINDS))
    data = [TransmissionTests(device_id=r["device_id"], site_id=r["site_id"], tests=r["tests"],
                              required=REQUIRED_TRANSMISSION_TESTS,
                              meets=r["tests"] >= REQUIRED_TRANSMISSION_TESTS) for r in rows]
    return TransmissionTestReport(month=month, data=data, count=len(data),
                                  failing=sum(not d.meets for d in data))
