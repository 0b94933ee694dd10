"""`firetower bench notify`: fire raised -> first notification accepted, and escalation timing,
under background telemetry (issue 17's figures).

One run, every centre component its own process, as `bench e2e` runs them (its publishers,
fire planning and process helpers are reused from bench/e2e.py):

1. its own Mosquitto (deploy/mosquitto/firetower.conf) and a throwaway database; the fleet
   registered (COPY, `simulators.registry`);
2. the organisation: a jurisdiction tree city > district > township > `--grids` grids, one
   unit per fleet site (each site attached to its unit and its unit's grid), a grid member per
   grid; the centre's operator and shift leader on the city's duty roster and a duty officer
   on the district's; a policy for fire to unit_responsible + grid_member + duty_operator; an
   escalation chain for fire: duty_leader after `--leader-after` s, duty_officer after
   `--officer-after` s (its repeat an hour later, past the run); every person reachable by
   e-mail and by a DingTalk robot of their own (contacts written through
   notify/config_store.py). Nobody acknowledges;
3. receivers in this process: an SMTP server (aiosmtpd's Controller) and an HTTP server that
   plays DingTalk's robot endpoint (answers {"errcode": 0, "errmsg": "ok"}); each records the
   wall-clock instant it accepts a message;
4. `firetower ingest` (rule engine in process) and `firetower notify` (with
   FIRETOWER_NOTIFY_SMTP_URL pointing at the SMTP server) as processes; the fleet publishes at
   `--rate` msg/s for `--duration` s, with `--fires` panel fire events at known instants,
   early enough that every escalation falls inside the publishing;
5. per fire alarm: its raise (the alarm's 'raise' row in alarm_events, `at`, the database's
   clock: same machine) -> the first e-mail and the first robot message accepted; each
   escalation step's first acceptance minus (raise + its configured delay); the background
   rate achieved (telemetry rows stored per second), CPU seconds of the notifier and the
   ingester over the window (publishing starts -> settled).

Checks: one fire alarm per fire; every fire alarm got at least one e-mail and one robot message
at its raise; raise -> first e-mail and -> first robot message p99 <= 1 s (a figure over the goal
fails its check and is recorded as measured); every alarm escalated to every step, each within
its delay +- 1 s; no message dead; every telemetry message stored.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.header import decode_header, make_header
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench import records
from bench.e2e import (
    _spawn,
    _stop,
    _wait_for,
    _write_partitions,
    finish_publishers,
    plan_fires,
    start_publishers,
    wait_stored,
)
from bench.e2e_report import alarm_key
from bench.stats import summary
from bench.support import cpu_seconds, fresh_broker, fresh_database
from firetower import db
from firetower.runner import run_async
from firetower.settings import Settings

DB_NAME = "firetower_bench_notify"
GOAL_S = 1.0          # raise -> first notification accepted, p99
ESCALATION_TOL_S = 1.0  # each step within its configured delay +- this
REPEAT_S = 3600       # the chain's last step repeats after the run
QUANTILES = (50, 90, 99)
RAISE_RECIPIENTS = ("unit_responsible", "grid_member", "duty_operator")
_ALARM_NO = re.compile(r"Alarm: #(\d+)")
_STEP = re.compile(r"Escalation (\d+)")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--devices", type=int, default=10_000,
                        help="registered devices (rounded up to whole sites; one unit per site)")
    parser.add_argument("--per-kind", type=int, default=10,
                        help="devices of each field kind per site (plus one panel per site)")
    parser.add_argument("--rate", type=float, default=1000.0,
                        help="background telemetry msg/s offered")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of publishing")
    parser.add_argument("--fires", type=int, default=40, help="panel fire events injected")
    parser.add_argument("--grids", type=int, default=10, help="grids the sites are spread over")
    parser.add_argument("--leader-after", type=int, default=10,
                        help="escalation step 1 (duty_leader), seconds after the raise")
    parser.add_argument("--officer-after", type=int, default=20,
                        help="escalation step 2 (duty_officer), seconds after the raise")
    parser.add_argument("--publishers", type=int, default=2, help="publisher processes")
    parser.add_argument("--plain", action="store_true",
                        help="plain PostgreSQL even if TimescaleDB is installed")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    parser.add_argument("--settle-timeout", type=float, default=120.0,
                        help="seconds to wait, after publishing, for the store and the messages")


def _log(text: str) -> None:
    print(f"bench notify: {text}", file=sys.stderr, flush=True)


def main(args: argparse.Namespace, settings: Settings) -> int:
    begun = records.start()

    async def go() -> int:
        logging.getLogger("httpx").setLevel(logging.WARNING)
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        results, checks = await run_bench(args, settings)
        print(format_report(results))
        return records.finish("notify", args, begun, results, checks)

    return run_async(go)


# -- the receivers --------------------------------------------------------------------------------
class Mailbox:
    """aiosmtpd handler: the instant each message is accepted, and its bytes (parsed later)."""

    def __init__(self) -> None:
        self.got: list[tuple[float, bytes]] = []

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        self.got.append((time.time(), bytes(envelope.content)))
        return "250 OK"


class _RobotHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the notifier's httpx client reuses connections
    server: RobotServer

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.server.got.append((time.time(), self.path, raw))
        answer = json.dumps({"errcode": 0, "errmsg": "ok"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


class RobotServer(ThreadingHTTPServer):
    """DingTalk's robot endpoint on a loopback port, in a thread: every POST is accepted."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _RobotHandler)
        self.got: list[tuple[float, str, bytes]] = []
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


