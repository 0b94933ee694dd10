"""`firetower run`: the whole centre on one machine, with a simulated fleet.

It uses none of the machine's own services and never stops, restarts or reconfigures one:

- database: `FIRETOWER_DATABASE_URL` when set in the environment, else the project's private
  PostgreSQL cluster in var/postgresql (firetower/localpg.py, `firetower localdb`), started if
  it is not running and left running at the end;
- broker: its own `firetower broker` (the project's Mosquitto configuration) on a free port of
  127.0.0.1, the same as last time while it is free, unless `FIRETOWER_MQTT_URL` is set in the
  environment: then that broker, which must answer (nothing is ever used just because it
  happens to listen on a port);
- API: `FIRETOWER_API_PORT` when set (it must be free), else 8000, or a free port when 8000
  is taken.

It says which ports it uses, migrates, then supervises one process per service (the broker,
the ingester with the rule engine, the API with the operator console, the webhook dispatcher,
the simulator), each in a process group of its own and given the chosen addresses as
FIRETOWER_* variables. "Firetower is running" is printed once the console answers.

Supervision, on exit and on health. A service that exits, whatever its status, is restarted
(logged with its status) after a delay that doubles while it keeps dying soon after its start
(1 s, 2 s, ... 30 s) and goes back to 1 s once it has run for a minute (`Restarts`). Each
service beats a heartbeat file (FIRETOWER_HEARTBEAT_FILE, var/run/<name>.beat) from its working
loop (firetower/heartbeat.py); one whose file is older than `--stale-after` seconds once its
`--start-grace` has passed (`heartbeat.Liveness`) is hung, though alive: it gets SIGTERM, its
whole process group SIGKILL KILL_AFTER_S later if it is still there, and is then restarted as
above. Ctrl-C stops them all. In production a service manager does this job (deploy/systemd/).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from firetower import db, heartbeat, localpg
from firetower.broker import free_port, mqtt_answers
from firetower.settings import Settings

# Restart delays: first, doubling up to the cap while a service dies within HEALTHY_S.
RESTART_MIN_S, RESTART_MAX_S = 1.0, 30.0
HEALTHY_S = 60.0
# A hung service gets SIGTERM, then SIGKILL (its whole process group) this much later.
KILL_AFTER_S = 5.0
# How long the broker may take to answer at start (it proves its log and a save first).
BROKER_START_S = 60.0
DEFAULT_API_PORT = 8000
# What the demo fleet does besides reporting normally (each starts a few minutes in).
DEMO_SCENARIOS = ("normal", "smouldering_fire", "cooking_steam", "sprinkler_head_open",
                  "slow_leak", "panel_fault", "detector_silent", "battery_depleting")


class RunError(RuntimeError):
    """The centre cannot start as asked; the message says why and what to do."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sites", type=int, default=20, help="simulated sites")
    parser.add_argument("--per-kind", type=int, default=10,
                        help="simulated devices of each kind (see firetower simulate --help)")
    parser.add_argument("--no-simulator", action="store_true", help="run without the fleet")
    parser.add_argument("--speed", type=float, default=None,
                        help="the fleet's virtual seconds per wall second (default 1: real time; "
                             "higher plays the demo's scenarios faster)")
    parser.add_argument("--stale-after", type=float, default=heartbeat.STALE_S, metavar="S",
                        help="restart a service whose heartbeat is older than this "
                             f"(default {heartbeat.STALE_S:g})")
    parser.add_argument("--start-grace", type=float, default=heartbeat.START_GRACE_S,
                        metavar="S", help="no heartbeat is required in a service's first S "
                                          f"seconds (default {heartbeat.START_GRACE_S:g})")


@dataclass
class Plan:
    """Where the centre's services are: chosen once, handed to every child."""

    database_url: str
    database: str  # said to the user
    mqtt_url: str
    own_broker: bool
    api_port: int
    var: Path

    @property
    def mqtt_port(self) -> int:
        return urlsplit(self.mqtt_url).port or 1883


def _choose_database(settings: Settings) -> tuple[str, str]:
    if "FIRETOWER_DATABASE_URL" in os.environ:
        parts = urlsplit(settings.database_url)
        return settings.database_url, (f"yours (FIRETOWER_DATABASE_URL) at "
                                       f"{parts.hostname}:{parts.port or 5432}")
    root = localpg.default_root()
    try:
        cluster, started = localpg.ensure(root)
    except localpg.LocalPgError as exc:
        raise RunError(f"the private PostgreSQL could not start: {exc}") from exc
    return cluster.url("firetower"), (
        f"private PostgreSQL on 127.0.0.1:{cluster.port} ({'started' if started else 'running'}; "
        f"data in {root}; `firetower localdb stop` stops it)")


