"""Prometheus metrics of the dispatcher (served by `firetower dispatch` on
FIRETOWER_DISPATCH_METRICS_PORT at /metrics, on 127.0.0.1; see docs/metrics.md).

Counted where things happen: an attempt once its record is written (delivery.py), a forward
once its transaction commits (forwarding.py), an endpoint's failing state when its alarm is
raised or cleared (health.py). The outbox depth is counted by the database every rescan
interval (dispatcher.py), not per message.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import Counter, Gauge, Histogram

ATTEMPTS = Counter("firetower_dispatch_attempts_total",
                   "Webhook delivery attempts, by what was decided after each",
                   ["outcome"])
ATTEMPT_SECONDS = Histogram(
    "firetower_dispatch_attempt_seconds", "Duration of one delivery attempt (HTTP request)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
DELIVERY_SECONDS = Histogram(
    "firetower_dispatch_delivery_seconds",
    "From the event's occurrence (webhook_events.occurred_at) to its delivery, retries "
    "included (replays not counted)",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600))
PENDING = Gauge("firetower_dispatch_pending_deliveries",
                "Deliveries waiting in the outbox (status pending), per enabled endpoint",
                ["endpoint"])
FORWARDS = Counter("firetower_dispatch_forwards_total",
                   "Fires forwarded to the fire brigade, by basis", ["basis"])
ENDPOINT_FAILING = Gauge("firetower_dispatch_endpoint_failing",
                         "1 while the endpoint's webhook.failing alarm is open, else 0",
                         ["endpoint"])
LEADER = Gauge("firetower_dispatch_leader",
               "1 while this dispatcher holds the leader lock (0: hot standby)")


def set_pending(counts: Mapping[int, int]) -> None:
    """Set the outbox depth of every enabled endpoint (0 when it has nothing pending) and drop
    the series of endpoints no longer there."""
    gone = {s.labels["endpoint"] for m in PENDING.collect() for s in m.samples}
    for endpoint_id, n in counts.items():
        PENDING.labels(str(endpoint_id)).set(n)
        gone.discard(str(endpoint_id))
    for label in gone:
        PENDING.remove(label)


def set_failing(endpoint_id: int, failing: bool | None) -> None:
    """None: the endpoint is gone (its series is dropped)."""
    if failing is None:
        try:
            ENDPOINT_FAILING.remove(str(endpoint_id))
        except KeyError:
            pass
        return
    ENDPOINT_FAILING.labels(str(endpoint_id)).set(1 if failing else 0)