def _mail_text(raw: bytes) -> str:
    msg = message_from_bytes(raw)
    parts = [str(make_header(decode_header(msg["Subject"] or "")))]
    for part in msg.walk():
        if part.is_multipart():
            continue
        payload: Any = part.get_payload(decode=True)
        if payload:
            parts.append(payload.decode(part.get_content_charset() or "utf-8", "replace"))
    return "\n".join(parts)


def _robot_text(raw: bytes) -> str:
    try:
        body = json.loads(raw)
        return f"{body['markdown']['title']}\n{body['markdown']['text']}"
    except (ValueError, KeyError, TypeError):
        return raw.decode("utf-8", "replace")


def _which(text: str) -> tuple[int, int] | None:
    """(alarm id, escalation step; 0 for the raise) of a message's text."""
    m = _ALARM_NO.search(text)
    if m is None:
        return None
    s = _STEP.search(text)
    return int(m.group(1)), int(s.group(1)) if s else 0


def accepted(mailbox: Mailbox, robots: RobotServer) -> dict[tuple[int, int, str], list[float]]:
    """(alarm id, step, channel) -> the instants its messages were accepted."""
    out: dict[tuple[int, int, str], list[float]] = {}
    for at, raw in list(mailbox.got):
        key = _which(_mail_text(raw))
        if key is not None:
            out.setdefault((*key, "email"), []).append(at)
    for at, _, raw in list(robots.got):
        key = _which(_robot_text(raw))
        if key is not None:
            out.setdefault((*key, "dingtalk"), []).append(at)
    return out


