"""`/webhooks`: webhook subscriptions, secret rotation, test pings, delivery log and replay.

Only `admin` and `integration` users manage subscriptions. An integration account sees and
changes only the endpoints it created; one limited to some sites can only subscribe to those
sites (its filter is narrowed to them). The signing secret is returned once, on creation and
on rotation; it is stored sealed (firetower/webhooks/secretbox.py) and never shown again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from api.deps import CurrentUser, Forbidden, PoolDep, Principal, SettingsDep
from api.errors import NotFound, Unprocessable
from api.permissions import Role
from api.schemas import NotBool  # JSON numbers and booleans as the document says
from firetower.settings import Settings
from firetower.webhooks import delivery_log, subscriptions, targets
from firetower.webhooks.payload import EVENT_TYPES, message_id
from firetower.webhooks.secretbox import SecretBox

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

EventType = Literal["alarm.raised", "alarm.acknowledged", "alarm.verdict", "alarm.forwarded",
                    "alarm.cleared"]
ClassName = Literal["fire", "supervisory", "fault", "offline", "early_warning"]
VerdictName = Literal["true_fire", "false_alarm", "test", "nuisance"]
ModeName = Literal["normal", "test", "disabled", "maintenance"]
Url = Annotated[str, Field(pattern=r"^https?://[^\s]+$", max_length=2000)]
assert set(EventType.__args__) == set(EVENT_TYPES)  # type: ignore[attr-defined]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WebhookFilter(Strict):  # what an endpoint receives; null = no restriction on that field
    event_types: list[EventType] | None = None
    classes: list[ClassName] | None = None
    max_priority: Annotated[int, Field(ge=1, le=5), NotBool] | None = None  # 1: fire only
    site_ids: list[str] | None = None
    jurisdictions: list[str] | None = None
    verdicts: list[VerdictName] | None = None  # restricts alarm.verdict events only
    modes: list[ModeName] = ["normal"]


class WebhookCreate(WebhookFilter):  # a new subscription
    name: str = Field(default="", max_length=200)
    url: Url
    enabled: StrictBool = True


class WebhookUpdate(Strict):  # change any field; omitted fields stay
    name: str | None = Field(default=None, max_length=200)
    url: Url | None = None
    enabled: StrictBool | None = None
    event_types: list[EventType] | None = None
    classes: list[ClassName] | None = None
    max_priority: Annotated[int, Field(ge=1, le=5), NotBool] | None = None
    site_ids: list[str] | None = None
    jurisdictions: list[str] | None = None
    verdicts: list[VerdictName] | None = None
    modes: list[ModeName] | None = None


class WebhookHealth(BaseModel):  # kept by the dispatcher
    consecutive_failures: int
    failing_since: datetime | None
    last_success_at: datetime | None
    last_error: str | None


class WebhookPublic(WebhookFilter):  # a subscription, without its secret
    id: int
    name: str
    url: str
    enabled: bool
    owner_id: int | None
    created_at: datetime
    updated_at: datetime
    health: WebhookHealth


class WebhooksPublic(BaseModel):
    data: list[WebhookPublic]
    count: int


class WebhookCreated(WebhookPublic):  # the only response that carries the secret
    secret: str


class SecretRotate(Strict):
    overlap_seconds: Annotated[float, NotBool] = Field(default=86_400.0, ge=0, le=30 * 86_400)


class SecretRotated(BaseModel):
    secret: str
    previous_valid_until: datetime


class DeliveryPublic(BaseModel):  # one message to one endpoint
    id: int
    event_id: str  # the webhook-id header
    type: str
    alarm_id: int | None
    status: Literal["pending", "delivered", "rejected", "dead"]
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    finished_at: datetime | None
    last_status: int | None
    last_error: str | None
    replay_of: int | None


class DeliveriesPublic(BaseModel):
    data: list[DeliveryPublic]
    count: int


class AttemptPublic(BaseModel):  # one HTTP attempt
    id: int
    at: datetime
    duration_ms: float
    status_code: int | None
    error: str | None
    outcome: Literal["delivered", "retry", "rejected", "dead"]


class ReplayRequest(Strict):  # null: every dead or rejected delivery of the endpoint
    delivery_ids: list[int] | None = None


class Queued(BaseModel):
    delivery_ids: list[int]


def _manager(user: CurrentUser) -> Principal:
    if user.role not in (Role.ADMIN, Role.INTEGRATION):
        raise Forbidden(f"role {user.role} may not manage webhooks")
    return user


Manager = Annotated[Principal, Depends(_manager)]


def _owner(user: Principal) -> int | None:
    """Restrict to the caller's own endpoints, except for admins."""
    return None if user.role is Role.ADMIN else user.id


