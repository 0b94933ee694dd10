"""The JSON record every benchmark run leaves in `bench/records/`, and its correctness checks.

A record is `bench/records/<benchmark>-<UTC start, YYYYmmddTHHMMSSZ>.json`:

    {"format": 1, "benchmark": "ingest", "started": "...Z", "finished": "...Z",
     "machine": {"cpus", "python", "platform", "git_commit", "git_dirty", "load_average_start",
                 "load_average_end"},
     "params": {the command's options}, "results": {the figures},
     "checks": [{"name", "passed", "detail"}], "passed": true}

`docs/performance.md` is generated from the kept records (`firetower bench report`,
bench/report.py). A run whose checks fail writes its record too (with "passed": false) and
exits 1.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RECORDS_DIR = ROOT / "bench" / "records"
FORMAT = 1
STAMP = "%Y%m%dT%H%M%SZ"
# argparse attributes that are the CLI's plumbing, not the benchmark's parameters
_NOT_PARAMS = {"command", "module", "benchmark", "bench_module", "verbose", "records",
               "no_record", "settings"}


@dataclass(frozen=True)
class Check:
    """One correctness check of a run: what must hold, whether it did, and the figures."""

    name: str
    passed: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


def equal(name: str, got: Any, want: Any) -> Check:
    """A check that `got == want`, with both in its detail."""
    return Check(name, got == want, f"{got!r} (want {want!r})")


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _git(*argv: str) -> str | None:
    try:
        out = subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True,
                             timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def machine() -> dict[str, Any]:
    """The facts of this machine and checkout that a figure depends on."""
    status = _git("status", "--porcelain", "--untracked-files=no", "--", "bench", "cli",
                  "firetower", "ingest", "alerting", "api", "dispatch", "simulators",
                  "deploy", "migrations")
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "git_commit": _git("rev-parse", "HEAD"),
            # uncommitted changes to the code the benchmark runs
            "git_dirty": None if status is None else bool(status),
            "load_average_start": None}


def params_of(args: argparse.Namespace) -> dict[str, Any]:
    """The command's options as JSON values (paths as strings), sorted by name."""
    out: dict[str, Any] = {}
    for key, value in sorted(vars(args).items()):
        if key in _NOT_PARAMS or callable(value):
            continue
        out[key] = str(value) if isinstance(value, Path) else value
    return _jsonable(out)


def _jsonable(value: Any) -> Any:
    """NaN and infinities become null (JSON has neither); tuples become lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def record_path(directory: Path, benchmark: str, started: datetime) -> Path:
    """A new file for the run: `<benchmark>-<stamp>.json`, `-2`, `-3`... if taken."""
    stem = f"{benchmark}-{started.astimezone(UTC).strftime(STAMP)}"
    path, n = directory / f"{stem}.json", 1
    while path.exists():
        n += 1
        path = directory / f"{stem}-{n}.json"
    return path


def build(benchmark: str, started: datetime, params: dict[str, Any], results: dict[str, Any],
          checks: list[Check], facts: dict[str, Any]) -> dict[str, Any]:
    return _jsonable({
        "format": FORMAT, "benchmark": benchmark,
        "started": started.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "finished": now().strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": facts, "params": params, "results": results,
        "checks": [c.as_dict() for c in checks], "passed": all(c.passed for c in checks),
    })


def write(directory: Path, record: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    started = datetime.strptime(record["started"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    path = record_path(directory, record["benchmark"], started)
    path.write_text(json.dumps(record, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    return path


def start() -> tuple[datetime, dict[str, Any]]:
    """Call as a run starts: its start time and the machine facts (load average now)."""
    facts = machine()
    facts["load_average_start"] = round(os.getloadavg()[0], 2)
    return now(), facts


def finish(benchmark: str, args: argparse.Namespace, begun: tuple[datetime, dict[str, Any]],
           results: dict[str, Any], checks: list[Check]) -> int:
    """Print the checks (stderr), write the run's record unless `--no-record`, and return the
    exit status: 0 if every check passed, 1 if one failed (or the run had none)."""
    started, facts = begun
    facts = {**facts, "load_average_end": round(os.getloadavg()[0], 2)}
    if not checks:
        checks = [Check("the run made checks", False, "no check was made")]
    for c in checks:
        print(f"check {'ok  ' if c.passed else 'FAIL'} {c.name}: {c.detail}", file=sys.stderr)
    record = build(benchmark, started, params_of(args), results, checks, facts)
    if not getattr(args, "no_record", False):
        directory = Path(getattr(args, "records", None) or RECORDS_DIR)
        print(f"record: {write(directory, record)}", file=sys.stderr)
    return 0 if record["passed"] else 1


def load(path: Path) -> dict[str, Any]:
    record: dict[str, Any] = json.loads(path.read_text())
    record["id"] = path.stem
    return record
