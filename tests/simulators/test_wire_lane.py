"""The load generator's wire publisher against a real Mosquitto: every QoS 1 message is
acknowledged once and arrives once, in order, through the project's own subscriber client."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firetower.broker import Broker
from firetower.mqtt import AsyncMqtt
from firetower.mqtt_wire import Publish, Stop, split_publishes
from simulators.wire_lane import WireLane, publish_packet
from tests.helpers import eventually, start_subscribed


@given(st.text(min_size=1, max_size=60).filter(lambda t: "\x00" not in t),
       st.binary(max_size=400), st.integers(0, 1), st.integers(1, 65535), st.booleans())
def test_packets_parse_back(topic: str, payload: bytes, qos: int, mid: int, retain: bool) -> None:
    out: list[Publish] = []
    pkt = publish_packet(topic.encode(), payload, qos, mid, retain)
    assert split_publishes(pkt, 0, out, 10) == (len(pkt), Stop.EMPTY)
    m = out[0]
    assert (m.topic, m.payload, m.qos, m.retain) == (topic, payload, qos, retain)
    assert m.mid == (mid if qos else 0)


@pytest.mark.integration
async def test_every_message_is_acked_and_arrives_once_in_order(own_broker: Broker) -> None:
    got: list[bytes] = []
    sub = AsyncMqtt("127.0.0.1", own_broker.port)
    sub.set_on_message(lambda c, u, m: got.append(m.payload))
    sub.subscribe("wire/#", 1)
    await start_subscribed(sub)
    lane = WireLane("127.0.0.1", own_broker.port, window=500)  # far below the count: waits
    await lane.start()
    n = 20_000
    for i in range(n):
        await lane.put(f"wire/{i % 7}", b"%d" % i, 1)
    assert await lane.drain(30)
    await lane.stop()
    await eventually(lambda: len(got) >= n, what=f"all {n} messages at the subscriber")
    await sub.stop()
    assert lane.stats.sent == lane.stats.acked == n and lane.stats.errors == 0
    assert got == [b"%d" % i for i in range(n)]
