"""The monthly situation briefing (月度形势分析简报) of a jurisdiction: its content, built from
the indicator figures alone (docs/assessment.md, "Briefings").

Pure: `build(data)` turns the figures `assessment.briefing_store.collect` reads (the month, the
month before, the twelve months to it, the children, the units, the year's targets, the sites
and boundaries for the map) into a `Briefing`: sections, each with its title, paragraphs, key
figures (value, change against the previous month, target), tables and the names of its
charts, and the charts' data. Every value is also given as text, so the renderers (the PDF of
`assessment.briefing_pdf` and the web page) only lay it out. Ranks come from
`assessment.indicators.rank`, the one ranking rule of the circulars (通报排名).
"""

# The Chinese text uses full-width punctuation (full-width commas, brackets, colons) on purpose.
# ruff: noqa: RUF001

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any, Literal

from assessment.indicators import INDICATORS, Unit, is_met, rank
from firetower.refusal import Refused

# The sections, in order; their titles are what the PDF and the web page print (a test reads
# every one back from the PDF).
SECTION_TITLES: dict[str, str] = {
    "summary": "一、总体情况",
    "trend": "二、火警与误报趋势",
    "ranking": "三、通报排名",
    "hazards": "四、隐患排查整治",
    "compliance": "五、响应时间达标情况",
    "devices": "六、设备在线率与完好率",
    "events": "七、重点关注事项",
    "map": "八、辖区场所分布",
}
SUMMARY_KEYS = ("fires", "false_alarms", "false_alarms_per_100_detectors_year", "gb50440_units",
                "online_rate", "integrity_rate", "hazards_found", "hazard_closure_rate",
                "hazards_overdue", "compliance_gb50440_display")
# The indicators the children are ranked on unless the caller chooses others.
RANKING_KEYS = ("false_alarms_per_100_detectors_year", "hazard_closure_rate", "online_rate")
HAZARD_KEYS = ("hazards_found", "hazards_closed", "hazards_overdue", "hazard_closure_rate")
COMPLIANCE_KEYS = ("compliance_gb50440_display", "compliance_gb50440_forward",
                   "compliance_nfpa72_display", "compliance_nfpa72_retransmit",
                   "ack_p50_fire", "ack_p90_fire", "verdict_p50_fire")
DEVICE_KEYS = ("online_rate", "integrity_rate", "fault_repair_p50", "fault_repair_p90")
MAP_KEY = "false_alarms"    # what the map colours the children (and their sites) by
TOP_UNITS = 5               # the largest false-alarm units named
TREND_MONTHS = 12
NO_VALUE = "—"

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


# -- months -----------------------------------------------------------------------------------

def parse_month(text: str) -> date:
    """`YYYY-MM` as the first day of that month; Refused otherwise."""
    m = _MONTH.match(text)
    if m is None or not 1 <= int(m.group(2)) <= 12 or not 2000 <= int(m.group(1)) <= 2100:
        raise Refused("month must be YYYY-MM (2000-01 to 2100-12)")
    return date(int(m.group(1)), int(m.group(2)), 1)


def month_label(month: date) -> str:
    return f"{month.year:04d}-{month.month:02d}"