# -- the organisation ---------------------------------------------------------------------------
async def build_org(conn: asyncpg.Connection, box: Any, grids: int, robot_base: str,
                    leader_after: int, officer_after: int) -> dict[str, Any]:
    """The jurisdiction tree, a unit per site, grid members, duty rosters, contacts, the fire
    policy and the escalation chain. Returns what was made (counts)."""
    from notify import config_store
    from org.store import Actor

    actor = Actor(None, "bench-notify")
    ids: dict[str, int] = {}
    parent: int | None = None
    path: list[int] = []
    for code, level in (("bench-city", "city"), ("bench-district", "district"),
                        ("bench-township", "township")):
        jid = await conn.fetchval("SELECT nextval('jurisdictions_id_seq')")
        path = [*path, jid]
        await conn.execute("INSERT INTO jurisdictions (id, parent_id, code, name, level, path)"
                           " VALUES ($1, $2, $3, $3, $4, $5)", jid, parent, code, level, path)
        ids[level], parent = jid, jid
    grid_ids = []
    for g in range(grids):
        jid = await conn.fetchval("SELECT nextval('jurisdictions_id_seq')")
        await conn.execute("INSERT INTO jurisdictions (id, parent_id, code, name, level, path)"
                           " VALUES ($1, $2, $3, $3, 'grid', $4)", jid, ids["township"],
                           f"bench-grid-{g + 1}", [*path, jid])
        grid_ids.append(jid)
    # one unit per site, its grid by the site's rank; the site in the unit's grid
    await conn.execute(
        "INSERT INTO units (name, responsible_name, responsible_phone, grid_id)"
        " SELECT 'unit of ' || id, 'responsible ' || id, '13800000000',"
        " ($1::bigint[])[1 + (row_number() OVER (ORDER BY id) - 1) % cardinality($1::bigint[])]"
        " FROM sites", grid_ids)
    await conn.execute("UPDATE sites s SET unit_id = u.id, jurisdiction_id = u.grid_id"
                       " FROM units u WHERE u.name = 'unit of ' || s.id")
    unattached = await conn.fetchval("SELECT count(*) FROM sites WHERE unit_id IS NULL"
                                     " OR jurisdiction_id IS NULL")
    members = [await conn.fetchval(
        "INSERT INTO grid_members (grid_id, name, phone) VALUES ($1, $2, '13900000000')"
        " RETURNING id", gid, f"member {k + 1}") for k, gid in enumerate(grid_ids)]
    users: dict[str, int] = {}
    for name in ("bench-op", "bench-leader", "bench-officer"):
        users[name] = await conn.fetchval(
            "INSERT INTO users (name, role) VALUES ($1, 'operator') RETURNING id", name)
    now = datetime.now(UTC)
    city = await conn.fetchval("INSERT INTO duty_rosters (name, jurisdiction_id)"
                               " VALUES ('city centre', $1) RETURNING id", ids["city"])
    district = await conn.fetchval("INSERT INTO duty_rosters (name, jurisdiction_id)"
                                   " VALUES ('district duty', $1) RETURNING id", ids["district"])
    for roster, user, position in ((city, "bench-op", "operator"),
                                   (city, "bench-leader", "leader"),
                                   (district, "bench-officer", "officer")):
        await conn.execute(
            "INSERT INTO duty_shifts (roster_id, user_id, position, starts_at, ends_at)"
            " VALUES ($1, $2, $3, $4, $5)", roster, users[user], position,
            now - timedelta(hours=1), now + timedelta(hours=7))

    people: list[tuple[str, int, str]] = [
        ("unit_responsible", r["id"], f"unit-{r['id']}")
        for r in await conn.fetch("SELECT id FROM units ORDER BY id")]
    people += [("grid_member", m, f"grid-{m}") for m in members]
    people += [("user", uid, name) for name, uid in users.items()]
    token = secrets.token_hex(16)
    for recipient, ref, who in people:
        await config_store.create_contact(conn, box, actor, recipient=recipient, ref_id=ref,
                                          name=who, channel="email",
                                          address=f"{who}@people.example.org")
        await config_store.create_contact(
            conn, box, actor, recipient=recipient, ref_id=ref, name=who, channel="dingtalk",
            address=f"{robot_base}/{who}/robot/send?access_token={token}")
    await config_store.create_policy(conn, actor, {
        "name": "fire: the unit, its grid member, the operator on duty", "classes": ["fire"],
        "recipients": list(RAISE_RECIPIENTS)})
    steps = [{"after_s": leader_after, "recipients": ["duty_leader"]},
             {"after_s": officer_after, "recipients": ["duty_officer"]}]
    await config_store.create_chain(conn, actor, {
        "name": "fire escalation", "class": "fire", "repeat_s": REPEAT_S, "steps": steps})
    return {"units": len(people) - len(members) - len(users), "grids": grids,
            "grid_members": len(members), "duty_users": len(users),
            "contacts": 2 * len(people), "sites_unattached": unattached,
            "policy_recipients": list(RAISE_RECIPIENTS), "escalation_steps": steps,
            "escalation_repeat_s": REPEAT_S}


