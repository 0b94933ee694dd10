"""`firetower bench broker-kill`: what a broker SIGKILL loses, per persistence setting.

For each broker configuration on a private broker: Mosquitto's timed autosave as shipped
before (30 s); the launcher's forced save on top of it (`timer-*`: every max(min, 4 x the last
save's duration) seconds); `autosave_on_changes` with a few change counts; and a private
RabbitMQ node whose MQTT sessions are quorum queues (`rabbitmq-quorum`):

1. **Kill cycles.** A steady QoS 1 device stream (telemetry, and every `--fire-every`-th
   message a fire event) goes to the broker; a subscriber with a persistent session takes every
   message and acknowledges it at once (the ingester acknowledges after its commit; a message
   it received is stored even when the connection it came on is gone, so "received" is
   "stored" here). After `--cycle-s` seconds the broker gets SIGKILL and is restarted on the
   same state folder, `--cycles` times: odd cycles with the subscriber online, even ones
   after it has been away for `--away-s` (its messages then wait in the broker's queue). Then
   the stream stops and the subscriber drains.
   **Lost** = publishes that got a PUBACK but never reached the subscriber.
2. **Throughput.** `--burst` messages as fast as a window of 1,000 outstanding publishes allows,
   subscriber online: messages/s end to end. All configurations' brokers run at once and take
   turns, `--rounds` times; the median, and its ratio to the first configuration.
3. **Backlog.** The subscriber goes away (its session stays) and `--backlog` messages are
   published into its queue: publish rate (each queued message is a persistence "change"),
   the time of one forced save of that queue (what every save costs with that backlog), then
   the rate at which the returning subscriber drains it (each acknowledgement is a change).
4. **Real ingester.** `firetower ingest --no-alerting` on a throwaway database: half of a
   200-device stream (with fire events) while it runs, then it stops and the other half is
   acknowledged into the broker's queue, SIGKILL right after the last PUBACK, restart, the
   ingester returns: acknowledged vs stored.

Ratios (`*_ratio_to_first`) compare each configuration with the first one of the same run.

Writes `bench/records/broker-kill-<UTC timestamp>.json` (bench/records.py).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from bench import records
from bench.stats import percentile
from bench.support import fresh_database
from firetower.broker import Broker, free_port, mqtt_answers
from firetower.mqtt import AsyncMqtt
from firetower.protocol import encode, format_ts, topic_for
from firetower.settings import Settings

RABBIT = "rabbitmq-quorum"  # a private RabbitMQ node, MQTT plugin, quorum subscription queues
# name -> Mosquitto options that differ from deploy/mosquitto/firetower.conf, and the
# launcher's forced save (min_s, factor) if any (firetower.broker.Broker.save_every)
CONFIGS: dict[str, tuple[dict[str, str], tuple[float, float] | None]] = {
    "autosave-30s": ({"autosave_on_changes": "false", "autosave_interval": "30"}, None),
    "timer-1s": ({"autosave_on_changes": "false", "autosave_interval": "30"}, (1.0, 4.0)),
    "timer-0.25s": ({"autosave_on_changes": "false", "autosave_interval": "30"}, (0.25, 4.0)),
    "timer-0.1s": ({"autosave_on_changes": "false", "autosave_interval": "30"}, (0.1, 4.0)),
    "changes-10000": ({"autosave_on_changes": "true", "autosave_interval": "10000"}, None),
    "changes-1000": ({"autosave_on_changes": "true", "autosave_interval": "1000"}, None),
    "changes-100": ({"autosave_on_changes": "true", "autosave_interval": "100"}, None),
    "changes-1": ({"autosave_on_changes": "true", "autosave_interval": "1"}, None),
}
WINDOW = 1000  # outstanding publishes in the throughput burst
SUB_ID = "bench-kill-sub"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", action="append", choices=sorted([*CONFIGS, RABBIT]),
                        help="configurations to measure (default: all)")
    parser.add_argument("--cycles", type=int, default=4, help="SIGKILL + restart cycles")
    parser.add_argument("--cycle-s", type=float, default=3.0, help="stream seconds per cycle")
    parser.add_argument("--away-s", type=float, default=2.0,
                        help="seconds the subscriber is away before an even cycle's kill")
    parser.add_argument("--rate", type=float, default=1000.0, help="stream messages/s")
    parser.add_argument("--fire-every", type=int, default=50,
                        help="every n-th stream message is a fire event")
    parser.add_argument("--burst", type=int, default=30_000, help="throughput burst size")
    parser.add_argument("--rounds", type=int, default=3,
                        help="throughput bursts per configuration (taking turns)")
    parser.add_argument("--backlog", type=int, default=50_000, help="queued backlog size")
    parser.add_argument("--phase-timeout-s", type=float, default=20.0,
                        help="give up a burst or backlog phase after this long")
    parser.add_argument("--ingest-per-device", type=int, default=15,
                        help="readings per device in the real-ingester phase (200 devices)")
    parser.add_argument("--phase", action="append",
                        choices=["kill", "throughput", "backlog", "ingest"],
                        help="phases to run (default: all)")


class Subscriber:
    """A persistent session that records each message's sequence number and acknowledges it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: dict[int, int] = {}  # seq -> times received
        self.mqtt: AsyncMqtt | None = None
        self.last_at = time.monotonic()

    async def start(self) -> None:
        mqtt = AsyncMqtt("127.0.0.1", self.port, client_id=SUB_ID, clean_session=False,
                         manual_ack=True)
        mqtt.client.user_data_set(mqtt)
        mqtt.set_on_message(self._on_message)
        mqtt.subscribe("fire/#", 1)
        subacked = asyncio.Event()
        mqtt.client.on_subscribe = lambda *_: subacked.set()
        self.mqtt = mqtt
        await mqtt.start(timeout=30)
        # RabbitMQ declares the session's queue on SUBSCRIBE; a message published before it
        # exists is routed nowhere, yet acknowledged. Start the stream after the SUBACK.
        await asyncio.wait_for(subacked.wait(), 30)

    def _on_message(self, client: Any, mqtt: AsyncMqtt, msg: Any) -> None:
        seq = int(msg.payload.split(b",", 1)[0])
        self.received[seq] = self.received.get(seq, 0) + 1
        self.last_at = time.monotonic()
        mqtt.ack(msg.mid, mqtt.generation)

    async def stop(self) -> None:
        if self.mqtt is not None:
            await self.mqtt.stop()
            self.mqtt = None

    async def drain(self, idle_s: float = 3.0, timeout: float = 60.0) -> None:
        """Wait until nothing has arrived for `idle_s` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() - self.last_at < idle_s and time.monotonic() < deadline:
            await asyncio.sleep(0.2)


class Publisher:
    """QoS 1 publishes numbered from 0; `acked` holds the numbers the broker acknowledged."""

    def __init__(self, port: int, fire_every: int) -> None:
        self.port = port
        self.fire_every = fire_every
        self.seq = 0
        self.by_mid: dict[int, int] = {}
        self.acked: set[int] = set()
        self.acked_at: dict[int, float] = {}
        self.fires: set[int] = set()
        self.mqtt: AsyncMqtt | None = None

    async def start(self) -> None:
        mqtt = AsyncMqtt("127.0.0.1", self.port, client_id=f"bench-kill-pub-{os.getpid()}")
        mqtt.client.on_publish = self._on_publish
        await mqtt.start(timeout=30)
        self.mqtt = mqtt

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any,
                    properties: Any) -> None:
        seq = self.by_mid.pop(mid, None)
        if seq is not None:
            self.acked.add(seq)
            self.acked_at[seq] = time.monotonic()

    def publish(self, *, fire: bool | None = None) -> None:
        assert self.mqtt is not None
        seq = self.seq
        self.seq += 1
        device = f"dev-{seq % 500}"
        is_fire = (seq % self.fire_every == 0) if fire is None else fire
        kind = "event" if is_fire else "telemetry"
        if is_fire:
            self.fires.add(seq)
        info = self.mqtt.publish(f"fire/v1/{device}/{kind}", f"{seq},".encode() + b"x" * 150)
        self.by_mid[info.mid] = seq

    async def stop(self) -> None:
        if self.mqtt is not None:
            await self.mqtt.stop()
            self.mqtt = None


async def _stream(pub: Publisher, rate: float, seconds: float) -> None:
    start = time.monotonic()
    sent = 0
    while (elapsed := time.monotonic() - start) < seconds:
        due = int(elapsed * rate) - sent
        for _ in range(due):
            pub.publish()
        sent += max(due, 0)
        await asyncio.sleep(0.005)


async def _kill_cycles(broker: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Odd cycles kill the broker while the subscriber is online; even cycles while it has
    been away for `--away-s` (an ingester restarting, or stalled by a database outage): its
    messages then wait in the broker's queue, which only the persistence file holds."""
    sub = Subscriber(broker.port)
    await sub.start()
    pub = Publisher(broker.port, args.fire_every)
    await pub.start()
    await asyncio.to_thread(broker.save)  # the session is old and saved, as in production
    cycles: list[dict[str, Any]] = []
    try:
        for i in range(args.cycles):
            away = i % 2 == 1
            first = pub.seq
            await _stream(pub, args.rate, args.cycle_s)
            if away:
                await sub.stop()
                await _stream(pub, args.rate, args.away_s)
            last = pub.seq
            saved_through = getattr(broker, "saved_through", None)
            broker.kill()
            t = time.monotonic()
            await asyncio.to_thread(broker.start, 60.0)
            cycles.append({"subscriber": "away" if away else "online", "seqs": (first, last),
                           "saved_through": saved_through,
                           "since_save_s": None if saved_through is None
                           else round(t - saved_through, 3),
                           "restart_s": round(time.monotonic() - t, 3)})
            if away:
                await sub.start()
        await _stream(pub, args.rate, 2.0)  # after the last restart
        deadline = time.monotonic() + 30
        while pub.by_mid and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        await sub.drain()
    finally:
        await pub.stop()
        await sub.stop()
    lost = pub.acked - sub.received.keys()
    for c in cycles:
        first, last = c.pop("seqs")
        c["acked"] = sum(1 for s in range(first, last) if s in pub.acked)
        c["lost"] = sum(1 for s in lost if first <= s < last)
        c["fire_events_lost"] = sum(1 for s in lost & pub.fires if first <= s < last)
        # Acknowledged before the last landed save was requested, yet lost: must be 0.
        through = c.pop("saved_through")
        c["lost_acked_before_save"] = None if through is None else sum(
            1 for s in lost if first <= s < last and pub.acked_at[s] < through)
    return {
        "published": pub.seq, "acked": len(pub.acked), "received": len(sub.received),
        "lost": len(lost), "lost_pct": round(100 * len(lost) / max(len(pub.acked), 1), 4),
        "fire_events_acked": len(pub.fires & pub.acked),
        "fire_events_lost": len(pub.fires & lost),
        "redelivered": sum(n - 1 for n in sub.received.values()),
        "cycles": cycles,
    }


