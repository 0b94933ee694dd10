"""The double-random draw (hazards/inspections.py): reproducible from its record, independent
of input order, no duplicates, counts honoured, weight 0 never drawn, inspectors never twice
for one target nor tied to it; and a worked example pinned to its digits (docs)."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hazards import inspections as ins
from hazards.inspections import Candidate, Inspector, Params

ids = st.text(alphabet="abcdefghij0123456789", min_size=1, max_size=6)
counts = st.integers(min_value=0, max_value=30)
candidates = st.lists(st.builds(Candidate, ids, st.sampled_from(ins.RISK_CLASSES), counts,
                                counts, counts, counts),
                      max_size=25, unique_by=lambda c: c.id)
pools = st.lists(st.builds(Inspector, st.text(alphabet="klmnop", min_size=1, max_size=3)),
                 max_size=8, unique_by=lambda i: i.id)
seeds = st.text(max_size=20)


def _with_ties(cands: list[Candidate], pool: list[Inspector], rnd: random.Random
               ) -> list[Inspector]:
    return [Inspector(i.id, frozenset(c.id for c in cands if rnd.random() < 0.3)) for i in pool]


@settings(max_examples=150, deadline=None)
@given(candidates, pools, seeds, st.integers(0, 30), st.integers(0, 4), st.randoms())
def test_reproducible_and_order_independent(cands: list[Candidate], pool: list[Inspector],
                                            seed: str, n: int, per: int,
                                            rnd: random.Random) -> None:
    pool = _with_ties(cands, pool, rnd)
    params = Params(n, per)
    first = ins.draw(seed, cands, pool, params)
    shuffled_c, shuffled_p = list(cands), list(pool)
    rnd.shuffle(shuffled_c)
    rnd.shuffle(shuffled_p)
    assert ins.draw(seed, shuffled_c, shuffled_p, params) == first
    # the record runs again to the same result
    data = ins.record(seed, cands, pool, params).to_json()
    assert ins.verify(data).matches


@settings(max_examples=150, deadline=None)
@given(candidates, pools, seeds, st.integers(0, 30), st.integers(0, 4),
       st.none() | st.integers(1, 5), st.randoms())
def test_counts_duplicates_ties_and_load(cands: list[Candidate], pool: list[Inspector],
                                         seed: str, n: int, per: int, cap: int | None,
                                         rnd: random.Random) -> None:
    pool = _with_ties(cands, pool, rnd)
    ties = {i.id: i.ties for i in pool}
    r = ins.draw(seed, cands, pool, Params(n, per, cap))
    positive = [c for c in cands if ins.weight(c) > 0]
    assert len(r.targets) == min(n, len(positive))
    assert len(set(r.targets)) == len(r.targets)
    load: Counter[str] = Counter()
    for a in r.assignments:
        assert len(set(a.inspectors)) == len(a.inspectors) <= per
        assert all(a.target not in ties[i] for i in a.inspectors)
        load.update(a.inspectors)
        eligible = [i for i in pool if a.target not in i.ties]
        if cap is None:  # without a load cap, a target is short only of eligible inspectors
            assert len(a.inspectors) == min(per, len(eligible))
    assert cap is None or all(v <= cap for v in load.values())


@settings(max_examples=150, deadline=None)
@given(candidates, seeds, st.integers(0, 30))
def test_weight_zero_is_never_drawn(cands: list[Candidate], seed: str, n: int) -> None:
    table = {"key": 8, "crowded": 0, "general": 2, "small": 0}
    r = ins.draw(seed, cands, [], Params(n, 0, risk_weights=table))
    zero = {c.id for c in cands if c.risk_class in ("crowded", "small")}
    assert not zero & set(r.targets)
    assert len(r.targets) == min(n, len(cands) - len(zero))
    assert all(cid not in r.keys for cid in zero)


def test_weights_follow_risk_and_history() -> None:
    assert ins.weight(Candidate("a", "small")) == 10
    assert ins.weight(Candidate("a", "key")) == 80
    assert ins.weight(Candidate("a", "general", fires=1, false_alarms=2, complaints=1,
                                overdue_hazards=1)) == 2 * (10 + 5 + 2 + 3 + 5)
    # each count is capped, so one noisy unit cannot swamp the draw
    assert ins.weight(Candidate("a", "small", false_alarms=10_000)) == 10 + 50
    assert ins.weight(Candidate("a", "unknown-class")) == 0


def test_heavier_targets_are_drawn_more_often() -> None:
    """Over many seeds a key unit (weight 80) is drawn about 8 times as often as a small one
    (weight 10) when one of the two is drawn: 80 / 90 of the time."""
    cands = [Candidate("heavy", "key"), Candidate("light", "small")]
    wins = Counter(ins.draw(f"seed-{i}", cands, [], Params(1, 0)).targets[0]
                   for i in range(3000))
    assert 0.86 < wins["heavy"] / 3000 < 0.92, wins


def test_worked_example() -> None:
    """The example of docs/patrols-and-inspections.md, digit for digit."""
    cands = [Candidate("u1", "key", fires=1, false_alarms=2),
             Candidate("u2", "small"),
             Candidate("u3", "general", complaints=2, overdue_hazards=1)]
    pool = [Inspector("a"), Inspector("b"), Inspector("c", frozenset({"u1"}))]
    data = ins.record("2026-05 draw", cands, pool, Params(2)).to_json()
    assert [(c["id"], c["weight"], c["key"][:12]) for c in data["candidates"]] == [
        ("u1", 136, "-0.002487585"), ("u2", 10, "-0.040388225"), ("u3", 42, "-0.007155366")]
    assert data["result"] == [{"target": "u1", "inspectors": ["b", "a"]},
                              {"target": "u3", "inspectors": ["b", "c"]}]


def test_a_tampered_record_does_not_verify() -> None:
    cands = [Candidate(f"u{i}", "general", fires=i % 3) for i in range(10)]
    pool = [Inspector(x) for x in "abcd"]
    data = ins.record("s", cands, pool, Params(3)).to_json()
    assert ins.verify(data).matches
    swapped = dict(data, result=[{"target": "u9", "inspectors": ["a", "b"]}, *data["result"][1:]])
    assert data["result"][0]["target"] != "u9"
    v = ins.verify(swapped)
    assert not v.matches and v.reason == "the result differs"
    reweighted = dict(data, candidates=[dict(c, fires=0) for c in data["candidates"]])
    reweighted["candidates"][1]["weight"] = 999
    assert not ins.verify(reweighted).matches
    assert not ins.verify(dict(data, algorithm="other")).matches


def test_duplicate_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="unique"):
        ins.draw("s", [Candidate("a"), Candidate("a")], [], Params(1))
    with pytest.raises(ValueError, match="unique"):
        ins.draw("s", [Candidate("a")], [Inspector("x"), Inspector("x")], Params(1))
