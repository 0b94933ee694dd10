"""Request body limits, enforced before anything reads the body: before parsing, before
authentication, before routing.

`BodyLimits` is the outermost ASGI middleware of the API. Each request gets the limit of its
route: `ApiSettings.body_max_bytes` (64 KiB) for every JSON and form route, larger only where
a route needs it (`LARGE_BODIES`: floor-plan images, CSV and XLSX imports). A `Content-Length` above the
limit is answered 413 at once, without reading a byte of the body; a body without one
(chunked) is counted as the application reads it, and the read that crosses the limit raises
`BodyTooLarge` (an HTTP 413), so nothing beyond the limit is ever buffered. Uvicorn stops
reading the socket while the application is not asking for the body, so an unread body costs
no memory either. The answer is the one error shape: `{"detail": "..."}` (api/errors.py).
"""

from __future__ import annotations

import re
from typing import Any

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.config import ApiSettings

API_PREFIX = "/api/v1"
# (method, path under API_PREFIX, the ApiSettings field with the route's limit in bytes,
#  what the body is, for the error message)
LARGE_BODIES: tuple[tuple[str, str, str, str], ...] = (
    ("PUT", r"/sites/[^/]+/floors/[^/]+/plan", "floor_plan_max_bytes", "floor plan"),
    ("POST", r"/devices/import", "import_max_bytes", "CSV"),
    ("POST", r"/org/import/[a-z]+", "org_import_max_bytes", "import file"),
    ("POST", r"/files", "files_body_max_bytes", "file upload"),
    ("POST", r"/public/reports(/form)?", "public_report_body_max_bytes", "report"),
)
DEFAULT_WHAT = "request body"


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int, what: str = DEFAULT_WHAT) -> None:
        super().__init__(413, f"{what} larger than {limit} bytes")
        self.limit = limit


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class BodyLimits:
    def __init__(self, app: ASGIApp, api_settings: ApiSettings) -> None:
        self.app = app
        self.default = api_settings.body_max_bytes
        self.large = [(method, re.compile(re.escape(API_PREFIX) + pattern + "$"),
                       getattr(api_settings, field), what)
                      for method, pattern, field, what in LARGE_BODIES]

    def limit(self, method: str, path: str) -> tuple[int, str]:
        """The route's limit in bytes, and what its body is."""
        for m, regex, limit, what in self.large:
            if m == method and regex.match(path):
                return limit, what
        return self.default, DEFAULT_WHAT

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, what = self.limit(scope["method"], scope["path"])
        length = _content_length(scope)
        if length is not None and length > limit:
            await _refuse(BodyTooLarge(limit, what), scope, receive, send)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit, what)
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge as exc:  # read outside the app's own error handling
            if started:
                raise
            await _refuse(exc, scope, receive, send)


async def _refuse(exc: BodyTooLarge, scope: Scope, receive: Receive, send: Send) -> None:
    response = JSONResponse({"detail": exc.detail}, status_code=413)
    await response(scope, receive, send)


def repeated_scalars(request: Any) -> list[str]:
    """Query parameters given more than once where the route takes one value. FastAPI keeps
    the last of them silently, so `?limit=x&limit=5` would pass as `limit=5`: the request
    does not say what it means, and is refused instead (api/main.py)."""
    seen: dict[str, int] = {}
    for key, _ in request.query_params.multi_items():
        seen[key] = seen.get(key, 0) + 1
    repeated = {k for k, n in seen.items() if n > 1}
    if not repeated:
        return []
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return []
    out = []
    for field in _all_query_params(dependant):
        if field.alias in repeated and not _takes_many(field.field_info.annotation):
            out.append(field.alias)
    return sorted(out)


def _all_query_params(dependant: Any) -> list[Any]:
    params = list(dependant.query_params)
    for sub in dependant.dependencies:
        params += _all_query_params(sub)
    return params


def _takes_many(annotation: Any) -> bool:
    from typing import Annotated, Union, get_args, get_origin

    origin = get_origin(annotation)
    if origin is Annotated:
        return _takes_many(get_args(annotation)[0])
    if origin in (list, set, tuple, frozenset):
        return True
    if origin is Union or type(annotation).__name__ == "UnionType":
        return any(_takes_many(a) for a in get_args(annotation))
    return False
