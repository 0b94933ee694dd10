"""The API application: `uvicorn api.main:create_app --factory` or `firetower api`.

Lifespan opens the database pool and the broker-credential sync and shares them through the
lifespan state (`request.state.pool`, ...); nothing is created at import.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypedDict

import asyncpg
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.types import Scope

from api import errors
from api.broker_sync import BrokerSync
from api.config import ApiSettings
from api.limits import BodyLimits, repeated_scalars
from api.metrics import MeteredAlarmStore, RequestMetrics
from api.routes import (
    alarms,
    assessment,
    auth,
    briefings,
    devices,
    duty,
    files,
    hazards,
    notify,
    org,
    patrols,
    public,
    rules,
    sites,
    stats,
    stream,
    telemetry,
    watch,
    webhooks,
    workorders,
)
from api.security import Hashing
from api.stream import Hub
from api.throttle import LoginThrottle
from firetower import db, heartbeat
from firetower.alarm_store import AlarmStore
from firetower.settings import Settings, get_settings

STATIC_DIR = Path(__file__).resolve().parent / "static"
API_PREFIX = "/api/v1"
DOCS_ASSETS = "/docs-assets"
DESCRIPTION = (Path(__file__).resolve().parent.parent / "docs" / "api.md")


# The console renders data with textContent only; the CSP backs that up: no inline script,
# no third-party origin (but the map's tile server, when one is configured), nothing framed.
def console_headers(tile_origin: str | None = None) -> dict[str, str]:
    images = "'self' blob: data:" + (f" {tile_origin}" if tile_origin else "")
    return {
        "Content-Security-Policy": (f"default-src 'self'; img-src {images}; "
                                    "style-src 'self'; script-src 'self'; connect-src 'self'; "
                                    "frame-ancestors 'none'; base-uri 'none'; "
                                    "form-action 'self'"),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


CONSOLE_HEADERS = console_headers()
# The map library, installed by `make setup` from the npm registry (package.json), served
# from node_modules: never copied into the repository.
LEAFLET_DIR = Path(__file__).resolve().parent.parent / "node_modules" / "leaflet" / "dist"
# The charts of the assessment dashboard (assessment.html): Chart.js's UMD build, the same way.
CHARTJS_DIR = Path(__file__).resolve().parent.parent / "node_modules" / "chart.js" / "dist"


def tile_origin(url: str | None) -> str | None:
    """The scheme and host of a tile URL template ({s} subdomains become a wildcard)."""
    if not url:
        return None
    scheme, _, rest = url.partition("://")
    host = rest.split("/", 1)[0].replace("{s}", "*")
    return f"{scheme}://{host}"


class ConsoleFiles(StaticFiles):
    def __init__(self, *args: Any, headers: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.headers = headers or CONSOLE_HEADERS

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(self.headers)
        return response


class State(TypedDict):
    pool: asyncpg.Pool
    settings: Settings
    api_settings: ApiSettings
    broker_sync: BrokerSync
    alarm_store: AlarmStore
    hub: Hub
    hashing: Hashing
    login_throttle: LoginThrottle


def _description() -> str:
    return ("Warning-centre API: sites, devices, telemetry, alarms and the live alarm stream. "
            "See docs/api.md for the role matrix and the alarm lifecycle.")


async def _beat() -> None:
    """The supervisor's liveness check (firetower/heartbeat.py), run on the event loop that
    serves the requests: a blocked loop stops beating and `firetower run` restarts the API."""
    while True:
        heartbeat.beat()
        await asyncio.sleep(heartbeat.MIN_INTERVAL_S)


async def _one_value_each(request: Request) -> None:
    """A query parameter that takes one value, given twice: 422 (api/limits.py)."""
    twice = repeated_scalars(request)
    if twice:
        raise errors.Unprocessable(f"query parameter given more than once: {', '.join(twice)}")


def create_app(settings: Settings | None = None, api_settings: ApiSettings | None = None,
               *, migrate: bool = False) -> FastAPI:
    settings = settings or get_settings()
    api_settings = api_settings or ApiSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[State]:
        if migrate:
            await db.migrate(settings.database_url)
        pool = await db.create_pool(settings.database_url, min_size=2, max_size=20)
        sync = BrokerSync(settings, api_settings)
        hub = Hub(settings.database_url)
        beating: asyncio.Task[None] | None = None
        try:
            await sync.sync(pool)
            await hub.start()
            beating = asyncio.create_task(_beat(), name="api-heartbeat")
            yield State(pool=pool, settings=settings, api_settings=api_settings,
                        broker_sync=sync, alarm_store=MeteredAlarmStore(pool), hub=hub,
                        hashing=Hashing(api_settings.password_hash_concurrency),
                        login_throttle=LoginThrottle(api_settings.login_account_failures,
                                                     api_settings.login_address_failures,
                                                     api_settings.login_window_s))
        finally:
            if beating is not None:
                beating.cancel()
            await hub.stop()
            await pool.close()

    # Swagger UI and ReDoc with their scripts and styles served from the installed
    # fastapi-offline package (under DOCS_ASSETS): no CDN, so they work on a closed network.
    app = FastAPIOffline(title="Firetower", version="1", description=_description(),
                         lifespan=lifespan, docs_url="/docs", redoc_url="/redoc",
                         static_url=DOCS_ASSETS, openapi_url=f"{API_PREFIX}/openapi.json")
    errors.install(app)
    # Body limits before anything reads a body (parsing, authentication); inside the metrics
    # so a 413 is counted.
    app.add_middleware(BodyLimits, api_settings=api_settings)
    app.add_middleware(RequestMetrics, routes=app.router.routes)
    api = APIRouter(prefix=API_PREFIX, dependencies=[Depends(_one_value_each)])
    for module in (auth, sites, devices, telemetry, stream, alarms, rules, stats, webhooks, org,
                   hazards, workorders, patrols, files, public, notify, duty, watch, assessment,
                   briefings):
        errors.document(module.router)  # every error answer in the OpenAPI document
        api.include_router(module.router)
    app.include_router(api)
    headers = console_headers(tile_origin(api_settings.map_tile_url))
    if LEAFLET_DIR.is_dir():  # else the console's city view says the map is not installed
        app.mount("/console/vendor/leaflet",
                  ConsoleFiles(directory=LEAFLET_DIR, headers=headers), name="leaflet")
    if CHARTJS_DIR.is_dir():  # else the dashboard shows its figures as tables only
        app.mount("/console/vendor/chart.js",
                  ConsoleFiles(directory=CHARTJS_DIR, headers=headers), name="chart.js")
    app.mount("/console", ConsoleFiles(directory=STATIC_DIR, html=True, headers=headers),
              name="console")

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/console/")

    return app
