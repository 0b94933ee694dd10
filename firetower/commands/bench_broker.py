"""`firetower bench broker-kill`: what a broker SIGKILL loses, per persistence setting.

For each broker configuration (Mosquitto's timed autosave as shipped before, and
`autosave_on_changes` with a few change counts) on a private broker:

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
   subscriber online: messages/s end to end, and its ratio to the first configuration.
3. **Backlog.** The subscriber goes away (its session stays) and `--backlog` messages are
   published into its queue: publish rate (each queued message is a persistence "change"),
   then the time of one forced save of that queue (what every save costs with that backlog).

Writes `bench/records/broker-kill-<UTC timestamp>.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from firetower.broker import Broker, free_port
from firetower.mqtt import AsyncMqtt
from firetower.settings import Settings

RECORDS = Path(__file__).resolve().parent.parent.parent / "bench" / "records"
# name -> Mosquitto options that differ from deploy/mosquitto/firetower.conf
CONFIGS: dict[str, dict[str, str]] = {
    "autosave-30s": {"autosave_on_changes": "false", "autosave_interval": "30"},
    "changes-1000": {"autosave_on_changes": "true", "autosave_interval": "1000"},
    "changes-100": {"autosave_on_changes": "true", "autosave_interval": "100"},
    "changes-1": {"autosave_on_changes": "true", "autosave_interval": "1"},
}
WINDOW = 1000  # outstanding publishes in the throughput burst
SUB_ID = "bench-kill-sub"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", action="append", choices=sorted(CONFIGS),
                        help="configurations to measure (default: all)")
    parser.add_argument("--cycles", type=int, default=4, help="SIGKILL + restart cycles")
    parser.add_argument("--cycle-s", type=float, default=3.0, help="stream seconds per cycle")
    parser.add_argument("--away-s", type=float, default=2.0,
                        help="seconds the subscriber is away before an even cycle's kill")
    parser.add_argument("--rate", type=float, default=1000.0, help="stream messages/s")
    parser.add_argument("--fire-every", type=int, default=50,
                        help="every n-th stream message is a fire event")
    parser.add_argument("--burst", type=int, default=50_000, help="throughput burst size")
    parser.add_argument("--backlog", type=int, default=50_000, help="queued backlog size")
    parser.add_argument("--phase-timeout-s", type=float, default=20.0,
                        help="give up a burst or backlog phase after this long")
    parser.add_argument("--no-record", action="store_true", help="do not write the JSON record")


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
        self.mqtt = mqtt
        await mqtt.start(timeout=30)

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


async def _kill_cycles(broker: Broker, args: argparse.Namespace) -> dict[str, Any]:
    """Odd cycles kill the broker while the subscriber is online; even cycles while it has
    been away for `--away-s` (an ingester restarting, or stalled by a database outage): its
    messages then wait in the broker's queue, which only the persistence file holds."""
    sub = Subscriber(broker.port)
    await sub.start()
    pub = Publisher(broker.port, args.fire_every)
    await pub.start()
    await asyncio.to_thread(broker.save)  # the session is old and saved, as in production
    cycles = []
    try:
        for i in range(args.cycles):
            away = i % 2 == 1
            first = pub.seq
            await _stream(pub, args.rate, args.cycle_s)
            if away:
                await sub.stop()
                await _stream(pub, args.rate, args.away_s)
            last = pub.seq
            broker.kill()
            t = time.monotonic()
            await asyncio.to_thread(broker.start, 30.0)
            cycles.append({"subscriber": "away" if away else "online", "seqs": (first, last),
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
    return {
        "published": pub.seq, "acked": len(pub.acked), "received": len(sub.received),
        "lost": len(lost), "lost_pct": round(100 * len(lost) / max(len(pub.acked), 1), 4),
        "fire_events_acked": len(pub.fires & pub.acked),
        "fire_events_lost": len(pub.fires & lost),
        "redelivered": sum(n - 1 for n in sub.received.values()),
        "cycles": cycles,
    }


async def _throughput(broker: Broker, args: argparse.Namespace) -> dict[str, Any]:
    """Best of two bursts (the machine is shared: the better run is the less disturbed)."""
    runs = [await _burst(broker, args) for _ in range(2)]
    return max(runs, key=lambda r: r["msgs_per_s"])


async def _burst(broker: Broker, args: argparse.Namespace) -> dict[str, Any]:
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


async def _backlog(broker: Broker, args: argparse.Namespace) -> dict[str, Any]:
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
    return {"queued": len(pub.acked), "seconds": round(elapsed, 3),
            "publish_msgs_per_s": round(len(pub.acked) / elapsed, 1),
            "complete": len(pub.acked) >= args.backlog,
            "save_s": round(save_s, 3), "db_bytes": broker.db_file.stat().st_size}


async def _measure(name: str, options: dict[str, str], args: argparse.Namespace,
                   root: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"options": options}
    for phase, fn in (("kill", _kill_cycles), ("throughput", _throughput),
                      ("backlog", _backlog)):
        broker = Broker(root / f"{name}-{phase}", free_port(), options=dict(options))
        await asyncio.to_thread(broker.start, 30.0)
        try:
            out[phase] = await fn(broker, args)
        finally:
            broker.stop(signal.SIGKILL)
        print(f"{name} {phase}: {out[phase]}", flush=True)
    return out


def main(args: argparse.Namespace, settings: Settings) -> int:
    names = args.config or list(CONFIGS)
    root = Path(tempfile.mkdtemp(prefix="firetower-bench-kill-"))
    root.chmod(0o755)  # reachable by the broker's own account when started as root
    started = datetime.now(UTC)
    try:
        results = {n: asyncio.run(_measure(n, CONFIGS[n], args, root)) for n in names}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    base = results[names[0]]["throughput"]["msgs_per_s"]
    for r in results.values():
        r["throughput"]["ratio_to_first"] = round(r["throughput"]["msgs_per_s"] / base, 3)
    record = {
        "benchmark": "broker-kill", "started": started.isoformat(timespec="seconds"),
        "broker": "mosquitto 2.0.11", "cpus": os.cpu_count(),
        "params": {k: v for k, v in vars(args).items()
                   if k in ("cycles", "cycle_s", "away_s", "rate", "fire_every", "burst",
                            "backlog")},
        "results": results,
    }
    print(json.dumps(record, indent=2))
    if not args.no_record:
        RECORDS.mkdir(parents=True, exist_ok=True)
        path = RECORDS / f"broker-kill-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
        path.write_text(json.dumps(record, indent=2) + "\n")
        print(f"record: {path}")
    return 0
