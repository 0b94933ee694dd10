"""`firetower bench <name>`: benchmarks (not part of the test suite), and `firetower bench
report`, which regenerates docs/performance.md from the kept records.

Each benchmark lives in its own module with `configure(parser)` and `main(args, settings)`;
every run writes a JSON record to bench/records/ (bench/records.py) unless `--no-record`, and
exits 1 when one of its correctness checks fails.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from firetower.settings import Settings

BENCHMARKS = {
    "ingest": ("bench.ingest", "MQTT -> database throughput, loss, ceiling"),
    "alerting": ("bench.alerting", "rule evaluation and event -> alarm"),
    "webhooks": ("bench.webhooks", "operator verdict -> webhook receiver"),
    "e2e": ("bench.e2e", "the whole pipeline: simulator -> ... -> operator "
            "-> webhook receiver, each component its own process"),
    "broker-kill": ("bench.broker", "acknowledged messages a broker SIGKILL "
                    "loses, and the throughput cost, per persistence setting"),
    "org-import": ("bench.org_import", "a city's organisation (5,000 units, 20,000 sites) "
                   "imported through the API, and imported again"),
    "loop": ("bench.loop", "the hazard loop's sweeps over a city-sized backlog (work orders, "
             "hazards by rule, escalation) and an idle sweep"),
    "mqtt-boundary": ("bench.mqtt_boundary", "the ingester's MQTT receive path against "
                      "paho's public API: rate and CPU per message"),
    "assessment": ("bench.assessment", "the assessment indicators over a year of a city: "
                   "summary tables against the raw queries"),
    "notify": ("bench.notify", "fire raised -> first e-mail and robot message accepted, and "
               "escalation timing, under background telemetry; each component its own process"),
}
# not a benchmark: no record, no checks
REPORT = ("bench.report", "regenerate docs/performance.md from its template and the kept "
          "records (--check: only compare)")


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="benchmark", required=True)
    for name, (module, help_text) in {**BENCHMARKS, "report": REPORT}.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        p.set_defaults(bench_module=module)
        if name != "report":
            p.add_argument("--records", type=Path, metavar="DIR",
                           help="write the run's JSON record here (default: bench/records)")
            p.add_argument("--no-record", action="store_true",
                           help="write no record (a trial run)")
        mod.configure(p)


def main(args: argparse.Namespace, settings: Settings) -> int:
    if not getattr(args, "bench_module", None):
        raise SystemExit(f"firetower bench {args.benchmark}: not available in this build")
    return int(importlib.import_module(args.bench_module).main(args, settings) or 0)
