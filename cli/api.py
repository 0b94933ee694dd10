"""`firetower api`: the warning-centre API and operator console (uvicorn)."""

from __future__ import annotations

import argparse
import logging

from firetower.settings import Settings

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="listen address (default: FIRETOWER_API_HOST)")
    parser.add_argument("--port", type=int, help="listen port (default: FIRETOWER_API_PORT)")
    parser.add_argument("--no-migrate", action="store_true",
                        help="do not apply pending migrations at start")


def serve_metrics(port: int | None, process: str) -> bool:
    """Serve this process's Prometheus metrics at http://127.0.0.1:<port>/metrics, on a thread
    of its own (prometheus_client). None: not served. A port already in use (another process
    on this machine) is logged and the process goes on without metrics. Shared by the
    commands (`firetower api`, `firetower dispatch`)."""
    if port is None:
        return False
    from prometheus_client import start_http_server

    try:
        start_http_server(port, addr="127.0.0.1")
    except OSError as exc:
        log.warning("%s: metrics not served: 127.0.0.1:%s unavailable (%s)", process, port, exc)
        return False
    log.info("%s: metrics on http://127.0.0.1:%s/metrics", process, port)
    return True


def main(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from api.main import create_app

    serve_metrics(settings.api_metrics_port, "api")
    app = create_app(settings, migrate=not args.no_migrate)
    uvicorn.run(app, host=args.host or settings.api_host, port=args.port or settings.api_port,
                log_level="info", proxy_headers=False)
    return 0
