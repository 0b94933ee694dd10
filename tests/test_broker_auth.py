"""Client ids belong to accounts, against a real Mosquitto with the password file and ACL that
firetower/mqtt_auth.py writes and the real ingester: a device's credentials with the client id
of an ingest session, of another device or a random one never take a session over, and the
ingester keeps storing everything while an attacker connects again and again. The control case
(the same broker without `use_username_as_clientid`) shows the attack working, so the test can
fail."""

from __future__ import annotations

import asyncio
import grp
import json
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.broker_sync import BrokerSync
from api.config import ApiSettings
from firetower import mqtt_auth
from firetower.broker import Broker, free_port
from firetower.mqtt import AsyncMqtt
from firetower.protocol import format_ts
from firetower.settings import Settings
from ingest.partition import priority_client_id, session_client_id
from ingest.service import Ingester
from tests.conftest import Database, settings_for
from tests.helpers import PROBE_TIMEOUT_S, eventually, register
from tests.ingest.test_exactly_once import count

SERVICE_PASSWORD = "service-secret-for-tests"
INGEST_ID = "firetower-ingest"


def _group() -> str | None:
    try:
        grp.getgrnam("mosquitto")
    except KeyError:
        return None
    return "mosquitto"


# -- pure: names and reservations ---------------------------------------------------------

@pytest.mark.parametrize("partitions", [1, 2, 16])
def test_service_accounts_are_the_ingest_session_ids(partitions: int) -> None:
    ids = set(mqtt_auth.service_session_ids(INGEST_ID, partitions))
    expected = {INGEST_ID, priority_client_id(INGEST_ID)}
    if partitions > 1:
        for p in range(partitions):
            cid = session_client_id(INGEST_ID, p)
            expected |= {cid, priority_client_id(cid)}
    assert ids == expected


@pytest.mark.parametrize(("name", "reserved"), [
    ("firetower", True), ("firetower-ingest", True), ("firetower-ingest-p900-priority", True),
    ("FireTower-x", True), ("centre-ingest-p3", True), ("smk-1", False), ("fire-1", False),
])
def test_reserved_device_ids(name: str, reserved: bool) -> None:
    names = mqtt_auth.service_account_names("firetower", "centre-ingest", 4)
    assert mqtt_auth.reserved_device_id(name, names, "centre-ingest") is reserved


@given(base=st.sampled_from(["firetower-ingest", "centre-ingest", "FireTower-x"]),
       partitions=st.integers(1, 1024), device=st.from_regex(r"[A-Za-z0-9_.-]{1,64}",
                                                             fullmatch=True))
def test_no_device_id_is_a_service_account(base: str, partitions: int, device: str) -> None:
    """Every session id of any partition count is reserved, so a device registered today can
    never hold the name of a session that a later partition count creates."""
    names = mqtt_auth.service_account_names("firetower", base, partitions)
    for name in names:
        assert mqtt_auth.reserved_device_id(name, [], base)
    if not mqtt_auth.reserved_device_id(device, names, base):
        assert device not in names


def test_rendered_config_binds_client_ids_only_with_authentication(tmp_path: Path) -> None:
    from firetower.broker import render_config
    anon = render_config(tmp_path / "a", 1883).read_text()
    anon_lines = anon.splitlines()
    assert "allow_anonymous true" in anon_lines
    assert "use_username_as_clientid true" not in anon_lines
    auth = render_config(tmp_path / "b", 1883, password_file=tmp_path / "pw",
                         acl_file=tmp_path / "acl", user="mosquitto",
                         options={"autosave_interval": "5"}).read_text()
    lines = auth.splitlines()
    assert "use_username_as_clientid true" in lines and "allow_anonymous false" in lines
    assert "user mosquitto" in lines
    assert "autosave_interval 5" in lines and "autosave_interval 30" not in lines


def test_service_password_from_a_secret_file(tmp_path: Path) -> None:
    secret = tmp_path / "mqtt-password"
    secret.write_text("from-the-file\n")
    s = Settings(mqtt_password_secret_file=secret)
    assert s.mqtt_session_credentials("firetower-ingest-p2") == ("firetower-ingest-p2",
                                                                 "from-the-file")
    assert Settings().mqtt_session_credentials("x") is None  # development: anonymous


def test_managed_broker_files_without_service_password_fail_closed(tmp_path: Path) -> None:
    api = ApiSettings(mqtt_password_file=tmp_path / "pw", mqtt_acl_file=tmp_path / "acl")
    with pytest.raises(ValueError, match="no service password"):
        BrokerSync(Settings(env="production", secret_key="production-key-0123456789abcdefgh"), api)
    sync = BrokerSync(Settings(env="production", secret_key="production-key-0123456789abcdefgh",
                               mqtt_password=SERVICE_PASSWORD), api)
    assert {n for n, _ in sync.service_accounts} == {INGEST_ID, f"{INGEST_ID}-priority"}


# -- a real broker, the real ingester, an attacker -----------------------------------------

@pytest.fixture
def broker_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="firetower-auth-"))
    d.chmod(0o755)  # reachable by the broker's own account
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _auth_broker(root: Path, devices: dict[str, str], *, clientid_is_username: bool) -> Broker:
    pw_file, acl_file = root / "passwd", root / "acl"
    names = mqtt_auth.service_account_names(None, INGEST_ID, 1)
    mqtt_auth.write_files(pw_file, acl_file,
                          [(d, mqtt_auth.hash_password(p)) for d, p in devices.items()],
                          [(n, mqtt_auth.hash_password(SERVICE_PASSWORD)) for n in names],
                          group=_group())
    options = {} if clientid_is_username else {"use_username_as_clientid": "false"}
    return Broker(root / "state", free_port(), password_file=pw_file, acl_file=acl_file,
                  options=options).start()


