"""Prometheus metrics of the API process (served by `firetower api` on
FIRETOWER_API_METRICS_PORT at /metrics, on 127.0.0.1; see docs/metrics.md).

`RequestMetrics` is a plain ASGI middleware (no per-request task or body buffering): requests by
route template (`/api/v1/alarms/{alarm_id}`, never the raw path), method and status class, and
their latency. `MeteredAlarmStore` counts operator actions on alarms by outcome as the alarm
store's single write path returns or refuses them. The stream gauges are updated by the live
stream (api/routes/stream.py).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from firetower.alarm_store import AlarmChange, AlarmNotFound, AlarmStore
from firetower.alarms import InvalidTransition, Trigger, Verdict

REQUESTS = Counter("firetower_api_requests_total", "HTTP requests answered",
                   ["route", "method", "status"])
REQUEST_SECONDS = Histogram(
    "firetower_api_request_seconds",
    "HTTP request latency, from the request to the last byte of the response (not for the "
    "live stream)", ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10))
ALARM_ACTIONS = Counter("firetower_api_alarm_actions_total",
                        "Operator actions on alarms (acknowledge, verdict, close) by outcome",
                        ["action", "verdict", "outcome"])
STREAM_CLIENTS = Gauge("firetower_stream_clients", "Live alarm stream (SSE) clients connected")
STREAM_EVENTS_SENT = Counter("firetower_stream_events_sent_total",
                             "Events sent to live alarm stream clients")

UNMATCHED = "<unmatched>"  # no route (404): one label value, not one per probed path
_STATUS_CLASS = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}
_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))


class RequestMetrics:
    """Counts every HTTP request when it ends, and times it to the last byte of the body. An
    exception that escapes the application counts as 5xx."""

    def __init__(self, app: ASGIApp, routes: Sequence[object] = ()) -> None:
        self.app = app
        self.routes = routes  # the application's top-level routes (the live list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500
        streaming = False
        done = False

        async def sending(message: Message) -> None:
            nonlocal status, streaming, done
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", ()):
                    if name == b"content-type" and value.startswith(b"text/event-stream"):
                        streaming = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                done = True
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            template = route_template(scope, self.routes)
            method = scope["method"] if scope["method"] in _METHODS else "other"
            REQUESTS.labels(template, method, _STATUS_CLASS.get(status // 100, "other")).inc()
            if done and not streaming:
                REQUEST_SECONDS.labels(template, method).observe(time.perf_counter() - t0)


def route_template(scope: Scope, routes: Sequence[object]) -> str:
    """The template of the route that served the request: `/api/v1/alarms/{alarm_id}`.

    The matched route's own template may lack the prefixes of the routers that include it
    (FastAPI resolves included routers lazily), so the prefix is the part of the path in front
    of where the route's pattern matches. Plain Starlette routes and mounts (the OpenAPI
    document, the console's files) are not recorded in the scope: they are matched here
    against the application's top-level `routes`."""
    path: str = scope["path"]
    route = scope.get("route")
    if route is None:
        for candidate in routes:
            regex = getattr(candidate, "path_regex", None)
            if regex is not None and regex.match(path):
                route = candidate
                break
    regex, template = getattr(route, "path_regex", None), getattr(route, "path_format", None)
    if regex is not None and template is not None:
        start = 0
        while start >= 0:
            if regex.match(path[start:]):
                return path[:start] + template
            start = path.find("/", start + 1)
    return UNMATCHED


class MeteredAlarmStore(AlarmStore):
    """The alarm store, counting operator transitions by outcome: `ok` (committed),
    `conflict` (not allowed in the alarm's state), `not_found`, `error` (anything else)."""

    async def transition(self, alarm_id: int, trigger: Trigger, *, actor: str,
                         reason: str = "", verdict: Verdict | None = None,
                         at: datetime | None = None) -> AlarmChange:
        outcome = "error"
        try:
            change = await super().transition(alarm_id, trigger, actor=actor, reason=reason,
                                              verdict=verdict, at=at)
            outcome = "ok"
            return change
        except InvalidTransition:
            outcome = "conflict"
            raise
        except AlarmNotFound:
            outcome = "not_found"
            raise
        finally:
            ALARM_ACTIONS.labels(trigger.value, verdict.value if verdict else "", outcome).inc()
