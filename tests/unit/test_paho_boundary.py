"""The MQTT boundary: what `firetower.mqtt` takes from paho-mqtt beyond its public API.

`AsyncMqtt` drives paho through private attributes (docs/mqtt-boundary.md says which and why).
paho is pinned exactly in pyproject.toml; these tests fail when the installed paho is not the
pinned one, when `firetower/mqtt.py` starts using a private attribute not listed here, or when
a listed one changes its kind, signature or meaning. The last test runs the whole boundary
against a real Mosquitto: PUBLISHes through the fast path, PUBACKs queued by hand, a session
resumed after a dropped connection.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import tomllib
import uuid
from collections import OrderedDict
from importlib.metadata import version
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from firetower.mqtt import AsyncMqtt
from firetower.mqtt_wire import Publish

ROOT = Path(__file__).resolve().parents[2]

# Every private paho attribute firetower/mqtt.py touches: name -> what it must be.
# A method: its parameter names (after self). An attribute: the type of its value on a new client.
METHODS: dict[str, tuple[str, ...]] = {
    "_sock_recv": ("bufsize",),            # replaced by the 64 KiB receive buffer
    "_packet_queue": ("command", "packet", "mid", "qos", "info"),  # PUBACKs written in one go
    "_packet_read": (),                    # one packet through paho's generic path
    "_loop_rc_handle": ("rc",),            # paho's own handling of a read error / lost socket
}
ATTRIBUTES: dict[str, type | tuple[type, ...]] = {
    "_sock": type(None),                   # the socket the fast path reads (None when closed)
    "_out_messages": OrderedDict,          # outstanding QoS>0 publishes (AsyncMqtt.outstanding)
    "_last_bytes_received": float,         # keepalive: the fast path marks traffic
    "_userdata": type(None),               # passed to the message handler as paho does
    "_in_packet": dict,                    # command == 0: no packet half-read by paho
}


def _pinned() -> str:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    (pin,) = [d for d in deps if d.startswith("paho-mqtt")]
    m = re.fullmatch(r"paho-mqtt==([0-9.]+)", pin)
    assert m, f"paho-mqtt must be pinned exactly (==), not {pin!r}: see docs/mqtt-boundary.md"
    return m.group(1)


def test_installed_paho_is_the_pinned_one() -> None:
    assert version("paho-mqtt") == _pinned()


def test_every_private_use_is_listed_here() -> None:
    """A new private attribute in firetower/mqtt.py must be added above (and checked)."""
    source = (ROOT / "firetower" / "mqtt.py").read_text()
    used = set(re.findall(r"\bclient\._([a-z][a-z_]*)", source))
    assert {f"_{u}" for u in used} == set(METHODS) | set(ATTRIBUTES)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_private_methods_keep_their_signature(name: str) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2)
    method = getattr(client, name)
    assert callable(method)
    assert tuple(inspect.signature(method).parameters) == METHODS[name]


@pytest.mark.parametrize("name", sorted(ATTRIBUTES))
def test_private_attributes_keep_their_kind(name: str) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2)
    assert isinstance(getattr(client, name), ATTRIBUTES[name])


def test_idle_packet_state_and_read_contract() -> None:
    """The fast path takes over only when paho holds no half-read packet (`command == 0`), and
    reads "no data" from a BlockingIOError out of `_sock_recv`, as paho's own reader does."""
    client = paho.Client(CallbackAPIVersion.VERSION2)
    assert client._in_packet["command"] == 0

    class Socket:
        def recv(self, n: int) -> bytes:
            raise BlockingIOError

    client._sock = Socket()  # type: ignore[assignment]
    client._sock_recv = Socket().recv  # type: ignore[method-assign,assignment]
    assert client._packet_read() == MQTTErrorCode.MQTT_ERR_AGAIN
    assert client._in_packet["command"] == 0
    client._sock = None  # not a real socket: nothing for paho to close


async def test_the_boundary_against_mosquitto(broker) -> None:  # type: ignore[no-untyped-def]
    """Fast-path PUBLISHes, PUBACKs queued with `_packet_queue` and the outstanding count, end
    to end: of 40 QoS 1 messages the subscriber acknowledges 25 and drops its connection; the
    broker redelivers exactly the other 15 to the resumed session, marked dup."""
    topic = f"boundary/{uuid.uuid4().hex[:8]}"
    sub_id = f"boundary-sub-{uuid.uuid4().hex[:8]}"
    got: list[Publish] = []
    probes: list[Publish] = []

    async def subscriber() -> AsyncMqtt:
        s = AsyncMqtt("127.0.0.1", broker.port, client_id=sub_id, clean_session=False,
                      manual_ack=True)

        def on_message(c, u, m) -> None:  # type: ignore[no-untyped-def]
            if m.payload == b"probe":  # the subscription probe: acknowledged at once
                probes.append(m)
                s.ack(m.mid, s.generation)
            else:
                got.append(m)

        s.set_on_message(on_message)
        s.subscribe(topic, 1)
        await s.start()
        return s

    async def until(predicate, what: str) -> None:  # type: ignore[no-untyped-def]
        for _ in range(600):
            if predicate():
                return
            await asyncio.sleep(0.05)  # polling a condition; the deadline is 30 s
        raise AssertionError(f"never happened: {what}")

    sub = await subscriber()
    pub = AsyncMqtt("127.0.0.1", broker.port)
    await pub.start()
    try:
        while not probes:  # the subscription is active once a probe comes through
            pub.publish(topic, b"probe", 1)
            await until(lambda: pub.outstanding == 0, "the probe acknowledged")
            await asyncio.sleep(0.05)  # polling a condition: the probe's round trip
        for i in range(40):
            pub.publish(topic, f"m{i}".encode(), 1)
        await until(lambda: pub.outstanding == 0, "the broker acknowledged every publish")
        await until(lambda: len(got) == 40, "40 messages received")
        assert all(isinstance(m, Publish) for m in got), "QoS 1 PUBLISH took paho's slow path"
        first = {m.payload for m in got}
        assert len(first) == 40
        acked = got[:25]
        assert sub.ack_many([(m.mid, sub.generation) for m in acked]) == 25
        await until(lambda: not sub.client.want_write(), "the PUBACKs were written")
        sub.kill()
        got.clear()
        sub = await subscriber()
        await until(lambda: len(got) >= 15, "the unacknowledged 15 redelivered")
        await asyncio.sleep(0.5)  # time for a wrong extra redelivery to show up
        assert sorted(m.payload for m in got) == sorted(m.payload for m in got[:15])
        assert {m.payload for m in got} == first - {m.payload for m in acked}
        assert all(m.dup for m in got)
    finally:
        await pub.stop()
        await sub.stop()

