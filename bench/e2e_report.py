"""Figures, summary table and plot of `firetower bench e2e` (see e2e.py).

Latency stages are computed twice for every injected fire:
- `client`: from what the benchmark's own processes observed where a stage boundary has such
  an observation (the publisher's publish time, the operator client's SSE arrival and verdict
  answer, the receiver's arrival), the alarm row's clocks elsewhere;
- `clocks`: from the alarm row's latency clocks only (device_ts ... delivered_at); a clock
  column the schema does not have yet gives no figure.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import records
from bench.stats import summary

# stage -> (label, client-side boundaries, row-clock boundaries)
# `published` / `fire_ts`: the fire's first message (publish time / its device time);
# `trigger_published` / `device_ts`: the message that raised the alarm (the same message for a
# panel's fire event; for a smoke fire the reading that completed the rule's hold). A smoke
# alarm the rule's timer raised (the hold ran out before the next reading) has no such message:
# its condition instant is the decision (`ingested_at`), and it has no device -> received or
# received -> stored figure.
STAGES: dict[str, tuple[str, tuple[str, str] | None, tuple[str, str] | None]] = {
    "fire_to_condition": ("fire -> condition met (rule hold)",
                          ("published", "condition_at"), ("fire_ts", "condition_clock")),
    "device_to_received": ("device -> centre received", ("trigger_published", "received_at"),
                           ("device_ts", "received_at")),
    "received_to_ingested": ("  received -> decided (rule engine)", None,
                             ("received_at", "ingested_at")),
    "ingested_to_stored": ("  decided -> alarm stored", None, ("ingested_at", "stored_at")),
    "received_to_stored": ("received -> alarm stored", ("received_at", "stored_at"),
                           ("received_at", "stored_at")),
    "stored_to_shown": ("stored -> shown to the operator", ("stored_at", "sse_arrival"),
                        ("stored_at", "shown_at")),
    "shown_to_verdict": ("shown -> verdict", ("sse_arrival", "verdict_answered"),
                         ("shown_at", "verdict_at")),
    "verdict_to_forwarded": ("verdict -> forwarded", ("verdict_at", "forwarded_at"),
                             ("verdict_at", "forwarded_at")),
    "forwarded_to_delivered": ("forwarded -> webhook delivered",
                               ("forwarded_at", "receiver_forwarded"),
                               ("forwarded_at", "delivered_at")),
    "stored_to_raised_webhook": ("stored -> alarm.raised at the receiver",
                                 ("stored_at", "receiver_raised"), None),
    "fire_to_operator": ("END TO END fire -> operator", ("published", "sse_arrival"),
                         ("fire_ts", "shown_at")),
    "fire_to_delivered": ("END TO END fire -> webhook delivered",
                          ("published", "receiver_forwarded"), ("fire_ts", "delivered_at")),
}
# client-side observations in pipeline order (a fire's times must not go backwards)
ORDER = ("published", "trigger_published", "received_at", "stored_at", "sse_arrival",
         "verdict_answered")
ORDER_AFTER_VERDICT = ("verdict_at", "forwarded_at", "receiver_forwarded")


def alarm_key(fire: dict[str, Any]) -> tuple[str, str]:
    """(device_id, point) of the alarm an injected fire raises."""
    if fire["kind"] == "panel":
        return fire["panel"], f"{fire['zone']}/{fire['point']}"
    return fire["detector"], ""


def _pcts(values: list[float]) -> dict[str, Any]:
    return summary(values)


def _epoch(ts: str) -> float:
    return datetime.fromisoformat(ts).timestamp()


def _trigger(f: dict[str, Any], device_ts: float | None) -> float | None:
    """Publish time of the fire's message that raised the alarm (device time = device_ts)."""
    if f.get("kind", "panel") == "panel":
        return f["published_at"]
    if device_ts is None:
        return None
    for _seq, at, ts in f["readings"]:
        if abs(_epoch(ts) - device_ts) < 0.0005:
            return at
    return None


