"""Fixtures for the simulator tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from firetower.broker import Broker
from firetower.mqtt import AsyncMqtt
from tests.helpers import delivered_so_far, eventually, start_subscribed


async def clear_retained(port: int, pattern: str = "fire/#") -> int:
    """Remove every retained message under `pattern` (births and wills we published), so tests
    sharing the session broker do not receive our devices' statuses when they subscribe."""
    seen: set[str] = set()
    sub = AsyncMqtt("127.0.0.1", port)
    sub.set_on_message(lambda c, u, m: seen.add(m.topic) if m.retain and m.payload else None)
    sub.subscribe(pattern, 1)
    await start_subscribed(sub)
    await delivered_so_far(sub, pattern.replace("#", "barrier").replace("+", "barrier"))
    for topic in seen:
        sub.publish(topic, b"", 1, True)
    await eventually(lambda: sub.outstanding == 0, what="the broker's PUBACK of every clear")
    await sub.stop()
    return len(seen)


@pytest.fixture
async def clean_broker(broker: Broker) -> AsyncIterator[Broker]:
    """The session broker with no retained fire/... messages, before and after the test."""
    await clear_retained(broker.port)
    yield broker
    await clear_retained(broker.port)
