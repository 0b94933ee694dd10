"""The one writer of `public_reports` and `public_report_events`: intake (matching to a node
and a site, merging duplicates), triage (merge, dismiss, convert to a hazard, reward) and the
reads behind them. Every change writes its event in the same transaction. The decisions are
hazards/reports.py's; this module only applies them.

The reporter's contact is sealed with the centre's `SecretBox` (the webhook secrets' AES-GCM,
firetower/webhooks/secretbox.py) before it reaches the database, and opened only by `contact`.

Errors: `ReportNotFound` (404) and `ReportConflict` (409, with the allowed steps);
`ValueError` for values the rules refuse (422).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg

from firetower.refusal import Conn
from firetower.webhooks.secretbox import SealError, SecretBox
from hazards import file_records
from hazards.model import HazardDraft, Severity, Source
from hazards.reports import (
    HAZARD_CATEGORY,
    MERGE_TARGETS,
    SITE_MATCH_M,
    Candidate,
    MergeRule,
    ReportStatus,
    ReportStep,
    Reward,
    StepRefused,
    bounding_box,
    nearest_site,
    new_tracking_code,
    reward_step,
    step,
)

Reader = Conn | asyncpg.Pool
PUBLIC_ACTOR = "public"
MAX_CANDIDATES = 500   # earlier reports the duplicate rule looks at, nearest in time first
DEFAULT_RULE = MergeRule()
_CODE_TRIES = 5        # a fresh tracking code is drawn again on a (55-bit) collision


class ReportNotFound(LookupError):
    status = 404


class ReportConflict(ValueError):
    status = 409

    def __init__(self, refused: StepRefused | str) -> None:
        self.allowed = refused.allowed if isinstance(refused, StepRefused) else []
        super().__init__(str(refused))


@dataclass(frozen=True, slots=True)
class NewReport:
    channel: str
    category: str
    description: str
    address: str = ""
    latitude: float | None = None
    longitude: float | None = None
    node_code: str = ""
    contact: str = ""
    external_ref: str = ""
    photos: tuple[str, ...] = field(default_factory=tuple)   # file ids, already stored


@dataclass(frozen=True, slots=True)
class Received:
    id: int
    tracking_code: str
    status: ReportStatus
    merged_into: int | None
    repeated: bool   # the same hotline ticket was submitted before: its first report


@dataclass(frozen=True, slots=True)
class Visibility:
    """What of the reports a caller sees: None sites = all; else the reports matched to one
    of `sites`, and those matched to a node in the subtree of `node` (a caller attached to a
    jurisdiction node)."""
    sites: frozenset[str] | None
    node: int | None = None


EVERYTHING = Visibility(None)


def _visible_sql(first: int) -> str:
    a, b = f"${first}", f"${first + 1}"
    return (f"({a}::text[] IS NULL OR r.site_id = ANY({a}::text[]) OR ({b}::bigint IS NOT NULL "
            f"AND r.jurisdiction_id IN (SELECT id FROM jurisdictions WHERE path @> "
            f"ARRAY[{b}::bigint])))")


def _visible_args(v: Visibility) -> tuple[list[str] | None, int | None]:
    return (None if v.sites is None else sorted(v.sites)), v.node


async def _event(conn: Conn, report_id: int, kind: str, actor: str, note: str = "",
                 details: dict[str, Any] | None = None) -> None:
    await conn.execute(
        "INSERT INTO public_report_events (report_id, kind, actor, note, details) "
        "VALUES ($1, $2, $3, $4, $5)", report_id, kind, actor[:100], note[:2000],
        details or {})


# -- intake --------------------------------------------------------------------------------

async def _place(conn: Conn, report: NewReport,
                 site_match_m: float) -> tuple[int | None, str | None]:
    """(jurisdiction id, site id) a report is matched to: the node its code names, else the
    node of the site nearest its location within `site_match_m` metres."""
    node = None
    if report.node_code:
        node = await conn.fetchval("SELECT id FROM jurisdictions WHERE code = $1",
                                   report.node_code)
    site_id = None
    if report.latitude is not None and report.longitude is not None:
        lat0, lat1, lon0, lon1 = bounding_box(report.latitude, report.longitude, site_match_m)
        rows = await conn.fetch(
            "SELECT id, latitude, longitude FROM sites WHERE latitude BETWEEN $1 AND $2 AND "
            "longitude BETWEEN $3 AND $4 LIMIT 10000", lat0, lat1, lon0, lon1)
        site_id = nearest_site(report.latitude, report.longitude,
                               ((r["id"], r["latitude"], r["longitude"]) for r in rows),
                               site_match_m)
        if site_id is not None and node is None:
            node = await conn.fetchval("SELECT jurisdiction_id FROM sites WHERE id = $1",
                                       site_id)
    return node, site_id


async def _duplicate_of(conn: Conn, report: NewReport, rule: MergeRule,
                        now: datetime) -> int | None:
    if report.latitude is None or report.longitude is None:
        return None
    lat0, lat1, lon0, lon1 = bounding_box(report.latitude, report.longitude, rule.radius_m)
    rows = await conn.fetch(
        "SELECT id, category, status, received_at, latitude, longitude FROM public_reports "
        "WHERE category = $1 AND status = ANY($2::text[]) AND received_at BETWEEN $3 AND $4 "
        "AND latitude BETWEEN $5 AND $6 AND longitude BETWEEN $7 AND $8 "
        "ORDER BY received_at DESC LIMIT $9",
        report.category, sorted(MERGE_TARGETS), now - rule.window, now + rule.window,
        lat0, lat1, lon0, lon1, MAX_CANDIDATES)
    target = rule.target(report.category, report.latitude, report.longitude, now,
                         (Candidate(r["id"], r["category"], ReportStatus(r["status"]),
                                    r["received_at"], r["latitude"], r["longitude"])
                          for r in rows))
    return None if target is None else target.id


async def receive(conn: Conn, report: NewReport, box: SecretBox, *,
                  rule: MergeRule = DEFAULT_RULE, site_match_m: float = SITE_MATCH_M,
                  now: datetime | None = None) -> Received:
    """Record a report: matched to a node and a site, merged into an open report it
    duplicates (its own tracking code still answers), its contact sealed. A hotline ticket
    (`external_ref`) submitted again answers its first report and records nothing."""
    now = now or datetime.now(UTC)
    async with conn.transaction():
        if report.external_ref:
            row = await conn.fetchrow(
                "SELECT id, tracking_code, status, merged_into FROM public_reports "
                "WHERE channel = $1 AND external_ref = $2", report.channel, report.external_ref)
            if row is not None:
                return Received(row["id"], row["tracking_code"], ReportStatus(row["status"]),
                                row["merged_into"], True)
        # one intake at a time per category decides duplicates, so two reports of the same
        # blocked exit at once do not both become the first
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('public_reports:' || $1))",
                           report.category)
        node, site_id = await _place(conn, report, site_match_m)
        into = await _duplicate_of(conn, report, rule, now)
        status = ReportStatus.MERGED if into is not None else ReportStatus.RECEIVED
        sealed = box.seal(report.contact) if report.contact else None
        row = None
        for _ in range(_CODE_TRIES):
            row = await conn.fetchrow(
                "INSERT INTO public_reports (tracking_code, channel, external_ref, category, "
                "description, address, latitude, longitude, node_code, jurisdiction_id, "
                "site_id, contact_sealed, photos, status, merged_into, received_at, updated_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, "
                "$16, $16) ON CONFLICT DO NOTHING RETURNING id, tracking_code",
                new_tracking_code(), report.channel, report.external_ref, report.category,
                report.description, report.address, report.latitude, report.longitude,
                report.node_code, node, site_id, sealed, list(report.photos), status.value,
                into, now)
            if row is not None:
                break
            if report.external_ref:   # the same ticket, filed by a concurrent request
                again = await conn.fetchrow(
                    "SELECT id, tracking_code, status, merged_into FROM public_reports "
                    "WHERE channel = $1 AND external_ref = $2", report.channel,
                    report.external_ref)
                if again is not None:
                    return Received(again["id"], again["tracking_code"],
                                    ReportStatus(again["status"]), again["merged_into"], True)
        if row is None:
            raise RuntimeError("no free tracking code after several draws")
        await _event(conn, row["id"], "received", PUBLIC_ACTOR,
                     details={"channel": report.channel, "photos": len(report.photos),
                              "jurisdiction_id": node, "site_id": site_id})
        if into is not None:
            await conn.execute("UPDATE public_reports SET duplicates = duplicates + 1, "
                               "updated_at = $2 WHERE id = $1", into, now)
            await _event(conn, row["id"], "merged", "rule:duplicate",
                         details={"into": into, "radius_m": rule.radius_m,
                                  "window_h": rule.window.total_seconds() / 3600})
        return Received(row["id"], row["tracking_code"], status, into, False)


# -- reads ---------------------------------------------------------------------------------

_STATUS_SQL = """
SELECT r.tracking_code, r.status, r.category, r.received_at, r.updated_at, r.reward_status,
       root.status AS outcome, h.state AS hazard_state
