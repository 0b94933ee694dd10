"""Generated streams: deterministic, valid protocol v1, schema-conformant, ordered."""

from __future__ import annotations

from collections import defaultdict

import jsonschema
import pytest

from firetower.protocol import MAX_PAYLOAD_BYTES
from simulators.scenarios import SCENARIOS, generate
from tests.simulators.helpers import START, body, decoded, schema, schema_name, small_fleet

SHORT = {"duration": 3600.0}   # long scenarios shortened, so the test stays quick


def run_of(name: str, seed: int = 7):  # type: ignore[no-untyped-def]
    fleet = small_fleet()
    kwargs = SHORT if SCENARIOS[name].duration_s > 3600 else {}
    return generate(fleet, seed, START, [name], **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_same_seed_same_bytes(name: str) -> None:
    a = [(m.topic, m.payload, m.ts, m.retain) for m in run_of(name)]
    b = [(m.topic, m.payload, m.ts, m.retain) for m in run_of(name)]
    assert a == b and len(a) > 100
    c = [(m.topic, m.payload) for m in run_of(name, seed=8)]
    assert c != [(t, p) for t, p, _, _ in a]


def test_iterating_twice_gives_the_same_stream() -> None:
    run = run_of("smouldering_fire")
    assert [m.payload for m in run] == [m.payload for m in run]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_valid_messages_decode_and_match_schemas(name: str) -> None:
    run = run_of(name)
    validators: dict[str, jsonschema.Draft202012Validator] = {}
    checked = 0
    for m in run:
        if m.reject is not None:
            continue
        assert len(m.payload) <= MAX_PAYLOAD_BYTES
        assert m.qos == 1
        assert m.retain == m.topic.endswith("/status")
        msg = decoded(m, run.fleet)       # raises ProtocolError if invalid
        assert msg.device_id == m.device_id and msg.seq == m.seq
        sname = schema_name(m, run.fleet)
        s = schema(sname)
        if s is None:
            continue
        v = validators.get(sname) or validators.setdefault(
            sname, jsonschema.Draft202012Validator(s))
        v.validate(body(m))
        checked += 1
    if schema("status") is None:
        pytest.skip("firetower/schemas not present")
    assert checked > 100


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_time_ordered_and_seq_increasing(name: str) -> None:
    run = run_of(name)
    late = {(i.device_ids[0], s) for i in run.injections if i.condition == "out_of_order"
            for s in i.details["seqs"]}
    dups = {(i.device_ids[0], s) for i in run.injections if i.condition == "duplicate"
            for s in i.details["seqs"]}
    last_ts = None
    seqs: dict[str, list[int]] = defaultdict(list)
    for m in run:
        assert last_ts is None or m.ts >= last_ts
        last_ts = m.ts
        assert m.ts.utcoffset() is not None
        if m.seq is None or m.will:
            continue
        seqs[m.device_id].append(m.seq)
    for device, got in seqs.items():
        clean = [s for i, s in enumerate(got)
                 if (device, s) not in late and not ((device, s) in dups and s in got[:i])]
        assert clean == sorted(set(clean)), device
        assert clean[0] == 1   # the birth


def test_wills_reserve_the_seq_after_their_birth() -> None:
    run = run_of("panel_offline")
    panel = run.injections[0].details["panel"]
    msgs = [m for m in run if m.device_id == panel and m.topic.endswith("/status")]
    births = [m for m in msgs if m.will_payload is not None]
    wills = [m for m in msgs if m.will]
    assert len(births) == 2 and len(wills) == 1
    assert wills[0].payload == births[0].will_payload
    assert body(wills[0]) == {"seq": births[0].seq + 1, "ts": body(births[0])["ts"],
                              "online": False}
    assert run.dedicated == {panel}


def test_scenarios_combine_on_distinct_devices() -> None:
    fleet = small_fleet()
    run = generate(fleet, 3, START, ["smouldering_fire", "cooking_steam", "flaming_fire",
                                     "malformed"])
    primaries = [i.details["primary"] for i in run.injections if "primary" in i.details]
    assert len(primaries) == len(set(primaries)) == 3
    assert run.duration == max(SCENARIOS[n].duration_s for n in run.scenarios)
    assert sum(1 for m in run if m.reject is not None) == len(run.expectations("reject"))


def test_endless_run_streams_lazily() -> None:
    run = generate(small_fleet(), 1, START, ["normal"], duration=float("inf"))
    it = iter(run)
    first = [next(it) for _ in range(5000)]
    assert (first[-1].ts - START).total_seconds() > 3600
    with pytest.raises(ValueError):
        run.messages()


def test_naive_start_is_refused() -> None:
    with pytest.raises(ValueError):
        generate(small_fleet(), 1, START.replace(tzinfo=None), ["normal"])


def test_seq_base_shifts_every_seq_and_keeps_the_plans() -> None:
    """`firetower simulate` counts seqs from the start's epoch milliseconds (a restarted
    simulator continues upwards); duplicates and late messages keep to their plan."""
    names = ["duplicates_out_of_order", "panel_offline", "normal"]
    a = generate(small_fleet(), 7, START, names, duration=3600.0)
    base = 1_790_000_000_000
    b = generate(small_fleet(), 7, START, names, duration=3600.0, seq_base=base)
    ma, mb = a.messages(), b.messages()
    assert len(ma) == len(mb)
    for x, y in zip(ma, mb, strict=True):
        assert (x.topic, x.ts, x.will) == (y.topic, y.ts, y.will)
        if x.reject is None:
            assert y.seq == x.seq + base and body(y)["seq"] == body(x)["seq"] + base
    for ia, ib in zip(a.injections, b.injections, strict=True):
        if "seqs" in ia.details:
            assert ib.details["seqs"] == [s + base for s in ia.details["seqs"]]
    dup = b.expectations("stored_once")[0]
    seqs = [m.seq for m in mb if m.device_id == dup.device_ids[0] and not m.will]
    assert all(seqs.count(s) == 2 for s in dup.details["seqs"])


def test_a_restarted_simulator_continues_the_counters() -> None:
    from simulators import command

    first = command.seq_base(START)
    later = command.seq_base(START.replace(second=1))   # started again a second later
    run = generate(small_fleet(), 7, START, ["smouldering_fire"], duration=3600.0,
                   seq_base=first)
    # even at speed 5,000 the earlier run gets through 5,000 virtual seconds in that second
    top = max(m.seq for m in run if m.seq is not None and m.ts.timestamp() < START.timestamp()
              + 5000)
    assert later > top
