"""paho-mqtt driven by the asyncio event loop (no network thread).

The socket is watched with `add_reader`/`add_writer`, so message callbacks run on the event
loop thread and may touch asyncio objects directly. One readable event drains every packet
already buffered, not one packet per loop turn as `loop_read()` does. Incoming QoS 0/1
PUBLISH packets skip paho's generic packet path (`firetower.mqtt_wire`); the handler gets a
`Publish` with paho's `MQTTMessage` attributes (topic, payload, qos, mid, retain, dup).

This module uses paho's private attributes (`client._…`): paho is pinned exactly, and
tests/unit/test_paho_boundary.py lists and checks every one (docs/mqtt-boundary.md says why).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, cast

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from firetower.mqtt_wire import Publish, Stop, split_publishes

log = logging.getLogger(__name__)

# Most packets read per readable event before yielding to other tasks (the priority session,
# the alarm writer, the flushes): about 5-10 ms of work under a backlog.
_READ_BURST = 300
_MISC_INTERVAL_S = 1.0
_RECONNECT_MIN_S = 0.2
_RECONNECT_MAX_S = 5.0
_PUBACK = struct.Struct("!BBH")
# Topic filters per SUBSCRIBE / UNSUBSCRIBE packet: at most this many, and at most this many
# bytes of filters, well inside the broker's max_packet_size (65,536 in firetower.conf).
SUBSCRIBE_MAX_FILTERS = 1000
SUBSCRIBE_MAX_BYTES = 32_000


def filter_chunks(filters: Iterable[str], max_filters: int = SUBSCRIBE_MAX_FILTERS,
                  max_bytes: int = SUBSCRIBE_MAX_BYTES) -> Iterator[list[str]]:
    """Split topic filters into packet-sized lists (each filter costs its UTF-8 length plus a
    2-byte length prefix and a QoS byte); a single filter is never split."""
    chunk: list[str] = []
    size = 0
    for f in filters:
        n = len(f.encode()) + 3
        if chunk and (len(chunk) >= max_filters or size + n > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(f)
        size += n
    if chunk:
        yield chunk


class MqttError(RuntimeError):
    pass


class _RecvBuffer:
    """Serves paho's many small reads (1 byte for the packet type, then the length bytes, then
    the body) from one 64 KiB recv, saving about three system calls per message."""

    __slots__ = ("buf", "client", "pos")

    def __init__(self, client: paho.Client) -> None:
        self.client = client
        self.buf = b""
        self.pos = 0

    def reset(self) -> None:
        self.buf, self.pos = b"", 0

    @property
    def pending(self) -> bool:
        return self.pos < len(self.buf)

    def recv(self, bufsize: int) -> bytes:
        if self.pos >= len(self.buf):
            sock = self.client._sock
            if sock is None:
                raise ConnectionError("socket is closed")
            data = sock.recv(65536)  # BlockingIOError propagates: paho reads it as "no data"
            if not data:
                return b""
            self.buf, self.pos = data, 0
        end = self.pos + bufsize
        chunk = self.buf[self.pos:end]
        self.pos = min(end, len(self.buf))
        return chunk


class AsyncMqtt:
    """A paho client on the running loop, with reconnect and a `connected` event.

    `generation` counts connections: message ids (mids) are only valid on the connection
    that delivered them, so a caller acknowledging late must check the generation first.

    `max_inflight` limits this client's own unacknowledged publishes (0 = no limit). Keep it 0
    and bound the window yourself (see `outstanding`) when publishing in bulk: paho scans every
    outstanding message on each PUBACK, so a large paho window costs 3x in throughput.
    """

    def __init__(self, host: str, port: int, *, client_id: str | None = None,
                 clean_session: bool = True, manual_ack: bool = False,
                 credentials: tuple[str, str | None] | None = None,
                 keepalive: int = 30, max_inflight: int = 0,
                 will: tuple[str, bytes, int, bool] | None = None) -> None:
        self.host, self.port, self.keepalive = host, port, keepalive
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id or f"firetower-{uuid.uuid4().hex[:12]}",
            clean_session=clean_session,
            protocol=paho.MQTTv311,
            manual_ack=manual_ack,
        )
        if credentials is not None:
            self.client.username_pw_set(*credentials)
        if will is not None:
            topic, payload, qos, retain = will
            self.client.will_set(topic, payload, qos, retain)
        self.client.max_inflight_messages_set(max_inflight)
        self.client.max_queued_messages_set(0)
        self._handler: Callable[[paho.Client, Any, Any], None] | None = None
        self._recv = _RecvBuffer(self.client)
        self.client._sock_recv = self._recv.recv  # type: ignore[method-assign]
        self.client.on_socket_open = self._on_socket_open
        self.client.on_socket_close = self._on_socket_close
        self.client.on_socket_register_write = self._on_register_write
        self.client.on_socket_unregister_write = self._on_unregister_write
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_unsubscribe = self._on_unsubscribe
        self._barriers: dict[int, asyncio.Future[None]] = {}
        self.connected = asyncio.Event()
        self.generation = 0
        self.subscriptions: dict[str, int] = {}  # topic filter -> QoS, renewed on every connect
        self.on_connected: Callable[[], None] | None = None
        self._loop = asyncio.get_running_loop()
        self._misc: asyncio.Task[None] | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._closing = False
        self._lost = asyncio.Event()
        self.connect_error: str | None = None

    # -- public ------------------------------------------------------------------------
    def set_on_message(self, handler: Callable[[paho.Client, Any, paho.MQTTMessage], None]) -> None:
        """`handler(client, userdata, message)` for every incoming PUBLISH (QoS 0/1 ones get a
        `firetower.mqtt_wire.Publish`, QoS 2 ones paho's `MQTTMessage`)."""
        self.client.on_message = handler
        self._handler = handler

    async def start(self, timeout: float | None = 10.0) -> None:
        """Connect (and keep reconnecting in the background); wait for the first CONNACK."""
        self._supervisor = asyncio.create_task(self._supervise(), name="mqtt-supervisor")
        if timeout is not None:
            try:
                await asyncio.wait_for(self.connected.wait(), timeout)
            except TimeoutError:
                raise MqttError(f"no connection to mqtt://{self.host}:{self.port}: "
                                f"{self.connect_error or 'timed out'}") from None

    async def flush(self, timeout: float = 5.0) -> bool:
        """A round trip with the broker: returns True once it has processed every packet this
        client wrote before the call (PUBACKs above all), False on timeout or no connection.

        The barrier is an UNSUBSCRIBE of a filter never subscribed, which the broker answers
        in order with an UNSUBACK (MQTT 3.1.1 §3.10.4). It matters on the way out: Mosquitto
        2.0 dropped thousands of PUBACKs written just before a DISCONNECT (measured in
        `firetower bench mqtt-boundary`, docs/mqtt-boundary.md), so their messages came back
        on the next session."""
        if not self.client.is_connected():
            return False
        rc, mid = self.client.unsubscribe(f"firetower/barrier/{uuid.uuid4().hex}")
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            return False
        done = self._loop.create_future()
        self._barriers[mid] = done
        try:
            await asyncio.wait_for(done, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            self._barriers.pop(mid, None)

    async def stop(self) -> None:
        self._closing = True
        if self.client.is_connected():
            await self.flush(2.0)  # acknowledgements written so far reach the broker
            self.client.disconnect()
            # let the DISCONNECT packet go out
            for _ in range(20):
                if self.client.socket() is None:
                    break
                await asyncio.sleep(0.01)
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        self._drop_socket()

    def kill(self) -> None:
        """Drop the TCP connection with no DISCONNECT: the broker then sends the will."""
        self._closing = True
        sock = self.client.socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                cast(socket.socket, sock).shutdown(socket.SHUT_RDWR)  # paho types it SocketLike
        if self._supervisor is not None:
            self._supervisor.cancel()

    def pause_reading(self) -> None:
        """Stop reading from the broker (writes, such as acks, still go out). Whatever the
        broker sent meanwhile and we did not acknowledge, it redelivers on the next session."""
        sock = self.client.socket()
        if sock is not None:
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_reader(sock)

    def subscribe(self, topic: str, qos: int = 1) -> None:
        self.subscribe_many([topic], qos)

    def subscribe_many(self, topics: Iterable[str], qos: int = 1) -> int:
        """Subscribe topic filters (kept, and renewed on every connect), in packets of up to
        SUBSCRIBE_MAX_FILTERS. Returns how many were new."""
        subs = self.subscriptions
        new = [t for t in topics if subs.get(t) != qos]
        for t in new:
            subs[t] = qos
        if new and self.client.is_connected():
            self._send_subscribe([(t, qos) for t in new])
        return len(new)

    def _send_subscribe(self, pairs: list[tuple[str, int]]) -> None:
        qos_of = dict(pairs)
        for chunk in filter_chunks(t for t, _ in pairs):
            self.client.subscribe([(t, qos_of[t]) for t in chunk])

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> paho.MQTTMessageInfo:
        info = self.client.publish(topic, payload, qos, retain)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise MqttError(f"publish to {topic} refused: {paho.error_string(info.rc)}")
        return info

    def ack(self, mid: int, generation: int) -> None:
        if generation == self.generation and self.client.is_connected():
            self.client.ack(mid, 1)

    def ack_many(self, acks: list[tuple[int, int]]) -> int:
        """PUBACK every (mid, generation) received on the current connection, as one write
        instead of one system call per message. Returns how many were acknowledged; the
        others belong to a dropped connection, and the broker will redeliver them."""
        if not self.client.is_connected():
            return 0
        gen = self.generation
        packet = b"".join([_PUBACK.pack(0x40, 2, mid) for mid, g in acks if g == gen])
        if packet:
            self.client._packet_queue(0x40, packet, 0, 1)  # 0x40 = PUBACK
        return len(packet) // 4

    @property
    def outstanding(self) -> int:
        """QoS>0 messages published but not yet acknowledged by the broker."""
        return len(self.client._out_messages)  # paho keeps no public counter

    # -- connection supervision --------------------------------------------------------
    async def _supervise(self) -> None:
        delay = _RECONNECT_MIN_S
        while not self._closing:
            self._lost.clear()
            try:
                await self._loop.run_in_executor(None, self._blocking_connect)
            except (OSError, MqttError) as exc:
                self.connect_error = str(exc)
                log.warning("mqtt connect to %s:%s failed: %s", self.host, self.port, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RECONNECT_MAX_S)
                continue
            # the socket was opened in the executor thread; register it here
            self._watch(self.client.socket())
            await self._lost.wait()
            self._drop_socket()
            if not self._closing:
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RECONNECT_MAX_S)
            if self.connected.is_set():
                delay = _RECONNECT_MIN_S

    def _blocking_connect(self) -> None:
        rc = self.client.connect(self.host, self.port, self.keepalive)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise MqttError(paho.error_string(rc))

    def _watch(self, sock: Any) -> None:
        self._recv.reset()
        if sock is None:
            self._lost.set()
            return
        self._loop.add_reader(sock, self._readable)
        if self.client.want_write():
            self._loop.add_writer(sock, self._writable)
        if self._misc is None or self._misc.done():
            self._misc = self._loop.create_task(self._misc_loop(), name="mqtt-misc")

    def _drop_socket(self) -> None:
        if self._misc is not None:
            self._misc.cancel()
            self._misc = None

    def _fast_publishes(self, budget: int) -> tuple[int, str]:
        """Hand the complete PUBLISH packets at the head of the buffer to the handler, reading
        the socket while the buffer ends in (or at) a packet boundary. Returns the packets
        handled and what next: "paho" (another packet is at the head, or the socket reported
        an error or its end), "wait" (the socket has nothing more) or "yield" (budget spent)."""
        rb, client, handler = self._recv, self.client, self._handler
        assert handler is not None
        done = 0
        out: list[Publish] = []
        while done < budget:
            out.clear()
            rb.pos, why = split_publishes(rb.buf, rb.pos, out, budget - done)
            if out:
                done += len(out)
                client._last_bytes_received = time.monotonic()
                for m in out:
                    handler(client, client._userdata, m)
            if why is Stop.OTHER:
                return done, "paho"
            if why is Stop.LIMIT:
                return done, "yield"
            sock = client._sock
            if sock is None:
                return done, "wait"
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                return done, "wait"
            except OSError:
                return done, "paho"  # paho reads the error and handles the lost connection
            if not data:
                return done, "paho"  # closed: paho reads what is left, then the end
            rb.buf = rb.buf[rb.pos:] + data if rb.pos < len(rb.buf) else data
            rb.pos = 0
        return done, "yield"

    def _readable(self) -> None:
        client = self.client
        budget = _READ_BURST
        while budget > 0:
            if client._sock is None:
                return
            if self._handler is not None and client._in_packet["command"] == 0:
                n, nxt = self._fast_publishes(budget)
                budget -= n
                if nxt == "wait":
                    return
                if nxt == "yield":
                    self._loop.call_soon(self._readable)
                    return
            budget -= 1
            rc = client._packet_read()
            if rc == MQTTErrorCode.MQTT_ERR_AGAIN:
                return
            if rc > 0:
                client._loop_rc_handle(rc)
                return
        if self._recv.pending:  # buffered bytes will not wake the selector: come back soon
            self._loop.call_soon(self._readable)

    def _writable(self) -> None:
        self.client.loop_write()

    async def _misc_loop(self) -> None:
        while self.client.loop_misc() == MQTTErrorCode.MQTT_ERR_SUCCESS:
            await asyncio.sleep(_MISC_INTERVAL_S)

    # -- paho callbacks (event-loop thread, or the executor thread during connect) ------
    def _on_socket_open(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        pass  # registered in _supervise once connect() returns (may be another thread)

    def _on_socket_close(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_reader(sock)
            self._loop.remove_writer(sock)
        self._loop.call_soon_threadsafe(self._lost.set)

    def _on_register_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        if threading_is_loop(self._loop):
            self._loop.add_writer(sock, self._writable)

    def _on_unregister_write(self, client: paho.Client, userdata: Any, sock: Any) -> None:
        if threading_is_loop(self._loop):
            self._loop.remove_writer(sock)

    def _on_connect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            self.connect_error = f"broker refused: {reason}"
            log.error("mqtt connection refused: %s", reason)
            return
        self.generation += 1
        if self.subscriptions:
            self._send_subscribe(list(self.subscriptions.items()))
        self.connected.set()
        if self.on_connected is not None:
            self.on_connected()

    def _on_unsubscribe(self, client: paho.Client, userdata: Any, mid: int, reasons: Any,
                        properties: Any) -> None:
        done = self._barriers.pop(mid, None)
        if done is not None and not done.done():
            done.set_result(None)

    def _on_disconnect(self, client: paho.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        self.connected.clear()
        self._loop.call_soon_threadsafe(self._lost.set)


def threading_is_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
