"""The array-backed windows (alerting/window.py) give the rules what the list-backed ones did:
the same since()/last() samples (means rounded to float32), dump/load round trips, and a rule
state saved by the old format (version 1) still loads."""

from __future__ import annotations

import math
import struct

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from alerting.config import DEFAULTS
from alerting.device import DeviceInfo, DeviceState
from alerting.window import Buckets, Ring, slope
from firetower.model import DeviceKind


class OldRing:
    """The list-backed Ring before the change (reference implementation)."""

    def __init__(self, size: int) -> None:
        self.size, self.ts, self.vs, self.pos, self.n = size, [0.0] * size, [0.0] * size, 0, 0

    def add(self, t: float, v: float) -> None:
        self.ts[self.pos], self.vs[self.pos] = t, v
        self.pos = (self.pos + 1) % self.size
        self.n = min(self.n + 1, self.size)

    def since(self, t0: float) -> tuple[list[float], list[float]]:
        start = (self.pos - self.n) % self.size
        idx = [(start + i) % self.size for i in range(self.n)]
        return [self.ts[j] for j in idx if self.ts[j] >= t0], [self.vs[j] for j in idx
                                                             if self.ts[j] >= t0]

    def last(self) -> tuple[float, float] | None:
        j = (self.pos - 1) % self.size
        return (self.ts[j], self.vs[j]) if self.n else None

    def dump(self) -> list[object]:
        ts, vs = self.since(float("-inf"))
        return [self.size, ts, vs]


class OldBuckets:
    def __init__(self, bucket_s: float, size: int) -> None:
        self.bucket_s, self.ring, self.current, self.acc_sum, self.acc_n = (
            bucket_s, OldRing(size), -1.0, 0.0, 0)

    def add(self, t: float, v: float) -> bool:  # the same decisions, written another way
        begin = t - t % self.bucket_s
        if begin < self.current:
            return False  # a late reading for a closed bucket
        if begin == self.current:
            self.acc_sum, self.acc_n = self.acc_sum + v, self.acc_n + 1
            return False
        closes = self.acc_n > 0
        if closes:
            self.ring.add(self.current + self.bucket_s / 2, self.acc_sum / self.acc_n)
        self.current, self.acc_sum, self.acc_n = begin, v, 1
        return closes

    def dump(self) -> list[object]:
        return [self.bucket_s, self.current, self.acc_sum, self.acc_n, self.ring.dump()]


def f32(x: float) -> float:
    return struct.unpack("f", struct.pack("f", x))[0]


T0 = 1_800_000_000.0
samples = st.lists(st.tuples(st.floats(-50.0, 5000.0), st.floats(-1e3, 1e3)), max_size=120)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40), samples, st.floats(-100.0, 6000.0))
def test_ring_same_as_lists(size: int, seq: list[tuple[float, float]], t0: float) -> None:
    new, old = Ring(size), OldRing(size)
    for dt, v in seq:
        new.add(T0 + dt, v)
        old.add(T0 + dt, v)
        assert new.last() == old.last()
    assert new.since(T0 + t0) == old.since(T0 + t0)
    assert new.count_since(T0 + t0) == len(old.since(T0 + t0)[0])
    assert new.dump() == old.dump()
    back = Ring.load(new.dump())
    assert back.since(float("-inf")) == new.since(float("-inf")) and back.last() == new.last()
    ts, vs = new.since(T0 + t0)
    assert slope(ts, vs) == slope(*old.since(T0 + t0))


