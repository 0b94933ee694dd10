"""Acceptance: `firetower run` with the demo's scenarios, fast-forwarded, raises every
scenario's expected alarm, against a fresh test database and a private broker.

`firetower run --speed S` hands S to the simulator, which starts its virtual clock hours in the
past and plays at S times real time until it has caught up with the clock (simulators/
command.py): the stamps stay believable, so the rules run on device time, and the seven virtual
hours the battery's early warning needs (six hourly means) pass in SPEED-th of that.

One thing cannot be fast-forwarded: supervision. A device's heartbeat deadline runs on the
centre's own clock (a detector is offline 300 s after its last message, whatever its stamps
say), so the silent detector would need five minutes of wall time. The test enters a
per-kind heartbeat override for detectors, as an installer can, scaled to the fleet's pace:
DETECTOR_HEARTBEAT_S of wall time, while a device reports every 60 / SPEED s.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cli.run import DEMO_SCENARIOS
from firetower import db
from firetower.broker import free_port
from simulators.fleet import build_fleet
from simulators.injection import ALARM_CLASSES
from simulators.scenarios import generate

pytestmark = pytest.mark.integration

SITES, PER_KIND, SEED = 3, 3, 1       # firetower run's simulator keeps its default seed, 1
SPEED = 180.0                         # 7 virtual hours in 140 s
WAIT_S = 215.0                        # wall time allowed for every expected alarm
DETECTOR_HEARTBEAT_S = 20.0           # 300 s of supervision would not fit in the test
STOP_S = 20.0
# The rule behind each expected alarm, where only one can raise it (a fire may come from the
# detector's threshold or its zone's coincidence).
TYPES = {"cooking_steam": {"smoke.prealarm"}, "sprinkler_head_open": {"sprinkler.waterflow"},
         "slow_leak": {"sprinkler.leak", "sprinkler.low_pressure"},
         "panel_fault": {"panel.fault"}, "detector_silent": {"offline"},
         "battery_depleting": {"battery.depleting"}}


def demo_plan():  # type: ignore[no-untyped-def]
    """What the simulator inside `firetower run` injects (which devices does not depend on
    the start)."""
    fleet = build_fleet(SEED, SITES, PER_KIND)
    return generate(fleet, SEED, datetime.now(UTC), DEMO_SCENARIOS, duration=math.inf)


def centre_env(url: str, broker_url: str, var: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIRETOWER_")}
    env.update(FIRETOWER_ENV="development", FIRETOWER_DATABASE_URL=url,
               FIRETOWER_MQTT_URL=broker_url, FIRETOWER_VAR_DIR=str(var),
               FIRETOWER_API_PORT=str(free_port()), FIRETOWER_METRICS_PORT=str(free_port()),
               FIRETOWER_API_METRICS_PORT=str(free_port()),
               FIRETOWER_DISPATCH_METRICS_PORT=str(free_port()))
    return env


async def test_every_demo_scenario_raises_its_alarm(clean_db, own_broker, tmp_path) -> None:  # type: ignore[no-untyped-def]
    plan = demo_plan()
    wanted = {(inj.scenario, inj.alarm_device): ALARM_CLASSES[inj.expect]
              for inj in plan.injections}
    assert {s for s, _ in wanted} == set(DEMO_SCENARIOS) - {"normal"}
    conn = await db.connect(clean_db.url)
    try:
        for kind in ("smoke_detector", "heat_detector"):
            await conn.execute("INSERT INTO rule_overrides (scope, target, rule, params) "
                               "VALUES ('kind', $1, 'supervision', $2)", kind,
                               {"heartbeat_s": DETECTOR_HEARTBEAT_S})
    finally:
        await conn.close()
    log = (tmp_path / "run.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "firetower", "run", "--sites", str(SITES), "--per-kind",
         str(PER_KIND), "--speed", str(SPEED)], cwd=tmp_path, stdout=log,
        stderr=subprocess.STDOUT, env=centre_env(clean_db.url, own_broker.url, tmp_path / "var"),
        start_new_session=True)
    t0 = time.monotonic()
    seen: dict[tuple[str, str], float] = {}
    try:
        conn = await db.connect(clean_db.url)
        try:
            while time.monotonic() - t0 < WAIT_S and len(seen) < len(wanted):
                assert proc.poll() is None, _tail(tmp_path / "run.log")
                rows = await conn.fetch("SELECT device_id, class, type FROM alarms")
                for r in rows:
                    for (scenario, device), classes in wanted.items():
                        if (r["device_id"] == device and r["class"] in classes
                                and r["type"] in TYPES.get(scenario, {r["type"]})):
                            seen.setdefault((scenario, device), time.monotonic() - t0)
                await asyncio.sleep(2.0)  # a probe's polling interval (deadline WAIT_S)
            alarms = await conn.fetch("SELECT device_id, class, type, raised_at FROM alarms")
            floors = await conn.fetchval("SELECT count(*) FROM floors WHERE plan_image IS NOT "
                                         "NULL")
            # the demo's city (cli/demo_city.py): every site in a grid and a unit
            placed = await conn.fetchval("SELECT count(*) FROM sites WHERE unit_id IS NOT NULL "
                                         "AND jurisdiction_id IS NOT NULL")
        finally:
            await conn.close()
    finally:
        stopped = _stop(proc)
        log.close()
    report = {s: f"{seen[(s, d)]:.0f} s" if (s, d) in seen else "missing"
              for s, d in wanted}
    print(f"\ndemo at speed {SPEED:g}: expected alarm after (wall) {report}; "
          f"{len(alarms)} alarms in all; stopped in {stopped:.1f} s")
    missing = [(s, d, sorted(c)) for (s, d), c in wanted.items() if (s, d) not in seen]
    assert not missing, (missing, sorted((a["device_id"], a["class"], a["type"])
                                         for a in alarms), _tail(tmp_path / "run.log"))
    # the fleet's stamps stayed believable while it caught up: no device clock was taken
    # for wrong
    assert not [a for a in alarms if a["type"] == "clock"]
    assert floors == SITES   # one storey each at three devices of a kind, with its plan
    assert placed == SITES, _tail(tmp_path / "run.log")
    assert stopped < STOP_S


def _stop(proc: subprocess.Popen[bytes]) -> float:
    """SIGTERM to `firetower run` (it stops its children); seconds until it exited."""
    t = time.monotonic()
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_S + 10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return time.monotonic() - t


def _tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
