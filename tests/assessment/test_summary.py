"""The summary tables (migration 0019) give the numbers of the raw queries: random data sets
across month boundaries, written and then rewritten as the alarm store would (late verdicts,
reopenings, mode changes, alarms moved, deleted), compared place by place between
`gather_many` (summary months + raw edges) and `gather_raw` (the alarms alone). Times agree to
the summary's documented precision (`assessment_bucket`: 1 s below an hour, 1 min below a day,
1 h beyond); everything else exactly."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from assessment.indicators import LIMITS, percentile
from assessment.queries import Place, gather_many, gather_raw
from firetower import db
from tests.conftest import Database

pytestmark = pytest.mark.integration

SITES = ("a", "b", "c", "d")
NOW = datetime(2025, 6, 20, 12, tzinfo=UTC)
CLASSES = ("fire", "fire", "fire", "fault", "offline", "supervisory")
VERDICTS = (None, "true_fire", "false_alarm", "false_alarm", "nuisance", "test")
MODES = ("normal", "normal", "normal", "normal", "test", "maintenance", "disabled")


@pytest.fixture
async def pool(clean_db: Database) -> AsyncIterator[asyncpg.Pool]:
    p = await db.create_pool(clean_db.url, max_size=2)
    try:
        await p.execute("INSERT INTO units (name, industry) VALUES ('U1', 'hotel')")
        await p.execute("INSERT INTO sites (id, name, unit_id) VALUES ('a', 'A', 1), "
                        "('b', 'B', 1), ('c', 'C', NULL), ('d', 'D', NULL)")
        yield p
    finally:
        await p.close()


def _secs(rng: random.Random) -> float:
    r = rng.random()
    if r < 0.7:
        return rng.uniform(0, 300)
    if r < 0.9:
        return rng.uniform(300, 20000)
    return rng.uniform(20000, 300000)


def _maybe(rng: random.Random, t: datetime, p: float = 0.7) -> datetime | None:
    return t + timedelta(seconds=_secs(rng)) if rng.random() < p else None


def _alarm(rng: random.Random, i: int) -> tuple[object, ...]:
    # raised around month ends (just before midnight UTC and Shanghai), within the months
    base = rng.choice([datetime(2025, m, 1, tzinfo=UTC) for m in (2, 3, 4, 5, 6)])
    raised = base + timedelta(seconds=rng.choice([-1, -30, -3600 * 8 - 1, 1, 0])
                              if rng.random() < 0.3 else rng.uniform(-20 * 86400, 20 * 86400))
    if rng.random() < 0.05:  # recent: clocks that may still be pending
        raised = NOW - timedelta(seconds=rng.uniform(0, 200))
    recv = raised + timedelta(seconds=rng.uniform(0, 5)) if rng.random() < 0.9 else None
    cls = rng.choice(CLASSES)
    verdict = rng.choice(VERDICTS)
    verdict_at = _maybe(rng, raised, 0.8) if verdict else None
    fwd_at = _maybe(rng, raised, 0.3)
    return (f"dev{i}", rng.choice(SITES), f"p{i}", "rule", cls, 1, "closed", verdict,
            rng.choice(MODES), raised, raised, rng.choice([raised, None, raised - timedelta(
                seconds=rng.uniform(0, 100))]), recv, raised + timedelta(seconds=2),
            _maybe(rng, raised), verdict_at, _maybe(rng, raised, 0.5), _maybe(rng, raised),
            _maybe(rng, raised, 0.4), fwd_at, rng.choice([None, "operator", "coincidence"]))


_INSERT = ("INSERT INTO alarms (device_id, site_id, point, type, class, priority, state, "
           "verdict, mode, raised_at, last_at, device_ts, received_at, stored_at, "
           "acknowledged_at, verdict_at, cleared_at, shown_at, delivered_at, forwarded_at, "
           "forward_basis) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, "
           "$14, $15, $16, $17, $18, $19, $20, $21)")


async def _rewrite(pool: asyncpg.Pool, rng: random.Random, ids: list[int]) -> None:
    """What later writes do to alarms already summed."""
    for aid in rng.sample(ids, len(ids) // 2):
        kind = rng.randrange(7)
        if kind == 0:  # a late verdict
            await pool.execute("UPDATE alarms SET verdict = $2, verdict_at = now() WHERE id = $1",
                               aid, rng.choice(VERDICTS[1:]))
        elif kind == 1:  # reopened (recurrence after a clear): clocks reset
            await pool.execute("UPDATE alarms SET cleared_at = NULL, state = 'active', "
                               "count = count + 1, last_at = last_at + interval '1 min' "
                               "WHERE id = $1", aid)
        elif kind == 2:  # a mode change
            await pool.execute("UPDATE alarms SET mode = $2 WHERE id = $1", aid,
                               rng.choice(MODES))
        elif kind == 3:  # acknowledged / shown / delivered later
            await pool.execute(
                "UPDATE alarms SET acknowledged_at = raised_at + $2 * interval '1 s', "
                "shown_at = coalesce(shown_at, raised_at + interval '25 s'), "
                "delivered_at = CASE WHEN delivered_at IS NULL THEN raised_at "
                "+ interval '60 s' END WHERE id = $1", aid, rng.uniform(0, 4000))
        elif kind == 4:  # moved across a month boundary, to another site
            await pool.execute("UPDATE alarms SET raised_at = raised_at + $2 * interval '1 day',"
                               " site_id = $3 WHERE id = $1", aid, rng.choice([-40, 40, 1]),
                               rng.choice(SITES))
        elif kind == 5:  # a recurrence only (no figure changes: the trigger skips it)
            await pool.execute("UPDATE alarms SET count = count + 1, last_at = now() "
                               "WHERE id = $1", aid)
        else:
            await pool.execute("DELETE FROM alarms WHERE id = $1", aid)


def _bucket(s: float) -> float:
    """migration 0019's assessment_bucket (PostgreSQL rounds float8 half to even, as Python)."""
    if abs(s) < 3600:
        return float(round(s))
    if abs(s) < 86400:
        return float(round(s / 60) * 60)
    return float(round(s / 3600) * 3600)


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return abs(a - b) <= 1e-6 * max(1.0, abs(b))