def fire_records(r: dict[str, Any]) -> list[dict[str, Any]]:
    """One record per injected fire: every time stamp known for it (epoch seconds). A fire's
    alarm is the first fire alarm of its (device, point) (the panel's point for a panel fire;
    a smoke fire may also raise a second, multi-criteria alarm on the same detector)."""

    plan = {f["fire"]: f for f in r["fires_plan"]}
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for a in r["fire_rows"]:  # ordered by id: keep the first
        rows.setdefault((a["device_id"], a["point"]), a)
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for o in sorted(r["operator_fires"], key=lambda o: o["alarm_id"]):
        seen.setdefault((o["device_id"], o["point"]), o)
    at_rx: dict[tuple[Any, str], float] = {}  # (alarm id, event type)
    for e in r["receiver_events"]:
        key = (e["alarm_id"], e["type"])
        at_rx[key] = min(at_rx.get(key, e["at"]), e["at"])
    out = []
    for f in sorted(r["fired"], key=lambda x: x["published_at"]):
        p = plan[f["fire"]]
        key = alarm_key(p)
        row = rows.get(key, {})
        op = seen.get(key, {})
        aid = row.get("id") or op.get("alarm_id")
        rec: dict[str, Any] = {
            "fire": f["fire"], "kind": p["kind"], "panel": p["panel"], "detector": p["detector"],
            "alarm_id": aid, "alarm_type": row.get("type") or op.get("type"),
            "published": f["published_at"], "t": f["published_at"] - r["t0"],
            "fire_ts": _epoch(f["ts"]),
            # a smoke alarm raised by the rule's timer (its hold ran out on the centre's clock
            # before the next reading arrived) has no triggering message: no device_ts
            "raised_by": None if not row else "message" if row.get("device_ts") else "timer",
            "trigger_published": _trigger(f, row.get("device_ts")),
            "sse_arrival": op.get("shown"), "verdict_sent": op.get("verdict_sent"),
            "verdict_answered": op.get("verdict_done"), "verdict_status": op.get("verdict_status"),
            "receiver_raised": at_rx.get((aid, "alarm.raised")),
            "receiver_verdict": at_rx.get((aid, "alarm.verdict")),
            "receiver_forwarded": at_rx.get((aid, "alarm.forwarded")),
            "forward_basis": row.get("forward_basis"),
        }
        for c in ("device_ts", "received_at", "ingested_at", "stored_at", "shown_at",
                  "acknowledged_at", "verdict_at", "forwarded_at", "delivered_at"):
            rec[c] = row.get(c)
        timer = rec["raised_by"] == "timer"
        rec["condition_at"] = rec["ingested_at"] if timer else rec["trigger_published"]
        rec["condition_clock"] = rec["ingested_at"] if timer else rec["device_ts"]
        for name, (_, client, clocks) in STAGES.items():
            for src, pair in (("client", client), ("clocks", clocks)):
                a, b = (rec.get(pair[0]), rec.get(pair[1])) if pair else (None, None)
                rec[f"{src}:{name}"] = None if a is None or b is None else (b - a) * 1000
        rec["ordered"] = _ordered(rec)
        out.append(rec)
    return out


def _ordered(rec: dict[str, Any]) -> bool:
    skip = ("trigger_published", "received_at") if rec["raised_by"] == "timer" else ()
    for chain in (ORDER, ORDER_AFTER_VERDICT):
        times = [rec[k] for k in chain if k not in skip]
        if any(t is None for t in times) or any(b < a for a, b in itertools.pairwise(times)):
            return False
    return True


