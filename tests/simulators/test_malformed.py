"""Every malformed message is rejected by the real decoder with the reason it declares."""

from __future__ import annotations

import pytest

from firetower.model import ClockState, DeviceKind, RejectReason
from firetower.protocol import ProtocolError, decode, parse_topic
from simulators.fleet import SimDevice
from simulators.malformed import CATALOGUE, UNREADABLE_STAMPS, Broken
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


def test_no_stamp_is_refused() -> None:
    """A fire is never refused for its timestamp: nothing in the catalogue is a stamp."""
    assert RejectReason.BAD_TIMESTAMP not in {b.reason for b in CATALOGUE}
    assert not any(b.name.startswith(("ts_", "missing_ts")) for b in CATALOGUE)


@pytest.mark.parametrize(("name", "build"), UNREADABLE_STAMPS, ids=[n for n, _ in UNREADABLE_STAMPS])
def test_unreadable_stamps_are_accepted_at_the_receive_time(name, build) -> None:  # type: ignore[no-untyped-def]
    kind = DeviceKind.ALARM_PANEL
    topic, payload = build(DEVICES[kind], 42, START)
    device_id, mtype = parse_topic(topic)
    m = decode(device_id, mtype, kind, payload, START)
    assert (m.seq, m.ts, m.device_ts, m.clock) == (42, START, None, ClockState.INVALID), name
    sent = m.extra or {}
    assert ("ts" in sent) is (not name.startswith("missing_ts")), sent
