"""Runs the API under uvicorn on a free loopback port, in its own thread and event loop, so
synchronous clients (schemathesis) and the test's own loop can both call it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

from api.config import ApiSettings
from api.main import create_app
from firetower.broker import free_port
from firetower.settings import Settings


class ApiServer:
    def __init__(self, settings: Settings, api_settings: ApiSettings | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = create_app(settings, api_settings or ApiSettings())
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on", ws="none")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name="api-server", daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve())

    def start(self, timeout: float = 20.0) -> ApiServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("API server did not start")
            time.sleep(0.02)  # a probe's polling interval (deadline above)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)


@contextmanager
def running_api(settings: Settings, api_settings: ApiSettings | None = None,
                ) -> Iterator[ApiServer]:
    server = ApiServer(settings, api_settings).start()
    try:
        yield server
    finally:
        server.stop()