def _series(r: dict[str, Any]) -> dict[str, Any]:
    """Per sample: seconds since t0, published/s and stored/s over the last interval, CPU %."""
    rows = [s for s in r["samples"] if s.get("acked") is not None]
    t, pub, stored, backlog, pending = [], [], [], [], []
    cpu: dict[str, list[float]] = {}

    def rate(a: dict[str, Any], b: dict[str, Any], key: str, dt: float) -> float | None:
        va, vb = a.get(key), b.get(key)
        return None if va is None or vb is None else round((vb - va) / dt, 1)

    for a, b in itertools.pairwise(rows):
        dt = b["t"] - a["t"]
        if dt <= 0:
            continue
        t.append(round(b["t"] - r["t0"], 2))
        pub.append(round((b["acked"] - a["acked"]) / dt, 1))
        stored.append(rate(a, b, "stored", dt))
        backlog.append(None if b.get("stored") is None else b["sent"] - b["stored"])
        pending.append(b.get("pending"))
        for name in b["cpu"]:
            if name in a["cpu"]:
                cpu.setdefault(name, []).append(round(100 * (b["cpu"][name] - a["cpu"][name]) / dt, 1))
    return {"t": t, "published_per_s": pub, "stored_per_s": stored,
            "backlog": backlog, "ingest_pending": pending, "cpu_pct": cpu}


def _processes(r: dict[str, Any], stored: int) -> dict[str, Any]:
    rows = r["samples"]
    if len(rows) < 2:
        return {}
    first, last = rows[0], rows[-1]
    wall = last["t"] - first["t"]
    out = {}
    for name, c1 in last["cpu"].items():
        c0 = r["cpu0"].get(name, first["cpu"].get(name, 0.0))
        cpu = c1 - c0
        out[name] = {"cpu_s": round(cpu, 2), "cpu_pct": round(100 * cpu / max(wall, 1e-9), 1),
                     "cpu_us_per_msg": round(cpu / max(stored, 1) * 1e6, 1),
                     "peak_rss_mb": (round(r["peak_rss_kb"][name] / 1024, 1)
                                     if name in r["peak_rss_kb"] else None)}
    return out


def _latency(recs: list[dict[str, Any]]) -> dict[str, Any]:
    out = {}
    for name, (label, client, clocks) in STAGES.items():
        out[name] = {"label": label.strip(),
                     "client": _pcts([x[f"client:{name}"] for x in recs
                                      if x[f"client:{name}"] is not None]) if client else None,
                     "clocks": _pcts([x[f"clocks:{name}"] for x in recs
                                      if x[f"clocks:{name}"] is not None]) if clocks else None}
    return out