# -- the run --------------------------------------------------------------------------------------
async def run_bench(args: argparse.Namespace, settings: Settings
                    ) -> tuple[dict[str, Any], list[records.Check]]:
    from simulators.fleet import build_fleet

    if not 0 < args.leader_after < args.officer_after:
        raise SystemExit("bench notify: need 0 < --leader-after < --officer-after")
    # every escalation inside the publishing: the fires go in the first part of the run
    fire_span = args.duration - args.officer_after - 5.0
    if args.fires and fire_span <= 1.0:
        raise SystemExit(f"bench notify: need --duration > {args.officer_after + 6} s "
                         "(the last escalation falls inside the publishing)")
    per_site = 1 + 3 * args.per_kind
    sites = max(1, math.ceil(args.devices / per_site))
    fleet = build_fleet(args.seed, sites, args.per_kind)
    fires = plan_fires(fleet, args.fires, fire_span, args.seed, "panel")
    config = {"devices": len(fleet.devices), "sites": sites, "per_kind": args.per_kind,
              "offered_rate": args.rate, "duration_s": args.duration, "fires": len(fires),
              "fires_within_s": [fires[0]["at"], fires[-1]["at"]] if fires else None,
              "publishers": args.publishers, "plain": args.plain, "seed": args.seed}
    workdir = Path(tempfile.mkdtemp(prefix="firetower-bench-notify-"))
    ok = False
    try:
        with fresh_broker() as broker:
            async with fresh_database(settings.database_url, DB_NAME, plain=args.plain,
                                      keep=args.keep) as url:
                raw = await _run(args, settings, url, broker, fleet, fires, workdir)
        results, checks = analyse(raw, fires, args)
        results = {"config": config, **results}
        ok = all(c.passed for c in checks)
    finally:
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            _log(f"logs kept in {workdir}")
    return results, checks


