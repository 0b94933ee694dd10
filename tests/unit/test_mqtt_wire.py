"""The PUBLISH fast path against the MQTT 3.1.1 encoding and against paho's own parser."""

from __future__ import annotations

import struct

import paho.mqtt.client as paho
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from firetower.mqtt_wire import Publish, Stop, split_publishes
from simulators.wire_lane import varint


def publish(topic: str, payload: bytes, qos: int, mid: int, retain: bool, dup: bool) -> bytes:
    t = topic.encode()
    body = struct.pack("!H", len(t)) + t + (struct.pack("!H", mid) if qos else b"") + payload
    return bytes([0x30 | (dup << 3) | (qos << 1) | retain]) + varint(len(body)) + body


messages = st.lists(st.tuples(
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40),
    st.binary(max_size=300), st.integers(0, 1), st.integers(1, 65535), st.booleans(),
    st.booleans()), min_size=1, max_size=20)


def fields(m: Publish) -> tuple[object, ...]:
    return (m.topic, m.payload, m.qos, m.mid if m.qos else 0, m.retain, m.dup)


@given(messages, st.data())
def test_complete_packets_are_taken_and_a_cut_one_waits(msgs, data) -> None:  # type: ignore[no-untyped-def]
    packets = [publish(*m) for m in msgs]
    buf = b"".join(packets)
    cut = data.draw(st.integers(0, len(buf)))
    out: list[Publish] = []
    pos, why = split_publishes(buf[:cut], 0, out, 10_000)
    ends = [sum(len(p) for p in packets[:i + 1]) for i in range(len(packets))]
    whole = [e for e in ends if e <= cut]
    assert pos == (whole[-1] if whole else 0)
    assert why is (Stop.EMPTY if pos == cut else Stop.PARTIAL)
    assert [fields(m) for m in out] == [
        (t, p, q, mid if q else 0, r, d) for (t, p, q, mid, r, d) in msgs[:len(whole)]]


def test_other_packets_qos2_and_malformed_are_left_to_paho() -> None:
    pub = publish("fire/v1/a/event", b"{}", 1, 7, False, False)
    for head in (b"\x20\x02\x00\x00",                      # CONNACK
                 b"\xd0\x00",                              # PINGRESP
                 b"\x34\x05\x00\x01t\x00\x01",        # QoS 2
                 b"\x30\xff\xff\xff\xff\x01",              # 5 length bytes
                 b"\x32\x03\x00\x05a"):                    # topic longer than the packet
        out: list[Publish] = []
        assert split_publishes(pub + head + pub, 0, out, 100) == (len(pub), Stop.OTHER)
        assert len(out) == 1
    out = []
    assert split_publishes(pub * 5, 0, out, 3) == (3 * len(pub), Stop.LIMIT)


class _Feed:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def close(self) -> None:
        pass

    def recv(self, n: int) -> bytes:
        if self.pos >= len(self.data):
            raise BlockingIOError
        chunk = self.data[self.pos:self.pos + n]
        self.pos += len(chunk)
        return chunk


@settings(max_examples=50)
@given(messages)
def test_same_messages_as_paho(msgs) -> None:  # type: ignore[no-untyped-def]
    buf = b"".join(publish(*m) for m in msgs)
    client = paho.Client(CallbackAPIVersion.VERSION2, manual_ack=True)
    got: list[tuple[object, ...]] = []
    client.on_message = lambda c, u, m: got.append(
        (m.topic, m.payload, m.qos, m.mid if m.qos else 0, bool(m.retain), bool(m.dup)))
    client._sock = _Feed(buf)  # type: ignore[assignment]
    client._sock_recv = client._sock.recv  # type: ignore[method-assign]
    while client._packet_read() == MQTTErrorCode.MQTT_ERR_SUCCESS:
        pass
    client._sock = None
    ours: list[Publish] = []
    split_publishes(buf, 0, ours, 10_000)
    assert [fields(m) for m in ours] == got
