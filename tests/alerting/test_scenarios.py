"""Every foundation scenario of the simulator, replayed through the real broker, ingester,
alerting service and database: exactly the expected alarms (class, device, timing), no others.

Fleet: one site, a panel and three devices of each kind (build_fleet(7, 1, 3)); sprinkler
switch settings (low-pressure minimum, jockey cut-in) are entered per device as an installer
would. Scenarios that report slower than once a minute get heartbeat deadlines of three report
intervals (also as an installer would configure them per kind).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from simulators.fleet import build_fleet
from simulators.scenarios import SCENARIOS, generate

from .scenario import Replay, replay, start_for

pytestmark = pytest.mark.integration
KINDS = ("smoke_detector", "heat_detector", "sprinkler_pressure", "alarm_panel")


async def play(clean_db, broker, name: str) -> Replay:  # type: ignore[no-untyped-def]
    sc = SCENARIOS[name]
    run = generate(build_fleet(7, 1, 3), 7, start_for(sc.duration_s), [name])
    overrides: list[tuple[str, str, str, dict[str, Any]]] = []
    if run.sim.interval > 60:
        overrides = [("kind", k, "supervision", {"heartbeat_s": 3 * run.sim.interval})
                     for k in KINDS]
    return await replay(clean_db.url, broker, run, overrides)


def details(r: Replay) -> dict[str, Any]:
    return r.run.injections[0].details


def secs(a: Any, b: Any) -> float:
    return (a - b).total_seconds()


@pytest.mark.parametrize("name", ["normal", "duplicates_out_of_order", "malformed"])
async def test_quiet_scenarios_raise_nothing(clean_db, broker, name: str) -> None:  # type: ignore[no-untyped-def]
    r = await play(clean_db, broker, name)
    assert r.alarms == []


async def test_smouldering_fire_prealarm_then_fire_confirmed_by_coincidence(  # type: ignore[no-untyped-def]
        clean_db, broker) -> None:
    r = await play(clean_db, broker, "smouldering_fire")
    d = details(r)
    primary, panel = d["primary"], d["panel"]
    involved = set(r.run.injections[0].device_ids) | {panel}
    assert {a["class"] for a in r.alarms} <= {"fire", "early_warning"}
    assert {a["device_id"] for a in r.alarms} <= involved
    pre = r.of(type_="smoke.prealarm")
    fires = r.of("fire")
    first_fire = min(a["raised_at"] for a in fires if a["device_id"] == primary)
    assert next(a for a in pre if a["device_id"] == primary)["raised_at"] < first_fire
    assert ("panel.fire", panel) in {(a["type"], a["device_id"]) for a in fires}
    assert not [a for a in fires if a["type"].startswith("heat.")]
    confirmed = [a for a in fires if a["evidence"].get("coincidence")]
    assert confirmed and all(a["confidence"] >= 0.949 for a in confirmed)
    primary_fire = next(a for a in fires if a["device_id"] == primary)
    assert primary_fire["evidence"]["confirmed"] is True
    # the fire is raised before the smoke crosses the head's own setting plus its duration
    assert secs(first_fire, r.at("smoke_rise_at")) < 20 * 60


async def test_cooking_steam_no_fire_alarm_from_the_rules(clean_db, broker) -> None:  # type: ignore[no-untyped-def]
    r = await play(clean_db, broker, "cooking_steam")
    d = details(r)
    # a short spike at one head with no heat, no CO and no neighbour: the panel's alarm
    # verification runs out (delay on, delay off, recorded as events) and the rules raise only
    # a pre-alarm, never a fire alarm
    assert r.of("fire") == []
    assert [(a["class"], a["device_id"], a["type"]) for a in r.alarms] == [
        ("early_warning", d["primary"], "smoke.prealarm")]


async def test_flaming_fire(clean_db, broker) -> None:  # type: ignore[no-untyped-def]
    r = await play(clean_db, broker, "flaming_fire")
    d = details(r)
    involved = set(r.run.injections[0].device_ids) | {d["panel"]}
    assert {a["class"] for a in r.alarms} <= {"fire", "early_warning"}
    assert {a["device_id"] for a in r.alarms} <= involved
    ror = r.of(type_="heat.rate_of_rise")
    assert [a["device_id"] for a in ror] == [d["primary"]]
    assert 0 <= secs(ror[0]["raised_at"], r.at("rate_of_rise_at")) < 60
    assert max(a["confidence"] for a in r.of("fire")) >= 0.949


async def test_sprinkler_head_open_fire_after_the_retard(clean_db, broker) -> None:  # type: ignore[no-untyped-def]
    r = await play(clean_db, broker, "sprinkler_head_open")
    d = details(r)
    assert r.summary() == sorted([("fire", d["primary"], "sprinkler.waterflow"),
                                  ("fire", d["panel"], "panel.fire")])
    flow = r.of(type_="sprinkler.waterflow")[0]
    delay = secs(flow["raised_at"], r.at("drop_at"))
    assert 30.0 <= delay <= 30.0 + 5.0 + 1.0, delay  # the retard, plus one fast report
    assert flow["confidence"] == pytest.approx(0.8)


async def test_slow_leak_early_warning_then_supervisory(clean_db, broker) -> None:  # type: ignore[no-untyped-def]
    r = await play(clean_db, broker, "slow_leak")
    d = details(r)
    assert {a["device_id"] for a in r.alarms} == {d["primary"]}
    classes = [a["class"] for a in sorted(r.alarms, key=lambda a: a["raised_at"])]
    assert classes[0] == "early_warning" and set(classes[1:]) == {"supervisory"}
    low = r.of(type_="sprinkler.low_pressure")[0]
    assert abs(secs(low["raised_at"], r.at("low_pressure_at"))) <= 60 + 10
    ew = r.of("early_warning")[0]
    assert 0 < ew["evidence"]["predicted_s"] <= 6 * 3600


async def test_detector_silent_offline_within_deadline_plus_1s(clean_db, broker) -> None:  # type: ignore[no-untyped-def]
    r = await play(clean_db, broker, "detector_silent")
    d = details(r)
    assert r.summary() == [("offline", d["primary"], "offline")]
    silent_from = r.at("silent_from")
    last = max(o.ts for o in r.run if o.device_id == d["primary"] and o.ts < silent_from)
    late = secs(r.alarms[0]["raised_at"], last)
    assert 300.0 <= late <= 301.0, late


async def test_panel_offline_children_inhibited(clean_db, broker) -> None:  # type: ignore[no-untyped-def]
    r = await play(clean_db, broker, "panel_offline")
    panel_inj, children_inj = r.run.injections
    panel = panel_inj.device_ids[0]
    children = set(children_inj.device_ids)
    assert {a["class"] for a in r.alarms} == {"offline"}
    assert {a["device_id"] for a in r.alarms} == children | {panel}
    p = r.of(type_="offline")
    panel_alarm = next(a for a in p if a["device_id"] == panel)
    assert abs(secs(panel_alarm["raised_at"], panel_inj.start)) < 1  # the will, at once
    raise_details = {e["alarm_id"]: e["details"] for e in r.events if e["kind"] == "raise"}
    for a in p:
        if a["device_id"] in children:
            assert raise_details[a["id"]].get("inhibited_by") == f"offline:{panel}"
    # all back: every offline alarm cleared, the children lost their inhibition mark
    assert {a["state"] for a in r.alarms} == {"cleared_unack"}
    assert all(a["inhibited_by"] is None for a in r.alarms)


async def test_panel_fault_and_mains_fault(clean_db, broker) -> None:  # type: ignore[no-untyped-def]
    r = await play(clean_db, broker, "panel_fault")
    d = details(r)
    assert r.summary() == [("fault", d["panel"], "panel.fault")]
    a = r.alarms[0]
    assert a["point"] == f"{d['zone']}/{d['point']}" and a["group_key"] == "fault:s0000"
    assert abs(secs(a["cleared_at"], r.at("cleared_at"))) < 1


async def test_panel_mains_fault(clean_db, broker) -> None:  # type: ignore[no-untyped-def]
    r = await play(clean_db, broker, "panel_mains_fault")
    d = details(r)
    assert r.summary() == [("fault", d["panel"], "panel.mains_fault")]
    assert r.alarms[0]["state"] == "cleared_unack"


async def test_test_mode_recorded_as_test_never_as_a_plain_fire(clean_db, broker) -> None:  # type: ignore[no-untyped-def]
    r = await play(clean_db, broker, "test_mode")
    assert r.of("fire") and {a["mode"] for a in r.alarms} == {"test"}
    modes = [e for e in r.events if e["kind"] == "mode"]
    assert [(e["details"]["mode"], e["details"]["active"]) for e in modes] == [
        ("test", True), ("test", False)]


async def test_jockey_short_cycling_supervisory(clean_db, broker) -> None:  # type: ignore[no-untyped-def]
    r = await play(clean_db, broker, "jockey_short_cycling")
    d = details(r)
    assert r.summary() == [("supervisory", d["primary"], "sprinkler.jockey_cycling")]


async def test_pressure_low_trend_early_warning_only(clean_db, broker) -> None:  # type: ignore[no-untyped-def]
    r = await play(clean_db, broker, "pressure_low_trend")
    d = details(r)
    assert r.summary() == [("early_warning", d["primary"], "sprinkler.pressure_trend")]


async def test_battery_depleting_early_warning_before_the_fault(clean_db, broker) -> None:  # type: ignore[no-untyped-def]
    r = await play(clean_db, broker, "battery_depleting")
    d = details(r)
    assert r.summary() == sorted([("early_warning", d["primary"], "battery.depleting"),
                                  ("fault", d["primary"], "panel.battery_fault")])
    ew = r.of("early_warning")[0]
    fault = r.of("fault")[0]
    assert fault["raised_at"] - ew["raised_at"] > timedelta(days=1)
    assert ew["evidence"]["predicted_s"] <= 7 * 86400


async def test_dirty_chamber_early_warning(clean_db, broker) -> None:  # type: ignore[no-untyped-def]
    r = await play(clean_db, broker, "dirty_chamber")
    d = details(r)
    assert {(a["class"], a["device_id"]) for a in r.alarms} == {("early_warning", d["primary"])}
    drift = r.of(type_="smoke.chamber_drift")
    assert len(drift) == 1 and drift[0]["evidence"]["predicted_s"] <= 30 * 86400