async def _run(args: argparse.Namespace, settings: Settings, url: str, broker: Any, fleet: Any,
               fires: list[dict[str, Any]], workdir: Path) -> dict[str, Any]:
    from aiosmtpd.controller import Controller

    from bench.ingest import _wait_subscribed
    from firetower.broker import free_port
    from firetower.webhooks.secretbox import SecretBox
    from simulators.registry import register_fleet

    out: dict[str, Any] = {}
    conn = await db.connect(url)  # the JSON codecs the audit log's writer needs
    out["storage"] = await conn.fetchval("SELECT flavour FROM schema_migrations LIMIT 1")
    t = time.perf_counter()
    reg = await register_fleet(conn, fleet)
    out["register_s"] = round(time.perf_counter() - t, 2)
    _log(f"registered {reg.devices:,} devices at {reg.sites:,} sites ({out['storage']})")

    mailbox = Mailbox()
    smtp_port = free_port()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    robots = RobotServer()
    robots.start()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    http = httpx.AsyncClient(timeout=10.0)
    try:
        t = time.perf_counter()
        out["org"] = await build_org(conn, SecretBox.of(settings.secret_keys), args.grids,
                                     robots.base, args.leader_after, args.officer_after)
        out["org_s"] = round(time.perf_counter() - t, 2)
        _log(f"organisation: {out['org']['units']:,} units, {out['org']['contacts']:,} "
             f"contacts in {out['org_s']} s")
        files, owner = _write_partitions(fleet, max(1, args.publishers), workdir)
        metrics_port = free_port()
        env = dict(os.environ, FIRETOWER_DATABASE_URL=url, FIRETOWER_MQTT_URL=broker.url,
                   FIRETOWER_METRICS_PORT=str(metrics_port),
                   FIRETOWER_INGEST_CLIENT_ID=f"bench-notify-ingest-{os.getpid()}",
                   FIRETOWER_NOTIFY_SMTP_URL=f"smtp://127.0.0.1:{smtp_port}"
                                             "?from=centre@example.org&starttls=0")
        t = time.perf_counter()
        procs["ingest"] = _spawn("ingest", ["ingest"], env, workdir)
        procs["notify"] = _spawn("notify", ["notify", "--no-migrate"], env, workdir)

        async def ingest_ready() -> bool:
            await _wait_subscribed(conn, broker.port)
            return True

        async def notify_ready() -> bool:
            return "notify ready" in (workdir / "notify.log").read_text(errors="replace")

        await asyncio.gather(
            _wait_for("firetower ingest", ingest_ready, 600, procs["ingest"], workdir, "ingest"),
            _wait_for("firetower notify", notify_ready, 120, procs["notify"], workdir, "notify"))
        out["startup_s"] = round(time.perf_counter() - t, 2)
        _log(f"ingest and notify up in {out['startup_s']} s")

        # -- publish ----------------------------------------------------------------------------
        n_pub = len(files)
        t0 = time.time() + 1.0
        per = [{"rate": args.rate / n_pub,
                "fires": [f for f in fires if owner[f["device"]] == i]} for i in range(n_pub)]
        common = {"t0": t0, "duration": args.duration, "burst_factor": 1.0,
                  "burst_start": 0.0, "burst_s": 0.0}
        pubs = await start_publishers(workdir, files, broker.port, "notify", common, per)
        await asyncio.sleep(max(0.0, t0 - time.time()))
        cpu0 = {name: cpu_seconds(p.pid) for name, p in procs.items()}
        _log(f"publishing {args.rate:,.0f} msg/s from {len(fleet.devices):,} devices for "
             f"{args.duration:g} s, {len(fires)} fires in its first {fires[-1]['at'] if fires else 0:g} s")
        finals = await finish_publishers(pubs, args.duration + 600)
        out["published"] = {"telemetry": sum(f["telemetry"] for f in finals),
                            "events": sum(f["events"] for f in finals),
                            "acked": sum(f["acked"] for f in finals),
                            "publishing_s": round(max(f["t"] for f in finals) - t0, 2)}
        out["fired"] = [x for f in finals for x in f["fires"]]
        n_msgs = out["published"]["telemetry"] + out["published"]["events"]

        # -- settle: everything stored; each fire alarm's raise and steps accepted -------------
        deadline = time.monotonic() + args.settle_timeout
        stored = await wait_stored(http, metrics_port, n_msgs, deadline)
        keys = [alarm_key(f) for f in fires]
        n_steps = 2
        while time.monotonic() < deadline:
            ids = [r["id"] for r in await conn.fetch(
                "SELECT id FROM alarms WHERE class = 'fire' AND (device_id, point) IN"
                " (SELECT * FROM unnest($1::text[], $2::text[]))",
                [k[0] for k in keys], [k[1] for k in keys])]
            got = accepted(mailbox, robots)
            pending = await conn.fetchval(
                "SELECT count(*) FROM notify_messages WHERE status = 'pending'")
            done = all((a, s, ch) in got for a in ids for s in range(n_steps + 1)
                       for ch in ("email", "dingtalk"))
            if len(ids) >= len(out["fired"]) and done and not pending:
                break
            await asyncio.sleep(0.5)
        out["settled_s"] = round(time.time() - t0, 2)
        out["cpu_s"] = {name: round(cpu_seconds(p.pid) - cpu0[name], 2)
                        for name, p in procs.items()}
        out["window_s"] = round(time.time() - t0, 2)
        out["stored_by_ingester"] = stored

        # -- what the database says --------------------------------------------------------------
        out["alarms"] = [dict(r) for r in await conn.fetch(
            "SELECT a.id, a.device_id, a.point, extract(epoch FROM e.at)::float8 AS raised"
            " FROM alarms a JOIN alarm_events e ON e.alarm_id = a.id AND e.kind = 'raise'"
            " WHERE a.class = 'fire' ORDER BY a.id")]
        out["messages"] = {r["status"]: r["n"] for r in await conn.fetch(
            "SELECT status, count(*) AS n FROM notify_messages GROUP BY 1")}
        out["messages_by_step"] = {f"{r['step']}/{r['channel']}": r["n"] for r in await conn.fetch(
            "SELECT step, channel, count(*) AS n FROM notify_messages GROUP BY 1, 2 ORDER BY 1, 2")}
        out["attempts"] = {r["outcome"]: r["n"] for r in await conn.fetch(
            "SELECT outcome, count(*) AS n FROM notify_attempts GROUP BY 1")}
        out["jobs_failed"] = await conn.fetchval(
            "SELECT count(*) FROM notify_jobs WHERE error IS NOT NULL")
        row = await conn.fetchrow(
            "SELECT count(*) AS n, extract(epoch FROM min(received_at))::float8 AS first,"
            " extract(epoch FROM max(received_at))::float8 AS last FROM telemetry")
        assert row is not None
        out["telemetry"] = dict(row)
        out["accepted"] = accepted(mailbox, robots)
        out["received"] = {"email": len(mailbox.got), "dingtalk": len(robots.got)}
    finally:
        await http.aclose()
        for name in ("ingest", "notify"):
            if name in procs:
                _stop(procs[name], signal.SIGINT if name == "ingest" else signal.SIGTERM)
        smtp.stop()
        robots.stop()
        await conn.close()
    return out


