"""`firetower bench mqtt-boundary`: what the private paho hooks in `firetower.mqtt` buy.

The ingester's receive path (`AsyncMqtt`: one 64 KiB recv per readable event, QoS 0/1 PUBLISH
parsed by `firetower.mqtt_wire`, PUBACKs written in batches through `_packet_queue`) against
paho-mqtt driven through its public API only (`loop_read` / `loop_write` / `loop_misc` on the
same asyncio loop, `on_message`, `ack(mid, qos)` per message), on the same broker and backlog.

Each round: a persistent session subscribes and leaves; N QoS 1 messages are queued for it;
the client under test resumes the session and the clock runs until all N are received and
acknowledged: until the broker answers an UNSUBSCRIBE sent after the last PUBACK, which it
handles in order (the window: wall time and this process's CPU time). A fresh connection to the
session afterwards must receive nothing: a message it gets was never acknowledged, and the
run fails. Variants alternate, so drift on a shared machine hits both.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from bench import records
from bench.stats import percentile
from bench.support import fresh_broker
from firetower.mqtt import AsyncMqtt
from firetower.settings import Settings

_ACK_BATCH = 200  # the ingester acknowledges a committed batch at once


@dataclass
class Round:
    variant: str
    messages: int
    wall_s: float
    cpu_s: float
    redelivered: int

    @property
    def rate(self) -> float:
        return self.messages / self.wall_s

    @property
    def cpu_us_per_msg(self) -> float:
        return self.cpu_s / self.messages * 1e6


async def _until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise RuntimeError(f"timed out: {what}")
        await asyncio.sleep(0.005)


async def _prepare(port: int, client_id: str, topic: str, n: int) -> None:
    """Create the persistent session, then queue `n` QoS 1 messages for it."""
    sub = AsyncMqtt("127.0.0.1", port, client_id=client_id, clean_session=False, manual_ack=True)
    seen: list[int] = []

    def on_message(c: Any, u: Any, m: Any) -> None:
        seen.append(1)
        sub.ack(m.mid, sub.generation)

    sub.set_on_message(on_message)
    sub.subscribe(topic, 1)
    await sub.start()
    pub = AsyncMqtt("127.0.0.1", port)
    await pub.start()
    try:
        while not seen:  # the subscription is active once a probe comes through
            pub.publish(topic, b"probe", 1)
            await _until(lambda: pub.outstanding == 0, 30, "probe acknowledged")
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)  # let stray probes arrive and be acknowledged
        await sub.stop()
        payload = b'{"v":1,"ts":"2026-12-07T00:00:00Z","obscuration_pct_per_m":0.4}'
        for _ in range(n):
            pub.publish(topic, payload, 1)
            if pub.outstanding >= 2000:
                await _until(lambda: pub.outstanding < 1000, 60, "publish window")
        await _until(lambda: pub.outstanding == 0, 60, "all publishes acknowledged")
    finally:
        await pub.stop()


async def _drain_owned(port: int, client_id: str, n: int) -> tuple[float, float]:
    sub = AsyncMqtt("127.0.0.1", port, client_id=client_id, clean_session=False, manual_ack=True)
    pending: list[tuple[int, int]] = []
    done = 0

    def on_message(c: Any, u: Any, m: Any) -> None:
        nonlocal done
        pending.append((m.mid, sub.generation))
        if len(pending) >= _ACK_BATCH:
            done += sub.ack_many(pending)
            pending.clear()

    sub.set_on_message(on_message)
    t0, c0 = time.perf_counter(), time.process_time()
    await sub.start()
    loop_done = asyncio.get_running_loop()
    while done < n:
        await asyncio.sleep(0.001)
        if pending:
            done += sub.ack_many(pending)
            pending.clear()
        if loop_done.time() - t0 > 600:
            raise RuntimeError("owned path: drain timed out")
    if not await sub.flush(30):
        raise RuntimeError("owned path: no UNSUBACK barrier")
    t1, c1 = time.perf_counter(), time.process_time()
    await sub.stop()
    return t1 - t0, c1 - c0


async def _drain_public(port: int, client_id: str, n: int) -> tuple[float, float]:
    """paho's documented external-loop API on the asyncio loop; nothing private."""
    loop = asyncio.get_running_loop()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False,
                         protocol=paho.MQTTv311, manual_ack=True)
    client.max_inflight_messages_set(0)
    done = 0
    connected = asyncio.Event()
    barrier = asyncio.Event()

    def on_message(c: paho.Client, u: Any, m: paho.MQTTMessage) -> None:
        nonlocal done
        c.ack(m.mid, m.qos)
        done += 1

    client.on_message = on_message
    client.on_connect = lambda c, u, f, r, p: connected.set()
    client.on_unsubscribe = lambda c, u, mid, r, p: barrier.set()
    def register_write(c: paho.Client, u: Any, s: Any) -> None:
        loop.add_writer(s, c.loop_write)

    def unregister_write(c: paho.Client, u: Any, s: Any) -> None:
        loop.remove_writer(s)

    client.on_socket_register_write = register_write
    client.on_socket_unregister_write = unregister_write

    def on_close(c: paho.Client, u: Any, s: Any) -> None:
        with contextlib.suppress(ValueError, OSError):
            loop.remove_reader(s)
            loop.remove_writer(s)

    client.on_socket_close = on_close
    t0, c0 = time.perf_counter(), time.process_time()
    if client.connect("127.0.0.1", port, 30) != MQTTErrorCode.MQTT_ERR_SUCCESS:
        raise RuntimeError("public path: connect failed")
    sock = cast(socket.socket, client.socket())  # paho types it SocketLike
    loop.add_reader(sock, client.loop_read)
    if client.want_write():
        loop.add_writer(sock, client.loop_write)
    while done < n:
        await asyncio.sleep(0.001)
        client.loop_misc()
        if time.perf_counter() - t0 > 600:
            raise RuntimeError("public path: drain timed out")
    client.unsubscribe(f"firetower/barrier/{uuid.uuid4().hex}")  # the same barrier as flush()
    await asyncio.wait_for(barrier.wait(), 30)
    t1, c1 = time.perf_counter(), time.process_time()
    assert connected.is_set()
    client.disconnect()
    with contextlib.suppress(ValueError, OSError):
        loop.remove_reader(sock)
    return t1 - t0, c1 - c0


