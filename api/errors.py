"""API errors and the one place that maps every failure to a clean JSON response.

    ApiError(status, message)
    ├─ NotFound            404 (also for objects outside the caller's site scope)
    ├─ Conflict            409
    ├─ Unprocessable       422 (valid shape, invalid content)
    ├─ Unauthorized        401
    ├─ Forbidden           403
    ├─ PayloadTooLarge     413 (also api.limits.BodyTooLarge, before the route runs)
    └─ TooManyRequests     429 with Retry-After (login throttling)

Database errors are translated here too: unique/foreign-key violations -> 409, check
violations and bad values -> 422, so a bad request is always a 4xx and never a 500; the
database being unavailable (`firetower.db.is_transient`: restarting, crashed, in recovery, too
many connections, the connection lost or refused) -> 503 with `Retry-After`, logged as one
warning line, not a traceback: the pool reconnects on the next request once it is back.
Every body is `{"detail": "<message>"}`; validation errors add `"errors": [...]`.

The OpenAPI document says the same: `document(router)` gives each route the error answers
it can give (`ErrorBody`, `ValidationErrorBody`), from what the route depends on (a caller:
401; a permission: 403; a path id: 404; a body: 413; parameters: 422; the database: 503),
plus what a route declares itself with `responses=errors.responses(409, ...)`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import APIRouter, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from firetower.db import is_transient

log = logging.getLogger(__name__)
RETRY_AFTER_S = 2  # what a client is told to wait while the database is unavailable


class ApiError(Exception):
    status = 400

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers

    def __init_subclass__(cls, status: int = 400, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        cls.status = status


class NotFound(ApiError, status=404): ...
class Conflict(ApiError, status=409): ...
class Unprocessable(ApiError, status=422): ...
class Unauthorized(ApiError, status=401): ...
class Forbidden(ApiError, status=403): ...
class PayloadTooLarge(ApiError, status=413): ...


class TooManyRequests(ApiError, status=429):
    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message, {"Retry-After": str(retry_after_s)})
        self.retry_after_s = retry_after_s


@asynccontextmanager
async def refusals() -> AsyncIterator[None]:
    """The library writers' refusals (firetower.refusal.Refused: hazards/, notify/) as answers:
    not there 404, not in this state 409, else 422; the one translation for every route."""
    from firetower.refusal import Refused
    try:
        yield
    except Refused as exc:
        if exc.missing:
            raise NotFound(str(exc)) from None
        if exc.conflict:
            raise Conflict(str(exc)) from None
        raise Unprocessable(str(exc)) from None


class ErrorBody(BaseModel):
    """Every error answer: one readable sentence."""

    detail: str


class FieldError(BaseModel):
    loc: list[str]
    msg: str
    type: str


class ValidationErrorBody(ErrorBody):
    """422: `errors` lists each invalid field when the request did not validate."""

    errors: list[FieldError] | None = None


_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before trying again",
                                "schema": {"type": "string"}}}
# status -> (what it means, headers it always carries)
STATUSES: dict[int, tuple[str, dict[str, Any]]] = {
    400: ("Bad request (a malformed value the schema cannot describe)", {}),
    401: ("Not authenticated: no, an invalid or an expired token or API key",
          {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}}),
    403: ("The caller's role may not do this", {}),
    404: ("Not found, or outside the caller's sites", {}),
    409: ("Conflicts with the current state (a duplicate, a reference, a lifecycle step)", {}),
    413: ("Request body larger than the route's limit", {}),
    422: ("Invalid request: the field and what is wrong", {}),
    429: ("Too many failed logins: wait Retry-After seconds", _RETRY_AFTER),
    503: ("Database unavailable: try again after Retry-After seconds", _RETRY_AFTER),
}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses=` entries of these error statuses, in the one error shape."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        description, headers = STATUSES[status]
        out[status] = {"model": ValidationErrorBody if status == 422 else ErrorBody,
                       "description": description, **({"headers": headers} if headers else {})}
    return out


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dep in dependant.dependencies:
        if dep.call is not None:
            yield dep.call
        yield from _calls(dep)


def _checks_the_caller(dependant: Dependant) -> bool:
    """Whether a dependency takes the authenticated caller to check it (`deps.require`, a
    route's own role check): such a check refuses with 403."""
    return any((dep.call is not None and getattr(dep.call, "__name__", "") != "current_principal"
               and any(getattr(sub.call, "__name__", "") == "current_principal"
                       for sub in dep.dependencies))
               or _checks_the_caller(dep) for dep in dependant.dependencies)


def route_statuses(route: APIRoute) -> set[int]:
    """The error statuses a route can answer, from what it depends on."""
    calls = {getattr(c, "__name__", "") for c in _calls(route.dependant)}
    d = route.dependant
    body = bool(d.body_params or route.body_field or "requestBody" in (route.openapi_extra or {}))
    # any request body: over the route's limit (413), unparsable (400); a body may name
    # another object (a site, a device, a user) that is not there or not the caller's (404)
    statuses = {400, 413} if body else {413} if route.methods & {"POST", "PUT", "PATCH"} else set()
    if "current_principal" in calls:
        statuses.add(401)
        if body:
            statuses.add(404)
    if _checks_the_caller(route.dependant):
        statuses.add(403)
    if d.path_params:
        statuses.add(404)
    if d.path_params or d.query_params or d.header_params or d.body_params or route.body_field:
        statuses.add(422)
    if "get_pool" in calls:
        statuses.add(503)
        if "current_principal" in calls and route.methods - {"GET", "HEAD"}:
            statuses.add(409)  # a write: a duplicate, a reference, a lifecycle step
    return statuses


def document(router: APIRouter) -> None:
    """Give each route of `router` its error answers (those it declares itself stay)."""
    for route in router.routes:
        if isinstance(route, APIRoute):
            for status, spec in responses(*sorted(route_statuses(route))).items():
                if status not in route.responses and str(status) not in route.responses:
                    route.responses[status] = spec


def _json(status: int, detail: str, **extra: object) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"detail": detail, **extra}, status_code=status, headers=headers)