# -- the figures and the checks -------------------------------------------------------------------
def _summary_ms(values: list[float]) -> dict[str, float | int]:
    return summary(values, scale=1000.0, digits=1, quantiles=QUANTILES)


def analyse(raw: dict[str, Any], fires: list[dict[str, Any]], args: argparse.Namespace
            ) -> tuple[dict[str, Any], list[records.Check]]:
    got: dict[tuple[int, int, str], list[float]] = raw["accepted"]
    by_key = {(a["device_id"], a["point"]): a for a in raw["alarms"]}
    fired = {f["fire"]: f for f in raw["fired"]}
    fire_alarms = []
    for f in fires:
        a = by_key.get(alarm_key(f))
        if a is not None and f["fire"] in fired:
            fire_alarms.append((f, a))
    delays = {1: args.leader_after, 2: args.officer_after}

    first: dict[str, list[float]] = {"email": [], "dingtalk": [], "any": [], "all_of_raise": []}
    published_to_raise: list[float] = []
    escalation_err: dict[int, list[float]] = {1: [], 2: []}
    per_fire: list[dict[str, Any]] = []  # in the order of the fires (the first: a cold notifier)
    both = 0

    def ms(x: float | None) -> float | None:
        return None if x is None else round(x * 1000, 1)

    for f, a in fire_alarms:
        r = a["raised"]
        published_to_raise.append(r - fired[f["fire"]]["published_at"])
        e, d = got.get((a["id"], 0, "email")), got.get((a["id"], 0, "dingtalk"))
        row: dict[str, Any] = {"fire": f["fire"], "at_s": f["at"], "alarm": a["id"],
                               "first_email_ms": ms(min(e) - r) if e else None,
                               "first_robot_ms": ms(min(d) - r) if d else None}
        if e:
            first["email"].append(min(e) - r)
        if d:
            first["dingtalk"].append(min(d) - r)
        if e and d:
            both += 1
            first["any"].append(min(*e, *d) - r)
            first["all_of_raise"].append(max(*e, *d) - r)
        for step, delay in delays.items():
            times = got.get((a["id"], step, "email"), []) + got.get((a["id"], step, "dingtalk"), [])
            if times:
                escalation_err[step].append(min(times) - (r + delay))
            row[f"step{step}_error_ms"] = ms(min(times) - (r + delay)) if times else None
        per_fire.append(row)

    rows = raw["telemetry"]
    span = (rows["last"] - rows["first"]) if rows["n"] else 0.0
    stored_rate = rows["n"] / span if span > 0 else 0.0
    msgs_total = sum(raw["messages"].values())
    results: dict[str, Any] = {
        "storage": raw["storage"], "register_s": raw["register_s"], "org_s": raw["org_s"],
        "startup_s": raw["startup_s"], "org": raw["org"],
        "background": {
            "offered_msgs_per_s": args.rate,
            "published_telemetry": raw["published"]["telemetry"],
            "published_msgs_per_s": round(raw["published"]["telemetry"]
                                          / max(raw["published"]["publishing_s"], 1e-9), 1),
            "stored_telemetry": rows["n"],
            "stored_rows_per_s": round(stored_rate, 1),
            "stored_span_s": round(span, 2)},
        "fires": {"planned": len(fires), "published": len(raw["fired"]),
                  "fire_alarms": len(fire_alarms),
                  "with_email_and_robot": both},
        "latency_ms": {
            "raise_to_first_email": _summary_ms(first["email"]),
            "raise_to_first_robot": _summary_ms(first["dingtalk"]),
            "raise_to_first_any": _summary_ms(first["any"]),
            "raise_to_all_of_raise": _summary_ms(first["all_of_raise"]),
            "published_to_raise": _summary_ms(published_to_raise)},
        "escalation_error_ms": {
            str(step): {"after_s": delays[step], "recipients": [["duty_leader"], ["duty_officer"]][step - 1],
                        **summary(errs, scale=1000.0, digits=1, quantiles=(99,))}
            for step, errs in escalation_err.items()},
        "messages": {"total": msgs_total, "by_status": raw["messages"],
                     "by_step_channel": raw["messages_by_step"], "attempts": raw["attempts"],
                     "jobs_failed": raw["jobs_failed"], "received": raw["received"]},
        "cpu_s": raw["cpu_s"], "window_s": raw["window_s"],
        "notify_cpu_ms_per_message": round(raw["cpu_s"]["notify"] / max(msgs_total, 1) * 1000, 2),
        "settled_s": raw["settled_s"],
        "per_fire": per_fire,
    }

    def p99_check(name: str, values: list[float]) -> records.Check:
        if not values:
            return records.Check(name, False, "no figure")
        p99 = summary(values, scale=1000.0, digits=1)["p99"]
        return records.Check(name, p99 <= GOAL_S * 1000,
                             f"p99 {p99:,.1f} ms over {len(values)} fires (goal <= {GOAL_S * 1000:,.0f} ms)")

    checks = [
        records.equal("one fire alarm per published fire", len(fire_alarms), len(raw["fired"])),
        records.equal("every fire published", len(raw["fired"]), len(fires)),
        records.equal("every fire alarm got >= 1 e-mail and >= 1 robot message at its raise",
                      both, len(fire_alarms)),
        p99_check("raise -> first e-mail accepted, p99 <= 1 s", first["email"]),
        p99_check("raise -> first robot message accepted, p99 <= 1 s", first["dingtalk"]),
    ]
    for step, errs in escalation_err.items():
        checks.append(records.equal(f"every fire alarm escalated to step {step}",
                                    len(errs), len(fire_alarms)))
        worst = max((abs(x) for x in errs), default=math.inf)
        checks.append(records.Check(
            f"step {step} ({delays[step]} s) within +-{ESCALATION_TOL_S:g} s",
            bool(errs) and worst <= ESCALATION_TOL_S,
            f"error min {min(errs, default=math.nan) * 1000:,.1f} ms, max "
            f"{max(errs, default=math.nan) * 1000:,.1f} ms over {len(errs)} alarms"))
    checks += [
        records.equal("no message dead", raw["messages"].get("dead", 0), 0),
        records.equal("no notification job failed", raw["jobs_failed"], 0),
        records.equal("every telemetry message stored", rows["n"], raw["published"]["telemetry"]),
    ]
    return results, checks