FROM public_reports r
JOIN public_reports root ON root.id = coalesce(r.merged_into, r.id)
LEFT JOIN hazards h ON h.id = root.hazard_id
WHERE r.tracking_code = $1"""


async def public_status(conn: Reader, tracking_code: str) -> dict[str, Any] | None:
    """What the reporter may know: the report's status, the status of the report it was
    merged into (`outcome`), the hazard's state once converted, and the reward's status;
    never a contact, a note or who decided."""
    row = await conn.fetchrow(_STATUS_SQL, tracking_code)
    return None if row is None else dict(row)


_COLUMNS = ("r.id, r.tracking_code, r.channel, r.external_ref, r.category, r.description, "
            "r.address, r.latitude, r.longitude, r.node_code, r.jurisdiction_id, r.site_id, "
            "r.contact_sealed IS NOT NULL AS has_contact, r.photos, r.status, r.merged_into, "
            "r.duplicates, r.dismiss_reason, r.hazard_id, r.reward_status, r.reward_amount, "
            "r.reward_note, r.received_at, r.updated_at")


async def list_reports(conn: Reader, visibility: Visibility, *, status: str | None = None,
                       category: str | None = None, before_id: int | None = None,
                       limit: int = 100) -> list[dict[str, Any]]:
    """Newest first, what `visibility` sees."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM public_reports r WHERE {_visible_sql(1)} "
        "AND ($3::text IS NULL OR r.status = $3) AND ($4::text IS NULL OR r.category = $4) "
        "AND ($5::bigint IS NULL OR r.id < $5) ORDER BY r.id DESC LIMIT $6",
        *_visible_args(visibility), status, category, before_id, limit)
    return [dict(r) for r in rows]


