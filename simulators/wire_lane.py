"""`WireLane`: a load generator's MQTT 3.1.1 publishing connection that writes PUBLISH packets
itself (QoS 0/1, bounded window of unacknowledged messages, PUBACKs counted from the socket).

The same interface as `simulators.lanes.Lane` (start, put, drain, stop, stats) at about a tenth
of paho's CPU per message: a benchmark's simulated devices share the machine with the system
they measure, so every microsecond they spend is taken from the centre. Real devices publish
from their own hardware; nothing in the centre uses this class.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import uuid

from simulators.lanes import PublishStats

_PINGREQ = b"\xc0\x00"
_DISCONNECT = b"\xe0\x00"
KEEPALIVE_S = 60


def varint(n: int) -> bytes:
    """MQTT's variable-length integer (the remaining length of a packet)."""
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def connect_packet(client_id: str, keepalive: int = KEEPALIVE_S,
                   credentials: tuple[str, str | None] | None = None) -> bytes:
    cid = client_id.encode()
    flags = 0x02  # clean session
    payload = struct.pack("!H", len(cid)) + cid
    if credentials is not None:
        user, password = credentials
        flags |= 0x80
        payload += struct.pack("!H", len(user.encode())) + user.encode()
        if password is not None:
            flags |= 0x40
            payload += struct.pack("!H", len(password.encode())) + password.encode()
    body = b"\x00\x04MQTT\x04" + bytes([flags]) + struct.pack("!H", keepalive) + payload
    return b"\x10" + varint(len(body)) + body


def publish_packet(topic: bytes, payload: bytes, qos: int, mid: int, retain: bool) -> bytes:
    n = 2 + len(topic) + (2 if qos else 0) + len(payload)
    head = bytes([0x30 | (qos << 1) | int(retain)]) + varint(n) + struct.pack("!H", len(topic))
    if qos:
        return head + topic + struct.pack("!H", mid) + payload
    return head + topic + payload


class WireLane:
    def __init__(self, host: str, port: int, *, window: int = 10_000,
                 client_id: str | None = None,
                 credentials: tuple[str, str | None] | None = None) -> None:
        self.host, self.port = host, port
        self.window = min(window, 60_000)
        self.client_id = client_id or f"wire-{uuid.uuid4().hex[:12]}"
        self.credentials = credentials
        self.stats = PublishStats()
        self._outstanding: set[int] = set()
        self._next = 0
        self._room = asyncio.Event()
        self._room.set()
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._unwritten = 0
        self.error: str | None = None

    async def start(self, timeout: float = 10.0) -> None:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port), timeout)
        writer.write(connect_packet(self.client_id, credentials=self.credentials))
        connack = await asyncio.wait_for(reader.readexactly(4), timeout)
        if connack[0] != 0x20 or connack[3] != 0:
            writer.close()
            raise ConnectionError(f"broker refused the connection: CONNACK {connack.hex()}")
        self._writer = writer
        self._tasks = [asyncio.create_task(self._read(reader), name="wire-lane-read"),
                       asyncio.create_task(self._ping(), name="wire-lane-ping")]

    async def _read(self, reader: asyncio.StreamReader) -> None:
        buf = b""
        outstanding = self._outstanding
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    self.error = "connection closed by the broker"
                    break
                buf = buf + data if buf else data
                pos, n = 0, len(buf)
                while pos + 2 <= n:
                    length = buf[pos + 1]
                    if length & 0x80:  # only PUBACK and PINGRESP are expected: short packets
                        self.error = f"unexpected packet {buf[pos:pos + 8].hex()}"
                        return
                    end = pos + 2 + length
                    if end > n:
                        break
                    if buf[pos] == 0x40 and length == 2:
                        mid = (buf[pos + 2] << 8) | buf[pos + 3]
                        if mid in outstanding:
                            outstanding.discard(mid)
                            self.stats.acked += 1
                    pos = end
                buf = buf[pos:]
                if len(outstanding) < self.window:
                    self._room.set()
        finally:
            self._room.set()  # wake a waiting put(), which then sees the error

    async def _ping(self) -> None:
        while self._writer is not None:
            await asyncio.sleep(KEEPALIVE_S / 2)
            self._writer.write(_PINGREQ)

    async def put(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        writer = self._writer
        assert writer is not None, "start() first"
        if self.error is not None:
            self.stats.errors += 1
            raise ConnectionError(self.error)
        mid = 0
        if qos:
            outstanding = self._outstanding
            while len(outstanding) >= self.window:
                self._room.clear()
                await self._room.wait()
                if self.error is not None:
                    self.stats.errors += 1
                    raise ConnectionError(self.error)
            mid = self._next
            while True:
                mid = mid % 65535 + 1
                if mid not in outstanding:
                    break
            self._next = mid
            outstanding.add(mid)
        writer.write(publish_packet(topic.encode(), payload, qos, mid, retain))
        self.stats.sent += 1
        if not qos:
            self.stats.acked += 1
        self._unwritten += 1
        if self._unwritten >= 1000:  # let the transport's buffer drain now and then
            self._unwritten = 0
            await writer.drain()

    async def drain(self, timeout: float | None = None) -> bool:
        """Wait for every PUBACK; False if `timeout` passed first."""
        loop = asyncio.get_running_loop()
        end = None if timeout is None else loop.time() + timeout
        while self._outstanding and self.error is None:
            if end is not None and loop.time() > end:
                return False
            await asyncio.sleep(0.01)
        return not self._outstanding

    async def stop(self) -> None:
        writer, self._writer = self._writer, None
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        if writer is not None:
            with contextlib.suppress(OSError, ConnectionError):
                writer.write(_DISCONNECT)
                await writer.drain()
            writer.close()