def add_months(month: date, n: int) -> date:
    i = month.year * 12 + month.month - 1 + n
    return date(i // 12, i % 12 + 1, 1)


def month_zh(month: date) -> str:
    return f"{month.year}年{month.month}月"


# -- values as text ---------------------------------------------------------------------------

def fmt(value: float | None, unit: Unit) -> str:
    """A figure as the briefing prints it: a ratio in percent, seconds as seconds or minutes,
    a count as an integer; no figure is a dash."""
    if value is None:
        return NO_VALUE
    if unit == "ratio":
        return f"{value * 100:.1f}%"
    if unit == "seconds":
        return f"{value / 60:.1f}分钟" if value >= 120 else f"{value:.1f}秒"
    if unit == "per_100_detectors_per_year":
        return f"{value:.2f}"
    return f"{value:.0f}"


def change_text(value: float | None, previous: float | None, unit: Unit) -> str:
    """The change against the previous month: percentage points for a ratio, else the
    difference in the figure's unit."""
    if value is None or previous is None:
        return NO_VALUE
    diff = value - previous
    if abs(diff) < 1e-9:
        return "持平"
    arrow = "↑" if diff > 0 else "↓"
    if unit == "ratio":
        return f"{arrow}{abs(diff) * 100:.1f}个百分点"
    return f"{arrow}{fmt(abs(diff), unit)}"


# -- what build() reads -----------------------------------------------------------------------

Values = dict[str, float | None]


@dataclass
class PlaceFigures:
    """One child (or unit) of the jurisdiction: its key, name, figures of the month and the
    sites it covers (the map colours them by the child's figure)."""

    key: str
    name: str
    values: Values
    sites: tuple[str, ...] = ()


@dataclass
class SitePoint:
    id: str
    name: str
    lat: float
    lon: float


@dataclass
class BriefingData:
    jurisdiction_id: int
    name: str
    level: str
    month: date                       # the first day of the month
    timezone: str
    current: Values                   # the month
    previous: Values                  # the month before
    trend: list[tuple[date, Values]]  # the twelve months up to this one, oldest first
    children: list[PlaceFigures] = field(default_factory=list)
    units: list[PlaceFigures] = field(default_factory=list)   # the subtree's units, the month
    gb50440_units: list[str] = field(default_factory=list)    # names of the flagged units
    targets: dict[str, float] = field(default_factory=dict)   # the year's
    year_to_date: Values = field(default_factory=dict)        # the year to the month's end
    sites: list[SitePoint] = field(default_factory=list)      # those with coordinates
    boundaries: dict[str, dict[str, Any]] = field(default_factory=dict)  # child key -> GeoJSON
    devices_in_service: int = 0
    complete: bool = True             # the month is over
    as_of: str = ""                   # when not complete: the date the figures run to
    ranking_keys: tuple[str, ...] = RANKING_KEYS


# -- what build() makes -----------------------------------------------------------------------

@dataclass
class Figure:
    key: str
    name: str
    unit: str
    value: float | None
    previous: float | None
    target: float | None
    year_to_date: float | None
    met: bool | None                  # the year to date against the year's target
    value_text: str
    previous_text: str
    change_text: str
    target_text: str


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]


@dataclass
class Series:
    name: str
    values: list[float | None]


@dataclass
class Chart:
    """`line` and `bars`: one value per label and series; `map`: `points` (name, lat, lon,
    value) and `areas` (name, value, GeoJSON geometry)."""

    name: str
    kind: Literal["line", "bars", "map"]
    title: str
    unit: str
    labels: list[str] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)
    points: list[dict[str, Any]] = field(default_factory=list)
    areas: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Section:
    key: str
    title: str
    paragraphs: list[str] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    charts: list[str] = field(default_factory=list)   # names in Briefing.charts