def _choose_broker(settings: Settings, var: Path) -> tuple[str, bool]:
    if "FIRETOWER_MQTT_URL" in os.environ:
        if not mqtt_answers(settings.mqtt_port, 3.0, host=settings.mqtt_host):
            raise RunError(f"FIRETOWER_MQTT_URL is {settings.mqtt_url}, but no MQTT broker "
                           f"answers at {settings.mqtt_host}:{settings.mqtt_port}; start it, or "
                           "unset FIRETOWER_MQTT_URL and firetower run starts a broker of its own")
        return settings.mqtt_url, False
    remembered = var / "run" / "broker.port"
    try:
        port = int(remembered.read_text())
    except (OSError, ValueError):
        port = 0
    if not port or not localpg.port_free(port):
        port = free_port()
    remembered.write_text(f"{port}\n")
    return f"mqtt://127.0.0.1:{port}", True


def _choose_api_port(settings: Settings) -> int:
    if "FIRETOWER_API_PORT" in os.environ:
        if not localpg.port_free(settings.api_port):
            raise RunError(f"FIRETOWER_API_PORT is {settings.api_port}, but that port is in use")
        return settings.api_port
    return DEFAULT_API_PORT if localpg.port_free(DEFAULT_API_PORT) else free_port()


def plan(settings: Settings) -> Plan:
    var = localpg.var_dir()
    (var / "run").mkdir(parents=True, exist_ok=True)
    mqtt_url, own = _choose_broker(settings, var)
    database_url, database = _choose_database(settings)
    return Plan(database_url, database, mqtt_url, own, _choose_api_port(settings), var)


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


# The demo's hazard loop acts within a demo's time: the defaults (docs/hazards.md) wait a day.
DEMO_HAZARD_POLICY = {"work_order_grace_s": 60, "offline_hazard_s": 600, "fault_hazard_s": 1200,
                      "early_warning_hazard_s": 30 * 86400}
DEMO_HAZARD_POLICY_NOTE = "work orders after 1 min, hazards after 10 min offline or 20 min faulty"


def _demo_hazard_policy(var: Path) -> Path:
    path = var / "demo-hazard-policy.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(DEMO_HAZARD_POLICY, indent=1) + "\n")
    return path


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


def _services(args: argparse.Namespace, p: Plan) -> dict[str, list[str]]:
    me = [sys.executable, "-m", "firetower"]
    services: dict[str, list[str]] = {}
    if p.own_broker:
        services["broker"] = [*me, "broker", "--state-dir", str(p.var / "mosquitto")]
    services["ingest"] = [*me, "ingest"]
    services["api"] = [*me, "api"]
    if importlib.util.find_spec("dispatch") is not None:
        services["dispatch"] = [*me, "dispatch"]
    services["loop"] = [*me, "loop"]
    services["notify"] = [*me, "notify"]
    if not args.no_simulator:
        services["simulate"] = [*me, "simulate", "--register", "--quiet", "--confirm-events",
                                "--sites", str(args.sites), "--per-kind", str(args.per_kind)]
        for scenario in DEMO_SCENARIOS:
            services["simulate"] += ["--scenario", scenario]
        if args.speed is not None:
            services["simulate"] += ["--speed", str(args.speed)]
    return services


