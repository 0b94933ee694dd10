"""Property-based testing of the whole API against its own OpenAPI schema (schemathesis) with
all its checks: generated requests, valid and invalid, as an admin (every route reachable) and
as a scoped installer, must get answers the document describes (status, content type, headers,
body schema, the one error shape), no 5xx, schema-valid requests accepted and invalid ones
refused, `Allow` on 405, 401 without credentials. The live stream is documented as
`text/event-stream` and fuzzed like any route. Runs the `st` CLI against an API of its own on a
free port (its login throttle counts the fuzzer's failed logins, not the session's); the
number of examples per operation is bounded so the run takes a few minutes at most."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
from pathlib import Path

import pytest

from api.config import ApiSettings
from firetower.alarm_store import AlarmStore
from tests.api.conftest import World, api_settings_for, raise_alarm, seed
from tests.api.server import running_api
from tests.conftest import PROJECT_DIR, Database

pytestmark = pytest.mark.integration
# Every phase but the schema's own examples (it has none): about 10,000 cases for the two
# users in 75-80 s on 2 cores. FIRETOWER_FUZZ_EXAMPLES=40 runs more cases per operation.
EXAMPLES = os.environ.get("FIRETOWER_FUZZ_EXAMPLES", "25")
PHASES = os.environ.get("FIRETOWER_FUZZ_PHASES", "coverage,fuzzing,stateful")
CHECKS = "all"
ST = Path(sys.executable).with_name("st")
# A crash inside the fuzzer (Hypothesis parsing a lambda's source hits a CPython 3.11 parser
# bug in its recursion accounting), seen once on GET /alarms/stream: a tool error listed under
# ERRORS, not a check the API failed.
TOOL_CRASH = "AST constructor recursion depth mismatch"


# The live stream never ends by itself: its answer is read up to its first event (the
# `retry` field; the snapshot follows), or for 2 s when it resumes with nothing new to send,
# instead of for the whole request timeout.
# A few routes refuse schema-valid requests with 422 for rules a JSON schema cannot state
# (docs/api.md, "Errors"): the webhook address policy (a name or address that resolves to an
# internal network) and the URL rules, the telemetry range (at most 400 days, 5,000 buckets),
# the CSV inside an import body (its header and rows), and the organisation's rules (a credit
# code's check character, the tree's levels, codes and cycles, GeoJSON, contracts that do not
# overlap: org/; the hazard loop's rules: hazards/). For those, and only those, 422 is
# an expected answer to schema-valid data; every other check applies to them as to any route.
RULE_BOUND_PATHS = "|".join([
    "webhooks", "devices/import", "devices/[^/]+/telemetry",
    "jurisdictions", "units", "companies", "contracts", "departments", "grid-members",
    "sites/[^/]+/placement",
    "org/import",
    # the hazard loop's rules: a deadline in the past, a step's note and photo, files that
    # must exist, a scoped user's hazard placed in its scope (docs/hazards.md)
    "hazards", "work-orders", "maintenance",
    # files are checked by their content (random bytes are no image), reports by their steps
    "files", "reports",
    # duty rosters and heightened watch: one user's shifts never overlap, a shift's and a
    # window's bounds (7 and 31 days, not over yet), the watch settings' own bounds, a
    # hand-over to another user, a prompt read by its recipient once (docs/notifications.md)
    "duty", "watch",
    # notifications: a contact's address checked for its channel, a policy or chain that
    # cannot work (quiet hours on fire, steps out of order, one chain per class and place)
    "notify",
    # assessment: a node is kind:<id> (422 otherwise), a period ends after it starts, a target
    # names an indicator and a ratio's target lies in [0, 1] (docs/assessment.md)
    "assessment"])
CONFIG = """
max-stream-events = 1

[[operations]]
include-path = "/api/v1/alarms/stream"
request-timeout = 2

[phases.stateful.inference]
algorithms = ["dependency-analysis"]

