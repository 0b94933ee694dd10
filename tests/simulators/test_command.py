"""`firetower simulate` argument handling (no broker needed)."""

from __future__ import annotations

import argparse
import json
import math
from datetime import UTC, datetime

import pytest

from firetower.settings import Settings
from simulators import command


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.configure(parser)
    return parser.parse_args(list(argv))


def test_default_is_an_endless_real_time_fleet() -> None:
    run, speed = command._plan(parse())
    assert speed == 1.0 and math.isinf(run.duration)
    assert len(run.fleet.sites) == 20 and len(run.fleet) == 20 * 31
    assert run.sim.interval == 60.0
    assert abs((run.start - datetime.now(UTC)).total_seconds()) < 5


def test_unpaced_runs_end_now() -> None:
    run, speed = command._plan(parse("--speed", "0", "--scenario", "slow_leak"))
    assert speed is None and run.duration == 6 * 3600
    end = run.start.timestamp() + run.duration
    assert abs(end - datetime.now(UTC).timestamp()) < 5


def test_rate_and_speed_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    assert command.main(parse("--rate", "10", "--speed", "2"), Settings(env="development")) == 2


def test_describe_prints_injections(capsys: pytest.CaptureFixture[str]) -> None:
    args = parse("--scenario", "flaming_fire", "--scenario", "panel_offline", "--describe",
                 "--sites", "3", "--per-kind", "4", "--start", "2026-11-28T08:00:00+08:00")
    assert command.main(args, Settings(env="development")) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["expect"] for x in lines] == ["fire_alarm", "offline", "inhibited"]
    assert lines[0]["start"].endswith("+08:00")


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert command.main(parse("--list"), Settings(env="development")) == 0
    assert "smouldering_fire" in capsys.readouterr().out


def test_faster_than_real_time_starts_in_the_past_and_catches_up() -> None:
    assert command.catch_up_lead(1.0) == 0.0 and command.catch_up_lead(0.5) == 0.0
    assert command.catch_up_lead(2.0) == command.CATCH_UP_WALL_S
    assert command.catch_up_lead(60.0) == command.FAST_FORWARD_S
    for speed in (1.5, 2.0, 10.0, 60.0, 1000.0):   # caught up inside the first wall hour
        assert command.catch_up_lead(speed) / (speed - 1.0) <= 3600.0
    run, speed = command._plan(parse("--speed", "60"))
    assert speed == 60.0 and math.isinf(run.duration)
    lead = (datetime.now(UTC) - run.start).total_seconds()
    assert abs(lead - command.FAST_FORWARD_S) < 5
