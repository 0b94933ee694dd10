"""A reference webhook receiver, used by the tests and `firetower bench webhooks`: a plain
asyncio HTTP/1.1 server (keep-alive, Content-Length bodies only) on a loopback port that
verifies every Standard Webhooks signature, records what arrived and de-duplicates by
webhook-id, as a real receiver should. `answer` decides the response per request (e.g. 503 for
a while); `stop()` and `start()` take it down and bring it back on the same port. Not a
production server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from firetower.broker import free_port
from firetower.webhooks.signing import InvalidSignature, verify


@dataclass
class Received:
    id: str
    type: str
    body: dict[str, Any]
    at: float  # time.time() when it arrived
    headers: dict[str, str]
    raw: bytes = b""


@dataclass
class Receiver:
    secrets: list[str]
    port: int = field(default_factory=free_port)
    answer: Callable[[Received], int | tuple[int, dict[str, str]]] = lambda _r: 204
    requests: list[Received] = field(default_factory=list)  # every request, duplicates too
    unique: list[Received] = field(default_factory=list)    # first arrival of each id
    bad_signatures: int = 0
    delay_s: float = 0.0  # answer this much later (a slow receiver)
    _seen: set[str] = field(default_factory=set)
    _server: asyncio.Server | None = None
    _conns: set[asyncio.StreamWriter] = field(default_factory=set)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    @property
    def ids(self) -> list[str]:
        return [r.id for r in self.unique]

    async def start(self) -> Receiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._conns):
                w.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._conns.add(writer)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                headers: dict[str, str] = {}
                while (h := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    k, _, v = h.decode().partition(":")
                    headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                status, extra = self._handle(headers, body)
                hdrs = "".join(f"{k}: {v}\r\n" for k, v in extra.items())
                writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: 0\r\n{hdrs}\r\n".encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._conns.discard(writer)
            writer.close()

    def _handle(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str]]:
        try:
            msg_id = verify(self.secrets, headers, body)
        except InvalidSignature:
            self.bad_signatures += 1
            return 401, {}
        doc = json.loads(body)
        if doc.get("id") != msg_id:
            return 400, {}
        rec = Received(msg_id, doc["type"], doc, time.time(), headers, body)
        answer = self.answer(rec)
        status, extra = answer if isinstance(answer, tuple) else (answer, {})
        if 200 <= status < 300:
            self.requests.append(rec)
            if msg_id not in self._seen:
                self._seen.add(msg_id)
                self.unique.append(rec)
            self.arrived.set()
        return status, extra
