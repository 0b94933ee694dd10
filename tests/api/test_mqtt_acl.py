"""Per-device MQTT credentials against a real Mosquitto: the hash format matches
`mosquitto_passwd`, registration reaches the broker through a reload, and a device can publish
only on its own topics (checked by subscribing as the centre's service account)."""

from __future__ import annotations

import grp
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.config import ApiSettings
from firetower import mqtt_auth
from firetower.broker import Broker, free_port
from firetower.mqtt import AsyncMqtt, MqttError
from tests.api.conftest import api_settings_for, seed
from tests.api.server import running_api
from tests.conftest import Database
from tests.helpers import count_subacks, eventually, subscribe_acked


def _has_group(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


pytestmark = pytest.mark.integration
GROUP = "mosquitto" if _has_group("mosquitto") else None
SERVICE = ("firetower", "service-password-123")


def test_hash_format_matches_mosquitto_passwd(tmp_path: Path) -> None:
    pw = tmp_path / "pw"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(pw), "dev-1", "s3cret"], check=True)
    theirs = pw.read_text().strip().split(":", 1)[1]
    assert mqtt_auth.verify_password("s3cret", theirs)
    assert not mqtt_auth.verify_password("s3cret!", theirs)
    _, _, iterations, salt, _ = theirs.split("$")
    import base64
    ours = mqtt_auth.hash_password("s3cret", salt=base64.b64decode(salt),
                                   iterations=int(iterations))
    assert ours == theirs


def test_acl_text_refuses_topic_injection() -> None:
    with pytest.raises(ValueError, match="MQTT username"):
        mqtt_auth.password_file_text([("evil\nuser x", "$7$1$a$b")])
    acl = mqtt_auth.acl_file_text(["firetower"])
    assert "pattern write fire/v1/%u/#" in acl
    assert "pattern read centre/v1/%u/#" in acl  # its own confirmations, nobody else's
    assert "topic write centre/v1/#" in acl.split("user firetower", 1)[1]
    assert "write centre" not in acl.split("user firetower", 1)[0]  # devices confirm nothing
    assert "user firetower\ntopic read fire/v1/#" in acl
    assert "topic read $SYS/broker/#" in acl.split("user firetower", 1)[1]  # the backlog watch
    assert "$SYS" not in acl.split("user firetower", 1)[0]  # devices read no broker figures


async def _client(port: int, user: str, password: str) -> AsyncMqtt:
    c = AsyncMqtt("127.0.0.1", port, credentials=(user, password))
    await c.start(timeout=5)
    return c