async def _leftover(port: int, client_id: str, topic: str) -> int:
    """Resume the session once more: whatever arrives was never acknowledged."""
    got: list[int] = []
    sub = AsyncMqtt("127.0.0.1", port, client_id=client_id, clean_session=False, manual_ack=True)
    def on_message(c: Any, u: Any, m: Any) -> None:
        got.append(1)
        sub.ack(m.mid, sub.generation)

    sub.set_on_message(on_message)
    await sub.start()
    await asyncio.sleep(1.0)  # redeliveries come at once on resume; 1 s is ample
    await sub.stop()
    return len(got)


async def run_rounds(port: int, n: int, rounds: int) -> list[Round]:
    out: list[Round] = []
    drains = {"owned": _drain_owned, "public": _drain_public}
    for r in range(rounds):
        order = ["owned", "public"] if r % 2 == 0 else ["public", "owned"]
        for variant in order:
            client_id = f"bench-boundary-{uuid.uuid4().hex[:8]}"
            topic = f"bench/boundary/{client_id}"
            await _prepare(port, client_id, topic, n)
            wall, cpu = await drains[variant](port, client_id, n)
            left = await _leftover(port, client_id, topic)
            out.append(Round(variant, n, wall, cpu, left))
    return out


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--messages", type=int, default=50_000, help="queued QoS 1 messages per round")
    p.add_argument("--rounds", type=int, default=4, help="rounds per variant (alternating order)")


def summarise(rounds: list[Round]) -> dict[str, Any]:
    """Per variant: the median rate and CPU per message over its rounds; and their ratios."""
    out: dict[str, Any] = {"rounds": [
        {"variant": r.variant, "messages": r.messages, "wall_s": round(r.wall_s, 4),
         "cpu_s": round(r.cpu_s, 4), "redelivered": r.redelivered} for r in rounds]}
    for variant in ("owned", "public"):
        mine = [r for r in rounds if r.variant == variant]
        out[variant] = {"msg_per_s_p50": round(percentile([r.rate for r in mine], 50)),
                        "cpu_us_per_msg_p50": round(percentile(
                            [r.cpu_us_per_msg for r in mine], 50), 2)}
    out["throughput_ratio"] = round(out["owned"]["msg_per_s_p50"]
                                    / out["public"]["msg_per_s_p50"], 2)
    out["cpu_ratio"] = round(out["public"]["cpu_us_per_msg_p50"]
                             / out["owned"]["cpu_us_per_msg_p50"], 2)
    return out


def checks(rounds: list[Round]) -> list[records.Check]:
    out = [records.equal(f"{v}: nothing redelivered after the drain",
                         sum(r.redelivered for r in rounds if r.variant == v), 0)
           for v in ("owned", "public")]
    out.append(records.equal("every round drained all messages",
                             sorted({r.messages for r in rounds}), [rounds[0].messages]))
    return out


def main(args: argparse.Namespace, settings: Settings) -> int:
    begun = records.start()
    with fresh_broker() as broker:
        rounds = asyncio.run(run_rounds(broker.port, args.messages, args.rounds))
    results = summarise(rounds)
    for v in ("owned", "public"):
        print(f"{v:7s} {results[v]['msg_per_s_p50']:>9,} msg/s  "
              f"{results[v]['cpu_us_per_msg_p50']:6.2f} us CPU/msg (median of {args.rounds})")
    print(f"owned/public: {results['throughput_ratio']}x the rate, "
          f"1/{results['cpu_ratio']} of the CPU")
    return records.finish("mqtt-boundary", args, begun, results, checks(rounds))
