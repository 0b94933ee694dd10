"""The login throttle's sliding window, on a clock the test moves."""

from __future__ import annotations

from api.throttle import MAX_KEYS, LoginThrottle, retry_after_s


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_account_window_slides() -> None:
    clock = Clock()
    t = LoginThrottle(per_account=3, per_address=100, window_s=60, clock=clock)
    for _ in range(3):
        assert t.check("ann", "10.0.0.1") is None
        clock.now += 10
    assert t.check("ann", "10.0.0.2") == (30.0, "account")  # first failure at 1000, now 1030
    clock.now = 1060.0  # the first attempt leaves the window
    assert t.check("ann", "10.0.0.2") is None
    assert t.check("ann", "10.0.0.2") == (10.0, "account")


def test_success_forgets_the_account_and_takes_its_attempt_back() -> None:
    clock = Clock()
    t = LoginThrottle(per_account=2, per_address=2, window_s=60, clock=clock)
    assert t.check("ann", "a") is None
    t.succeeded("ann", "a")
    assert t.check("bob", "a") is None
    assert t.check("bob", "a") is None
    assert t.check("cid", "a") == (60.0, "address")
    assert t.check("cid", "b") is None


def test_retry_after_is_whole_seconds_at_least_one() -> None:
    assert [retry_after_s(w) for w in (0.0, 0.2, 1.0, 1.01, 299.5)] == [1, 1, 1, 2, 300]


def test_the_table_is_bounded() -> None:
    clock = Clock()
    t = LoginThrottle(per_account=5, per_address=10**9, window_s=60, clock=clock)
    for i in range(MAX_KEYS + 10):
        t.check(f"name{i}", "a")
        clock.now += 1e-6
    assert len(t._attempts) <= MAX_KEYS
