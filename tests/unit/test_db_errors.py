"""The one classification of database errors (`firetower.db.is_transient`): what every writer
retries (the database unavailable for now) and what it gives up on (the work itself is wrong).
"""

from __future__ import annotations

import inspect
import random
import socket
import string

import asyncpg
import asyncpg.exceptions as pgexc
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from firetower import db

# (SQLSTATE, what it is, transient?) - the states a writer meets in an outage, and their
# look-alikes that must not be retried
TABLE = [
    ("57P01", "admin shutdown / pg_terminate_backend", True),
    ("57P02", "crash shutdown of another backend", True),
    ("57P03", "cannot connect now: starting up, in recovery, shutting down", True),
    ("57P04", "database dropped", True),
    ("57P05", "idle session timeout", True),
    ("57014", "query cancelled (statement timeout)", True),
    ("53300", "too many connections", True),
    ("53100", "disk full", True),
    ("53200", "out of memory", True),
    ("53400", "configuration limit exceeded", True),
    ("08000", "connection exception", True),
    ("08003", "connection does not exist", True),
    ("08006", "connection failure", True),
    ("08001", "client cannot connect", True),
    ("40001", "serialization failure", True),
    ("40P01", "deadlock detected", True),
    ("40003", "statement completion unknown", True),
    ("55000", "database not accepting connections (ALLOW_CONNECTIONS false)", True),
    ("55P03", "lock not available", True),
    ("55006", "object in use", True),
    ("3D000", "database does not exist (yet)", True),
    ("25P03", "idle in transaction timeout", True),
    ("58030", "I/O error", True),
    ("40002", "deferred constraint failed at commit", False),
    ("55P02", "cannot change runtime parameter", False),
    ("23505", "unique violation", False),
    ("23503", "foreign key violation", False),
    ("23514", "check violation", False),
    ("22P02", "invalid text representation", False),
    ("22003", "numeric value out of range", False),
    ("42P01", "undefined table", False),
    ("42703", "undefined column", False),
    ("42501", "insufficient privilege", False),
    ("28P01", "invalid password", False),
    ("XX000", "internal error", False),
    ("P0001", "raise exception", False),
    ("25P02", "in failed transaction", False),
]


def _error(sqlstate: str, message: str = "x") -> asyncpg.PostgresError:
    """The exception asyncpg raises for a server error with this SQLSTATE (built by the
    driver's own constructor: a state it has no class for is an UnknownPostgresError that
    still carries its `sqlstate`)."""
    return asyncpg.PostgresError.new({"C": sqlstate, "M": message, "S": "ERROR"})  # type: ignore[no-any-return]


@pytest.mark.parametrize(("sqlstate", "what", "transient"), TABLE,
                         ids=[f"{s}-{w.split()[0]}" for s, w, _ in TABLE])
def test_sqlstate_table(sqlstate: str, what: str, transient: bool) -> None:
    exc = _error(sqlstate, what)
    assert exc.sqlstate == sqlstate
    assert db.sqlstate_transient(sqlstate) is transient
    assert db.is_transient(exc) is transient


def test_the_states_of_the_fault_run_are_transient() -> None:
    """The three the alarm writer used to drop (issue 11), by the classes asyncpg raises."""
    for cls in (asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError,
                asyncpg.CrashShutdownError, asyncpg.TooManyConnectionsError,
                asyncpg.ConnectionDoesNotExistError, asyncpg.SerializationError,
                asyncpg.DeadlockDetectedError):
        assert db.is_transient(cls("x")), cls


def test_every_asyncpg_error_class_follows_its_sqlstate() -> None:
    """Every SQLSTATE class asyncpg knows: transient exactly when its SQLSTATE is (and the
    stale-plan error, which the next attempt re-plans)."""
    checked = 0
    for _, cls in inspect.getmembers(pgexc, inspect.isclass):
        if not issubclass(cls, asyncpg.PostgresError) or not getattr(cls, "sqlstate", None):
            continue
        expected = db.sqlstate_transient(cls.sqlstate) or cls is asyncpg.InvalidCachedStatementError
        assert db.is_transient(cls("x")) is expected, cls
        checked += 1
    assert checked > 200


@pytest.mark.parametrize("exc", [
    ConnectionRefusedError(111, "refused"), ConnectionResetError(104, "reset"),
    TimeoutError(), OSError(113, "no route to host"), socket.gaierror(-2, "unknown host"),
    FileNotFoundError(2, "no socket file"),  # a unix socket path while the server is down
    asyncpg.InterfaceError("connection is closed"),
    pgexc._base.OutdatedSchemaCacheError("stale"),
], ids=lambda e: type(e).__name__)
def test_connection_level_errors_are_transient(exc: BaseException) -> None:
    assert db.is_transient(exc)


@pytest.mark.parametrize("exc", [
    pgexc._base.DataError("invalid input for query argument $1"),  # refused client-side
    pgexc._base.UnsupportedClientFeatureError("no"),
    ValueError("bad"), TypeError("bug"), KeyError("bug"), RuntimeError("bug"),
], ids=lambda e: type(e).__name__)
def test_errors_of_the_work_itself_are_not(exc: BaseException) -> None:
    assert not db.is_transient(exc)


_STATE = st.text(string.digits + string.ascii_uppercase, min_size=5, max_size=5)


@given(_STATE)
@example("08008")  # a state asyncpg has no class for, in a transient class
@example("57P99")
@example("40002")
@example("0A000")
def test_a_sqlstate_is_judged_by_its_class(sqlstate: str) -> None:
    got = db.sqlstate_transient(sqlstate)
    if sqlstate in db.PERMANENT_STATES:
        assert not got
    elif sqlstate in db.TRANSIENT_STATES:
        assert got
    else:
        assert got is (sqlstate[:2] in db.TRANSIENT_CLASSES)
    # an error of that state, as the driver raises it, classifies the same way (unknown
    # states too)
    assert db.is_transient(_error(sqlstate)) is got


@given(st.floats(0.001, 1.0), st.floats(1.0, 60.0), st.integers(1, 40), st.integers(0, 2**32))
def test_backoff_doubles_within_jitter_up_to_the_cap(min_s: float, max_s: float, n: int,
                                                     seed: int) -> None:
    b = db.Backoff(min_s, max_s, rng=random.Random(seed))
    step = min_s
    for _ in range(n):
        d = b.next()
        assert step / 2 <= d <= step
        step = min(step * 2, max_s)
    assert b.failures == n
    b.reset()
    assert b.failures == 0 and min_s / 2 <= b.next() <= min_s
