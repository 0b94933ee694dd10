"""Every indicator on a constructed data set, against values computed by hand; test- and
maintenance-mode alarms never count; a township's figures are the sums over its grids.

The town: city → township → grids G1, G2; unit U1 (hotel) with site `a` in G1 under a
maintenance contract; unit U2 (school) with site `b` in G2. The period is 10 days,
2025-03-01 .. 2025-03-11 (UTC)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

from assessment import exports, targets
from assessment.indicators import KEYS
from assessment.queries import NodeRef, Viewer, gather, report
from firetower import db
from firetower.alarm_store import AlarmKey, AlarmStore, Occurrence
from firetower.alarms import AlarmClass, Mode, Trigger, Verdict
from firetower.refusal import Refused
from org.store import Actor
from tests.conftest import Database

pytestmark = pytest.mark.integration

START = datetime(2025, 3, 1, tzinfo=UTC)
END = datetime(2025, 3, 11, tzinfo=UTC)
DAY = timedelta(days=1)
S = timedelta(seconds=1)


@dataclass
class Town:
    pool: asyncpg.Pool
    ids: dict[str, int] = field(default_factory=dict)


async def _alarm(store: AlarmStore, device: str, site: str, at: datetime, *,
                 cls: AlarmClass = AlarmClass.FIRE, point: str = "", rule: str = "smoke",
                 mode: Mode = Mode.NORMAL, ack_s: float | None = None,
                 verdict: Verdict | None = None, verdict_s: float | None = None,
                 shown_s: float | None = None, cleared_s: float | None = None) -> int:
    change = await store.raise_or_recur(Occurrence(
        AlarmKey(device, point, rule), cls, at, site_id=site, received_at=at, mode=mode,
        reason="test"))
    assert change is not None and change.alarm_id is not None
    aid = change.alarm_id
    if shown_s is not None:
        await store.mark_shown([aid], at=at + shown_s * S, to="operator")
    if ack_s is not None:
        await store.transition(aid, Trigger.ACKNOWLEDGE, actor="operator:o", at=at + ack_s * S)
    if verdict is not None:
        assert verdict_s is not None
        await store.transition(aid, Trigger.VERDICT, actor="operator:o", verdict=verdict,
                               at=at + verdict_s * S)
    if cleared_s is not None:
        await store.clear(AlarmKey(device, point, rule), at=at + cleared_s * S, reason="gone")
    return aid


async def build(pool: asyncpg.Pool) -> Town:
    t = Town(pool)
    ids = t.ids
    for key, parent, level in (("city", None, "city"), ("township", "city", "township"),
                               ("g1", "township", "grid"), ("g2", "township", "grid")):
        path_parent = await pool.fetchval("SELECT path FROM jurisdictions WHERE id = $1",
                                          ids.get(parent or "", 0)) or []
        jid = await pool.fetchval("SELECT nextval('jurisdictions_id_seq')")
        await pool.execute("INSERT INTO jurisdictions (id, parent_id, code, name, level, path) "
                           "VALUES ($1, $2, $3, $3, $4, $5)", jid, ids.get(parent or ""), key,
                           level, [*path_parent, jid])
        ids[key] = jid
    for key, grid, industry in (("u1", "g1", "hotel"), ("u2", "g2", "school")):
        ids[key] = await pool.fetchval("INSERT INTO units (name, industry, grid_id) VALUES "
                                       "($1, $2, $3) RETURNING id", key.upper(), industry,
                                       ids[grid])
    await pool.execute("INSERT INTO sites (id, name, unit_id, jurisdiction_id) VALUES "
                       "('a', 'Site A', $1, $2), ('b', 'Site B', $3, $4)",
                       ids["u1"], ids["g1"], ids["u2"], ids["g2"])
    ids["company"] = await pool.fetchval(
        "INSERT INTO maintenance_companies (credit_code, name) VALUES "
        "('91440300708461136T', 'Keep-Safe') RETURNING id")
    await pool.execute("INSERT INTO contracts (company_id, site_id, starts_on, ends_on) "
                       "VALUES ($1, 'a', '2025-01-01', '2025-12-31')", ids["company"])
    await pool.execute(
        "INSERT INTO devices (id, kind, site_id, lifecycle, online) VALUES "
        "('d1', 'smoke_detector', 'a', 'in_service', true), "
        "('d2', 'smoke_detector', 'a', 'in_service', true), "
        "('d3', 'smoke_detector', 'a', 'in_service', true), "
        "('d4', 'heat_detector', 'a', 'in_service', true), "
        "('p1', 'alarm_panel', 'a', 'in_service', true), "
        "('d9', 'smoke_detector', 'a', 'registered', true), "  # not in service: not counted
        "('e1', 'smoke_detector', 'b', 'in_service', true), "
        "('e2', 'smoke_detector', 'b', 'in_service', true)")
    store = AlarmStore(pool)
    t0 = START + timedelta(hours=1)
    # site a: a fire (shown in 5 s, acknowledged in 30 s, true fire at 60 s)
    await _alarm(store, "d1", "a", t0, shown_s=5, ack_s=30, verdict=Verdict.TRUE_FIRE,
                 verdict_s=60)
    # six equipment false alarms on 2 March: the GB 50440 flag for U1
    for i in range(6):
        await _alarm(store, "d2", "a", t0 + DAY + i * 60 * S, point=f"p{i}", ack_s=10,
                     verdict=Verdict.FALSE_ALARM, verdict_s=20)
    await _alarm(store, "d3", "a", t0 + 2 * DAY, ack_s=40, verdict=Verdict.NUISANCE,
                 verdict_s=100)
    # test and maintenance mode: no real alarms, whatever their verdict
    await _alarm(store, "d4", "a", t0 + 3 * DAY, mode=Mode.TEST, ack_s=1,
                 verdict=Verdict.FALSE_ALARM, verdict_s=2)
    for i in range(6):
        await _alarm(store, "d4", "a", t0 + 3 * DAY + i * S, point=f"m{i}",
                     mode=Mode.MAINTENANCE, ack_s=1, verdict=Verdict.FALSE_ALARM, verdict_s=2)
    await _alarm(store, "p1", "a", t0 + 4 * DAY, cls=AlarmClass.FAULT, rule="panel.fault",
                 point="z1", cleared_s=3600)
    await _alarm(store, "p1", "a", t0 + 5 * DAY, cls=AlarmClass.FAULT, rule="panel.fault",
                 point="z2")  # still open: p1 is not intact
    await _alarm(store, "p1", "a", t0 + 5 * DAY, cls=AlarmClass.FAULT, rule="panel.fault",
                 point="z3", mode=Mode.MAINTENANCE, cleared_s=99999)
    # outside the period: not counted
    await _alarm(store, "d1", "a", END + S, point="late", ack_s=1, verdict=Verdict.TRUE_FIRE,
                 verdict_s=2)
    # site b: a false alarm shown in 30 s; e2 offline (still)
    await _alarm(store, "e1", "b", t0 + DAY, shown_s=30, ack_s=20, verdict=Verdict.FALSE_ALARM,
                 verdict_s=50)
    await _alarm(store, "e2", "b", t0 + 6 * DAY, cls=AlarmClass.OFFLINE, rule="offline")
    # hazards: h1 at a closed in time; h2 at b overdue; h3 with no site, in G2
    h = ("INSERT INTO hazards (source, title, severity, state, site_id, jurisdiction_id, "
         "owner_id, found_at, deadline, verified_at, closed_at) VALUES ('manual', $1, 'general', "
         "$2, $3, $4, $4, $5, $6, $7, $7) RETURNING id")
    ids["h1"] = await pool.fetchval(h, "h1", "closed", "a", ids["g1"], t0 + DAY, t0 + 4 * DAY,
                                    t0 + 3 * DAY)
    await pool.fetchval(h, "h2", "notified", "b", ids["g2"], t0 + 2 * DAY, t0 + 5 * DAY, None)
    await pool.fetchval(h, "h3", "found", None, ids["g2"], t0 + 4 * DAY, None, None)
    # work orders: one at a on time, one at b responded late
    w = ("INSERT INTO work_orders (site_id, alarm_class, title, state, respond_by, repair_by, "
         "opened_at, responded_at, repaired_at) VALUES ($1, 'fault', 'x', 'repaired', $2, $3, "
         "$4, $5, $6)")
    o = t0 + 4 * DAY
    await pool.execute(w, "a", o + 3600 * S, o + DAY, o, o + 1800 * S, o + 7200 * S)
    await pool.execute(w, "b", o + 3600 * S, o + DAY, o, o + 7200 * S, o + 9000 * S)
    # patrols: three checkpoints (two at a, one at b), one visited in the period
    plan = await pool.fetchval(
        "INSERT INTO patrol_plans (jurisdiction_id, name, every, unit, starts_on, created_by) "
        "VALUES ($1, 'p', 1, 'days', '2025-01-01', 'x') RETURNING id", ids["g1"])
    cps = [await pool.fetchval(
        "INSERT INTO patrol_checkpoints (plan_id, site_id, name, token_sha256) "
        "VALUES ($1, $2, $3, $4) RETURNING id", plan, site, name,
        hashlib.sha256(name.encode()).digest())
        for site, name in (("a", "c1"), ("a", "c2"), ("b", "c3"))]
    k = ("INSERT INTO patrol_checkins (checkpoint_id, plan_id, at, period_start, period_end, "
         "actor) VALUES ($1, $2, $3, $3, $4, 'g')")
    await pool.execute(k, cps[0], plan, t0 + 2 * DAY, t0 + 3 * DAY)
    await pool.execute(k, cps[2], plan, END + DAY, END + 2 * DAY)  # after the period
    # public reports: converted (a), still received (G2, no site), dismissed (b)
    r = ("INSERT INTO public_reports (tracking_code, channel, category, description, site_id, "
         "jurisdiction_id, status, hazard_id, dismiss_reason, received_at) VALUES "
         "($1, 'web', 'other', 'x', $2, $3, $4, $5, $6, $7)")
    await pool.execute(r, "000000000001", "a", None, "converted", ids["h1"], "", t0 + DAY)
    await pool.execute(r, "000000000002", None, ids["g2"], "received", None, "", t0 + 2 * DAY)
    await pool.execute(r, "000000000003", "b", None, "dismissed", None, "dup", t0 + 3 * DAY)
    return t


@pytest.fixture
async def town(clean_db: Database) -> AsyncIterator[Town]:
    pool = await db.create_pool(clean_db.url, max_size=2)
    try:
        yield await build(pool)
    finally:
        await pool.close()


# By hand, for the city (= the township): nine real fire alarms (1 true, 6 false on one day at
# a, 1 nuisance at a, 1 false at b), two real faults at a, one offline at b.
CITY = {
    "fires": 1, "false_alarms": 8, "false_alarm_share": 8 / 9,
    # 8 * 100 / 6 detectors * 365.25 / 10 days
    "false_alarms_per_100_detectors_year": 8 * 100 / 6 * 365.25 / 10,
    "gb50440_unit_days": 1, "gb50440_units": 1,
    # acknowledged after 10 (x6), 20, 30, 40 s; verdicts after 20 (x6), 50, 60, 100 s
    "ack_p50_fire": 10.0, "ack_p90_fire": 32.0, "ack_p50_all": 10.0, "ack_p90_all": 32.0,
    "verdict_p50_fire": 20.0, "verdict_p90_fire": 68.0, "verdict_p50_all": 20.0,
    "verdict_p90_all": 68.0,
    # shown: the fire in 5 s, b's false alarm in 30 s; the seven others never (missed)
    "compliance_gb50440_display": 1 / 9, "compliance_nfpa72_display": 2 / 9,
    # the true fire was never delivered to the 119 centre
    "compliance_gb50440_forward": 0.0, "compliance_nfpa72_retransmit": 0.0,
    # 7 devices in service; e2 offline; p1 (open fault) and e2 not intact
    "online_rate": 6 / 7, "integrity_rate": 5 / 7,
    "fault_repair_p50": 3600.0, "fault_repair_p90": 3600.0,
    "hazards_found": 3, "hazards_closed": 1, "hazards_overdue": 1,
    "hazard_closure_rate": 1 / 3, "workorder_sla_rate": 0.5, "patrol_coverage": 1 / 3,
    "public_reports_handled_rate": 2 / 3,
}
G1 = {"fires": 1, "false_alarms": 7, "false_alarms_per_100_detectors_year": 7 * 100 / 4 * 36.525,
      "gb50440_unit_days": 1, "online_rate": 1.0, "integrity_rate": 0.8,
      "hazards_found": 1, "hazards_overdue": 0, "hazard_closure_rate": 1.0,
      "workorder_sla_rate": 1.0, "patrol_coverage": 0.5, "public_reports_handled_rate": 1.0,
      "compliance_gb50440_display": 1 / 8}
G2 = {"fires": 0, "false_alarms": 1, "false_alarm_share": 1.0, "gb50440_unit_days": 0,
      "online_rate": 0.5, "integrity_rate": 0.5, "hazards_found": 2, "hazards_overdue": 1,
      "hazard_closure_rate": 0.0, "workorder_sla_rate": 0.0, "patrol_coverage": 0.0,
      "public_reports_handled_rate": 0.5, "fault_repair_p50": None, "ack_p50_fire": 20.0}


def _check(values: Mapping[str, float | None], expected: Mapping[str, float | None]) -> None:
    for k, v in expected.items():
        assert values[k] == (None if v is None else pytest.approx(v)), k


async def test_every_indicator_by_hand(town: Town) -> None:
    rep = await report(town.pool, NodeRef("jurisdiction", str(town.ids["city"])), START, END)
    assert set(CITY) == set(KEYS)  # every indicator has its hand-computed value
    _check(rep.node.values, CITY)
    c = rep.node.counts
    assert c.gb50440_units == [f"unit:{town.ids['u1']}"]
    # the test-mode alarm, the 6 maintenance-mode ones and the maintenance fault never count
    assert c.alarms == 12 and c.test_verdicts == 0 and c.faults_raised == 2
    assert [ch.place.key for ch in rep.children] == [f"jurisdiction:{town.ids['township']}"]
    _check(rep.children[0].values, CITY)


async def test_the_township_is_the_sum_of_its_grids(town: Town) -> None:
    rep = await report(town.pool, NodeRef("jurisdiction", str(town.ids["township"])),
                       START, END)
    g1, g2 = rep.children
    assert (g1.place.key, g2.place.key) == (f"jurisdiction:{town.ids['g1']}",
                                            f"jurisdiction:{town.ids['g2']}")
    _check(g1.values, G1)
    _check(g2.values, G2)
    for name, total in vars(rep.node.counts).items():
        if isinstance(total, int):
            assert total == getattr(g1.counts, name) + getattr(g2.counts, name), name
    for k in KEYS:  # counts of the indicators add up too
        if k in ("fires", "false_alarms", "gb50440_unit_days", "hazards_found",
                 "hazards_closed", "hazards_overdue"):
            assert rep.node.values[k] == (g1.values[k] or 0) + (g2.values[k] or 0)
    # a grid is a leaf: its children are its units
    leaf = await report(town.pool, NodeRef("jurisdiction", str(town.ids["g1"])), START, END)
    assert [ch.place.key for ch in leaf.children] == [f"unit:{town.ids['u1']}"]
    _check(leaf.children[0].values, {"fires": 1, "false_alarms": 7})


async def test_unit_industry_company_and_site_nodes(town: Town) -> None:
    for node in (NodeRef("unit", str(town.ids["u1"])), NodeRef("industry", "hotel"),
                 NodeRef("company", str(town.ids["company"])), NodeRef("site", "a")):
        rep = await report(town.pool, node, START, END)
        assert rep.node.place.sites == ("a",), node
        _check(rep.node.values, {"fires": 1, "false_alarms": 7, "gb50440_units": 1})
    by_industry = await report(town.pool, NodeRef("jurisdiction", str(town.ids["city"])),
                               START, END, grouping="industries")
    assert [(c.place.key, c.values["false_alarms"]) for c in by_industry.children] == [
        ("industry:hotel", 7), ("industry:school", 1)]
    # a scoped viewer sees only its sites' figures
    seen = await report(town.pool, NodeRef("jurisdiction", str(town.ids["g2"])), START, END,
                        viewer=Viewer(frozenset({"b"}), frozenset({town.ids["g2"]}),
                                      frozenset()))
    assert seen.node.values["false_alarms"] == 1
    with pytest.raises(Refused) as exc:
        await report(town.pool, NodeRef("jurisdiction", str(town.ids["g1"])), START, END,
                     viewer=Viewer(frozenset({"b"}), frozenset({town.ids["g2"]}), frozenset()))
    assert exc.value.missing


async def test_a_day_counts_in_the_report_s_time_zone(town: Town) -> None:
    # the six false alarms lie 01:00-01:05 UTC, 2 March: in Honolulu (UTC-10) still 1 March,
    # one day either way; in a zone that splits them the flag would go
    place = (await report(town.pool, NodeRef("site", "a"), START, END)).node.place
    hnl = await gather(town.pool, place, START, END, tz="Pacific/Honolulu")
    assert hnl.gb50440_unit_days == 1


async def test_targets_progress_ranking_and_exports(town: Town) -> None:
    city = town.ids["city"]
    actor = Actor(None, "tester")
    async with town.pool.acquire() as conn:
        with pytest.raises(Refused):
            await targets.set_targets(conn, actor, city, 2025, {"no_such": 1.0})
        with pytest.raises(Refused):
            await targets.set_targets(conn, actor, city, 2025, {"online_rate": 2.0})
        with pytest.raises(Refused) as missing:
            await targets.set_targets(conn, actor, 987654, 2025, {"fires": 1.0})
        assert missing.value.missing
        out = await targets.set_targets(conn, actor, city, 2025,
                                        {"online_rate": 0.95, "fires": 3.0})
    assert out == {"fires": 3.0, "online_rate": 0.95}
    audit = await town.pool.fetch("SELECT entity, entity_id, after FROM audit_log "
                                  "WHERE entity = 'assessment_target'")
    assert [(a["entity_id"], a["after"]["targets"]) for a in audit] == [
        (f"{city}/2025", {"online_rate": 0.95, "fires": 3.0})]
    p = await targets.progress(town.pool, city, 2025, now=datetime(2026, 2, 1, tzinfo=UTC))
    assert p.elapsed == 1.0
    met = {i.indicator: (i.actual, i.met) for i in p.items}
    assert met == {"fires": (2.0, True), "online_rate": (pytest.approx(6 / 7), False)}
    rep = await report(town.pool, NodeRef("jurisdiction", str(town.ids["township"])),
                       START, END)
    ranked = targets.ranking(rep, "false_alarms")  # lower is better: G2 (1) before G1 (7)
    assert [(r, f.place.key) for r, f in ranked] == [(1, f"jurisdiction:{town.ids['g2']}"),
                                                     (2, f"jurisdiction:{town.ids['g1']}")]
    ranked = targets.ranking(rep, "integrity_rate")  # higher is better: G1 (0.8) first
    assert [r for r, _ in ranked] == [1, 2] and ranked[0][1].place.key.endswith(
        str(town.ids["g1"]))
    csv = exports.to_csv(rep)
    assert csv.startswith("\ufeffnode,kind,name,period_start,period_end,fires,")
    assert len(csv.strip().splitlines()) == 4  # header, the township, two grids
    feed = exports.feed(rep, datetime(2025, 4, 1, tzinfo=UTC))
    assert feed["version"] == "firetower.assessment/1"
    assert len(feed["figures"]) == 3 * len(KEYS)
    assert {"node": f"jurisdiction:{town.ids['g1']}", "indicator": "false_alarms",
            "unit": "count", "value": 7.0, "period_start": "2025-03-01T00:00:00Z",
            "period_end": "2025-03-11T00:00:00Z"} in feed["figures"]


def test_period_days() -> None:
    from assessment.queries import check_period, period_days
    assert period_days(START, END) == 10.0
    with pytest.raises(Refused):
        check_period(END, START)
    assert date(2025, 3, 1) == START.date()
