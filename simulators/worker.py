"""A publisher worker process: `python -m simulators.worker HOST PORT WINDOW CLIENT_ID`.

Reads length-prefixed msgpack chunks of (topic, payload, qos, retain) from stdin (a zero
length ends the run), publishes them over one `Lane`, writes JSON progress lines to stdout and
a final line with `"final": true` once every message is acknowledged. Credentials come from
FIRETOWER_SIM_USERNAME / FIRETOWER_SIM_PASSWORD.
"""

from __future__ import annotations

import asyncio
import os
import signal
import struct
import sys
import time

import msgspec

from simulators.lanes import Lane

REPORT_EVERY_S = 0.5


def _report(lane: Lane, **extra: object) -> None:
    s = lane.stats
    line = {"sent": s.sent, "acked": s.acked, "errors": s.errors, "retries": s.retries,
            **extra}
    sys.stdout.buffer.write(msgspec.json.encode(line) + b"\n")
    sys.stdout.buffer.flush()


async def work(host: str, port: int, window: int, client_id: str) -> int:
    user = os.environ.get("FIRETOWER_SIM_USERNAME")
    creds = (user, os.environ.get("FIRETOWER_SIM_PASSWORD") or None) if user else None
    lane = Lane(host, port, credentials=creds, window=window, client_id=client_id)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    decoder = msgspec.msgpack.Decoder(list[tuple[str, bytes, int, bool]])
    try:
        await lane.start()
        last = time.monotonic()
        while True:
            try:
                (size,) = struct.unpack(">I", await reader.readexactly(4))
            except asyncio.IncompleteReadError:
                break   # parent went away: finish what we have
            if size == 0:
                break
            for topic, payload, qos, retain in decoder.decode(await reader.readexactly(size)):
                await lane.put(topic, payload, qos, retain)
            if time.monotonic() - last > REPORT_EVERY_S:
                _report(lane)
                last = time.monotonic()
        drained = await lane.drain(300.0)
        await lane.stop()
        _report(lane, final=True, error=None if drained else "timed out waiting for PUBACKs")
        return 0 if drained else 1
    except Exception as exc:
        _report(lane, final=True, error=f"{type(exc).__name__}: {exc}")
        return 1


def main() -> int:
    # the parent decides when to stop (it sends the end marker); Ctrl-C is for it alone
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    host, port, window, client_id = sys.argv[1:5]
    return asyncio.run(work(host, int(port), int(window), client_id))


if __name__ == "__main__":
    sys.exit(main())
