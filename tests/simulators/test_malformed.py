"""Every malformed message is rejected by the real decoder with the reason it declares."""

from __future__ import annotations

import pytest

from firetower.model import DeviceKind
from firetower.protocol import ProtocolError, decode, parse_topic
from simulators.fleet import SimDevice
from simulators.malformed import CATALOGUE, Broken
from simulators.scenarios import generate
from tests.simulators.helpers import START, small_fleet

DEVICES = {k: SimDevice(f"s0001-x-{k.value[:3]}", k, "s0001", None, 1, 1, "1F", 1)
           for k in DeviceKind}


def reason_of(topic: str, payload: bytes, kind: DeviceKind):  # type: ignore[no-untyped-def]
    try:
        device_id, mtype = parse_topic(topic)
        decode(device_id, mtype, kind, payload, START)
    except ProtocolError as exc:
        return exc.reason
    return None


def _cases(entries: tuple[Broken, ...]) -> list:  # type: ignore[type-arg]
    return [pytest.param(b, k, id=f"{b.name}-{k.value}") for b in entries
            for k in DeviceKind if b.kind is None or b.kind is k]


def test_catalogue_is_broad() -> None:
    names = {b.name for b in CATALOGUE}
    assert len(names) == len(CATALOGUE) >= 12
    assert len({b.reason for b in CATALOGUE}) >= 9


@pytest.mark.parametrize(("broken", "kind"), _cases(CATALOGUE))
def test_declared_reason_is_what_the_decoder_says(broken: Broken, kind: DeviceKind) -> None:
    topic, payload = broken.build(DEVICES[kind], 42, START)
    assert reason_of(topic, payload, kind) == broken.reason


def test_scenario_messages_carry_their_reason() -> None:
    fleet = small_fleet()
    run = generate(fleet, 5, START, ["malformed"])
    bad = [m for m in run if m.reject is not None]
    assert len(bad) == len(CATALOGUE) == len(run.injections)
    for m, inj in zip(sorted(bad, key=lambda m: m.ts), sorted(run.injections,
                                                              key=lambda i: i.start), strict=True):
        assert m.seq is None
        assert inj.details["reason"] == m.reject.value and inj.details["topic"] == m.topic
        kind = fleet.get(m.device_id).kind
        assert reason_of(m.topic, m.payload, kind) == m.reject
