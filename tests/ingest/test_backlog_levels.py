"""The backlog watch's pure logic: watermarks with hysteresis, the broker's figures, and which
alarms a watch wants open (no broker, no database)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.backlog import (
    DROPPED,
    HEAP,
    OVERHEAD_PER_MESSAGE,
    STORED_BYTES,
    STORED_MESSAGES,
    BacklogAlarm,
    BacklogSettings,
    BacklogWatch,
    BrokerFigures,
    Watermarks,
    levels,
)

H, C = BacklogAlarm.HIGH, BacklogAlarm.CRITICAL
WM = Watermarks(budget=1000, warn=0.5, critical=0.8, hysteresis=0.1)


@pytest.mark.parametrize(("ratio", "open_now", "expected"), [
    (0.0, set(), set()),
    (0.49, set(), set()),
    (0.5, set(), {H}),
    (0.79, set(), {H}),
    (0.8, set(), {H, C}),
    (1.5, set(), {H, C}),
    (0.75, {H, C}, {H, C}),  # inside the critical hysteresis band: stays
    (0.69, {H, C}, {H}),
    (0.41, {H}, {H}),
    (0.39, {H}, set()),
    (0.45, set(), set()),  # the band keeps an open alarm open, it never raises one
], ids=lambda v: str(v))
def test_levels(ratio: float, open_now: set[BacklogAlarm], expected: set[BacklogAlarm]) -> None:
    assert levels(ratio, frozenset(open_now), WM) == expected


ratios = st.lists(st.floats(min_value=0, max_value=3, allow_nan=False), min_size=1, max_size=60)


@given(ratios)
def test_raised_at_every_watermark_and_never_far_below_it(seq: list[float]) -> None:
    open_now: frozenset[BacklogAlarm] = frozenset()
    for r in seq:
        open_now = levels(r, open_now, WM)
        assert (H in open_now) == (r >= 0.5) or 0.4 <= r < 0.5
        assert (C in open_now) == (r >= 0.8) or 0.7 <= r < 0.8
        assert C not in open_now or H in open_now  # critical implies high


@given(ratios)
def test_an_alarm_clears_only_after_the_ratio_fell_below_its_band(seq: list[float]) -> None:
    open_now: frozenset[BacklogAlarm] = frozenset()
    for r in seq:
        new = levels(r, open_now, WM)
        for alarm, mark in ((H, 0.5), (C, 0.8)):
            if alarm in open_now and alarm not in new:
                assert r < mark - 0.1
            if alarm not in open_now and alarm in new:
                assert r >= mark
        open_now = new


@pytest.mark.parametrize("kwargs", [
    {"budget": 0}, {"budget": 10, "warn": 0.8, "critical": 0.5},
    {"budget": 10, "warn": 0.5, "critical": 1.0}, {"budget": 10, "hysteresis": 0.5},
])
def test_watermarks_refuse_nonsense(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Watermarks(**kwargs)


def test_default_budget_is_half_the_memory() -> None:
    import os

    half = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2
    assert BacklogSettings().budget() == half
    assert BacklogSettings(memory_budget=123).budget() == 123


def test_figures_from_sys_messages() -> None:
    f = BrokerFigures()
    assert f.usage() is None
    assert not f.update("$SYS/broker/uptime", b"12", 1.0)
    assert not f.update(HEAP, b"not a number", 1.0)
    assert f.updated is None
    f.update(STORED_MESSAGES, b"10", 1.0)
    f.update(STORED_BYTES, b"1500", 1.0)
    assert f.usage() == 1500 + 10 * OVERHEAD_PER_MESSAGE  # estimated without a heap figure
    f.update(HEAP, b"40000", 2.0)
    assert f.usage() == 40000 and f.updated == 2.0


def test_drops_are_counted_from_the_first_figure_and_across_a_broker_restart() -> None:
    f = BrokerFigures()
    f.update(DROPPED, b"7", 1.0)  # dropped before this watch started: not ours to report
    assert f.drops_seen == 0 and f.last_drop is None
    f.update(DROPPED, b"7", 2.0)
    assert f.last_drop is None
    f.update(DROPPED, b"10", 3.0)
    assert f.drops_seen == 3 and f.last_drop == 3.0
    f.update(DROPPED, b"2", 4.0)  # the broker restarted and dropped 2 since
    assert f.drops_seen == 5 and f.last_drop == 4.0 and f.dropped == 2


def test_wanted_alarms() -> None:
    s = BacklogSettings(memory_budget=1000, sys_stale_s=30, dropped_clear_s=60)
    w = BacklogWatch("postgresql://unused", "127.0.0.1:1883", s)
    w._started = 0.0
    assert w.wanted(10.0) == set()  # no figure yet, not for long
    assert w.wanted(31.0) == {BacklogAlarm.UNWATCHED}
    w.on_sys(HEAP, b"600")
    now = w.figures.updated
    assert now is not None
    assert w.wanted(now) == {H}
    w.open = frozenset({H})
    w.figures.update(DROPPED, b"0", now)
    w.figures.update(DROPPED, b"4", now)
    assert w.wanted(now + 1) == {H, BacklogAlarm.DROPPED}
    assert w.wanted(now + 31) == {H, BacklogAlarm.UNWATCHED, BacklogAlarm.DROPPED}
    assert BacklogAlarm.DROPPED not in w.wanted(now + 61)
    assert w.key(H).device_id == "broker:127.0.0.1:1883"