def _scoped(user: Principal, values: dict[str, Any], creating: bool) -> dict[str, Any]:
    if user.site_ids is None:
        return values
    sites = values.get("site_ids")
    if sites is None and (creating or "site_ids" in values):
        values["site_ids"] = sorted(user.site_ids)
    elif sites is not None and not set(sites) <= user.site_ids:
        raise Unprocessable("site_ids: you may subscribe only to your own sites")
    return values


async def _allowed_target(url: str | None, settings: Settings) -> None:
    """The SSRF policy at registration (firetower/webhooks/targets.py); the dispatcher checks
    it again at every connection, after DNS resolution."""
    if url is None:
        return
    why = await targets.url_refusal(url, settings.webhook_allowed_networks)
    if why is not None:
        raise Unprocessable(f"url: {why}")


def _public(row: Any) -> dict[str, Any]:
    d = dict(row)
    d["health"] = WebhookHealth(**{k: d.pop(k) for k in (
        "consecutive_failures", "failing_since", "last_success_at", "last_error")})
    d["health"].last_error = delivery_log.public_error(d["health"].last_error)
    return d


async def _check(pool: Any, user: Principal, endpoint_id: int) -> None:
    async with pool.acquire() as conn:
        try:
            await subscriptions.get(conn, endpoint_id, _owner(user))
        except subscriptions.EndpointNotFound:
            raise NotFound("webhook not found") from None


@router.get("", response_model=WebhooksPublic)
async def list_webhooks(pool: PoolDep, user: Manager) -> WebhooksPublic:
    async with pool.acquire() as conn:
        rows = await subscriptions.list_(conn, _owner(user))
    return WebhooksPublic(data=[WebhookPublic(**_public(r)) for r in rows], count=len(rows))


@router.post("", response_model=WebhookCreated, status_code=status.HTTP_201_CREATED)
async def create_webhook(body: WebhookCreate, pool: PoolDep, settings: SettingsDep,
                         user: Manager) -> WebhookCreated:
    values = _scoped(user, body.model_dump(), creating=True)
    await _allowed_target(body.url, settings)
    box = SecretBox.of(settings.secret_keys)
    async with pool.acquire() as conn:
        row, secret = await subscriptions.create(conn, box, values, user.id)
    return WebhookCreated(**_public(row), secret=secret)


@router.get("/{endpoint_id}", response_model=WebhookPublic)
async def get_webhook(endpoint_id: int, pool: PoolDep, user: Manager) -> WebhookPublic:
    async with pool.acquire() as conn:
        try:
            row = await subscriptions.get(conn, endpoint_id, _owner(user))
        except subscriptions.EndpointNotFound:
            raise NotFound("webhook not found") from None
    return WebhookPublic(**_public(row))


@router.patch("/{endpoint_id}", response_model=WebhookPublic)
async def update_webhook(endpoint_id: int, body: WebhookUpdate, pool: PoolDep,
                         settings: SettingsDep, user: Manager) -> WebhookPublic:
    values = _scoped(user, body.model_dump(exclude_unset=True), creating=False)
    if values.get("modes", []) is None:
        raise Unprocessable("modes: give a list (e.g. [\"normal\"])")
    if values.get("url", 0) is None:
        raise Unprocessable("url: give a URL")
    await _allowed_target(values.get("url"), settings)
    async with pool.acquire() as conn:
        try:
            row = await subscriptions.update(conn, endpoint_id, values, _owner(user))
        except subscriptions.EndpointNotFound:
            raise NotFound("webhook not found") from None
    return WebhookPublic(**_public(row))