async def get_report(conn: Reader, visibility: Visibility, report_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM public_reports r WHERE {_visible_sql(1)} AND r.id = $3",
        *_visible_args(visibility), report_id)
    if row is None:
        raise ReportNotFound("report not found")
    return dict(row)


async def events(conn: Reader, report_id: int) -> list[dict[str, Any]]:
    rows = await conn.fetch("SELECT id, at, kind, actor, note, details FROM "
                            "public_report_events WHERE report_id = $1 ORDER BY id", report_id)
    return [{**dict(r), "details": _json(r["details"])} for r in rows]


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


async def contact(conn: Reader, box: SecretBox, report_id: int) -> str | None:
    """The reporter's contact in clear (only for callers allowed to triage reports); None if
    none was given. SealError if it cannot be opened with the keys known (a lost key)."""
    sealed = await conn.fetchval("SELECT contact_sealed FROM public_reports WHERE id = $1",
                                 report_id)
    return None if sealed is None else box.open(sealed)


async def photo_reports(conn: Reader, file_id: str) -> list[tuple[int | None, str | None]]:
    """(jurisdiction id, site id) of each report a file is a photo of."""
    rows = await conn.fetch("SELECT jurisdiction_id, site_id FROM public_reports "
                            "WHERE photos @> ARRAY[$1::text]", file_id)
    return [(r["jurisdiction_id"], r["site_id"]) for r in rows]


async def sees(conn: Reader, visibility: Visibility, jurisdiction_id: int | None,
               site_id: str | None) -> bool:
    """Whether `visibility` sees a report matched to this node and site."""
    if visibility.sites is None:
        return True
    if site_id is not None and site_id in visibility.sites:
        return True
    if visibility.node is None or jurisdiction_id is None:
        return False
    return bool(await conn.fetchval(
        "SELECT 1 FROM jurisdictions WHERE id = $1 AND path @> ARRAY[$2::bigint]",
        jurisdiction_id, visibility.node))


# -- triage --------------------------------------------------------------------------------

async def _locked(conn: Conn, report_id: int) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT * FROM public_reports WHERE id = $1 FOR UPDATE",
                              report_id)
    if row is None:
        raise ReportNotFound("report not found")
    return row


def _step(status: str, what: ReportStep) -> ReportStatus:
    try:
        return step(ReportStatus(status), what)
    except StepRefused as exc:
        raise ReportConflict(exc) from None