# The public intake is throttled per address (429 with Retry-After, docs/hazards-files-and-
# reports.md): a fuzzer is a flood from one address.
[[operations]]
include-path-regex = "^/api/v1/public/reports"
checks.positive_data_acceptance.expected-statuses = ["2xx", "404", "422", "429"]

# A notification's signed link: a schema-valid token the centre did not sign is a 404 (a used
# one 409, an expired one 410), docs/notifications.md.
[[operations]]
include-path-regex = "^/api/v1/public/links"
checks.positive_data_acceptance.expected-statuses = ["2xx", "404", "409", "410"]

[[operations]]
include-path-regex = "^/api/v1/(RULE_BOUND_PATHS)"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422"]
""".replace("RULE_BOUND_PATHS", RULE_BOUND_PATHS)


async def _fixtures(world: World) -> None:
    """Objects for the generated requests to find: a site, a floor, devices, alarms."""
    from firetower import db

    pool = await db.create_pool(world.db_url, max_size=2)
    try:
        await pool.execute("INSERT INTO floors (site_id, id, name) VALUES ('s1', 'F1', 'Ground')")
        await pool.execute("INSERT INTO devices (id, kind, site_id, floor_id) VALUES "
                           "('dev-1', 'smoke_detector', 's1', 'F1'), "
                           "('dev-2', 'sprinkler_pressure', 's2', NULL)")
        store = AlarmStore(pool)
        for dev, site in (("dev-1", "s1"), ("dev-2", "s2")):
            await raise_alarm(store, dev, site)
    finally:
        await pool.close()


async def _run_st(world: World, who: str, tmp_path: Path, seed: int = 4) -> tuple[int, str]:
    report = tmp_path / f"junit-{who}.xml"
    # Links between operations come from the schema (dependency analysis). Not from observed
    # responses ("location-headers"): schemathesis 4.32 then scans every 2xx body for URLs and
    # its run dies with "Invalid IPv6 URL" on a stored free-text value such as "http://[",
    # which is the fuzzer's own input echoed back, not a fault of the API.
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    env = dict(os.environ, SCHEMATHESIS_HOOKS="tests.api.fuzz_auth",
               PYTHONPATH=str(PROJECT_DIR), FIRETOWER_FUZZ_USER_ID=str(world.ids[who]))
    proc = await asyncio.create_subprocess_exec(
        str(ST), "--config-file", str(config), "run", f"{world.url}/api/v1/openapi.json",
        "--url", f"{world.url}", "--checks", CHECKS, "--max-examples", EXAMPLES,
        "--seed", str(seed), "--phases", PHASES, "--request-timeout", "20", "--workers", "2",
        "--header", f"Authorization: Bearer {world.tokens[who]}",
        "--no-color", "--report", "junit", "--report-junit-path", str(report),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
        cwd=PROJECT_DIR)
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace")


@pytest.mark.skipif(not ST.exists() and not shutil.which("st"), reason="schemathesis missing")
@pytest.mark.timeout(900)
@pytest.mark.parametrize("who", ["admin", "installer"])
async def test_the_api_keeps_its_contract(clean_db: Database, who: str, tmp_path: Path) -> None:
    with running_api(api_settings_for(clean_db.url), ApiSettings()) as server:
        world = await seed(clean_db.url, server.url)
        await _fixtures(world)
        code, out = await _run_st(world, who, tmp_path)
        for other_seed in (5, 6):
            if code == 0 or TOOL_CRASH not in out or "= FAILURES =" in out:
                break
            # the fuzzer itself crashed while generating cases, and the API failed no check:
            # run it again with another seed (the crash follows the generated cases, so the
            # same seed can crash the same way); a third crash, or any failure, fails the test
            print(out[-4000:])
            code, out = await _run_st(world, who, tmp_path, other_seed)
    print(out[-4000:])
    assert code == 0, out[-6000:]
