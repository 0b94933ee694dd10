"""Incoming MQTT 3.1.1 PUBLISH packets parsed straight from the receive buffer.

paho-mqtt spends about a third of the ingester's CPU per message on its generic path: three or
four reads per packet, a bytearray per packet, an `MQTTMessage`, and a topic match against the
registered callbacks. `firetower.mqtt.AsyncMqtt` hands every complete QoS 0/1 PUBLISH at the
head of its buffer to `split_publishes` instead, and leaves everything else (CONNACK, SUBACK,
PINGRESP, QoS 2, a packet cut by the end of the buffer, anything malformed) to paho.
"""

from __future__ import annotations

from enum import Enum


class Publish:
    """The fields of an incoming PUBLISH that message handlers use (duck-types paho's
    `MQTTMessage`: `topic`, `payload`, `qos`, `mid`, `retain`, `dup`)."""

    __slots__ = ("dup", "mid", "payload", "qos", "retain", "topic")

    def __init__(self, topic: str, payload: bytes, qos: int, mid: int, retain: bool,
                 dup: bool) -> None:
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.mid = mid
        self.retain = retain
        self.dup = dup

    def __repr__(self) -> str:
        return f"Publish({self.topic!r}, {len(self.payload)} B, qos={self.qos}, mid={self.mid})"


class Stop(Enum):
    EMPTY = "empty"  # the buffer is consumed
    PARTIAL = "partial"  # a PUBLISH starts here but is not complete yet: read more
    OTHER = "other"  # another packet (or one this parser leaves to paho) starts here
    LIMIT = "limit"  # `limit` packets taken


def split_publishes(buf: bytes, pos: int, out: list[Publish],
                    limit: int) -> tuple[int, Stop]:
    """Append up to `limit` complete QoS 0/1 PUBLISH packets from `buf[pos:]` to `out`.
    Returns the position after the last one taken and why parsing stopped."""
    n = len(buf)
    taken = 0
    while pos < n:
        if taken >= limit:
            return pos, Stop.LIMIT
        b0 = buf[pos]
        qos = (b0 >> 1) & 3
        if b0 >> 4 != 3 or qos > 1:
            return pos, Stop.OTHER
        i = pos + 1
        length = 0
        shift = 0
        while True:
            if i >= n:
                return pos, Stop.PARTIAL
            b = buf[i]
            i += 1
            length |= (b & 0x7F) << shift
            if b < 0x80:
                break
            shift += 7
            if shift > 21:  # more than 4 length bytes: malformed, paho reports it
                return pos, Stop.OTHER
        end = i + length
        if end > n:
            return pos, Stop.PARTIAL
        if length < 2:
            return pos, Stop.OTHER
        t_end = i + 2 + ((buf[i] << 8) | buf[i + 1])
        p0 = t_end + 2 if qos else t_end
        if p0 > end:
            return pos, Stop.OTHER
        try:
            topic = buf[i + 2:t_end].decode()
        except UnicodeDecodeError:
            return pos, Stop.OTHER
        mid = (buf[t_end] << 8) | buf[t_end + 1] if qos else 0
        out.append(Publish(topic, buf[p0:end], qos, mid, bool(b0 & 1), bool(b0 & 8)))
        taken += 1
        pos = end
    return pos, Stop.EMPTY
