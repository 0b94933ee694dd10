#!/usr/bin/env python3
"""mypy with a baseline: fail on any error that .ci/mypy-baseline.txt does not already list.

The kernel (firetower/) is strict and its baseline is empty but for what the file names; the
rest of the tree had errors when mypy came in (issue 14), kept here so that CI holds every
package to "no new errors" while they are fixed. An error is keyed by file, error code and
message, without its line number (edits above it move it), and counted: a second copy of a
known error in the same file is new.

    .ci/mypy_baseline.py            # run mypy (configured in pyproject.toml), compare, exit 1 on new errors
    .ci/mypy_baseline.py --update   # rewrite the baseline from this tree (after fixing errors, or
                                    # when a reviewer accepts one); the diff shows what changed

Errors fixed since the baseline are reported, not failed on: run --update to shrink the file.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / ".ci" / "mypy-baseline.txt"
# path:line: error: message  [code]   (mypy's default output, one line per error)
ERROR = re.compile(r"^(?P<path>[^:\s]+\.py):\d+(?::\d+)?: error: (?P<message>.*?)(?:  \[(?P<code>[a-z-]+)\])?$")


def run_mypy() -> tuple[Counter[str], str]:
    proc = subprocess.run([sys.executable, "-m", "mypy", "--no-pretty", "--no-error-summary",
                           "--hide-error-context", "--no-color-output"],
                          cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode not in (0, 1):  # 2: mypy itself failed (configuration, crash)
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"mypy did not run (exit {proc.returncode})")
    errors: Counter[str] = Counter()
    for line in proc.stdout.splitlines():
        m = ERROR.match(line)
        if m:
            errors[f"{m['path']}: [{m['code'] or 'misc'}] {m['message']}"] += 1
    return errors, proc.stdout


def read_baseline() -> Counter[str]:
    known: Counter[str] = Counter()
    if BASELINE.exists():
        for line in BASELINE.read_text().splitlines():
            if line and not line.startswith("#"):
                known[line] += 1
    return known


def main(argv: list[str]) -> int:
    errors, output = run_mypy()
    if argv[1:] == ["--update"]:
        BASELINE.write_text(
            "# mypy errors accepted for now (.ci/mypy_baseline.py): file: [code] message, one line per\n"
            "# error. Shrink it as they are fixed (.ci/mypy_baseline.py --update); never grow it by hand.\n"
            + "".join(f"{key}\n" for key in sorted(errors.elements())))
        print(f"mypy baseline: {sum(errors.values())} errors written to {BASELINE.relative_to(ROOT)}")
        return 0
    known = read_baseline()
    new = errors - known
    fixed = known - errors
    if new:
        keys = set(new)
        print("mypy: errors not in the baseline (.ci/mypy-baseline.txt):")
        for line in output.splitlines():
            m = ERROR.match(line)
            if m and f"{m['path']}: [{m['code'] or 'misc'}] {m['message']}" in keys:
                print(f"  {line}")
    if fixed:
        print(f"mypy: {sum(fixed.values())} baseline errors are gone: run .ci/mypy_baseline.py --update")
    print(f"mypy: {sum(errors.values())} errors, {sum(known.values())} in the baseline, "
          f"{sum(new.values())} new")
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
