"""Rotating FIRETOWER_SECRET_KEY (issue 13): with the old key in FIRETOWER_PREVIOUS_SECRET_KEYS,
bearer tokens signed with it still work through the real API, and a webhook secret sealed with
it (here in the pre-AES-GCM format) still signs deliveries; the dispatcher re-seals it under
the new key when it takes leadership, after which the old key can go."""

from __future__ import annotations

import httpx
import pytest

from dispatch.dispatcher import Dispatcher
from dispatch.receiver import Receiver
from firetower.alarm_store import AlarmStore
from firetower.settings import DEV_SECRET, Settings
from firetower.webhooks.secretbox import key_id
from tests.api.conftest import TEST_SECRET, api_settings_for, seed
from tests.api.server import running_api
from tests.conftest import Database
from tests.dispatch.common import LOOPBACK, PUBLIC_URL, config, endpoint, pool_for, raise_fire
from tests.dispatch.common import seed as seed_devices
from tests.helpers import eventually
from tests.unit.test_secrets import LEGACY_BLOB, LEGACY_SECRET

pytestmark = pytest.mark.integration
NEW_KEY = "rotated-key-6fQ2xV9kL3pZ8mN1bC7w"


def _settings(db_url: str, key: str, previous: str = "") -> Settings:
    return Settings(env="development", database_url=db_url, metrics_port=None,
                    public_url=PUBLIC_URL, secret_key=key,  # type: ignore[arg-type]
                    previous_secret_keys=previous,  # type: ignore[arg-type]
                    webhook_allow_networks=LOOPBACK)


async def _delivered(rx: Receiver, n: int) -> bool:
    return len(rx.unique) >= n


async def test_legacy_secret_delivers_and_is_resealed(clean_db: Database) -> None:
    await seed_devices(clean_db.url)
    rx = await Receiver([LEGACY_SECRET]).start()
    async with pool_for(clean_db.url) as pool:
        store = AlarmStore(pool)
        eid, _ = await endpoint(pool, rx.url, event_types=["alarm.raised"])
        # As stored before AES-GCM, under the key used then (the development key; outside
        # development a public key is refused even as a previous one).
        await pool.execute("UPDATE webhook_secrets SET sealed = $2 WHERE endpoint_id = $1",
                           eid, LEGACY_BLOB)
        d = Dispatcher(_settings(clean_db.url, NEW_KEY, previous=DEV_SECRET), config())
        await d.start()
        try:
            await raise_fire(store, "d0")
            await eventually(lambda: _delivered(rx, 1), timeout=30)
        finally:
            await d.stop()
        sealed = await pool.fetchval("SELECT sealed FROM webhook_secrets WHERE endpoint_id = $1",
                                     eid)
        assert sealed[:1] == b"\x02" and sealed[1:5] == key_id(NEW_KEY)
        d = Dispatcher(_settings(clean_db.url, NEW_KEY), config())  # the old key dropped
        await d.start()
        try:
            await raise_fire(store, "d2")
            await eventually(lambda: _delivered(rx, 2), timeout=30)
        finally:
            await d.stop()
    await rx.stop()
    assert rx.bad_signatures == 0 and [r.type for r in rx.unique] == ["alarm.raised"] * 2


async def test_tokens_signed_with_the_previous_key_during_rotation(
        clean_db: Database) -> None:
    with running_api(api_settings_for(clean_db.url)) as before:
        world = await seed(clean_db.url, before.url)
    old_token = world.tokens["operator"]
    rotating = api_settings_for(clean_db.url, secret_key=NEW_KEY, previous_secret_keys=TEST_SECRET)
    for settings, expected in ((rotating, 200), (api_settings_for(clean_db.url,
                                                                  secret_key=NEW_KEY), 401)):
        with running_api(settings) as srv:
            async with httpx.AsyncClient(base_url=f"{srv.url}/api/v1", timeout=10) as c:
                r = await c.get("/auth/me", headers={"Authorization": f"Bearer {old_token}"})
                assert r.status_code == expected, r.text