@router.delete("/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_webhook(endpoint_id: int, pool: PoolDep, user: Manager) -> Response:
    async with pool.acquire() as conn:
        try:
            await subscriptions.delete(conn, endpoint_id, _owner(user))
        except subscriptions.EndpointNotFound:
            raise NotFound("webhook not found") from None
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{endpoint_id}/secret", response_model=SecretRotated)
async def rotate_secret(endpoint_id: int, body: SecretRotate, pool: PoolDep,
                        settings: SettingsDep, user: Manager) -> SecretRotated:
    """A new secret; the current ones keep signing for `overlap_seconds` more."""
    box = SecretBox.of(settings.secret_keys)
    async with pool.acquire() as conn:
        try:
            secret, until = await subscriptions.rotate(conn, box, endpoint_id,
                                                       body.overlap_seconds, _owner(user))
        except subscriptions.EndpointNotFound:
            raise NotFound("webhook not found") from None
    return SecretRotated(secret=secret, previous_valid_until=until)


@router.post("/{endpoint_id}/ping", response_model=Queued,
             status_code=status.HTTP_202_ACCEPTED)
async def ping(endpoint_id: int, pool: PoolDep, user: Manager) -> Queued:
    """Queue a signed `webhook.ping`; its outcome appears in the delivery log."""
    await _check(pool, user, endpoint_id)
    async with pool.acquire() as conn:
        return Queued(delivery_ids=[await delivery_log.ping(conn, endpoint_id, user.name)])


@router.get("/{endpoint_id}/deliveries", response_model=DeliveriesPublic)
async def deliveries(endpoint_id: int, pool: PoolDep, user: Manager,
                     status_: Annotated[Literal["pending", "delivered", "rejected", "dead"] | None,
                                        Query(alias="status")] = None,
                     before: int | None = None,
                     limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> DeliveriesPublic:
    """Newest first; page with `before=<smallest id seen>`."""
    await _check(pool, user, endpoint_id)
    async with pool.acquire() as conn:
        rows = await delivery_log.deliveries(conn, endpoint_id, status=status_, before=before,
                                             limit=limit)
    data = [DeliveryPublic(**{k: v for k, v in dict(r).items()
                              if k not in ("uid", "endpoint_id", "occurred_at", "last_error")},
                           event_id=message_id(r["uid"]),
                           last_error=delivery_log.public_error(r["last_error"])) for r in rows]
    return DeliveriesPublic(data=data, count=len(data))


@router.get("/{endpoint_id}/deliveries/{delivery_id}/attempts",
            response_model=list[AttemptPublic])
async def attempts(endpoint_id: int, delivery_id: int, pool: PoolDep,
                   user: Manager) -> list[AttemptPublic]:
    await _check(pool, user, endpoint_id)
    async with pool.acquire() as conn:
        rows = await delivery_log.attempts(conn, endpoint_id, delivery_id)
    if rows is None:
        raise NotFound("delivery not found")
    return [AttemptPublic(**{**dict(r), "error": delivery_log.public_error(r["error"])})
            for r in rows]


@router.post("/{endpoint_id}/replay", response_model=Queued,
             status_code=status.HTTP_202_ACCEPTED)
async def replay(endpoint_id: int, body: ReplayRequest, pool: PoolDep,
                 user: Manager) -> Queued:
    """Queue deliveries again (same event id) at the tail of the endpoint's queue."""
    await _check(pool, user, endpoint_id)
    async with pool.acquire() as conn:
        try:
            ids = await delivery_log.replay(conn, endpoint_id, body.delivery_ids)
        except LookupError:
            raise NotFound("delivery not found") from None
    return Queued(delivery_ids=ids)
