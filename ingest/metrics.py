"""Prometheus counters of the ingester (served on FIRETOWER_METRICS_PORT at /metrics)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from prometheus_client import REGISTRY, Counter, Gauge, Histogram

RECEIVED = Counter("firetower_ingest_received_total", "MQTT messages received", ["type"])
STORED = Counter("firetower_ingest_stored_total", "Messages stored (first copy)", ["type"])
DUPLICATES = Counter("firetower_ingest_duplicates_total",
                     "Messages already stored (redelivery or device repeat)")
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