def analyse(r: dict[str, Any]) -> dict[str, Any]:
    pub, db = r["published"], r["db"]
    published = pub["telemetry"] + pub["events"]
    stored = db["telemetry_distinct"] + db["event_distinct"]
    recs = fire_records(r)
    run_s = pub["publishing_ended"] - r["t0"]
    series = _series(r)
    settle = r["stored_at_settle"]
    stored_rates = [x for x in series["stored_per_s"] if x is not None]
    last: dict[str, Any] = next((x for x in reversed(r["samples"]) if x.get("flushes") is not None), {})
    throughput = {
        "offered_msgs_per_s": r["config"]["offered_rate"],
        "published": published, "published_telemetry": pub["telemetry"],
        "published_msgs_per_s": round(published / max(run_s, 1e-9), 1),
        "stored": stored, "lost": published - stored,
        # what the broker delivered more than once, as the ingester counted it (rows its
        # INSERT skipped as already stored); rows minus distinct keys is 0 by construction
        "redelivered": last.get("redelivered"),
        "rejected": db["rejects"],
        "stored_msgs_per_s": round(stored / max(settle["t"] - r["t0"], 1e-9), 1),
        "peak_stored_msgs_per_s": max(stored_rates, default=0),
        "max_backlog": max((b for b in series["backlog"] if b is not None), default=0),
        "ingest_batch_writes": last.get("flushes"),
        "ingest_batch_writes_over_1s": (None if last.get("flushes") is None else
                                        last["flushes"] - last["flushes_within_1s"]),
        # the broker's heap as the ingester's backlog watch read it, against its budget, and
        # the backlog alarms it raised (docs/overload.md)
        "broker_heap_max_bytes": max((s["broker_heap"] for s in r["samples"]
                                      if s.get("broker_heap") is not None), default=None),
        "broker_budget_bytes": last.get("broker_budget"),
        "broker_alarms": [{"type": a["type"], "at_s": round(a["raised_at"] - r["t0"], 1),
                           "ratio": a["evidence"].get("ratio"), "state": a["state"]}
                          for a in r.get("broker_alarms", [])],
        "caught_up_after_publishing_s": (round(max(0.0, settle["t"] - pub["publishing_ended"]), 2)
                                         if settle["stored"] >= published else None),
    }
    latency = _latency(recs)
    kinds = sorted({x["kind"] for x in recs})
    by_kind = {k: _latency([x for x in recs if x["kind"] == k]) for k in kinds} \
        if len(kinds) > 1 else None
    injected = len(r["fired"])
    fires = {"injected": injected,
             "alarms_stored": sum(1 for x in recs if x["stored_at"] is not None),
             "seen_by_operator": sum(1 for x in recs if x["sse_arrival"] is not None),
             "verdicts_ok": sum(1 for x in recs if x["verdict_status"] == 200),
             "forwarded": sum(1 for x in recs if x["forwarded_at"] is not None),
             "delivered_to_receiver": sum(1 for x in recs if x["receiver_forwarded"] is not None),
             "forwarded_by_operator": sum(1 for x in recs if x["forward_basis"] == "operator"),
             "in_order": sum(1 for x in recs if x["ordered"]),
             "raised_by_timer": sum(1 for x in recs if x["raised_by"] == "timer")}
    ok_checks = checks(throughput, fires, r["receiver"])
    ok = all(c.passed for c in ok_checks)
    from simulators.injection import Expect, Injection

    injections = []
    plan = {f["fire"]: f for f in r["fires_plan"]}
    for f in r["fired"]:
        p = plan[f["fire"]]
        at = "panel_fire_at" if p["kind"] == "panel" else "smoke_alarm_level_at"
        injections.append(Injection(
            "bench_e2e", f"{p['kind']}_fire", Expect.FIRE_ALARM, (p["detector"], p["panel"]),
            datetime.fromtimestamp(f["published_at"], UTC), None,
            {"panel": p["panel"], "primary": p["detector"], at: f["ts"],
             "zone": p["zone"], "point": p["point"], "seq": f["seq"]}).as_dict())
    waits: dict[str, int] = {}
    for row in r["samples"]:
        for w, n in row.get("pg_waits", {}).items():
            waits[w] = waits.get(w, 0) + n
    n_samples = max(1, sum(1 for row in r["samples"] if "pg_waits" in row))
    pg_waits = {w: round(n / n_samples, 2) for w, n in sorted(waits.items(), key=lambda kv: -kv[1])}
    return {"throughput": throughput, "latency_ms": latency, "latency_ms_by_kind": by_kind,
            "fires": fires,
            "postgres_busy_backends": pg_waits,
            "fire_records": recs, "series": series, "injections": injections,
            "processes": _processes(r, stored), "ok": ok,
            "checks": [c.as_dict() for c in ok_checks]}


def checks(throughput: dict[str, Any], fires: dict[str, Any],
           receiver: dict[str, Any]) -> list[records.Check]:
    """Every published message stored once and none rejected; every injected fire seen by the
    operator and its `alarm.forwarded` delivered; every signature good."""
    injected = fires["injected"]
    return [records.equal("every published message stored exactly once (lost)",
                          throughput["lost"], 0),
            records.equal("no message rejected", throughput["rejected"], 0),
            records.equal("every fire seen by the operator", fires["seen_by_operator"],
                          injected),
            records.equal("every fire's alarm.forwarded delivered to the receiver",
                          fires["delivered_to_receiver"], injected),
            records.equal("no bad webhook signature", receiver["bad_signatures"], 0)]


# -- human summary ------------------------------------------------------------------------------
def _fmt(p: dict[str, Any] | None) -> str:
    if not p or not p.get("n"):
        return f"{'-':>44}"
    return (f"{p['p50']:>9.1f}{p['p95']:>9.1f}{p['p99']:>9.1f}{p['max']:>9.1f}"
            f"  n={p['n']:<4}")


