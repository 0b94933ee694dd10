"""Prometheus metrics of the rule engine and the alarm writer. They live in the ingester's
process and are served with its metrics (FIRETOWER_METRICS_PORT, /metrics; see
docs/metrics.md).

Nothing here runs per reading: the engine's evaluations are plain integers on the service,
added to the counter once a second (`AlertingService.publish_metrics`), together with the
gauges. Decisions, alarm writes and their latency are counted per decision, which happens
at alarm rates, not reading rates.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram

from alerting.decision import Decision
from firetower.alarm_store import AlarmChange

EVALUATIONS = Counter("firetower_alerting_evaluations_total",
                      "Messages evaluated by the rule engine, by message type", ["type"])
DECISIONS = Counter("firetower_alerting_decisions_total",
                    "Decisions the rule engine handed to the alarm writer",
                    ["action", "class"])
ALARM_WRITES = Counter("firetower_alerting_alarm_writes_total",
                       "Alarm decisions committed, by alarm class and what the alarm store did "
                       "(raise, recur, clear, update, mode; unchanged: nothing to change)",
                       ["class", "kind"])
WRITE_SECONDS = Histogram(
    "firetower_alerting_alarm_write_seconds",
    "From the engine's decision to the commit of its alarm change (queue wait included)",
    ["class"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10))
WRITE_REFUSED = Counter("firetower_alerting_alarm_write_refused_total",
                        "Alarm decisions the writer gave up on (logged), by reason",
                        ["reason"])
WRITE_RETRIES = Counter("firetower_alerting_alarm_write_retries_total",
                        "Alarm writes retried after a connection or serialization error")
WRITER_QUEUE = Gauge("firetower_alerting_writer_queue",
                     "Decisions made but not yet committed (or refused) by the alarm writer")
DEVICES = Gauge("firetower_alerting_devices", "Devices the rule engine knows")
STATE_BYTES = Gauge("firetower_alerting_state_bytes_per_device",
                    "Mean size of a device's serialised rule state, over a sample of devices")


def written(decisions: Iterable[Decision], changes: Iterable[AlarmChange | None],
            now: float) -> None:
    """Count decisions just committed; `now` is perf_counter() after the commit."""
    for d, change in zip(decisions, changes, strict=True):
        cls = d.alarm_class.value
        ALARM_WRITES.labels(cls, change.kind if change is not None else "unchanged").inc()
        if d.decided:
            WRITE_SECONDS.labels(cls).observe(now - d.decided)