async def merge(conn: Conn, actor: str, report_id: int, into: int, note: str = "") -> int:
    """Merge a received report into another (into the report that one was merged into, if
    it was): its own duplicates follow it. The report it now belongs to."""
    async with conn.transaction():
        first, second = sorted((report_id, into))
        rows = {r: await _locked(conn, r) for r in (first, second)}   # id order: no deadlock
        source, target = rows[report_id], rows[into]
        _step(source["status"], ReportStep.MERGE)
        root_id = target["merged_into"] or target["id"]
        root = target if root_id == target["id"] else await _locked(conn, root_id)
        if root_id == report_id:
            raise ReportConflict("a report cannot be merged into itself")
        if ReportStatus(root["status"]) not in MERGE_TARGETS:
            raise ReportConflict(f"report {root_id} is {root['status']}: only a received or "
                                 "converted report takes duplicates")
        followers = await conn.fetch(
            "UPDATE public_reports SET merged_into = $2, updated_at = now() "
            "WHERE merged_into = $1 RETURNING id", report_id, root_id)
        await conn.execute(
            "UPDATE public_reports SET status = 'merged', merged_into = $2, duplicates = 0, "
            "updated_at = now() WHERE id = $1", report_id, root_id)
        await conn.execute(
            "UPDATE public_reports SET duplicates = duplicates + $2, updated_at = now() "
            "WHERE id = $1", root_id, len(followers) + 1)
        await _event(conn, report_id, "merged", actor, note,
                     {"into": root_id, "followers": [r["id"] for r in followers]})
        return int(root_id)


async def dismiss(conn: Conn, actor: str, report_id: int, reason: str) -> None:
    reason = reason.strip()
    if not reason:
        raise ValueError("a dismissal needs a reason")
    async with conn.transaction():
        row = await _locked(conn, report_id)
        _step(row["status"], ReportStep.DISMISS)
        await conn.execute("UPDATE public_reports SET status = 'dismissed', dismiss_reason = $2, "
                           "updated_at = now() WHERE id = $1", report_id, reason[:1000])
        await _event(conn, report_id, "dismissed", actor, reason)


@dataclass(frozen=True, slots=True)
class Conversion:
    """What triage adds to the report when it becomes a hazard."""
    title: str
    severity: Severity = Severity.GENERAL
    site_id: str | None = None          # else the site the report was matched to
    unit_id: int | None = None
    jurisdiction_id: int | None = None  # else the report's node
    deadline: datetime | None = None
    legal_basis: str = ""
    note: str = ""


async def convert(conn: Conn, actor: str, report_id: int, how: Conversion, *,
                  now: datetime | None = None) -> int:
    """The hazard the report becomes (hazards.store.create_hazard, idempotent by
    `report:<id>`); its photos are the hazard's photos before, and now document its site."""
    from hazards.store import create_hazard

    async with conn.transaction():
        row = await _locked(conn, report_id)
        _step(row["status"], ReportStep.CONVERT)
        description = row["description"] + (f"\n\n{row['address']}" if row["address"] else "")
        draft = HazardDraft(
            source=Source.PUBLIC_REPORT, title=how.title,
            site_id=how.site_id or row["site_id"], unit_id=how.unit_id,
            jurisdiction_id=how.jurisdiction_id or row["jurisdiction_id"],
            description=description[:4000], category=HAZARD_CATEGORY[row["category"]],
            legal_basis=how.legal_basis, severity=how.severity, deadline=how.deadline,
            source_ref=f"report:{report_id}", files_before=tuple(row["photos"]))
        hazard_id = await create_hazard(conn, actor, draft, now=now)
        await conn.execute("UPDATE public_reports SET status = 'converted', hazard_id = $2, "
                           "updated_at = now() WHERE id = $1", report_id, hazard_id)
        if draft.site_id is not None:
            await file_records.document_site(conn, row["photos"], draft.site_id)
        await _event(conn, report_id, "converted", actor, how.note, {"hazard_id": hazard_id})
        return hazard_id


async def set_reward(conn: Conn, actor: str, report_id: int, reward: Reward,
                     amount: float | None, note: str = "") -> None:
    async with conn.transaction():
        row = await _locked(conn, report_id)
        try:
            reward_step(ReportStatus(row["status"]), Reward(row["reward_status"]), reward, amount)
        except StepRefused as exc:
            raise ReportConflict(exc) from None
        await conn.execute("UPDATE public_reports SET reward_status = $2, reward_amount = $3, "
                           "reward_note = $4, updated_at = now() WHERE id = $1",
                           report_id, reward.value, amount, note[:1000])
        await _event(conn, report_id, "reward", actor, note,
                     {"from": row["reward_status"], "to": reward.value, "amount": amount})


async def reseal(conn: Conn, box: SecretBox) -> int:
    """Re-seal every contact sealed with a previous key under the current one (after a key
    rotation, before the previous key is dropped). The number re-sealed."""
    done = 0
    for r in await conn.fetch("SELECT id, contact_sealed FROM public_reports "
                              "WHERE contact_sealed IS NOT NULL ORDER BY id"):
        if box.stale(r["contact_sealed"]):
            try:
                fresh = box.seal(box.open(r["contact_sealed"]))
            except SealError:
                continue
            await conn.execute("UPDATE public_reports SET contact_sealed = $2 WHERE id = $1 "
                               "AND contact_sealed = $3", r["id"], fresh, r["contact_sealed"])
            done += 1
    return done