async def _burst(broker: Any, args: argparse.Namespace) -> dict[str, Any]:
    sub = Subscriber(broker.port)
    await sub.start()
    pub = Publisher(broker.port, args.fire_every)
    await pub.start()
    base = pub.seq
    try:
        start = time.monotonic()
        deadline = start + args.phase_timeout_s
        while pub.seq - base < args.burst and time.monotonic() < deadline:
            assert pub.mqtt is not None
            while pub.mqtt.outstanding < WINDOW and pub.seq - base < args.burst:
                pub.publish(fire=False)
            await asyncio.sleep(0.001)
        while len(sub.received) < pub.seq - base and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        elapsed = time.monotonic() - start
    finally:
        await pub.stop()
        await sub.stop()
    return {"messages": len(sub.received), "seconds": round(elapsed, 3),
            "msgs_per_s": round(len(sub.received) / elapsed, 1),
            "complete": len(sub.received) >= args.burst}


async def _backlog(broker: Any, args: argparse.Namespace) -> dict[str, Any]:
    sub = Subscriber(broker.port)
    await sub.start()  # make the persistent session, then leave it queued
    await sub.stop()
    pub = Publisher(broker.port, args.fire_every)
    await pub.start()
    try:
        start = time.monotonic()
        deadline = start + args.phase_timeout_s
        while len(pub.acked) < args.backlog and time.monotonic() < deadline:
            assert pub.mqtt is not None
            while pub.mqtt.outstanding < WINDOW and pub.seq < args.backlog:
                pub.publish(fire=False)
            await asyncio.sleep(0.001)
        elapsed = time.monotonic() - start
    finally:
        await pub.stop()
    t = time.monotonic()
    await asyncio.to_thread(broker.save, 120.0)
    save_s = time.monotonic() - t
    state_bytes = _state_bytes(broker)
    # The subscriber comes back and drains its queue: every acknowledgement is a "change" too.
    t = time.monotonic()
    await sub.start()
    try:
        deadline = t + args.phase_timeout_s
        while len(sub.received) < len(pub.acked) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        drain_s = time.monotonic() - t
    finally:
        await sub.stop()
    return {"queued": len(pub.acked), "seconds": round(elapsed, 3),
            "publish_msgs_per_s": round(len(pub.acked) / elapsed, 1),
            "complete": len(pub.acked) >= args.backlog,
            "save_s": round(save_s, 3), "state_bytes": state_bytes,
            "drained": len(sub.received), "drain_msgs_per_s": round(len(sub.received) / drain_s, 1)}


