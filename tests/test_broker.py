"""The broker launcher against a real Mosquitto started as root (as `firetower run`, the tests
and CI start it): persistence and logging work whatever account Mosquitto drops to, a broker
that could not log or save refuses to start, and queued QoS 1 messages of a persistent session
survive a SIGKILL and restart."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from firetower.broker import DEFAULT_SAVE_EVERY, Broker, BrokerError, free_port, run_user
from firetower.mqtt import AsyncMqtt
from tests.helpers import eventually, start_subscribed

pytestmark = pytest.mark.integration
ROOT = os.geteuid() == 0


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A fresh folder every account can traverse (pytest's own tmp_path is private to root)."""
    d = Path(tempfile.mkdtemp(prefix="firetower-broker-test-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


async def _queue_for_offline_session(port: int, client_id: str, n: int) -> None:
    """Create a persistent QoS 1 session, leave, and publish `n` messages into its queue."""
    sub = AsyncMqtt("127.0.0.1", port, client_id=client_id, clean_session=False,
                    manual_ack=True)
    sub.subscribe("fire/#", 1)
    await start_subscribed(sub)
    await sub.stop()
    pub = AsyncMqtt("127.0.0.1", port)
    acked: set[int] = set()
    pub.client.on_publish = lambda c, u, mid, rc, p: acked.add(mid)
    await pub.start()
    mids = {pub.publish(f"fire/v1/dev-{i % 7}/telemetry", f"{i}".encode()).mid
            for i in range(n)}

    async def all_acked() -> bool:
        return mids <= acked

    await eventually(all_acked, 30)
    await pub.stop()


async def _drain(port: int, client_id: str, expect: int) -> list[bytes]:
    got: list[bytes] = []
    sub = AsyncMqtt("127.0.0.1", port, client_id=client_id, clean_session=False)
    sub.set_on_message(lambda c, u, m: got.append(m.payload))
    sub.subscribe("fire/#", 1)
    await sub.start()

    async def enough() -> bool:
        return len(got) >= expect

    try:
        await eventually(enough, 30)
        await asyncio.sleep(0.2)  # on purpose: time for a message too many to arrive
    finally:
        await sub.stop()
    return got


@pytest.mark.parametrize("mode", [0o755, 0o700], ids=["drops-to-mosquitto", "private-dir"])
async def test_queued_messages_survive_sigkill_in_a_fresh_dir(mode: int) -> None:
    parent = Path(tempfile.mkdtemp(prefix="firetower-broker-test-"))
    parent.chmod(mode)
    broker = Broker(parent / "state", free_port())
    try:
        broker.start()
        if ROOT:  # a folder the `mosquitto` account can reach is handed to it, else root runs it
            assert broker.run_as == ("mosquitto" if mode == 0o755 else "root")
        assert broker.db_file.exists() and "New connection from" in broker.log_tail()
        await _queue_for_offline_session(broker.port, "kill-test", 500)
        broker.save()  # what the configured autosave does; SIGUSR1 forces it
        broker.kill()
        broker.start()
        got = await _drain(broker.port, "kill-test", 500)
        assert sorted(int(p) for p in got) == list(range(500))
    finally:
        broker.stop()
        shutil.rmtree(parent, ignore_errors=True)


@pytest.mark.skipif(not ROOT, reason="privilege drop happens only when started as root")
def test_unreachable_state_dir_for_the_drop_account_is_refused() -> None:
    parent = Path(tempfile.mkdtemp(prefix="firetower-broker-test-"))
    parent.chmod(0o700)  # what /tmp/pytest-of-root is: the mosquitto account cannot enter
    try:
        with pytest.raises(BrokerError, match="cannot reach the state folder"):
            Broker(parent / "state", free_port(), user="mosquitto").start()
        assert run_user(parent / "state") == "root"
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def test_broker_that_cannot_save_refuses_to_start(open_dir: Path) -> None:
    broker = Broker(open_dir / "state", free_port(),
                    options={"persistence_location": "/proc/firetower-no-such-dir/"})
    with pytest.raises(BrokerError, match="could not save"):
        broker.start()
    assert broker.process is None  # stopped, not left running without persistence


def test_broker_that_cannot_log_refuses_to_start(open_dir: Path) -> None:
    broker = Broker(open_dir / "state", free_port(),
                    options={"log_dest": "file /proc/firetower-no-such-dir/mosquitto.log"})
    with pytest.raises(BrokerError, match="not writing its log"):
        broker.start()
    assert broker.process is None
    assert "Unable to open log file" in broker.stderr_tail()


def _broker_command(open_dir: Path, *extra: str, **env_extra: str,
                    ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIRETOWER_MQTT")}
    env.update(FIRETOWER_ENV="production", FIRETOWER_SECRET_KEY="production-key-0123456789abcdefgh",
               FIRETOWER_MQTT_URL=f"mqtt://127.0.0.1:{free_port()}", **env_extra)
    return subprocess.run([sys.executable, "-m", "firetower", "broker", "--state-dir",
                           str(open_dir / "state"), *extra], env=env, capture_output=True,
                          text=True, timeout=30)


def test_production_broker_without_credentials_refuses_anonymous(open_dir: Path) -> None:
    r = _broker_command(open_dir)
    assert r.returncode == 1
    assert "anonymous" in r.stderr
    assert not (open_dir / "state" / "mosquitto.db").exists()  # never started


def test_production_broker_without_service_password_refuses(open_dir: Path) -> None:
    (open_dir / "pw").write_text("")
    (open_dir / "acl").write_text("")
    r = _broker_command(open_dir, "--password-file", str(open_dir / "pw"),
                        "--acl-file", str(open_dir / "acl"))
    assert r.returncode == 1
    assert "no service password" in r.stderr
    assert not (open_dir / "state" / "mosquitto.db").exists()



@pytest.mark.parametrize("shipped", [True, False], ids=["launcher-save", "control-30s-only"])
async def test_shipped_launcher_save_bounds_the_window(open_dir: Path, shipped: bool) -> None:
    """No explicit save: the launcher's own forced save (every max(0.25 s, 4 x the last one))
    puts queued messages on disk within about a quarter second, so a SIGKILL after that loses
    none of them. With Mosquitto's 30 s autosave alone (the control) all of them are lost."""
    broker = Broker(open_dir / "state", free_port(),
                    save_every=DEFAULT_SAVE_EVERY if shipped else None)
    got: list[bytes] = []
    try:
        broker.start()
        await _queue_for_offline_session(broker.port, "window-test", 300)
        acked_at = time.monotonic()  # every PUBACK has arrived

        async def saved_after_acks() -> bool:
            return (broker.saved_through or 0.0) > acked_at

        if shipped:
            await eventually(saved_after_acks, 30)
        else:
            await asyncio.sleep(1.0)  # on purpose: the launcher's save would have landed by now
        broker.kill()
        broker.start()
        sub = AsyncMqtt("127.0.0.1", broker.port, client_id="window-test", clean_session=False)
        sub.set_on_message(lambda c, u, m: got.append(m.payload))
        await sub.start()

        async def drained() -> bool:
            return len(got) >= 300

        if shipped:
            await eventually(drained, 30)
        await asyncio.sleep(0.5)  # on purpose: time for a message too many (or a lost one)
        await sub.stop()
    finally:
        broker.stop()
    assert len(got) == (300 if shipped else 0)


async def test_sigkill_mid_stream_loses_nothing_acknowledged_before_the_last_save(
        open_dir: Path) -> None:
    """The guarantee the fault suite may rely on with the shipped broker: with messages queued
    for an absent subscriber and a stream still arriving, a SIGKILL loses no message the broker
    acknowledged before `saved_through` (the request of the last landed save), and that
    moment is at most about half a second before the kill while the queue is small."""
    broker = Broker(open_dir / "state", free_port())
    broker.start()
    try:
        sub = AsyncMqtt("127.0.0.1", broker.port, client_id="stream-test", clean_session=False)
        sub.subscribe("fire/#", 1)
        await start_subscribed(sub)
        await sub.stop()
        pub = AsyncMqtt("127.0.0.1", broker.port)
        by_mid: dict[int, int] = {}
        acked_at: dict[int, float] = {}
        pub.client.on_publish = lambda c, u, mid, rc, p: acked_at.setdefault(
            by_mid.pop(mid, -1), time.monotonic())
        await pub.start()
        for seq in range(1500):  # ~1,000 msg/s for 1.5 s
            by_mid[pub.publish(f"fire/v1/dev-{seq % 9}/event", str(seq).encode()).mid] = seq
            if seq % 10 == 9:
                await asyncio.sleep(0.01)  # pacing: about 1,000 msg/s
        through = broker.saved_through
        broker.kill()
        killed_at = time.monotonic()
        await pub.stop()
        assert through is not None and killed_at - through < 1.0
        broker.start()
        got = {int(p) for p in await _drain_all(broker.port, "stream-test")}
    finally:
        broker.stop()
    before = {s for s, t in acked_at.items() if s >= 0 and t < through}
    assert before, "no message was acknowledged before the last save"
    assert before <= got, f"{len(before - got)} acknowledged before the last save were lost"


async def _drain_all(port: int, client_id: str) -> list[bytes]:
    got: list[bytes] = []
    sub = AsyncMqtt("127.0.0.1", port, client_id=client_id, clean_session=False)
    sub.set_on_message(lambda c, u, m: got.append(m.payload))
    await sub.start()
    last = -1
    while last != len(got):  # until nothing more arrives for 0.3 s
        last = len(got)
        await asyncio.sleep(0.3)  # on purpose: drained once nothing arrives for 0.3 s
    await sub.stop()
    return got