def _event(seq: int) -> bytes:
    return json.dumps({"seq": seq, "ts": format_ts(datetime.now(UTC)), "category": "fire",
                       "active": seq % 2 == 0}).encode()


def _reading(seq: int) -> bytes:
    return json.dumps({"seq": seq, "ts": format_ts(datetime.now(UTC)),
                       "obscuration_pct_per_m": 0.1, "temperature_c": 21.0,
                       "battery_v": 3.0}).encode()


async def _device_stream(port: int, device: str, password: str, n: int) -> int:
    """`n` readings and `n // 10` fire events from `device`, at about 400 msg/s; returns how
    many the broker acknowledged."""
    pub = AsyncMqtt("127.0.0.1", port, credentials=(device, password))
    acked: set[int] = set()
    pub.client.on_publish = lambda c, u, mid, rc, p: acked.add(mid)
    await pub.start()
    mids = []
    try:
        for i in range(n):
            mids.append(pub.publish(f"fire/v1/{device}/telemetry", _reading(i)).mid)
            if i % 10 == 0:
                mids.append(pub.publish(f"fire/v1/{device}/event", _event(i // 10)).mid)
            if i % 20 == 0:
                await asyncio.sleep(0.05)  # pacing: about 400 msg/s

        async def done() -> bool:
            return set(mids) <= acked

        await eventually(done, 30)
    finally:
        await pub.stop()
    return len(mids)


async def _attack(port: int, device: str, password: str, client_ids: list[str],
                  stop: asyncio.Event) -> int:
    """Connect with `device`'s credentials under each client id in turn, as a persistent
    session that subscribes everything, until `stop`; returns the connections accepted."""
    accepted = 0
    while not stop.is_set():
        for cid in client_ids:
            c = AsyncMqtt("127.0.0.1", port, client_id=cid, clean_session=False,
                          credentials=(device, password))
            c.subscribe("fire/#", 1)
            try:
                await c.start(timeout=5)
                accepted += 1
                await asyncio.sleep(0.15)  # on purpose: the attacker holds the session a while
            finally:
                await c.stop()
    return accepted


async def _run_attack(clean_db: Database, root: Path, *, clientid_is_username: bool,
                      ) -> tuple[int, int, int]:
    devices = {"dev-a": mqtt_auth.new_password(), "dev-b": mqtt_auth.new_password()}
    broker = _auth_broker(root, devices, clientid_is_username=clientid_is_username)
    conn_url = clean_db.url
    await register(conn_url, [("dev-a", "smoke_detector"), ("dev-b", "smoke_detector")])
    settings = settings_for(conn_url, broker, ingest_client_id=INGEST_ID,
                            mqtt_password=SERVICE_PASSWORD)
    ingester = Ingester(settings)
    try:
        await ingester.start()
        for session in [*ingester.sessions.values(), *ingester.priority_sessions.values()]:
            # a round trip after the SUBSCRIBEs it sent on connecting: they are in place
            assert await session.flush(PROBE_TIMEOUT_S), "an ingest session never subscribed"
        stop = asyncio.Event()
        targets = [INGEST_ID, f"{INGEST_ID}-priority", "dev-b", f"x-{uuid.uuid4().hex[:8]}"]
        attacker = asyncio.create_task(_attack(broker.port, "dev-a", devices["dev-a"],
                                               targets, stop))
        sent = await _device_stream(broker.port, "dev-b", devices["dev-b"], 1500)
        stop.set()
        accepted = await attacker
        generations = sum(m.generation & 0xFFFFFFFF for m in ingester._by_index)
        return sent, accepted, generations
    finally:
        await ingester.stop()
        broker.stop()


@pytest.mark.integration
async def test_device_credentials_cannot_take_an_ingest_session(clean_db: Database,
                                                                broker_dir: Path) -> None:
    sent, accepted, generations = await _run_attack(
        clean_db, broker_dir, clientid_is_username=True)
    assert accepted >= 8  # the attacker got in, every time as itself
    assert generations == 2  # both ingest sessions kept their first connection
    assert await count(clean_db.url) == 1500
    assert await count(clean_db.url, "events") == 150
    assert sent == 1650


@pytest.mark.integration
async def test_control_without_clientid_binding_the_attack_works(clean_db: Database,
                                                                 broker_dir: Path) -> None:
    """The same attack on a broker that lets a client choose its id: the ingester's sessions
    are taken over (reconnections), which is what the test above rules out."""
    _, accepted, generations = await _run_attack(clean_db, broker_dir,
                                                    clientid_is_username=False)
    assert accepted >= 8
    assert generations > 2


async def test_the_flush_barrier_works_under_the_acl(broker_dir: Path) -> None:
    """`AsyncMqtt.flush` (the UNSUBSCRIBE round trip `stop()` waits for, so that acknowledgements
    reach the broker) is answered for a device account and a service account alike: the ACL
    grants neither the barrier's topic."""
    broker = _auth_broker(broker_dir, {"dev-flush-1": "device-pass-1"}, clientid_is_username=True)
    try:
        for creds in (("dev-flush-1", "device-pass-1"), (INGEST_ID, SERVICE_PASSWORD)):
            client = AsyncMqtt("127.0.0.1", broker.port, client_id=creds[0], credentials=creds)
            await client.start()
            try:
                assert await client.flush(10.0), f"no UNSUBACK for {creds[0]}"
            finally:
                await client.stop()
    finally:
        broker.stop()
