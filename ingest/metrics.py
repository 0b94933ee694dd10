"""Prometheus counters of the ingester (served on FIRETOWER_METRICS_PORT at /metrics)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

RECEIVED = Counter("firetower_ingest_received_total", "MQTT messages received", ["type"])
STORED = Counter("firetower_ingest_stored_total", "Messages stored (first copy)", ["type"])
DUPLICATES = Counter("firetower_ingest_duplicates_total",
                     "Messages already stored (redelivery or device repeat)")
CONFIRMED = Counter("firetower_ingest_events_confirmed_total",
                    "Events confirmed to their device after storage and alarm commit")
REJECTED = Counter("firetower_ingest_rejected_total", "Messages refused", ["reason"])
UNREGISTERED = Counter("firetower_ingest_unregistered_total",
                       "Messages from ids not in the device registry")
BATCH_SIZE = Histogram("firetower_ingest_batch_messages", "Messages per committed batch",
                       ["path"], buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10000, 20000))
FLUSH_SECONDS = Histogram("firetower_ingest_flush_seconds", "Time to commit one batch", ["path"],
                          buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                   2.5, 10))
PENDING = Gauge("firetower_ingest_pending_messages", "Messages received, not yet committed",
                ["path"])
DB_RETRIES = Counter("firetower_ingest_db_retries_total", "Batch writes retried after an error")

# Messages received from the broker and not yet acknowledged (in a lane's batch, or in a batch
# being committed). Not exported until the ingester wires it with `serve_in_flight(read)` (read
# at scrape time, nothing per message), so it never reports a made-up 0.
IN_FLIGHT = Gauge("firetower_ingest_in_flight_messages",
                  "MQTT messages received, not yet acknowledged to the broker", registry=None)


def serve_in_flight(read: Callable[[], float]) -> None:
    """Export IN_FLIGHT as `read()` (e.g. received minus acknowledged), from now on."""
    IN_FLIGHT.set_function(read)
    with contextlib.suppress(ValueError):  # already registered (a second ingester, tests)
        REGISTRY.register(IN_FLIGHT)

# The broker's backlog as `ingest/backlog.py` follows it from `$SYS` (docs/overload.md). Not
# exported until a watch starts (`serve_broker_gauges`); NaN until the broker sent the figure.
_BROKER_GAUGES = {
    "heap": ("firetower_broker_heap_bytes",
             "Broker heap in use (Mosquitto $SYS/broker/heap/current), backlog included"),
    "stored_messages": ("firetower_broker_stored_messages",
                        "Messages the broker holds ($SYS/broker/store/messages/count)"),
    "stored_bytes": ("firetower_broker_stored_bytes",
                     "Payload bytes the broker holds ($SYS/broker/store/messages/bytes)"),
    "dropped": ("firetower_broker_dropped_messages",
                "The broker's count of messages it dropped since it started "
                "($SYS/broker/publish/messages/dropped)"),
    "budget": ("firetower_broker_memory_budget_bytes",
               "Heap the broker's backlog may use (FIRETOWER_BROKER_MEMORY_BUDGET)"),
    "ratio": ("firetower_broker_backlog_ratio", "Broker heap / memory budget"),
    "age": ("firetower_broker_sys_age_seconds", "Seconds since the last $SYS figure arrived"),
}
BROKER_ALARM = Gauge("firetower_broker_backlog_alarm",
                     "1 while this watch wants the backlog alarm of this type open, else 0",
                     ["type"], registry=None)


def serve_broker_gauges(read: Callable[[], dict[str, float]]) -> None:
    """Export the broker gauges from `read()` (called once per gauge at scrape time)."""
    for key, (name, doc) in _BROKER_GAUGES.items():
        gauge = Gauge(name, doc, registry=None)
        gauge.set_function(lambda k=key: read()[k])
        _register(name, gauge)
    for key in read():
        if key.startswith("alarm:"):
            BROKER_ALARM.labels(key[6:]).set_function(lambda k=key: read()[k])
    _register("firetower_broker_backlog_alarm", BROKER_ALARM)


_REGISTERED: dict[str, Gauge] = {}


def _register(name: str, collector: Gauge) -> None:
    old = _REGISTERED.pop(name, None)  # a second watch in one process (tests): the latest wins
    if old is not None:
        REGISTRY.unregister(old)
    REGISTRY.register(collector)
    _REGISTERED[name] = collector
