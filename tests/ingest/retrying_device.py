"""A device as MQTT 3.1.1 asks one to behave under overload: QoS 1, a small window of
unacknowledged messages, and when the broker closes the connection or refuses it, reconnect
and publish again every message that has no PUBACK yet. It records which messages were
acknowledged, so a test can check that every acknowledged message was stored.

Written on the socket (the packet builders of simulators/wire_lane.py) so that what the broker
did is seen exactly: a PUBACK, a closed connection, a refused connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections import deque
from dataclasses import dataclass, field

from simulators.wire_lane import connect_packet, publish_packet

_PUBACK = 0x40
_DUP = 0x08


@dataclass
class DeviceRecord:
    acked: set[int] = field(default_factory=set)  # indices of messages with a PUBACK
    published: int = 0  # PUBLISH packets written, resends included
    resent: int = 0
    closed_by_broker: int = 0  # connections the broker closed with messages unacknowledged
    connect_failures: int = 0  # connections refused or not answered


class RetryingDevice:
    def __init__(self, port: int, client_id: str, messages: list[tuple[str, bytes]], *,
                 window: int = 20, retry_s: float = 0.2, stall_s: float = 10.0) -> None:
        self.port = port
        self.client_id = client_id
        self.messages = messages
        self.window = window
        self.retry_s = retry_s
        self.stall_s = stall_s
        self.record = DeviceRecord()
        self._todo: deque[int] = deque(range(len(messages)))
        self._unacked: dict[int, int] = {}  # mid -> message index
        self._mid = 0
        self._progress = asyncio.Event()

    @property
    def done(self) -> bool:
        return not self._todo and not self._unacked

    async def run(self, deadline_s: float = 120.0) -> DeviceRecord:
        """Publish every message until each has its PUBACK (or the deadline passes)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline_s
        while not self.done and loop.time() < end:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", self.port), 5)
            except (OSError, TimeoutError):
                self.record.connect_failures += 1
                await asyncio.sleep(self.retry_s)  # a device's retry interval
                continue
            try:
                await self._session(reader, writer, end)
            finally:
                writer.close()
                with contextlib.suppress(OSError, ConnectionError):
                    await writer.wait_closed()
            if not self.done:
                await asyncio.sleep(self.retry_s)  # a device's retry interval
        return self.record

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       end: float) -> None:
        loop = asyncio.get_running_loop()
        try:
            writer.write(connect_packet(self.client_id))
            connack = await asyncio.wait_for(reader.readexactly(4), 5)
        except (OSError, ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            self.record.connect_failures += 1
            return
        if connack[0] != 0x20 or connack[3] != 0:
            self.record.connect_failures += 1
            return
        acks = asyncio.create_task(self._read_acks(reader))
        try:
            for mid, index in list(self._unacked.items()):  # the retry a device owes
                self._write(writer, mid, index, dup=True)
                self.record.resent += 1
            last_progress = loop.time()
            while not self.done and not acks.done() and loop.time() < end:
                while self._todo and len(self._unacked) < self.window:
                    index = self._todo.popleft()
                    self._mid = self._mid % 65535 + 1
                    self._unacked[self._mid] = index
                    self._write(writer, self._mid, index, dup=False)
                await writer.drain()
                self._progress.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._progress.wait(), 0.5)
                if self._progress.is_set():
                    last_progress = loop.time()
                elif loop.time() - last_progress > self.stall_s:
                    return  # no PUBACK for a long time: reconnect and resend
        except (OSError, ConnectionError):
            pass
        finally:
            if acks.done() and not self.done:
                self.record.closed_by_broker += 1
            acks.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError, ConnectionError):
                await acks

    def _write(self, writer: asyncio.StreamWriter, mid: int, index: int, *, dup: bool) -> None:
        topic, payload = self.messages[index]
        packet = publish_packet(topic.encode(), payload, 1, mid, False)
        if dup:
            packet = bytes([packet[0] | _DUP]) + packet[1:]
        writer.write(packet)
        self.record.published += 1

    async def _read_acks(self, reader: asyncio.StreamReader) -> None:
        buf = b""
        while True:
            data = await reader.read(65536)
            if not data:
                return  # the broker closed the connection
            buf += data
            while len(buf) >= 4 and buf[0] == _PUBACK and buf[1] == 2:
                (mid,) = struct.unpack_from("!H", buf, 2)
                buf = buf[4:]
                index = self._unacked.pop(mid, None)
                if index is not None:
                    self.record.acked.add(index)
                    self._progress.set()
            if buf and buf[0] != _PUBACK:
                raise ConnectionError(f"unexpected packet {buf[:8].hex()}")