# Readings at increasing device times with steps shorter than a bucket (no empty period in the
# window): there the array window is the old one exactly, up to float32 means.
steps = st.lists(st.tuples(st.floats(0.0, 0.99), st.floats(2.0, 4.0)), min_size=1, max_size=150)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from([(3600.0, 24), (300.0, 36), (3600.0, 48), (60.0, 5)]), steps)
def test_buckets_same_as_ring_of_means(shape: tuple[float, int],
                                       seq: list[tuple[float, float]]) -> None:
    bucket_s, size = shape
    new, old = Buckets(bucket_s, size), OldBuckets(bucket_s, size)
    t = T0 + 17.0
    for frac, v in seq:
        t += frac * bucket_s
        assert new.add(t, v) == old.add(t, v)
        ts, vs = new.since(float("-inf"))
        ots, ovs = old.ring.since(float("-inf"))
        assert ts == ots
        assert vs == [f32(x) for x in ovs]
        o = old.ring.last()
        assert new.last() == (None if o is None else (o[0], f32(o[1])))
        mid = ots[len(ots) // 2] if ots else T0
        assert new.since(mid)[0] == old.ring.since(mid)[0]
    s_new, s_old = slope(*new.since(float("-inf"))), slope(*old.ring.since(float("-inf")))
    assert (s_new is None) == (s_old is None)
    if s_new is not None and s_old is not None:
        assert math.isclose(s_new, s_old, rel_tol=1e-4, abs_tol=1e-9)
    back = Buckets.load(msgspec.msgpack.decode(msgspec.msgpack.encode(new.dump())))
    assert back.since(float("-inf")) == new.since(float("-inf"))
    assert (back.current, back.acc_sum, back.acc_n) == (new.current, new.acc_sum, new.acc_n)
    # the old format (a Ring dump of centre times and double means) loads to the same window
    old_back = Buckets.load(msgspec.msgpack.decode(msgspec.msgpack.encode(old.dump())))
    assert old_back.since(float("-inf")) == new.since(float("-inf"))


def test_empty_periods_leave_the_window() -> None:
    """A period with no reading is a gap (NaN), and the window is the last `size` periods."""
    b = Buckets(3600.0, 4)
    for h in (0, 1, 2, 5, 6):
        b.add(T0 - T0 % 3600 + h * 3600 + 10, float(h))
    ts, vs = b.since(float("-inf"))
    assert vs == [2.0, 5.0]  # periods 2..5 are the window; 3 and 4 had no reading
    assert ts[1] - ts[0] == 3 * 3600


def test_version_1_state_loads() -> None:
    """A rule_state blob written before the array windows (version 1) is read correctly."""
    info = DeviceInfo("s1", DeviceKind.SMOKE_DETECTOR, "site")
    base = T0 - T0 % 3600
    battery, chamber = OldBuckets(3600.0, 24), OldBuckets(3600.0, 48)
    for h in range(30):
        battery.add(base + h * 3600 + 5, 3.0 - h * 0.001)
        chamber.add(base + h * 3600 + 5, 0.5 + h * 0.01)
    recent = OldRing(16)
    for i in range(20):
        recent.add(base + i * 10.0, 21.0 + i / 10)
    blob = msgspec.msgpack.encode([
        1, T0, 0.25, {"smoke.prealarm": [2, False, T0 - 5.0, None, False, [10.0, 30.0,
                                                                           "early_warning"]]},
        recent.dump(), 21.5, 1.25, battery.dump(), chamber.dump(), None, None, None, None, None,
        [3, 4]])
    st_ = DeviceState(info, DEFAULTS[DeviceKind.SMOKE_DETECTOR])
    st_.load(blob)
    assert st_.last_seen == T0 and st_.skew == 0.25 and st_.event_seqs == (3, 4)
    assert st_.conds["smoke.prealarm"].pending_since == T0 - 5.0
    assert st_.recent is not None and st_.recent.since(float("-inf")) == recent.since(
        float("-inf"))
    assert st_.battery is not None and st_.chamber is not None
    assert st_.battery.since(float("-inf")) == (
        battery.ring.since(float("-inf"))[0], [f32(v) for v in battery.ring.since(
            float("-inf"))[1]])
    assert st_.chamber.since(float("-inf"))[0] == chamber.ring.since(float("-inf"))[0]
    assert (st_.temp_base, st_.co_base) == (21.5, 1.25)
    again = DeviceState(info, st_.params)
    again.load(st_.dump())  # and it is saved as version 2
    assert again.dump() == st_.dump()