@pytest.fixture
def broker_dir() -> Iterator[Path]:
    """A directory the broker can read after dropping to the `mosquitto` user (pytest's
    tmp_path is private to root)."""
    d = Path(tempfile.mkdtemp(prefix="firetower-acl-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


async def test_device_publishes_only_on_its_own_topics(clean_db: Database,
                                                       broker_dir: Path) -> None:
    tmp_path = broker_dir
    pw_file, acl_file, pid_file = (tmp_path / "passwd", tmp_path / "acl", tmp_path / "pid")
    # The API writes both files at start (service account only); the broker reads them.
    mqtt_auth.write_files(pw_file, acl_file, [],
                          [(SERVICE[0], mqtt_auth.hash_password(SERVICE[1]))], group=GROUP)
    broker = Broker(tmp_path / "broker", free_port(), password_file=pw_file,
                    acl_file=acl_file).start()
    assert broker.process is not None
    pid_file.write_text(str(broker.process.pid))
    settings = api_settings_for(clean_db.url, mqtt_url=broker.url, mqtt_username=SERVICE[0],
                                mqtt_password=SERVICE[1])
    api_settings = ApiSettings(mqtt_password_file=pw_file, mqtt_acl_file=acl_file,
                               mqtt_broker_pid_file=pid_file, mqtt_files_group=GROUP)
    clients: list[AsyncMqtt] = []
    try:
        with running_api(settings, api_settings) as server:
            world = await seed(clean_db.url, server.url)
            creds = {}
            async with world.client("installer") as c:
                for dev in ("smk-a", "smk-b"):
                    r = await c.post("/devices", json={"id": dev, "kind": "smoke_detector",
                                                       "site_id": "s1"})
                    assert r.status_code == 201, r.text
                    creds[dev] = r.json()["mqtt"]["password"]
                # A device may not take a service account's name, nor any id under the
                # reserved prefix (every ingest session, whatever the partition count).
                for reserved in ("firetower", "firetower-ingest", "firetower-ingest-p7",
                                 "Firetower-ingest-priority"):
                    r = await c.post("/devices", json={"id": reserved, "kind": "smoke_detector",
                                                       "site_id": "s1"})
                    assert r.status_code == 409, reserved
            received: list[str] = []
            service = await _client(broker.port, *SERVICE)
            clients.append(service)
            service.set_on_message(lambda c, u, m: received.append(m.topic))
            await subscribe_acked(service, "fire/v1/#")
            # Forged publishes, each on a connection of its own: with max_queued_messages 0,
            # Mosquitto 2.0.11 drops a connection after its second denied QoS 1 publish in a
            # row, and paho re-sends both on the next connection (docs/broker.md).
            for forged in ("fire/v1/smk-b/event", "fire/v1/other/telemetry"):
                forger = await eventually(lambda: _try(broker.port, "smk-a", creds["smk-a"]), 30)
                forger.publish(forged, b"{}")  # dropped by the ACL
                await _processed(forger)
                await forger.stop()
            dev_a = await eventually(lambda: _try(broker.port, "smk-a", creds["smk-a"]), 30)
            clients.append(dev_a)
            dev_a.publish("fire/v1/smk-a/event", b"{}")     # its own: delivered
            await eventually(lambda: _has(received, "fire/v1/smk-a/event"))
            # The broker processed each forgery (PUBACK) before this was sent, and delivers to
            # the service in that order: a forgery let through would be in `received` first.
            assert received == ["fire/v1/smk-a/event"]
            # The downlink (the centre's event confirmations): a device reads only its own,
            # and cannot write any, its own included.
            down: list[str] = []
            dev_a.set_on_message(lambda c, u, m: down.append(f"{m.topic} {bytes(m.payload)!r}"))
            await subscribe_acked(dev_a, "centre/v1/#")
            # The forger logs in as smk-a, so the broker hands it smk-a's client id and drops
            # dev_a's connection (use_username_as_clientid); dev_a then reconnects and renews
            # its subscription, which the confirmations below must find in place.
            renewed, generation = count_subacks(dev_a), dev_a.generation
            forger = await eventually(lambda: _try(broker.port, "smk-a", creds["smk-a"]), 30)
            forger.publish("centre/v1/smk-a/confirm", b'{"seq": 99}')  # dropped by the ACL
            await _processed(forger)
            await forger.stop()

            async def back() -> bool:
                return (dev_a.generation > generation and dev_a.connected.is_set()
                        and bool(renewed))

            await eventually(back, what="smk-a reconnected, its subscription renewed")
            for dev in ("smk-b", "smk-a"):
                service.publish(f"centre/v1/{dev}/confirm", b'{"seq": 1}')
            mine = "centre/v1/smk-a/confirm b'{\"seq\": 1}'"
            await eventually(lambda: _has(down, mine))
            # the forgery was processed before, smk-b's confirmation sent before on the same
            # connection: either, let through, would be in `down` before it
            assert down == [mine]  # not smk-b's, and not the forgery (seq 99)
            # Wrong password and unknown users are refused.
            with pytest.raises(MqttError):
                await _client(broker.port, "smk-b", creds["smk-a"])
            # Decommissioning removes the device from the password file at the next reload.
            async with world.client("installer") as c:
                r = await c.post("/devices/smk-b/lifecycle", json={"to": "decommissioned"})
                assert r.status_code == 200
            assert "smk-b:" not in pw_file.read_text()
            # Every ingest session is a service account of its own (client id = username).
            text = pw_file.read_text()
            assert "\nfiretower-ingest:" in text and "\nfiretower-ingest-priority:" in text
            assert "user firetower-ingest-priority\ntopic read fire/v1/#" in acl_file.read_text()
            async def refused() -> bool:  # once the broker has reloaded its password file
                client = await _try(broker.port, "smk-b", creds["smk-b"])
                if client is not None:
                    await client.stop()
                return client is None

            await eventually(refused, what="the broker refusing the decommissioned smk-b")
    finally:
        for c in clients:
            await c.stop()
        broker.stop()


async def _try(port: int, user: str, password: str) -> AsyncMqtt | None:
    try:
        return await _client(port, user, password)
    except MqttError:
        return None


async def _has(items: list[str], item: str) -> bool:
    return item in items


async def _processed(client: AsyncMqtt) -> None:
    """The broker has processed every QoS 1 publish of `client` (it PUBACKs them all, the ones
    its ACL drops included)."""
    async def acked() -> bool:
        return client.outstanding == 0

    await eventually(acked, what="the broker's PUBACK of every publish")