def _broker_line(th: dict[str, Any]) -> str:
    heap, budget = th.get("broker_heap_max_bytes"), th.get("broker_budget_bytes")
    if heap is None or not budget:
        return "  broker heap: not reported (the ingester's backlog watch had no $SYS figure)"
    alarms = ", ".join(f"{a['type']} at {a['at_s']} s ({100 * (a['ratio'] or 0):.0f} %)"
                       for a in th.get("broker_alarms", [])) or "none"
    return (f"  broker heap max {heap / 1e6:,.1f} MB = {100 * heap / budget:.0f} % of the "
            f"{budget / 1e6:,.0f} MB budget; backlog alarms: {alarms}")


def format_report(r: dict[str, Any]) -> str:
    c, th, f = r["config"], r["throughput"], r["fires"]
    burst = (f", burst x{c['burst']} for {c['burst_s']} s at {c['burst_at_s']:.0f} s"
             if c["burst"] != 1 else "")
    every = f"every {c['interval_s']} s" if c["interval_s"] else "at a fixed rate"
    lines = [
        f"firetower bench e2e ({r['storage']}): {c['devices']:,} devices at {c['sites']:,} sites "
        f"reporting {every} = {c['offered_rate']:,.0f} msg/s offered, {c['duration_s']} s"
        f"{burst}; {c['fires']} {c.get('fire_kind', 'panel')} fires; {c['publishers']} "
        f"publisher processes, {r['cores']} cores, load "
        f"{r['load_average_start']:.1f} -> {r['load_average_end']:.1f}",
        f"  registration {r['register_s']} s (COPY); components up in {r['startup_s']} s",
    ]
    if "ceiling" in r:
        ce = r["ceiling"]
        lines.append(f"  broker only (counting subscriber, backlog of {ce['messages']:,}): "
                     f"{ce['msgs_per_s']:>8,} msg/s  lost {ce['lost']}  (subscriber CPU "
                     f"{ce['subscriber_cpu_us_per_msg']} µs/msg; publishers "
                     f"{ce['publish_msgs_per_s']:,} msg/s flat out)")
    lines += [
        f"  published {th['published']:,} ({th['published_msgs_per_s']:,.0f} msg/s)  stored "
        f"{th['stored']:,} (peak {th['peak_stored_msgs_per_s']:,.0f} msg/s)  lost {th['lost']}  "
        f"redelivered {th['redelivered']} (stored once)  rejected {th['rejected']}",
        f"  ingest backlog max {th['max_backlog']:,} messages; batch writes "
        f"{th['ingest_batch_writes']} ({th['ingest_batch_writes_over_1s']} over 1 s); "
        + (f"all stored {th['caught_up_after_publishing_s']} s after publishing ended"
           if th["caught_up_after_publishing_s"] is not None
           else "NOT all stored within the settle timeout (--settle-timeout)"),
        _broker_line(th),
        f"  fires: {f['injected']} injected, {f['alarms_stored']} alarms, {f['seen_by_operator']} "
        f"seen by the operator, {f['verdicts_ok']} verdicts, {f['forwarded']} forwarded "
        f"({f['forwarded_by_operator']} on the verdict), {f['delivered_to_receiver']} delivered; "
        f"{r['receiver']['bad_signatures']} bad signatures"
        + (f"; {f['raised_by_timer']} raised by the rule's timer (no triggering message, so no "
           "device -> received figure)" if f.get("raised_by_timer") else ""),
        "",
        f"  {'latency (ms)':<44}{'':>6}{'p50':>9}{'p95':>9}{'p99':>9}{'max':>9}",
    ]
    rows = list(r["latency_ms"].items())
    for kind, stages in (r.get("latency_ms_by_kind") or {}).items():
        rows += [(name, {**st, "label": f"{st['label'].replace('END TO END ', '')} ({kind})"})
                 for name, st in stages.items()
                 if name in ("fire_to_condition", "fire_to_operator", "fire_to_delivered")]
    for _name, st in rows:
        label = st["label"]
        for src in ("client", "clocks"):
            if st[src] is not None and st[src].get("n") and st[src]["max"] != 0:
                lines.append(f"  {label:<44}{src:>6}{_fmt(st[src])}")
                label = ""
    lines += ["", f"  {'process':<14}{'CPU s':>8}{'CPU %':>8}{'µs/msg':>9}{'peak RSS MB':>13}"]
    for name, p in sorted(r["processes"].items(), key=lambda kv: -kv[1]["cpu_s"]):
        rss = f"{p['peak_rss_mb']:>13,.1f}" if p["peak_rss_mb"] is not None else f"{'-':>13}"
        lines.append(f"  {name:<14}{p['cpu_s']:>8.1f}{p['cpu_pct']:>8.1f}"
                     f"{p['cpu_us_per_msg']:>9.1f}{rss}")
    lines.append("  (postgres: the backends of the bench database; peak RSS of the others "
                 "from VmHWM)")
    if r.get("postgres_busy_backends"):
        top = list(r["postgres_busy_backends"].items())[:5]
        lines.append("  postgres busy backends, mean per sample, by wait: "
                     + ", ".join(f"{w} {n}" for w, n in top))
    if not r["ok"]:
        lines.append(f"  NOT OK: see {r.get('logs', 'the JSON')}")
    return "\n".join(lines)