class RabbitNode:
    """A private RabbitMQ node (its own name, ports, data folder, plugins file and cookie; the
    machine's own node is never touched) with the MQTT plugin, whose persistent sessions are
    quorum queues: a QoS 1 PUBACK is sent once the queue confirmed the message, i.e. after it
    is in the queue's fsynced log. The same interface as `firetower.broker.Broker` here."""

    def __init__(self, root: Path, port: int) -> None:
        self.root, self.port = root, port
        self.process: subprocess.Popen[bytes] | None = None
        self.node = f"ftbench{os.getpid()}{port}@localhost"
        root.mkdir(parents=True, exist_ok=True)
        (root / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{free_port()}\n"
            f"mqtt.listeners.tcp.default = 127.0.0.1:{port}\n"
            "mqtt.allow_anonymous = true\n"
            "mqtt.durable_queue_type = quorum\n"
            # unacknowledged messages sent to one subscriber: Mosquitto's max_inflight_messages
            "mqtt.prefetch = 20000\n")
        (root / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
        cookie = root / ".erlang.cookie"
        cookie.write_text(uuid.uuid4().hex)
        cookie.chmod(0o600)
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root),
            "RABBITMQ_NODENAME": self.node, "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_DIST_PORT": str(free_port()),
            "RABBITMQ_MNESIA_BASE": str(root / "mnesia"), "RABBITMQ_LOG_BASE": str(root / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(root / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(root / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(root / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(root / "rabbitmq-env.conf"),
            "RABBITMQ_PID_FILE": str(root / "pid"),
        }
        if os.geteuid() == 0:
            subprocess.run(["chown", "-R", "rabbitmq:rabbitmq", str(root)], check=True)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> RabbitNode:
        cmd = ["/usr/lib/rabbitmq/bin/rabbitmq-server"]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "rabbitmq", "--", "env", *(f"{k}={v}" for k, v in
                                                          self.env.items()), *cmd]
        self.process = subprocess.Popen(cmd, env=self.env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if mqtt_answers(self.port, 0.5):
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"rabbitmq exited ({self.root / 'log'})")
            time.sleep(0.2)
        raise RuntimeError(f"rabbitmq did not answer MQTT on {self.port}")

    def _beam_pid(self) -> int | None:
        try:
            return int((self.root / "pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        pid = self._beam_pid()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            for _ in range(300):
                if not Path(f"/proc/{pid}").exists():
                    break
                time.sleep(0.1)
            (self.root / "pid").unlink(missing_ok=True)
        if self.process is not None:
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            self.process = None

    def save(self, timeout: float = 0.0) -> None:
        """Nothing to force: a message is in the queue's log before it is acknowledged."""

    def state_bytes(self) -> int:
        return sum(f.stat().st_size for f in (self.root / "mnesia").rglob("*") if f.is_file())


def _state_bytes(broker: Any) -> int:
    return broker.state_bytes() if isinstance(broker, RabbitNode) else broker.db_file.stat().st_size


async def _ingest(broker: Any, args: argparse.Namespace) -> dict[str, Any]:
    """The real ingester (`firetower ingest --no-alerting`, its own process) on a throwaway
    database: half the stream with it running; then it stops (its sessions stay at the
    broker) and the other half is published and acknowledged into the broker's queue; SIGKILL
    right after the last PUBACK, restart, the ingester comes back. Stored vs acknowledged."""
    name = f"bench_broker_kill_{os.getpid()}"
    async with fresh_database(args.settings.database_url, name, plain=True) as url:
        devices = [(f"bk-{i:04d}", "smoke_detector" if i % 10 else "alarm_panel")
                   for i in range(200)]
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("INSERT INTO sites (id, name) VALUES ('bk', 'bk')")
            await conn.executemany(
                "INSERT INTO devices (id, kind, site_id, lifecycle) "
                "VALUES ($1, $2, 'bk', 'in_service')", devices)
        finally:
            await conn.close()
        messages = _device_messages(devices, per_device=args.ingest_per_device)
        env = dict(os.environ, FIRETOWER_DATABASE_URL=url, FIRETOWER_MQTT_URL=broker.url,
                   FIRETOWER_METRICS_PORT="0", FIRETOWER_ENV="development",
                   FIRETOWER_INGEST_CLIENT_ID=f"bench-kill-ingest-{os.getpid()}")
        for k in ("FIRETOWER_MQTT_USERNAME", "FIRETOWER_MQTT_PASSWORD"):
            env.pop(k, None)
        log = Path(tempfile.mkstemp(prefix="bench-kill-ingest-", suffix=".log")[1])

        def spawn() -> subprocess.Popen[bytes]:
            with log.open("ab") as out:
                return subprocess.Popen([sys.executable, "-m", "firetower", "ingest",
                                         "--no-alerting"], env=env, stdout=out,
                                        stderr=subprocess.STDOUT)

        ingester = spawn()
        try:
            await _wait_subscribed(broker.port, url)
            half = len(messages) // 2
            acked = await _publish_all(broker.port, messages[:half], args.rate)
            await _wait_rows(url, len(acked), 30)
            ingester.send_signal(signal.SIGTERM)
            ingester.wait(30)
            acked += await _publish_all(broker.port, messages[half:], args.rate)
            broker.kill()  # right after the last PUBACK
            await asyncio.to_thread(broker.start, 60.0)
            ingester = spawn()
            stored = await _wait_rows(url, len(acked), 60)
        finally:
            if ingester.poll() is None:
                ingester.send_signal(signal.SIGTERM)
                ingester.wait(30)
            log.unlink(missing_ok=True)
        rows = await _stored_keys(url)
    lost = set(acked) - rows
    fires = {k for k in acked if k[1] == "event"}
    return {"acked": len(acked), "stored": stored, "lost": len(lost),
            "fire_events_acked": len(fires), "fire_events_lost": len(lost & fires)}


def _device_messages(devices: list[tuple[str, str]], per_device: int,
                     ) -> list[tuple[tuple[str, str, int], str, bytes]]:
    """Readings of every device, and a fire event from every panel each tenth round:
    ((device, type, seq), topic, payload)."""
    t0 = datetime.now(UTC) - timedelta(minutes=30)
    out = []
    for k in range(per_device):
        ts = format_ts(t0 + timedelta(seconds=k))
        for d, kind in devices:
            if kind == "alarm_panel":
                body = {"seq": k, "ts": ts, "mains_ok": True, "battery_ok": True,
                        "battery_v": 27.0}
                out.append(((d, "telemetry", k), topic_for(d, "telemetry"), encode(body)))
                if k % 10 == 0:
                    ev = {"seq": 100_000 + k, "ts": ts, "category": "fire", "active": True,
                          "zone": k + 1}
                    out.append(((d, "event", 100_000 + k), topic_for(d, "event"), encode(ev)))
            else:
                body = {"seq": k, "ts": ts, "obscuration_pct_per_m": 0.1,
                        "temperature_c": 21.0, "battery_v": 3.0}
                out.append(((d, "telemetry", k), topic_for(d, "telemetry"), encode(body)))
    return out


async def _publish_all(port: int, messages: list[tuple[tuple[str, str, int], str, bytes]],
                       rate: float) -> list[tuple[str, str, int]]:
    """Publish at `rate` msg/s; return the keys of the messages the broker acknowledged."""
    mqtt = AsyncMqtt("127.0.0.1", port)
    by_mid: dict[int, tuple[str, str, int]] = {}
    acked: list[tuple[str, str, int]] = []

    def on_publish(client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        key = by_mid.pop(mid, None)
        if key is not None:
            acked.append(key)

    mqtt.client.on_publish = on_publish
    await mqtt.start(timeout=30)
    start = time.monotonic()
    try:
        for i, (key, topic, payload) in enumerate(messages):
            by_mid[mqtt.publish(topic, payload).mid] = key
            if i % 50 == 49:
                await asyncio.sleep(max(0.0, (i + 1) / rate - (time.monotonic() - start)))
        deadline = time.monotonic() + 30
        while by_mid and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    finally:
        await mqtt.stop()
    return acked


async def _wait_subscribed(port: int, url: str) -> None:
    """Until the ingester's session stands: a probe from an unknown device is recorded."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        await _publish_all(port, [(("probe", "status", 0), "fire/v1/bk-probe/status", b"{}")],
                           1000)
        conn = await asyncpg.connect(url)
        try:
            if await conn.fetchval("SELECT 1 FROM unregistered_devices "
                                   "WHERE device_id = 'bk-probe'"):
                return
        finally:
            await conn.close()
        await asyncio.sleep(0.3)
    raise RuntimeError("the ingester did not subscribe")


async def _stored_keys(url: str) -> set[tuple[str, str, int]]:
    conn = await asyncpg.connect(url)
    try:
        t = await conn.fetch("SELECT device_id, seq FROM telemetry")
        e = await conn.fetch("SELECT device_id, seq FROM events")
    finally:
        await conn.close()
    return ({(r["device_id"], "telemetry", r["seq"]) for r in t}
            | {(r["device_id"], "event", r["seq"]) for r in e})


async def _wait_rows(url: str, n: int, timeout: float) -> int:
    """Rows stored once `n` are there, or when the count has not moved for 5 s."""
    deadline = time.monotonic() + timeout
    last, still = -1, time.monotonic()
    while time.monotonic() < deadline:
        got = len(await _stored_keys(url))
        if got >= n:
            return got
        if got != last:
            last, still = got, time.monotonic()
        elif time.monotonic() - still > 5:
            return got
        await asyncio.sleep(0.3)
    return last


def _make(name: str, state: Path) -> Any:
    if name == RABBIT:
        return RabbitNode(state, free_port())
    options, save_every = CONFIGS[name]
    return Broker(state, free_port(), options=dict(options), save_every=save_every)


async def _throughput_rounds(names: list[str], args: argparse.Namespace,
                             root: Path) -> dict[str, dict[str, Any]]:
    """Every configuration's broker runs at once and the bursts take turns (A, B, C, A, B,
    C, ...), so a neighbour's load on this shared machine falls on all of them alike; each
    configuration's figure is the median of its rounds."""
    brokers = {n: _make(n, root / f"{n}-throughput") for n in names}
    runs: dict[str, list[float]] = {n: [] for n in names}
    complete: dict[str, list[bool]] = {n: [] for n in names}
    try:
        for b in brokers.values():
            await asyncio.to_thread(b.start, 60.0)
        for _ in range(args.rounds):
            for n, b in brokers.items():
                r = await _burst(b, args)
                # a burst cut off by --phase-timeout-s still gives a rate (what arrived in it)
                runs[n].append(r["msgs_per_s"])
                complete[n].append(r["complete"])
    finally:
        for b in brokers.values():
            b.stop(signal.SIGKILL)
    out = {n: {"msgs_per_s": round(percentile(v, 50), 1), "rounds": v,
               "complete": complete[n]} for n, v in runs.items()}
    print(f"throughput: {out}", flush=True)
    return out


async def _measure(name: str, args: argparse.Namespace, root: Path) -> dict[str, Any]:
    options, save_every = CONFIGS.get(name, ({}, None))
    out: dict[str, Any] = {"options": options, "launcher_save_every": save_every}
    phases = {"kill": _kill_cycles, "backlog": _backlog, "ingest": _ingest}
    for phase, fn in phases.items():
        if args.phase and phase not in args.phase:
            continue
        broker = _make(name, root / f"{name}-{phase}")
        await asyncio.to_thread(broker.start, 60.0)
        try:
            out[phase] = await fn(broker, args)
        finally:
            out[phase]["launcher_saves"] = getattr(broker, "saves", 0)
            broker.stop(signal.SIGKILL)
        print(f"{name} {phase}: {out[phase]}", flush=True)
    return out


def main(args: argparse.Namespace, settings: Settings) -> int:
    args.settings = settings
    names = args.config or list(CONFIGS)
    root = Path(tempfile.mkdtemp(prefix="firetower-bench-kill-"))
    root.chmod(0o755)  # reachable by the broker's own account when started as root
    begun = records.start()
    try:
        results = {n: asyncio.run(_measure(n, args, root)) for n in names}
        if not args.phase or "throughput" in args.phase:
            for n, r in asyncio.run(_throughput_rounds(names, args, root)).items():
                results[n]["throughput"] = r
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for phase, key in (("throughput", "msgs_per_s"), ("backlog", "publish_msgs_per_s"),
                       ("backlog", "drain_msgs_per_s")):
        if phase in results[names[0]]:
            base = results[names[0]][phase][key]
            for r in results.values():
                r[phase][f"{key}_ratio_to_first"] = round(r[phase][key] / base, 3)
    out = {"broker": "mosquitto 2.0.11", "configs": results}
    print(json.dumps(out, indent=2))
    return records.finish("broker-kill", args, begun, out, checks(results))


def checks(results: dict[str, dict[str, Any]]) -> list[records.Check]:
    """What must hold whatever the persistence setting: a message acknowledged before the last
    save that landed ahead of a kill is never lost (a later one may be: that is what the
    benchmark measures), and a queued backlog is delivered in full to the returning
    subscriber (within --phase-timeout-s). A slow setting that cannot finish a throughput
    burst in time is a figure, not a failure: its rounds say `complete: false`."""
    out = []
    for name, r in sorted(results.items()):
        if "kill" in r:
            lost = [c["lost_acked_before_save"] for c in r["kill"]["cycles"]
                    if c["lost_acked_before_save"] is not None]
            out.append(records.Check(
                f"{name}: nothing acknowledged before a landed save is lost",
                not any(lost), f"lost per cycle {lost}"))
        if "backlog" in r:
            b = r["backlog"]
            out.append(records.Check(f"{name}: the queued backlog was drained in full",
                                     b["drained"] >= b["queued"],
                                     f"queued {b['queued']}, drained {b['drained']}"))
    return out
