"""The centre under test: a private broker with device credentials, the real `firetower
ingest` and `firetower dispatch` processes, and a signature-checking webhook receiver.

Processes run in process groups of their own, so a fault is a signal to the whole group and
teardown leaves nothing behind. A process that deploy/ ships under a supervisor that restarts
it (a systemd unit with `Restart=`) is restarted here too, after the unit's `RestartSec`;
a process with no such unit is not: if it dies, it stays dead, as it would in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

import firetower
from api.broker_sync import BrokerSync
from api.config import ApiSettings
from dispatch.receiver import Receiver
from firetower import mqtt_auth
from firetower.broker import Broker, free_port
from firetower.settings import DEV_SECRET, Settings
from firetower.webhooks import subscriptions
from firetower.webhooks.secretbox import SecretBox

# The checkout whose code runs: the one the tests import (the base worktree or main).
REPO = Path(firetower.__file__).resolve().parent.parent
SERVICE_USER = "firetower"
SITE = "s1"
# Timings shortened so that a case takes seconds: a fire with no verdict is forwarded 1 s after
# it was received (the product's verification-deadline forwarding, docs/webhooks.md), and a
# receiver that comes back is retried within about a second.
DISPATCH_ENV = {
    "FIRETOWER_DISPATCH_VERIFICATION_DEADLINE_S": "1",
    "FIRETOWER_DISPATCH_RESCAN_S": "0.5",
    "FIRETOWER_DISPATCH_BACKOFF_BASE_S": "0.2",
    "FIRETOWER_DISPATCH_BACKOFF_MAX_S": "1",
    "FIRETOWER_DISPATCH_TIMEOUT_S": "2",
    "FIRETOWER_DISPATCH_POOL_SIZE": "6",
}


def supervision() -> dict[str, float]:
    """`firetower <command>` -> RestartSec, for each command deploy/systemd runs with a
    `Restart=` policy that restarts it after a crash or an exit."""
    out: dict[str, float] = {}
    for unit in sorted((REPO / "deploy" / "systemd").glob("*.service")):
        text = unit.read_text().replace("\\\n", " ")
        cmd = re.search(r"^ExecStart=\S*firetower\s+(\w+)", text, re.M)
        restart = re.search(r"^Restart=(\S+)", text, re.M)
        if not cmd or not restart or restart.group(1) == "no":
            continue
        sec = re.search(r"^RestartSec=([\d.]+)", text, re.M)
        out[cmd.group(1)] = float(sec.group(1)) if sec else 0.1
    return out


@dataclass
class Device:
    id: str
    kind: str
    password: str


class Proc:
    """One `firetower <command>` process (its own process group), its log and its restarts."""

    def __init__(self, command: str, args: list[str], env: dict[str, str], log: Path,
                 restart_s: float | None) -> None:
        self.command, self.args, self.env, self.log = command, args, env, log
        self.restart_s = restart_s  # None: nothing restarts it
        self.popen: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.exits: list[int] = []  # exit statuses not caused by the test
        self._expect_exit = False
        self._stopped_at: float | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            out.write(f"--- start {self.starts + 1} at {time.time():.3f}\n".encode())
            out.flush()
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "firetower", self.command, *self.args], env=self.env,
                cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.starts += 1
        self._expect_exit = False
        self._stopped_at = None

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def kill(self) -> None:
        """SIGKILL the process group (a crash the test causes)."""
        self._expect_exit = True
        self.signal(signal.SIGKILL)
        if self.popen is not None:
            self.popen.wait(10)

    def stop(self) -> None:
        self._expect_exit = True
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.signal(signal.SIGCONT)
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.signal(signal.SIGKILL)
                self.popen.wait(10)
        # whatever the process left in its group
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)

    def supervise(self) -> None:
        """Called periodically: note an exit the test did not cause; restart per the unit."""
        if self.popen is None or self._expect_exit:
            return
        rc = self.popen.poll()
        if rc is None:
            return
        now = time.monotonic()
        if self._stopped_at is None:
            self._stopped_at = now
            self.exits.append(rc)
        if self.restart_s is not None and now - self._stopped_at >= self.restart_s:
            self.start()

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@dataclass
class Centre:
    """Everything of one case. Built by `Centre.create`, torn down by `close`."""

    db_url: str
    root: Path
    broker: Broker
    receiver: Receiver
    service_password: str
    devices: list[Device]
    extra_env: dict[str, str] = field(default_factory=dict)  # FIRETOWER_* of this case
    procs: dict[str, Proc] = field(default_factory=dict)
    _supervisor: asyncio.Task[None] | None = None

    # -- construction ------------------------------------------------------------------
    @classmethod
    async def create(cls, db_url: str, *, sensors: int, panels: int, extra_panels: int = 0,
                     prefix: str = "", broker_options: dict[str, str] | None = None,
                     env: dict[str, str] | None = None) -> Centre:
        root = Path(tempfile.mkdtemp(prefix="firetower-faults-"))
        root.chmod(0o755)  # the broker drops to the `mosquitto` user and reads files here
        service_password = secrets.token_urlsafe(18)
        kinds = ("smoke_detector", "heat_detector", "sprinkler_pressure")
        devices = [Device(f"{prefix}{k[:4]}-{i:03d}", k, mqtt_auth.new_password())
                   for i, k in ((i, kinds[i % 3]) for i in range(sensors))]
        devices += [Device(f"{prefix}pnl-{i:03d}", "alarm_panel", mqtt_auth.new_password())
                    for i in range(panels + extra_panels)]
        devices.append(Device(f"{prefix}probe", "alarm_panel", mqtt_auth.new_password()))
        await _seed(db_url, devices)
        # The broker's password and ACL files, written by the product from the registry.
        pw_file, acl_file = root / "passwd", root / "acl"
        settings = Settings(env="development", database_url=db_url,  # type: ignore[arg-type]
                            mqtt_username=SERVICE_USER, mqtt_password=service_password)
        sync = BrokerSync(settings, ApiSettings(mqtt_password_file=pw_file, mqtt_acl_file=acl_file,
                                                mqtt_files_group=_mosquitto_group()))
        pool = await asyncpg.create_pool(db_url, min_size=1, max_size=2)
        try:
            await sync.sync(pool)
        finally:
            await pool.close()
        broker = Broker(root / "broker", free_port(), password_file=pw_file, acl_file=acl_file)
        if broker_options:
            _set_options(broker, root, broker_options)
        os.makedirs(broker.state_dir, exist_ok=True)
        receiver = Receiver(secrets=[])
        try:
            broker.start()
            await receiver.start()
            receiver.secrets.append(await _endpoint(db_url, receiver.url))
        except BaseException:
            await receiver.stop()
            broker.stop(signal.SIGKILL)
            shutil.rmtree(root, ignore_errors=True)
            raise
        centre = cls(db_url, root, broker, receiver, service_password, devices,
                     extra_env=dict(env or {}))
        centre._supervisor = asyncio.create_task(centre._supervise(), name="faults-supervisor")
        return centre

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FIRETOWER_")}
        env.update({
            "PYTHONPATH": str(REPO),
            "FIRETOWER_ENV": "development",
            "FIRETOWER_DATABASE_URL": self.db_url,
            "FIRETOWER_MQTT_URL": self.broker.url,
            "FIRETOWER_MQTT_USERNAME": SERVICE_USER,
            "FIRETOWER_MQTT_PASSWORD": self.service_password,
            "FIRETOWER_SECRET_KEY": DEV_SECRET,
            "FIRETOWER_WEBHOOK_ALLOW_NETWORKS": "127.0.0.0/8",  # the receiver is on loopback
            "FIRETOWER_METRICS_PORT": str(free_port()),
            "FIRETOWER_DISPATCH_METRICS_PORT": str(free_port()),
            "FIRETOWER_PUBLIC_URL": "http://127.0.0.1:1",
            **DISPATCH_ENV,
            **self.extra_env,
        })
        return env

    def spawn(self, command: str, *args: str) -> Proc:
        restart = supervision().get(command)
        proc = Proc(command, list(args), self.env(), self.root / f"{command}.log", restart)
        self.procs[command] = proc
        proc.start()
        return proc

    async def start_centre(self) -> None:
        """Start the ingester (with the rule engine) and the dispatcher; wait until both
        serve: the dispatcher leads and the ingester's sessions are subscribed."""
        self.spawn("ingest")
        self.spawn("dispatch")
        await self.wait_log("dispatch", "dispatch ready", 60)
        await self.probe()

    async def wait_log(self, command: str, text: str, timeout: float) -> None:
        proc = self.procs[command]
        deadline = time.monotonic() + timeout
        while text not in proc.log.read_text(errors="replace"):
            if time.monotonic() > deadline:
                raise AssertionError(f"{command}: {text!r} not logged in {timeout}s:\n"
                                     f"{proc.log_tail()}")
            await asyncio.sleep(0.1)  # a probe's polling interval (deadline above)

    async def probe(self, timeout: float = 60) -> None:
        """Wait until the ingester stores what devices publish: the probe device publishes a
        reading and a status until both are stored (a message published before the ingester's
        sessions subscribed is not for anyone, so the probe repeats)."""
        from tests.faults.stream import probe_once

        probe = self.devices[-1]
        deadline = time.monotonic() + timeout
        seq = 0
        while True:
            seq += 1
            await probe_once(self.broker.port, probe, seq)
            if await self._probe_stored(probe.id, seq):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"the ingester stored no probe in {timeout}s:\n"
                                     f"{self.procs['ingest'].log_tail()}")
            await asyncio.sleep(0.3)  # a probe's polling interval (deadline above)

    async def _probe_stored(self, device: str, seq: int) -> bool:
        for _ in range(10):
            try:
                conn = await asyncpg.connect(self.db_url)
            except (OSError, asyncpg.PostgresError):
                return False
            try:
                n = await conn.fetchval(
                    "SELECT (SELECT count(*) FROM telemetry WHERE device_id = $1 AND seq = $2)"
                    " + (SELECT count(*) FROM device_status WHERE device_id = $1 AND seq = $2)",
                    device, seq)
            finally:
                await conn.close()
            if n == 2:
                return True
            await asyncio.sleep(0.1)  # a probe's polling interval (up to 1 s per probe)
        return False

    # -- supervision and teardown --------------------------------------------------------
    async def _supervise(self) -> None:
        while True:
            for proc in list(self.procs.values()):
                proc.supervise()
            await asyncio.sleep(0.1)  # the supervisor's period, like `firetower run`'s

    async def close(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        for proc in self.procs.values():
            proc.stop()
        await self.receiver.stop()
        self.broker.stop(signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)

    def logs(self) -> str:
        parts = [f"--- {name} (starts {p.starts}, unplanned exits {p.exits}):\n{p.log_tail()}"
                 for name, p in self.procs.items()]
        parts.append(f"--- broker:\n{self.broker.log_tail()}")
        return "\n".join(parts)


def _set_options(broker: Broker, root: Path, options: dict[str, str]) -> None:
    """Override lines of the broker's configuration: through the launcher's `options` where it
    has them, else (the launcher before issue 11) through a copy of the template."""
    if "options" in getattr(Broker, "__dataclass_fields__", {}):
        broker.options.update(options)
        return
    import firetower.broker as launcher

    text = launcher.CONFIG_TEMPLATE.read_text()
    for key, value in options.items():
        text, n = re.subn(rf"^{key} .*$", f"{key} {value}", text, flags=re.M)
        if not n:
            text = text.replace("\nlistener ", f"\n{key} {value}\nlistener ", 1)
    template = root / "firetower.conf"
    template.write_text(text)
    launcher.CONFIG_TEMPLATE = template  # this process only: the suite's brokers


def _mosquitto_group() -> str | None:
    import grp

    try:
        grp.getgrnam("mosquitto")
    except KeyError:
        return None
    return "mosquitto"


async def _seed(db_url: str, devices: list[Device]) -> None:
    """Register the devices the way the registry does: in service, with the Mosquitto hash of
    the password issued to each (api/routes/devices.py stores only the hash)."""
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("INSERT INTO sites (id, name) VALUES ($1, 'Fault House')", SITE)
        await conn.executemany(
            "INSERT INTO devices (id, kind, site_id, zone, lifecycle, mqtt_password_hash)"
            " VALUES ($1, $2, $3, 1, 'in_service', $4)",
            [(d.id, d.kind, SITE, mqtt_auth.hash_password(d.password)) for d in devices])
    finally:
        await conn.close()


async def _endpoint(db_url: str, url: str) -> str:
    """A webhook endpoint for the fire brigade's gateway: every forwarded fire."""
    conn = await asyncpg.connect(db_url)
    try:
        _, secret = await subscriptions.create(
            conn, SecretBox(DEV_SECRET),
            {"name": "119 gateway", "url": url, "event_types": ["alarm.forwarded"],
             "classes": ["fire"]}, None)
    finally:
        await conn.close()
    return secret
