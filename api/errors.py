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
"""

from __future__ import annotations

import logging

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

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


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    response = _json(exc.status_code, str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
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
    return _json(503, "database error; try again")


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


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(asyncpg.PostgresError, _postgres)
    app.add_exception_handler(asyncpg.InterfaceError, _client_data)
    app.add_exception_handler(OSError, _unexpected)
    app.add_exception_handler(Exception, _unexpected)