def _location(loc: tuple[object, ...] | list[object]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "request"


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    response = _json(exc.status, exc.message)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")),
               "type": str(e.get("type", ""))} for e in exc.errors()]
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    message = f"{_location(first['loc'])}: {first['msg']}"
    return _json(422, message, errors=errors)


def _allowed(request: Request) -> str:
    """Every method the request's path answers, across all its routes (Starlette names only
    the first route's). Where routes with fewer parameters match (`/devices/import` beside
    `/devices/{device_id}`), the path is theirs."""
    by_params: dict[int, set[str]] = {}
    for route in _routes(request.app.router.routes):
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match is not Match.NONE:
            params = len(getattr(route, "param_convertors", {}))
            by_params.setdefault(params, set()).update(getattr(route, "methods", None) or ())
    return ", ".join(sorted(by_params[min(by_params)])) if by_params else ""


def _routes(routes: list[Any]) -> Iterator[Any]:
    for route in routes:
        inner = getattr(route, "effective_candidates", None)
        if inner is not None:  # FastAPI's lazily included router
            yield from _routes([getattr(c, "route", c) for c in inner()])
        else:
            yield route


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    response = _json(exc.status_code, str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
    if exc.status_code == 405:
        response.headers["Allow"] = _allowed(request)
    return response


def _constraint(exc: asyncpg.PostgresError) -> str:
    name = getattr(exc, "constraint_name", None)
    detail = getattr(exc, "detail", None)
    return f"{exc.args[0] if exc.args else exc}" + (f" ({detail})" if detail else "") + (
        f" [constraint {name}]" if name and not detail else "")


def _unavailable(request: Request, exc: BaseException) -> JSONResponse:
    log.warning("database unavailable on %s %s: %s: %s", request.method, request.url.path,
                type(exc).__name__, exc)
    response = _json(503, "database unavailable; try again shortly")
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


async def _postgres(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, asyncpg.PostgresError)
    if is_transient(exc):
        return _unavailable(request, exc)
    if isinstance(exc, asyncpg.UniqueViolationError):
        return _json(409, f"already exists: {_constraint(exc)}")
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        return _json(409, f"refers to or is referred to by another object: {_constraint(exc)}")
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError | asyncpg.DataError):
        return _json(422, f"invalid value: {_constraint(exc)}")
    log.exception("database error on %s %s", request.method, request.url.path, exc_info=exc)
    response = _json(503, "database error; try again")
    response.headers["Retry-After"] = str(RETRY_AFTER_S)
    return response


async def _client_data(request: Request, exc: Exception) -> JSONResponse:
    # asyncpg refuses a query argument before sending it (e.g. an int beyond int64).
    if isinstance(exc, ValueError):
        return _json(422, f"invalid value: {exc}")
    return await _unexpected(request, exc)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # A connection refused or reset, a timeout, a closed connection: the database went away.
    if is_transient(exc):
        return _unavailable(request, exc)
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _json(500, "internal error")


# JSON numbers are exact to 2**53; larger bounds in the document would be rounded.
INT_BOUNDS = (-(2**53 - 1), 2**53 - 1)


def _bound_integers(schema: dict[str, Any]) -> dict[str, Any]:
    """Integer parameters without bounds get the exact JSON range in the document (ids are
    far below it); beyond PostgreSQL's bigint the API answers 422, like any invalid value."""
    for ops in schema.get("paths", {}).values():
        for op in ops.values():
            for param in op.get("parameters", []):
                types = [param.get("schema", {}), *param.get("schema", {}).get("anyOf", [])]
                for t in types:
                    if t.get("type") == "integer":
                        t.setdefault("minimum", INT_BOUNDS[0])
                        t.setdefault("maximum", INT_BOUNDS[1])
    return schema


def install(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _bound_integers(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(asyncpg.PostgresError, _postgres)
    app.add_exception_handler(asyncpg.InterfaceError, _client_data)
    app.add_exception_handler(OSError, _unexpected)
    app.add_exception_handler(Exception, _unexpected)
