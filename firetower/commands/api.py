"""`firetower api`: the warning-centre API and operator console (uvicorn)."""

from __future__ import annotations

import argparse

from firetower.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="listen address (default: FIRETOWER_API_HOST)")
    parser.add_argument("--port", type=int, help="listen port (default: FIRETOWER_API_PORT)")
    parser.add_argument("--no-migrate", action="store_true",
                        help="do not apply pending migrations at start")


def main(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from api.main import create_app

    app = create_app(settings, migrate=not args.no_migrate)
    uvicorn.run(app, host=args.host or settings.api_host, port=args.port or settings.api_port,
                log_level="info", proxy_headers=False)
    return 0