def format_report(r: dict[str, Any]) -> str:
    c, b, lat = r["config"], r["background"], r["latency_ms"]

    def line(label: str, p: dict[str, Any]) -> str:
        if not p.get("n"):
            return f"  {label:<38} n=0"
        return (f"  {label:<38} p50 {p['p50']:>8,.1f}  p90 {p['p90']:>8,.1f}  p99 {p['p99']:>8,.1f}"
                f"  max {p['max']:>8,.1f} ms  n={p['n']}")

    out = [f"bench notify: {c['devices']:,} devices at {c['sites']:,} sites, {c['fires']} fires, "
           f"{r['storage']}",
           f"background: offered {b['offered_msgs_per_s']:,.0f} msg/s, published "
           f"{b['published_msgs_per_s']:,.0f} msg/s, stored {b['stored_rows_per_s']:,.0f} rows/s "
           f"({b['stored_telemetry']:,} rows)",
           line("fire published -> alarm raised", lat["published_to_raise"]),
           line("raise -> first e-mail accepted", lat["raise_to_first_email"]),
           line("raise -> first robot message accepted", lat["raise_to_first_robot"]),
           line("raise -> every raise message accepted", lat["raise_to_all_of_raise"])]
    for step, e in r["escalation_error_ms"].items():
        if e.get("n"):
            out.append(f"  escalation step {step} ({e['after_s']} s): error min {e['min']:,.1f}"
                       f"  p99 {e['p99']:,.1f}  max {e['max']:,.1f} ms  n={e['n']}")
    m = r["messages"]
    out.append(f"messages: {m['total']:,} ({m['by_status']}); notify CPU {r['cpu_s']['notify']} s "
               f"({r['notify_cpu_ms_per_message']} ms/message), ingest CPU {r['cpu_s']['ingest']} s"
               f" over {r['window_s']} s")
    return "\n".join(out)