@dataclass
class Briefing:
    jurisdiction_id: int
    name: str
    level: str
    month: str
    timezone: str
    title: str
    complete: bool
    sections: list[Section]
    charts: list[Chart]

    def chart(self, name: str) -> Chart | None:
        return next((c for c in self.charts if c.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def chart_from_json(d: dict[str, Any]) -> Chart:
    return Chart(name=d["name"], kind=d["kind"], title=d["title"], unit=d["unit"],
                 labels=list(d.get("labels", [])),
                 series=[Series(s["name"], list(s["values"])) for s in d.get("series", [])],
                 points=list(d.get("points", [])), areas=list(d.get("areas", [])))


# -- the sections -----------------------------------------------------------------------------

def _figure(data: BriefingData, key: str) -> Figure:
    ind = INDICATORS[key]
    value, previous = data.current.get(key), data.previous.get(key)
    target = data.targets.get(key)
    ytd = data.year_to_date.get(key)
    met = None if target is None else is_met(ytd, target, ind.direction)
    target_text = NO_VALUE if target is None else (
        f"{fmt(target, ind.unit)}（年累计{fmt(ytd, ind.unit)}，"
        f"{'达标' if met else '未达标' if met is not None else '无数据'}）")
    return Figure(key, ind.name_zh, ind.unit, value, previous, target, ytd, met,
                  fmt(value, ind.unit), fmt(previous, ind.unit),
                  change_text(value, previous, ind.unit), target_text)


def _v(data: BriefingData, key: str) -> str:
    return fmt(data.current.get(key), INDICATORS[key].unit)


def _summary(data: BriefingData) -> Section:
    when = month_zh(data.month) + ("" if data.complete else f"（截至{data.as_of}，本月尚未结束）")
    fa = _figure(data, "false_alarms")
    text = (f"{when}，{data.name}共接报真实火警{_v(data, 'fires')}起，误报{fa.value_text}起"
            f"（较上月{fa.change_text}），每百只探测器年误报"
            f"{_v(data, 'false_alarms_per_100_detectors_year')}次；"
            f"在用设备{data.devices_in_service}台，设备在线率{_v(data, 'online_rate')}，"
            f"设施完好率{_v(data, 'integrity_rate')}；发现隐患{_v(data, 'hazards_found')}处，"
            f"隐患整改率{_v(data, 'hazard_closure_rate')}，逾期未整改"
            f"{_v(data, 'hazards_overdue')}处。")
    figures = [_figure(data, k) for k in SUMMARY_KEYS]
    missed = [f.name for f in figures if f.met is False]
    more = [f"未达年度目标的指标：{'、'.join(missed)}。"] if missed else []
    return Section("summary", SECTION_TITLES["summary"], [text, *more], figures)


def _trend(data: BriefingData) -> tuple[Section, list[Chart]]:
    labels = [month_label(m) for m, _ in data.trend]
    fires = [v.get("fires") for _, v in data.trend]
    false_alarms = [v.get("false_alarms") for _, v in data.trend]
    total_fires = sum(x or 0 for x in fires)
    total_fa = sum(x or 0 for x in false_alarms)
    text = (f"近{len(labels)}个月累计真实火警{total_fires:.0f}起、误报{total_fa:.0f}起。")
    peak = max(range(len(false_alarms)), key=lambda i: false_alarms[i] or 0, default=None)
    if peak is not None and (false_alarms[peak] or 0) > 0:
        text += f"误报最多的月份为{labels[peak]}（{false_alarms[peak]:.0f}起）。"
    chart = Chart("trend", "line", "近12个月火警与误报", "count", labels,
                  [Series("真实火警", fires), Series("误报", false_alarms)])
    rate = Chart("trend_rate", "line", "每百只探测器年误报次数", "per_100_detectors_per_year",
                 labels, [Series("每百只探测器年误报",
                                 [v.get("false_alarms_per_100_detectors_year")
                                  for _, v in data.trend])])
    table = Table(["月份", "真实火警", "误报", "每百只探测器年误报"],
                  [[lab, fmt(f, "count"), fmt(a, "count"),
                    fmt(v.get("false_alarms_per_100_detectors_year"),
                        "per_100_detectors_per_year")]
                   for lab, f, a, (_, v) in zip(labels, fires, false_alarms, data.trend,
                                                strict=True)])
    return (Section("trend", SECTION_TITLES["trend"], [text], [], [table],
                    ["trend", "trend_rate"]), [chart, rate])


def ranked(children: list[PlaceFigures], key: str) -> list[tuple[int | None, PlaceFigures]]:
    """The children best first on `key` (indicators.rank: shared ranks, no figure last)."""
    ranks = rank([c.values.get(key) for c in children], INDICATORS[key].direction)
    pairs = list(zip(ranks, children, strict=True))
    pairs.sort(key=lambda p: (p[0] is None, p[0] or 0, p[1].key))
    return pairs


def _ranking(data: BriefingData) -> tuple[Section, list[Chart]]:
    section = Section("ranking", SECTION_TITLES["ranking"])
    charts: list[Chart] = []
    if not data.children:
        section.paragraphs.append("无下级辖区或单位，不作排名。")
        return section, charts
    for i, key in enumerate(data.ranking_keys):
        ind = INDICATORS[key]
        rows = ranked(data.children, key)
        present = [(r, c) for r, c in rows if r is not None]
        if len(present) >= 2:
            best, last = present[0][1], present[-1][1]
            section.paragraphs.append(
                f"{ind.name_zh}：{best.name}最好（{fmt(best.values.get(key), ind.unit)}），"
                f"{last.name}排名末位（{fmt(last.values.get(key), ind.unit)}）。")
        else:
            section.paragraphs.append(f"{ind.name_zh}：可排名的下级不足两个。")
        section.tables.append(Table(["名次", "名称", ind.name_zh],
                                    [["—" if r is None else str(r), c.name,
                                      fmt(c.values.get(key), ind.unit)] for r, c in rows]))
        if i == 0:
            charts.append(Chart("ranking", "bars", f"通报排名：{ind.name_zh}", ind.unit,
                                [c.name for _, c in rows],
                                [Series(ind.name_zh, [c.values.get(key) for _, c in rows])]))
            section.charts.append("ranking")
    return section, charts


def _children_table(data: BriefingData, keys: tuple[str, ...]) -> list[Table]:
    if not data.children:
        return []
    return [Table(["名称", *(INDICATORS[k].name_zh for k in keys)],
                  [[c.name, *(fmt(c.values.get(k), INDICATORS[k].unit) for k in keys)]
                   for c in data.children])]


def _hazards(data: BriefingData) -> tuple[Section, list[Chart]]:
    figures = [_figure(data, k) for k in HAZARD_KEYS]
    text = (f"本月发现隐患{_v(data, 'hazards_found')}处，整改销号{_v(data, 'hazards_closed')}处，"
            f"隐患整改率{_v(data, 'hazard_closure_rate')}，逾期未整改"
            f"{_v(data, 'hazards_overdue')}处。")
    chart = Chart("hazards", "bars", "近12个月隐患发现与整改", "count",
                  [month_label(m) for m, _ in data.trend],
                  [Series("发现隐患", [v.get("hazards_found") for _, v in data.trend]),
                   Series("整改销号", [v.get("hazards_closed") for _, v in data.trend])])
    return (Section("hazards", SECTION_TITLES["hazards"], [text], figures,
                    _children_table(data, HAZARD_KEYS), ["hazards"]), [chart])


def _compliance(data: BriefingData) -> Section:
    figures = [_figure(data, k) for k in COMPLIANCE_KEYS]
    text = (f"GB 50440 火警20秒内显示达标率{_v(data, 'compliance_gb50440_display')}，"
            f"确认火警3秒内转发达标率{_v(data, 'compliance_gb50440_forward')}；"
            f"火警受理时间P50为{_v(data, 'ack_p50_fire')}，P90为{_v(data, 'ack_p90_fire')}。")
    return Section("compliance", SECTION_TITLES["compliance"], [text], figures,
                   _children_table(data, ("compliance_gb50440_display",
                                          "compliance_gb50440_forward")))


def _devices(data: BriefingData) -> tuple[Section, list[Chart]]:
    figures = [_figure(data, k) for k in DEVICE_KEYS]
    text = (f"在用设备{data.devices_in_service}台，设备在线率{_v(data, 'online_rate')}，"
            f"设施完好率{_v(data, 'integrity_rate')}（设备指标为生成时的状态）；"
            f"故障修复时间P50为{_v(data, 'fault_repair_p50')}。")
    section = Section("devices", SECTION_TITLES["devices"], [text], figures,
                      _children_table(data, ("online_rate", "integrity_rate")))
    charts: list[Chart] = []
    if data.children:
        charts.append(Chart("devices", "bars", "下级设备在线率与完好率", "ratio",
                            [c.name for c in data.children],
                            [Series("设备在线率", [c.values.get("online_rate")
                                              for c in data.children]),
                             Series("设施完好率", [c.values.get("integrity_rate")
                                              for c in data.children])]))
        section.charts.append("devices")
    return section, charts


def _events(data: BriefingData) -> Section:
    section = Section("events", SECTION_TITLES["events"])
    if data.gb50440_units:
        section.paragraphs.append(
            f"本月有{len(data.gb50440_units)}个单位出现单日设备误报超过5次（GB 50440），"
            f"须与监控中心共同制定处置方案：{'、'.join(data.gb50440_units)}。")
    else:
        section.paragraphs.append("本月无单日设备误报超过5次的单位（GB 50440）。")
    top = sorted((u for u in data.units if (u.values.get("false_alarms") or 0) > 0),
                 key=lambda u: (-(u.values.get("false_alarms") or 0), u.key))[:TOP_UNITS]
    if top:
        section.paragraphs.append(f"误报最多的单位：{'、'.join(u.name for u in top)}。")
        section.tables.append(Table(
            ["单位", "误报", "误报率", "日误报超5次天数"],
            [[u.name, fmt(u.values.get("false_alarms"), "count"),
              fmt(u.values.get("false_alarm_share"), "ratio"),
              fmt(u.values.get("gb50440_unit_days"), "count")] for u in top]))
    else:
        section.paragraphs.append("本月无误报单位。")
    fires = data.current.get("fires") or 0
    if fires:
        section.paragraphs.append(f"本月发生真实火警{fires:.0f}起，请各地逐起复盘。")
    return section


def _map(data: BriefingData) -> tuple[Section, list[Chart]]:
    ind = INDICATORS[MAP_KEY]
    section = Section("map", SECTION_TITLES["map"])
    of_site: dict[str, PlaceFigures] = {s: c for c in data.children for s in c.sites}
    points = [{"name": s.name, "lat": s.lat, "lon": s.lon,
               "value": (of_site[s.id].values.get(MAP_KEY) if s.id in of_site
                         else data.current.get(MAP_KEY)),
               "group": of_site[s.id].name if s.id in of_site else data.name}
              for s in data.sites]
    areas = [{"name": c.name, "value": c.values.get(MAP_KEY), "geometry": data.boundaries[c.key]}
             for c in data.children if c.key in data.boundaries]
    if not points and not areas:
        section.paragraphs.append("辖区场所均无坐标、下级无边界数据，未绘制分布图。")
        return section, []
    section.paragraphs.append(
        f"图中{'下级辖区按' if areas else '场所按所属下级的'}本月{ind.name_zh}着色"
        f"（颜色越深越多）；共{len(points)}处有坐标的场所。")
    section.charts.append("map")
    return section, [Chart("map", "map", f"辖区场所分布（按{ind.name_zh}着色）", ind.unit,
                           points=points, areas=areas)]


def build(data: BriefingData) -> Briefing:
    """The briefing of one jurisdiction and month from its figures."""
    for key in data.ranking_keys:
        if key not in INDICATORS:
            raise Refused(f"no indicator {key!r} to rank on")
    trend, trend_charts = _trend(data)
    ranking, ranking_charts = _ranking(data)
    hazards, hazard_charts = _hazards(data)
    devices, device_charts = _devices(data)
    map_section, map_charts = _map(data)
    sections = [_summary(data), trend, ranking, hazards, _compliance(data), devices,
                _events(data), map_section]
    return Briefing(data.jurisdiction_id, data.name, data.level, month_label(data.month),
                    data.timezone, f"{data.name}{month_zh(data.month)}消防安全形势分析简报",
                    data.complete, sections,
                    trend_charts + ranking_charts + hazard_charts + device_charts + map_charts)
