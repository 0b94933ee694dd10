"""`firetower run`: the whole centre on one machine, with a simulated fleet.

Migrates, then supervises one process per service: the broker (only if nothing listens on
FIRETOWER_MQTT_URL yet), the ingester with the rule engine, the API with the operator console,
the webhook dispatcher, and the simulator. Any of them that exits, whatever its status, is
restarted (logged with its status), after a delay that doubles while it keeps dying soon after
its start (1 s, 2 s, ... 30 s) and goes back to 1 s once it has run for a minute, so a service
that cannot start yet (the database in crash recovery) is retried without spinning. Ctrl-C
stops them all. In production a service manager does this job (deploy/systemd/).
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

# Restart delays: first, doubling up to the cap while a service dies within HEALTHY_S.
RESTART_MIN_S, RESTART_MAX_S = 1.0, 30.0
HEALTHY_S = 60.0
# What the demo fleet does besides reporting normally (each starts a few minutes in).
DEMO_SCENARIOS = ("normal", "smouldering_fire", "cooking_steam", "sprinkler_head_open",
                  "slow_leak", "panel_fault", "detector_silent", "battery_depleting")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sites", type=int, default=20, help="simulated sites")
    parser.add_argument("--per-kind", type=int, default=10,
                        help="simulated devices of each kind (see firetower simulate --help)")
    parser.add_argument("--no-simulator", action="store_true", help="run without the fleet")
    parser.add_argument("--speed", type=float, default=None,
                        help="the fleet's virtual seconds per wall second (default 1: real time; "
                             "higher plays the demo's scenarios faster)")


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


class Restarts:
    """When to start a service again: backoff while it keeps dying soon after its start."""

    def __init__(self, min_s: float = RESTART_MIN_S, max_s: float = RESTART_MAX_S,
                 healthy_s: float = HEALTHY_S) -> None:
        self.min_s, self.max_s, self.healthy_s = min_s, max_s, healthy_s
        self.delay: dict[str, float] = {}

    def after_exit(self, name: str, ran_s: float) -> float:
        """The delay before restarting `name`, which exited after running `ran_s` seconds."""
        if ran_s >= self.healthy_s or name not in self.delay:
            self.delay[name] = self.min_s
        else:
            self.delay[name] = min(self.delay[name] * 2, self.max_s)
        return self.delay[name]


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
        if args.speed is not None:
            services["simulate"] += ["--speed", str(args.speed)]
    procs: dict[str, subprocess.Popen[bytes]] = {}
    started: dict[str, float] = {}
    due: dict[str, float] = {}  # service -> monotonic time of its restart
    restarts = Restarts()

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    try:
        for name, cmd in services.items():
            procs[name] = subprocess.Popen(cmd)
            started[name] = time.monotonic()
            if name == "broker":
                for _ in range(50):
                    if _listening(settings.mqtt_host, settings.mqtt_port):
                        break
                    time.sleep(0.1)
        print(f"Firetower is running: console at http://{settings.api_host}:{settings.api_port}/console/ "
              "(Ctrl-C to stop)", flush=True)
        while True:
            time.sleep(0.2)
            now = time.monotonic()
            for name, proc in procs.items():
                if name in due:
                    if now >= due[name]:
                        del due[name]
                        print(f"firetower run: restarting {name}", file=sys.stderr, flush=True)
                        procs[name] = subprocess.Popen(services[name])
                        started[name] = now
                elif proc.poll() is not None:
                    delay = restarts.after_exit(name, now - started[name])
                    due[name] = now + delay
                    print(f"firetower run: {name} exited with status {proc.returncode}; "
                          f"restarting in {delay:.0f} s", file=sys.stderr, flush=True)
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
