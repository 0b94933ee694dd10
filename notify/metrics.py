"""Prometheus metrics of the notifier (served by `firetower notify` on
FIRETOWER_NOTIFY_METRICS_PORT at /metrics, on 127.0.0.1; see docs/metrics.md).

Counted where things happen: an attempt once its outcome is recorded (worker.py), a job once
its transaction commits, an escalation step once its job is written. The outbox depth is
counted by the database every few seconds, not per message.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ATTEMPTS = Counter("firetower_notify_attempts_total",
                   "Notification delivery attempts, by channel and what was decided after each",
                   ["channel", "outcome"])
ATTEMPT_SECONDS = Histogram(
    "firetower_notify_attempt_seconds", "Duration of one delivery attempt", ["channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
SENT_SECONDS = Histogram(
    "firetower_notify_sent_seconds",
    "From the message's creation (its job resolved) to its acceptance by the channel, retries "
    "and grouping windows included; by priority (1 = fire)", ["priority"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600))
JOBS = Counter("firetower_notify_jobs_total",
               "Notification jobs resolved, by outcome (done, failed: recorded and retried)",
               ["outcome"])
ESCALATIONS = Counter("firetower_notify_escalations_total",
                      "Escalation steps sent to the next people of a chain")
PENDING = Gauge("firetower_notify_pending_messages",
                "Messages waiting in the outbox (pending: due, held by quiet hours or a "
                "grouping window, or waiting for a retry)")
DEAD = Gauge("firetower_notify_dead_messages_24h",
             "Messages dead-lettered in the last 24 hours (nobody was reached that way)")