# -- plot ---------------------------------------------------------------------------------------
def plot(r: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s, c = r["series"], r["config"]
    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(11, 11), sharex=True)
    ax1.plot(s["t"], s["published_per_s"], label="published/s", lw=1.2)
    ax1.plot(s["t"], [x if x is not None else float("nan") for x in s["stored_per_s"]],
             label="stored/s (ingester)", lw=1.2)
    ax1.axhline(c["offered_rate"], color="grey", ls=":", lw=1, label="offered")
    top = max([c["offered_rate"] * c["burst"], *s["published_per_s"],
               *(x for x in s["stored_per_s"] if x is not None)]) * 1.3
    if "ceiling" in r:
        ceiling = r["ceiling"]["msgs_per_s"]
        ax1.axhline(min(ceiling, top * 0.98), color="red", ls="--", lw=1,
                    label=f"broker-only ceiling {ceiling:,} msg/s"
                    + (" (off the scale)" if ceiling > top else ""))
    ax1.set_ylim(0, top)
    if c.get("burst_at_s") is not None:
        for ax in (ax1, ax2, ax3):
            ax.axvspan(c["burst_at_s"], c["burst_at_s"] + c["burst_s"], color="orange",
                       alpha=0.12)
    for rec in r["fire_records"]:
        ax1.axvline(rec["t"], color="firebrick", alpha=0.25, lw=0.8)
    ax1.set_ylabel("messages/s")
    ax1.set_title(f"firetower bench e2e: {c['devices']:,} devices, {c['offered_rate']:,.0f} "
                  f"msg/s offered ({r['storage']})")
    ax1.legend(loc="upper right", fontsize=8)
    recs = r["fire_records"]
    for name, style in (("fire_to_delivered", "o-"), ("fire_to_operator", "s-"),
                        ("device_to_received", ".--"), ("received_to_stored", ".--"),
                        ("stored_to_shown", ".--"), ("shown_to_verdict", ".--"),
                        ("verdict_to_forwarded", ".--"), ("forwarded_to_delivered", ".--")):
        pts = [(x["t"], x[f"client:{name}"]) for x in recs if x[f"client:{name}"] is not None]
        if pts:
            ax2.plot(*zip(*pts, strict=False), style, ms=4, lw=0.8,
                     label=STAGES[name][0].strip())
    ax2.set_yscale("log")
    ax2.set_ylabel("latency per fire (ms)")
    ax2.legend(loc="upper left", fontsize=7, ncol=2)
    for name, vals in sorted(s["cpu_pct"].items()):
        ax3.plot(s["t"][: len(vals)], vals, lw=1, label=name)
    ax3.set_ylabel("CPU % (100 = one core)")
    ax3.set_xlabel("seconds since publishing started")
    ax3.legend(loc="upper right", fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
