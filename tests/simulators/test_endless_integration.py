"""`firetower simulate` paced and endless (what `firetower run` starts), as a real process
against a real Mosquitto: every scenario's devices keep publishing for a bounded wall time,
the heartbeat file is touched while it publishes, and SIGTERM / SIGINT stop it within
seconds, also after a detector has gone silent for good (the case that once hung it)."""

from __future__ import annotations

import asyncio
import math
import os
import signal
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import pytest

from firetower.mqtt import AsyncMqtt
from simulators.fleet import build_fleet
from simulators.scenarios import SCENARIOS, generate
from tests.helpers import eventually

pytestmark = pytest.mark.integration

SITES, PER_KIND, SEED = 6, 3, 11
SPEED = 300.0          # virtual seconds per wall second: the half hour of injections in 6 s
RUN_S = 16.0           # wall time of the run
STOP_WITHIN_S = 5.0     # measured 0.1-0.3 s; the bound leaves room for a loaded machine


class Arrivals:
    """Subscribes to fire/v1/#; keeps (wall time, device id) of every live delivery."""

    def __init__(self, port: int) -> None:
        self.mqtt = AsyncMqtt("127.0.0.1", port)
        self.seen: list[tuple[float, str]] = []
        self.mqtt.set_on_message(self._on)
        self.mqtt.subscribe("fire/v1/#", 1)

    def _on(self, client, userdata, msg) -> None:  # type: ignore[no-untyped-def]
        parts = msg.topic.split("/")
        if not msg.retain and len(parts) == 4:
            self.seen.append((time.monotonic(), parts[2]))

    def between(self, t0: float, t1: float) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for t, device in self.seen:
            if t0 <= t < t1:
                counts[device] += 1
        return counts


async def simulate(broker_url: str, *extra: str, env: dict[str, str] | None = None,
                   ) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "firetower", "simulate", "--mqtt-url", broker_url,
        "--sites", str(SITES), "--per-kind", str(PER_KIND), "--seed", str(SEED),
        "--speed", str(SPEED), *extra, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, env={**os.environ, **(env or {})})


async def stop(proc: asyncio.subprocess.Process, sig: int) -> float:
    """Send `sig`; the seconds until the process has exited (fails past STOP_WITHIN_S)."""
    t0 = time.monotonic()
    proc.send_signal(sig)
    try:
        await asyncio.wait_for(proc.wait(), STOP_WITHIN_S)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(f"simulate ignored signal {sig} for {STOP_WITHIN_S} s") from None
    return time.monotonic() - t0


async def test_every_scenario_streams_on_and_sigterm_stops_it(clean_broker, tmp_path: Path,
                                                              ) -> None:
    names = sorted(SCENARIOS)
    # the same plan the process makes (its start differs, the devices and windows do not)
    plan = generate(build_fleet(SEED, SITES, PER_KIND), SEED, datetime.now(UTC), names,
                    duration=math.inf)
    gone = {d for inj in plan.expectations("silent") for d in inj.device_ids}
    assert gone, "detector_silent must take a detector for good"
    last_quiet = max((b for p in plan.sim.plans.values() for _, b in (*p.silent, *p.offline)
                      if math.isfinite(b)), default=0.0)
    assert last_quiet / SPEED < RUN_S / 2, "the run must go well past every finite quiet window"
    beat = tmp_path / "heartbeat"
    args = [a for n in names for a in ("--scenario", n)]
    sub = Arrivals(clean_broker.port)
    await sub.mqtt.start()
    try:
        proc = await simulate(clean_broker.url, *args, env={"FIRETOWER_HEARTBEAT_FILE": str(beat)})
        # the run's clock starts at the first delivery: the process's start-up (imports,
        # building the fleet) is not what is measured, and takes seconds on a loaded machine
        async def first_delivery() -> bool:
            assert proc.returncode is None, (await proc.stderr.read()).decode()  # type: ignore[union-attr]
            return bool(sub.seen)

        await eventually(first_delivery, what="the simulator's first delivery")
        t_start = sub.seen[0][0]
        beats: list[float] = []
        while time.monotonic() - t_start < RUN_S:
            await asyncio.sleep(1.0)  # on purpose: watch the run for RUN_S, once a second
            assert proc.returncode is None, (await proc.stderr.read()).decode()  # type: ignore[union-attr]
            if beat.exists():
                beats.append(beat.stat().st_mtime)
        took = await stop(proc, signal.SIGTERM)
    finally:
        await sub.mqtt.stop()
    # messages kept flowing: no pause of 3 s between deliveries (a hung generator is a pause
    # for good; at ~700 msg/s a healthy run pauses only when the machine starves it, and a
    # full CI run beside other work once starved it of one whole second)
    arrivals = [t for t, _ in sub.seen if t_start <= t < t_start + RUN_S]
    pause = max(b - a for a, b in pairwise([t_start, *arrivals, t_start + RUN_S]))
    assert pause < 3.0, f"no delivery for {pause:.1f} s"
    per_second = [sum(sub.between(t_start + s, t_start + s + 1).values())
                  for s in range(1, int(RUN_S) - 1)]
    # every device of every scenario still reports in the last quarter of the run, except
    # the detector that went silent for good, which stays silent
    tail = sub.between(t_start + RUN_S * 0.75, t_start + RUN_S)
    for inj in plan.injections:
        for device in inj.device_ids:
            if device in gone:
                assert tail.get(device, 0) == 0, (inj.scenario, device)
            else:
                assert tail.get(device, 0) > 0, (inj.scenario, inj.condition, device)
    missing = [d.id for d in plan.fleet.devices if d.id not in gone and not tail.get(d.id)]
    assert not missing
    # the heartbeat was touched all along (at most once a second, so allow 2.5 s gaps)
    assert len(beats) >= RUN_S - 3
    assert max(b - a for a, b in pairwise(beats)) < 2.5
    assert time.time() - beats[-1] < STOP_WITHIN_S + 2.5
    rate = len(sub.seen) / RUN_S
    print(f"\nendless run: {len(sub.seen)} messages in {RUN_S:.0f} s ({rate:.0f}/s), "
          f"per second min {min(per_second)} max {max(per_second)}, SIGTERM stop {took:.2f} s")
    assert proc.returncode == 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_signal_stops_it_after_a_detector_went_silent(clean_broker, sig: int) -> None:
    """The case that hung: detector_silent, paced, endless; the signal comes long after the
    detector fell silent for good (its silence starts 6-11 minutes in)."""
    proc = await simulate(clean_broker.url, "--scenario", "detector_silent",
                          "--speed", "1000")   # the last --speed wins
    await asyncio.sleep(4.0)   # on purpose: 4,000 virtual seconds
    assert proc.returncode is None
    took = await stop(proc, sig)
    print(f"\n{signal.Signals(sig).name} stop after the silence: {took:.2f} s")
