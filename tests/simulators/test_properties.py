"""Property tests: any seed, any scenario mix -> valid, ordered, deterministic streams."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firetower.protocol import ProtocolError
from simulators.fleet import build_fleet
from simulators.scenarios import generate
from tests.simulators.helpers import START, decoded

QUICK = ["normal", "smouldering_fire", "flaming_fire", "cooking_steam", "test_mode",
         "sprinkler_head_open", "panel_fault", "panel_offline", "detector_silent",
         "jockey_short_cycling", "malformed", "battery_depleting", "dirty_chamber",
         "pressure_low_trend", "slow_leak", "panel_mains_fault"]

run_args = st.tuples(
    st.integers(0, 2**32 - 1),                      # seed
    st.integers(1, 3), st.integers(0, 4),           # sites, per kind
    st.lists(st.sampled_from(QUICK), min_size=1, max_size=3),
    st.integers(0, 10**8),                          # start offset, seconds
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(run_args)
def test_any_run_is_valid_and_ordered(args) -> None:  # type: ignore[no-untyped-def]
    seed, sites, per_kind, scenarios, offset = args
    fleet = build_fleet(seed, sites, per_kind)
    run = generate(fleet, seed, START + timedelta(seconds=offset), scenarios, duration=1800)
    last: dict[str, int] = defaultdict(int)
    prev = None
    for m in run:
        assert prev is None or m.ts >= prev
        prev = m.ts
        if m.reject is not None:
            try:
                decoded(m, fleet)
            except ProtocolError as exc:
                assert exc.reason == m.reject
            else:
                raise AssertionError(f"{m.topic} {m.payload!r} was accepted")
            continue
        msg = decoded(m, fleet)
        if m.will:
            continue
        assert msg.seq > last[m.device_id], (m.device_id, msg.seq)
        last[m.device_id] = msg.seq


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(QUICK))
def test_any_seed_repeats_exactly(seed: int, scenario: str) -> None:
    fleet = build_fleet(seed, 2, 2)
    a = generate(fleet, seed, START, [scenario], duration=900)
    b = generate(build_fleet(seed, 2, 2), seed, START, [scenario], duration=900)
    assert [(m.topic, m.payload) for m in a] == [(m.topic, m.payload) for m in b]
    assert [i.as_dict() for i in a.injections] == [i.as_dict() for i in b.injections]
