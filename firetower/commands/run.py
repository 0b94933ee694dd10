"""`firetower run`: the whole centre on one machine, with a simulated fleet.

Migrates, then supervises one process per service (restarting any that dies): the broker (only
if nothing listens on FIRETOWER_MQTT_URL yet), the ingester with the rule engine, the API with
the operator console, and the simulator. Ctrl-C stops them all.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import secrets
import signal
import socket
import subprocess
import sys
import time

from firetower import db
from firetower.settings import Settings

_RESTART_DELAY_S = 2.0
# What the demo fleet does besides reporting normally (each starts a few minutes in).
DEMO_SCENARIOS = ("normal", "smouldering_fire", "cooking_steam", "sprinkler_head_open",
                  "slow_leak", "panel_fault", "detector_silent", "battery_depleting")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sites", type=int, default=20, help="simulated sites")
    parser.add_argument("--per-kind", type=int, default=10,
                        help="simulated devices of each kind (see firetower simulate --help)")
    parser.add_argument("--no-simulator", action="store_true", help="run without the fleet")


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


async def _demo_users(settings: Settings) -> list[tuple[str, str, str]]:
    """In development, with no users yet: an admin and an operator with random passwords,
    printed once, so the console can be opened at once. Never outside development."""
    if settings.env != "development":
        return []
    try:
        from api.permissions import Role
        from api.users import add_user
    except ImportError:
        return []
    conn = await db.connect(settings.database_url)
    try:
        if await conn.fetchval("SELECT count(*) FROM users"):
            return []
        made = []
        for name, role in (("admin", Role.ADMIN), ("operator", Role.OPERATOR)):
            password = secrets.token_urlsafe(9)
            await add_user(conn, name, role, password, None)
            made.append((name, role.value, password))
        return made
    finally:
        await conn.close()


def main(args: argparse.Namespace, settings: Settings) -> int:
    asyncio.run(db.migrate(settings.database_url))
    for name, role, password in asyncio.run(_demo_users(settings)):
        print(f"demo {role}: user {name!r}, password {password!r} (shown once)", flush=True)
    me = [sys.executable, "-m", "firetower"]
    services: dict[str, list[str]] = {}
    if not _listening(settings.mqtt_host, settings.mqtt_port):
        services["broker"] = [*me, "broker"]
    services["ingest"] = [*me, "ingest"]
    services["api"] = [*me, "api"]
    if importlib.util.find_spec("dispatch") is not None:
        services["dispatch"] = [*me, "dispatch"]
    if not args.no_simulator:
        services["simulate"] = [*me, "simulate", "--register", "--quiet", "--sites",
                                str(args.sites), "--per-kind", str(args.per_kind)]
        for scenario in DEMO_SCENARIOS:
            services["simulate"] += ["--scenario", scenario]
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        for name, cmd in services.items():
            procs[name] = subprocess.Popen(cmd)
            if name == "broker":
                for _ in range(50):
                    if _listening(settings.mqtt_host, settings.mqtt_port):
                        break
                    time.sleep(0.1)
        print(f"Firetower is running: console at http://{settings.api_host}:{settings.api_port}/console/ "
              "(Ctrl-C to stop)", flush=True)
        while True:
            time.sleep(1)
            for name, proc in procs.items():
                if proc.poll() is not None:
                    print(f"{name} exited with {proc.returncode}; restarting", file=sys.stderr)
                    time.sleep(_RESTART_DELAY_S)
                    procs[name] = subprocess.Popen(services[name])
    except KeyboardInterrupt:
        pass
    finally:
        for proc in reversed(list(procs.values())):
            if proc.poll() is None:
                proc.terminate()
        for proc in procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0