@pytest.mark.parametrize("seed", range(6))
async def test_summary_equals_raw(pool: asyncpg.Pool, seed: int) -> None:
    rng = random.Random(seed)
    rows = [_alarm(rng, i) for i in range(400)]
    # a unit over the GB 50440 threshold on a day that straddles midnight in Shanghai
    for k in range(7):
        rows.append((f"gb{k}", "a", "", "rule", "fire", 1, "closed", "false_alarm", "normal",
                     datetime(2025, 3, 31, 15, 50, tzinfo=UTC) + timedelta(minutes=3 * k),
                     NOW, None, None, NOW, None, None, None, None, None, None, None))
    await pool.executemany(_INSERT, rows)
    ids = [r[0] for r in await pool.fetch("SELECT id FROM alarms ORDER BY id")]
    await _rewrite(pool, rng, ids)

    places = [Place("all", "jurisdiction", "all", SITES, (), (1,)),
              Place("a", "site", "a", ("a",)), Place("cd", "unit", "cd", ("c", "d")),
              Place("none", "site", "none", ())]
    periods = [(datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)),
               (datetime(2025, 2, 28, 16, tzinfo=UTC), datetime(2025, 5, 31, 16, tzinfo=UTC)),
               (datetime(2025, 3, 5, tzinfo=UTC), datetime(2025, 3, 25, tzinfo=UTC)),
               (datetime(2025, 4, 1, tzinfo=UTC), NOW + timedelta(days=1))]
    for start, end in periods:
        for tz in ("UTC", "Asia/Shanghai"):
            fast = await gather_many(pool, places, start, end, tz=tz, now=NOW)
            for place, got in zip(places, fast, strict=True):
                want = await gather_raw(pool, place, start, end, tz=tz, now=NOW)
                where = f"{place.key} {start}..{end} {tz}"
                for f in ("alarms", "fires", "false_alarms", "equipment_false_alarms",
                          "test_verdicts", "faults_raised", "gb50440_unit_days",
                          "gb50440_units"):
                    assert getattr(got, f) == getattr(want, f), (where, f)
                for name in LIMITS:
                    assert got.limits[name] == want.limits[name], (where, name)
                for f in ("ack_fire_s", "ack_all_s", "verdict_fire_s", "verdict_all_s",
                          "fault_repair_s"):
                    assert len(getattr(got, f)) == len(getattr(want, f)), (where, f)
                    for q in (0.5, 0.9):
                        exact = percentile(getattr(want, f), q)
                        binned = percentile([_bucket(x) for x in getattr(want, f)], q)
                        assert _close(percentile(getattr(got, f), q), binned), (where, f, q)
                        # the documented precision: at most half the widest bucket used
                        assert exact is None or binned is None or abs(binned - exact) <= 1800

    # the summary sums are a recount: rebuilt from scratch they are the same
    before = await pool.fetch("SELECT * FROM alarm_month_counts WHERE n <> 0 ORDER BY 1, 2, 3, 4")
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("TRUNCATE alarm_month_counts, alarm_month_times")
        await conn.execute("SELECT assessment_summary_add(a, 1) FROM alarms a")
        after = await conn.fetch("SELECT * FROM alarm_month_counts ORDER BY 1, 2, 3, 4")
        rebuilt = [dict(r) for r in after if r["n"] != 0]
    assert [dict(r) for r in before] == rebuilt