def _answers_http(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


class Supervisor:
    """Starts the services and keeps them running: restarted when they exit or hang."""

    def __init__(self, services: dict[str, list[str]], env: dict[str, str], run_dir: Path,
                 liveness: heartbeat.Liveness) -> None:
        self.services, self.env, self.run_dir = services, env, run_dir
        self.liveness = liveness
        self.restarts = Restarts()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.started: dict[str, float] = {}
        self.due: dict[str, float] = {}  # service -> monotonic time of its restart
        self.killing: dict[str, float] = {}  # hung service -> when SIGKILL is due

    def beat_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.beat"

    def start(self, name: str) -> None:
        beat = self.beat_file(name)
        beat.unlink(missing_ok=True)  # judged from this start, not by a previous run's file
        env = {**self.env, heartbeat.ENV: str(beat)}
        self.procs[name] = subprocess.Popen(self.services[name], env=env, start_new_session=True)
        self.started[name] = time.monotonic()

    def tick(self, now: float) -> None:
        for name, proc in self.procs.items():
            if name in self.due:
                if now >= self.due[name]:
                    del self.due[name]
                    say(f"restarting {name}")
                    self.start(name)
            elif proc.poll() is not None:
                self.killing.pop(name, None)
                delay = self.restarts.after_exit(name, now - self.started[name])
                self.due[name] = now + delay
                say(f"{name} exited with status {proc.returncode}; restarting in {delay:.0f} s")
            elif name in self.killing:
                if now >= self.killing[name]:
                    say(f"{name} did not stop on SIGTERM in {KILL_AFTER_S:g} s: SIGKILL")
                    _kill_group(proc)
                    self.killing[name] = now + RESTART_MAX_S  # once; its exit restarts it
            else:
                why = self.liveness.verdict(now - self.started[name],
                                            heartbeat.age_s(str(self.beat_file(name))))
                if why is not None:
                    say(f"{name} (pid {proc.pid}) is hung: {why}; stopping it to restart it")
                    proc.terminate()
                    self.killing[name] = now + KILL_AFTER_S

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                proc.terminate()
        try:
            for proc in self.procs.values():
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    _kill_group(proc)
                    proc.wait()
        except KeyboardInterrupt:  # asked again while stopping (a second Ctrl-C or SIGTERM):
            for proc in self.procs.values():  # stop now, without a traceback
                if proc.poll() is None:
                    _kill_group(proc)
                    proc.wait()


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the service and what it started (the broker launcher's Mosquitto)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def say(text: str) -> None:
    print(f"firetower run: {text}", file=sys.stderr, flush=True)


def main(args: argparse.Namespace, settings: Settings) -> int:
    try:
        liveness = heartbeat.Liveness(args.stale_after, args.start_grace)
        p = plan(settings)
    except (RunError, ValueError) as exc:
        print(f"firetower run: {exc}", file=sys.stderr)
        return 1
    public_url = os.environ.get("FIRETOWER_PUBLIC_URL", f"http://{settings.api_host}:{p.api_port}")
    settings = settings.model_copy(update={"database_url": p.database_url, "mqtt_url": p.mqtt_url,
                                           "api_port": p.api_port, "public_url": public_url})
    print(f"database: {p.database}", flush=True)
    print(f"broker: {'own Mosquitto' if p.own_broker else 'yours (FIRETOWER_MQTT_URL)'} at "
          f"{p.mqtt_url}" + (f" (state in {p.var / 'mosquitto'})" if p.own_broker else ""),
          flush=True)
    print(f"API: http://{settings.api_host}:{p.api_port}", flush=True)
    asyncio.run(db.migrate(settings.database_url))
    for name, role, password in asyncio.run(_demo_users(settings)):
        print(f"demo {role}: user {name!r}, password {password!r} (shown once)", flush=True)

    env = {**os.environ, "FIRETOWER_DATABASE_URL": p.database_url,
           "FIRETOWER_MQTT_URL": p.mqtt_url, "FIRETOWER_API_PORT": str(p.api_port),
           "FIRETOWER_PUBLIC_URL": public_url}
    if settings.env == "development" and "FIRETOWER_HAZARD_POLICY" not in os.environ:
        env["FIRETOWER_HAZARD_POLICY"] = str(_demo_hazard_policy(p.var))
        print(f"hazard loop: demo thresholds ({DEMO_HAZARD_POLICY_NOTE}); "
              "set FIRETOWER_HAZARD_POLICY for your own", flush=True)
    sup = Supervisor(_services(args, p), env, p.var / "run", liveness)

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    console = f"http://{settings.api_host}:{p.api_port}/console/"
    if settings.env == "development" and not args.no_simulator:
        _demo_city_in_background(p.database_url, args)
    try:
        for name in sup.services:
            sup.start(name)
            if name == "broker":
                _wait_broker(sup, p.mqtt_port)
        announced = False
        while True:
            time.sleep(0.2)
            sup.tick(time.monotonic())
            if not announced and _answers_http(console):
                announced = True
                print(f"Firetower is running: console at {console} (Ctrl-C to stop)", flush=True)
    except KeyboardInterrupt:
        pass
    except RunError as exc:
        print(f"firetower run: {exc}", file=sys.stderr)
        return 1
    finally:
        sup.stop_all()
    return 0


def _demo_city_in_background(database_url: str, args: argparse.Namespace) -> None:
    """Place the simulated sites in a city (cli/demo_city.py) once the simulator has
    registered them; the console's City tab shows it."""
    from cli.demo_city import place_demo_city
    from simulators.fleet import build_fleet

    fleet = build_fleet(1, args.sites, args.per_kind)  # the simulator's default seed

    def run() -> None:
        try:
            if asyncio.run(place_demo_city(database_url, fleet)):
                print("demo city: the sites are placed in Shenzhen's districts (City tab)",
                      flush=True)
        except Exception as exc:  # a demo nicety must never stop the centre
            print(f"demo city not placed: {exc}", file=sys.stderr, flush=True)

    threading.Thread(target=run, name="demo-city", daemon=True).start()


def _wait_broker(sup: Supervisor, port: int) -> None:
    """The other services start once the broker answers (it proves its log and a save first)."""
    deadline = time.monotonic() + BROKER_START_S
    proc = sup.procs["broker"]
    while not mqtt_answers(port, 0.5):
        if proc.poll() is not None:
            raise RunError(f"the broker exited with status {proc.returncode} at start (see "
                           "its message above)")
        if time.monotonic() > deadline:
            raise RunError(f"the broker did not answer on port {port} in {BROKER_START_S:g} s")
        time.sleep(0.1)
