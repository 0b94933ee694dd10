"""The assessment indicators (考核指标): one table of definitions and the pure functions that
compute each figure from the counts `assessment.queries` gathers (docs/assessment.md).

Every indicator has one definition here: its key (what the API, the exports and the feed name
it by), its names, its unit, its formula as text, the standard it comes from and its direction
(whether more is better). `INDICATORS[key].compute(counts, days)` is the only place its value
is computed; `rank` orders figures by that direction for the circulars (通报排名).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Literal

Direction = Literal["higher_better", "lower_better"]
Unit = Literal["count", "ratio", "per_100_detectors_per_year", "seconds", "unit_days", "units"]

# Response-time limits (GB 50440 §3.0.2, NFPA 72), the same values as api/latency.py, which
# checks one alarm at a time (a test keeps the two equal): name -> seconds.
DISPLAY_GB_S = 20.0
FORWARD_GB_S = 3.0
NFPA_S = 90.0
LIMITS: dict[str, float] = {"gb50440_display_20s": DISPLAY_GB_S,
                            "gb50440_forward_3s": FORWARD_GB_S,
                            "nfpa72_display_90s": NFPA_S,
                            "nfpa72_retransmit_90s": NFPA_S}
# GB 50440 operating rule: a user (unit) with more than this many equipment false alarms on one
# day must agree a handling plan with the centre.
GB50440_DAILY_FALSE_ALARMS = 5
DAYS_PER_YEAR = 365.25


@dataclass
class LimitCount:
    met: int = 0
    missed: int = 0
    pending: int = 0


@dataclass
class Counts:
    """The raw figures of one node over one period, as `assessment.queries.gather` reads them.
    Alarm figures count normal-mode alarms raised in the period only (never test, disabled or
    maintenance mode); device figures are as of now."""

    alarms: int = 0
    fires: int = 0                      # verdict true_fire
    false_alarms: int = 0               # verdict false_alarm or nuisance
    equipment_false_alarms: int = 0     # verdict false_alarm
    test_verdicts: int = 0              # verdict test on a normal-mode alarm
    detectors: int = 0                  # smoke and heat detectors in service (now)
    gb50440_unit_days: int = 0          # (unit, day) pairs with > 5 equipment false alarms
    gb50440_units: list[str] = field(default_factory=list)
    ack_fire_s: Sequence[float] = field(default_factory=list)
    ack_all_s: Sequence[float] = field(default_factory=list)
    verdict_fire_s: Sequence[float] = field(default_factory=list)
    verdict_all_s: Sequence[float] = field(default_factory=list)
    limits: dict[str, LimitCount] = field(default_factory=dict)
    devices_in_service: int = 0
    devices_online: int = 0
    devices_intact: int = 0             # in service, no open fault or offline alarm
    faults_raised: int = 0
    fault_repair_s: Sequence[float] = field(default_factory=list)
    hazards_found: int = 0
    hazards_found_closed: int = 0       # of those found in the period, closed by its end
    hazards_closed: int = 0             # closed in the period, whenever found
    hazards_overdue: int = 0
    orders_opened: int = 0
    orders_met: int = 0
    orders_missed: int = 0
    checkpoints_planned: int = 0
    checkpoints_visited: int = 0
    reports_received: int = 0
    reports_handled: int = 0


class Binned(Sequence[float]):
    """A sorted sample kept as (value, how many times) pairs: what a histogram of the
    summary tables gives (assessment/queries.py). It reads as the sorted list it stands for,
    without building it (a year of a city has millions of values in a few thousand bins)."""

    def __init__(self, bins: dict[float, int]) -> None:
        items = sorted((v, n) for v, n in bins.items() if n > 0)
        self.values = [v for v, _ in items]
        self.ends = list(accumulate(n for _, n in items))

    def __len__(self) -> int:
        return self.ends[-1] if self.ends else 0

    def __getitem__(self, i: int) -> float:  # type: ignore[override]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.values[bisect_left(self.ends, i + 1)]

    def __iter__(self) -> Iterator[float]:
        start = 0
        for v, end in zip(self.values, self.ends, strict=True):
            for _ in range(end - start):
                yield v
            start = end

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"Binned({dict(zip(self.values, self.ends, strict=True))!r})"


# -- the pure functions -----------------------------------------------------------------------

def rate(part: int, whole: int) -> float | None:
    """part / whole, None when there is nothing to divide by."""
    return part / whole if whole else None


def per_100_per_year(events: int, detectors: int, days: float) -> float | None:
    """BS 5839-1: events per 100 detectors per year, normalised by the period's length:
    events * 100 / detectors * 365.25 / days."""
    if detectors <= 0 or days <= 0:
        return None
    return events * 100.0 / detectors * DAYS_PER_YEAR / days


def percentile(xs: Sequence[float], q: float) -> float | None:
    """The q-quantile with linear interpolation between the closest ranks (PostgreSQL's
    percentile_cont); None for no values."""
    if not xs:
        return None
    s = xs if isinstance(xs, Binned) else sorted(xs)
    pos = q * (len(s) - 1)
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def compliance(c: LimitCount | None) -> float | None:
    """met / (met + missed); pending alarms (the limit has not passed yet) are not judged."""
    return None if c is None else rate(c.met, c.met + c.missed)


def rank(values: Sequence[float | None], direction: Direction) -> list[int | None]:
    """Competition ranks (1, 2, 2, 4) of `values`, best first by `direction`; equal values
    share a rank; a missing value (None) has no rank."""
    sign = -1.0 if direction == "higher_better" else 1.0
    present = sorted(sign * v for v in values if v is not None)
    out: list[int | None] = []
    for v in values:
        if v is None:
            out.append(None)
            continue
        out.append(1 + bisect_left(present, sign * v))
    return out


def is_met(value: float | None, target: float, direction: Direction) -> bool | None:
    """Whether a figure reaches its target (None: no figure)."""
    if value is None:
        return None
    return value >= target if direction == "higher_better" else value <= target


# -- the table --------------------------------------------------------------------------------

Compute = Callable[[Counts, float], float | None]


@dataclass(frozen=True)
class Indicator:
    key: str
    name_zh: str
    name_en: str
    unit: Unit
    formula: str
    source: str
    direction: Direction
    compute: Compute = field(repr=False, compare=False)


def _count(attr: str) -> Compute:
    return lambda c, _d: float(getattr(c, attr))


def _pct(attr: str, q: float) -> Compute:
    return lambda c, _d: percentile(getattr(c, attr), q)


def _limit(name: str) -> Compute:
    return lambda c, _d: compliance(c.limits.get(name))


_NORMAL = "normal-mode alarms raised in the period"
_ACK = ("seconds from the centre's receipt (received_at, else stored_at) to acknowledged_at, "
        "over acknowledged ")
_VERDICT = ("seconds from the centre's receipt (received_at, else stored_at) to verdict_at, "
            "over judged ")
_P = {"p50": 0.5, "p90": 0.9}


def _time_indicators() -> list[Indicator]:
    out = []
    for what, zh, base in (("ack", "受理", _ACK), ("verdict", "确认", _VERDICT)):
        for scope, zh_scope, attr, over in (("fire", "火警", f"{what}_fire_s", "fire alarms"),
                                            ("all", "全部报警", f"{what}_all_s", "alarms")):
            for p, q in _P.items():
                out.append(Indicator(
                    f"{what}_{p}_{scope}", f"{zh_scope}{zh}时间{p.upper()}",
                    f"Time to {'acknowledge' if what == 'ack' else 'verdict'}, {over}, {p}",
                    "seconds", f"{p} (linear interpolation) of {base}{over} ({_NORMAL})",
                    "GB 50440 §3.0.2; centre practice", "lower_better", _pct(attr, q)))
    return out


_TABLE: list[Indicator] = [
    Indicator("fires", "真实火警数", "Fires", "count",
              f"count of {_NORMAL} with verdict true_fire", "GB 50440; P48", "lower_better",
              _count("fires")),
    Indicator("false_alarms", "误报数", "False alarms", "count",
              f"count of {_NORMAL} with verdict false_alarm or nuisance",
              "BS 5839-1 (false alarm classes)", "lower_better", _count("false_alarms")),
    Indicator("false_alarm_share", "误报率", "False-alarm share of judged alarms", "ratio",
              "(false_alarm + nuisance) / (true_fire + false_alarm + nuisance) verdicts, "
              f"over {_NORMAL}", "BS 5839-1; centre practice", "lower_better",
              lambda c, _d: rate(c.false_alarms, c.false_alarms + c.fires)),
    Indicator("false_alarms_per_100_detectors_year", "每百只探测器年误报次数",
              "False alarms per 100 detectors per year", "per_100_detectors_per_year",
              "false_alarms * 100 / detectors in service (smoke and heat, now) * 365.25 / "
              "days in the period", "BS 5839-1:2017 §30 (rate of false alarms)", "lower_better",
              lambda c, d: per_100_per_year(c.false_alarms, c.detectors, d)),
    Indicator("gb50440_unit_days", "日误报超5次单位·日数",
              "Unit-days with more than 5 equipment false alarms", "unit_days",
              "count of (unit, calendar day in the report's time zone) with more than 5 "
              f"{_NORMAL} judged false_alarm (equipment)", "GB 50440 (operation: > 5 equipment "
              "false alarms a day)", "lower_better", _count("gb50440_unit_days")),
    Indicator("gb50440_units", "日误报超5次单位数",
              "Units with more than 5 equipment false alarms on a day", "units",
              "count of distinct units with at least one such unit-day",
              "GB 50440 (operation: > 5 equipment false alarms a day)", "lower_better",
              lambda c, _d: float(len(c.gb50440_units))),
    *_time_indicators(),
    Indicator("compliance_gb50440_display", "火警显示20秒达标率",
              "GB 50440 display within 20 s", "ratio",
              "fire alarms displayed within 20 s of the device's signal (device_ts, else "
              "received_at → shown_at) / judged fire alarms (met + missed)",
              "GB 50440 §3.0.2(2)", "higher_better", _limit("gb50440_display_20s")),
    Indicator("compliance_gb50440_forward", "确认火警3秒转发达标率",
              "GB 50440 forward within 3 s", "ratio",
              "confirmed fires delivered to the 119 centre within 3 s of confirmation / judged",
              "GB 50440 §3.0.2(3)", "higher_better", _limit("gb50440_forward_3s")),
    Indicator("compliance_nfpa72_display", "火警显示90秒达标率 (NFPA 72)",
              "NFPA 72 display within 90 s", "ratio",
              "fire alarms displayed within 90 s of the signal / judged",
              "NFPA 72 §26.6.3.1.10", "higher_better", _limit("nfpa72_display_90s")),
    Indicator("compliance_nfpa72_retransmit", "火警90秒转发达标率 (NFPA 72)",
              "NFPA 72 retransmission within 90 s", "ratio",
              "forwarded fire alarms delivered within 90 s of receipt / judged",
              "NFPA 72 A.26.2.1", "higher_better", _limit("nfpa72_retransmit_90s")),
    Indicator("online_rate", "设备在线率", "Device online rate", "ratio",
              "devices in service online now (last status online, no open offline alarm) / "
              "devices in service", "GB 50440; P3", "higher_better",
              lambda c, _d: rate(c.devices_online, c.devices_in_service)),
    Indicator("integrity_rate", "设施完好率", "Device integrity rate", "ratio",
              "devices in service with no open fault or offline alarm now / devices in service",
              "GB 25201; 完好率 (assessment practice)", "higher_better",
              lambda c, _d: rate(c.devices_intact, c.devices_in_service)),
    Indicator("fault_repair_p50", "故障修复时间P50", "Fault repair time p50", "seconds",
              f"p50 of cleared_at - raised_at over fault {_NORMAL} that have cleared",
              "GB 25201; centre practice", "lower_better", _pct("fault_repair_s", 0.5)),
    Indicator("fault_repair_p90", "故障修复时间P90", "Fault repair time p90", "seconds",
              f"p90 of cleared_at - raised_at over fault {_NORMAL} that have cleared",
              "GB 25201; centre practice", "lower_better", _pct("fault_repair_s", 0.9)),
    Indicator("hazards_found", "发现隐患数", "Hazards found", "count",
              "hazards with found_at in the period", "P48; 隐患闭环", "higher_better",
              _count("hazards_found")),
    Indicator("hazards_closed", "整改销号隐患数", "Hazards closed", "count",
              "hazards with closed_at in the period (whenever found)", "P48; 隐患闭环",
              "higher_better", _count("hazards_closed")),
    Indicator("hazards_overdue", "逾期未整改隐患数", "Hazards overdue", "count",
              "hazards found before E, deadline before E and not closed before E, "
              "where E = the earlier of the period's end and now", "P48; 隐患闭环",
              "lower_better", _count("hazards_overdue")),
    Indicator("hazard_closure_rate", "隐患整改率", "Hazard closure rate", "ratio",
              "hazards found in the period and closed before E / hazards found in the period",
              "P48; 隐患闭环", "higher_better",
              lambda c, _d: rate(c.hazards_found_closed, c.hazards_found)),
    Indicator("workorder_sla_rate", "维保工单按时完成率", "Work-order SLA", "ratio",
              "orders opened in the period responded by respond_by and repaired by repair_by / "
              "judged orders (met + missed; a missed deadline before E counts as missed)",
              "GB 25201; maintenance contracts", "higher_better",
              lambda c, _d: rate(c.orders_met, c.orders_met + c.orders_missed)),
    Indicator("patrol_coverage", "巡查覆盖率", "Patrol coverage", "ratio",
              "active checkpoints of plans running in the period with at least one check-in "
              "in the period / those checkpoints", "P3; 网格化巡查", "higher_better",
              lambda c, _d: rate(c.checkpoints_visited, c.checkpoints_planned)),
    Indicator("public_reports_handled_rate", "群众举报办结率", "Public reports handled",
              "ratio", "reports received in the period now converted, merged or dismissed / "
              "reports received in the period", "P48; 举报投诉", "higher_better",
              lambda c, _d: rate(c.reports_handled, c.reports_received)),
]

INDICATORS: dict[str, Indicator] = {i.key: i for i in _TABLE}
KEYS: tuple[str, ...] = tuple(INDICATORS)


def compute_all(counts: Counts, days: float) -> dict[str, float | None]:
    """Every indicator of one node over a period of `days` days."""
    return {k: i.compute(counts, days) for k, i in INDICATORS.items()}
