"""The briefing's content (assessment/briefing.py) from constructed figures: the sections in
order, the key figures with their change and target, the trend, the ranking with the best and
the last named, the notable events and the map; and the renderer's refusal without a CJK
font."""

# The expected Chinese text has full-width punctuation on purpose.
# ruff: noqa: RUF001

from __future__ import annotations

import os
from datetime import date

import pytest

from assessment.briefing import (
    SECTION_TITLES,
    BriefingData,
    PlaceFigures,
    SitePoint,
    add_months,
    build,
    change_text,
    fmt,
    parse_month,
)
from assessment.briefing_pdf import FontMissing, find_font
from assessment.indicators import KEYS
from firetower.refusal import Refused

MONTH = date(2026, 11, 1)


def _values(**given: float | None) -> dict[str, float | None]:
    out: dict[str, float | None] = dict.fromkeys(KEYS)
    out.update(given)
    return out


def _data(**overrides: object) -> BriefingData:
    children = [
        PlaceFigures("jurisdiction:11", "东街街道", _values(
            false_alarms=4, false_alarms_per_100_detectors_year=2.5, hazard_closure_rate=0.5,
            online_rate=0.9), ("a1",)),
        PlaceFigures("jurisdiction:12", "南门街道", _values(
            false_alarms=1, false_alarms_per_100_detectors_year=0.8, hazard_closure_rate=1.0,
            online_rate=0.99), ("b1",)),
        PlaceFigures("jurisdiction:13", "西湖街道", _values(), ()),
    ]
    data = BriefingData(
        jurisdiction_id=1, name="鼓楼区", level="district", month=MONTH, timezone="Asia/Shanghai",
        current=_values(fires=2, false_alarms=5, online_rate=0.95, integrity_rate=0.9,
                        hazards_found=8, hazard_closure_rate=0.75, hazards_overdue=1),
        previous=_values(fires=0, false_alarms=8, online_rate=0.93),
        trend=[(add_months(MONTH, -11 + i), _values(fires=float(i % 3), false_alarms=float(i)))
               for i in range(12)],
        children=children,
        units=[PlaceFigures("unit:1", "港湾大厦公司", _values(false_alarms=7, gb50440_unit_days=1)),
               PlaceFigures("unit:2", "榕城商场", _values(false_alarms=2)),
               PlaceFigures("unit:3", "无误报单位", _values(false_alarms=0))],
        gb50440_units=["港湾大厦公司"],
        targets={"false_alarms": 40, "online_rate": 0.98},
        year_to_date=_values(false_alarms=55, online_rate=0.95),
        sites=[SitePoint("a1", "港湾大厦", 26.08, 119.30), SitePoint("b1", "榕城商场", 26.07, 119.31)],
        boundaries={"jurisdiction:11": {"type": "Polygon", "coordinates": [
            [[119.29, 26.07], [119.31, 26.07], [119.31, 26.09], [119.29, 26.07]]]}},
        devices_in_service=40)
    for k, v in overrides.items():
        setattr(data, k, v)
    return data


def test_sections_in_order_with_their_titles() -> None:
    b = build(_data())
    assert [s.key for s in b.sections] == list(SECTION_TITLES)
    assert [s.title for s in b.sections] == list(SECTION_TITLES.values())
    assert b.title == "鼓楼区2026年11月消防安全形势分析简报" and b.month == "2026-11"
    # every chart a section names exists
    names = {c.name for c in b.charts}
    assert {n for s in b.sections for n in s.charts} <= names
    assert names == {"trend", "trend_rate", "ranking", "hazards", "devices", "map"}


def test_summary_figures_change_and_target() -> None:
    summary = build(_data()).sections[0]
    fa = next(f for f in summary.figures if f.key == "false_alarms")
    assert (fa.value, fa.previous, fa.value_text, fa.change_text) == (5, 8, "5", "↓3")
    # the year to date (55) against the year's target (40): lower is better, not met
    assert fa.met is False and fa.target_text == "40（年累计55，未达标）"
    online = next(f for f in summary.figures if f.key == "online_rate")
    assert online.change_text == "↑2.0个百分点" and online.met is False
    fires = next(f for f in summary.figures if f.key == "fires")
    assert fires.target is None and fires.target_text == "—"
    assert "共接报真实火警2起，误报5起（较上月↓3）" in summary.paragraphs[0]
    assert summary.paragraphs[1] == "未达年度目标的指标：误报数、设备在线率。"


def test_trend_covers_twelve_months() -> None:
    b = build(_data())
    trend = b.chart("trend")
    assert trend is not None
    assert trend.labels[0] == "2025-12" and trend.labels[-1] == "2026-11"
    assert trend.series[1].values == [float(i) for i in range(12)]
    assert b.sections[1].paragraphs[0] == (
        "近12个月累计真实火警12起、误报66起。误报最多的月份为2026-11（11起）。")


def test_ranking_names_the_best_and_the_last() -> None:
    ranking = build(_data()).sections[2]
    # false alarms per 100 detectors a year: lower is better; no figure last, unranked
    assert ranking.tables[0].rows == [["1", "南门街道", "0.80"], ["2", "东街街道", "2.50"],
                                      ["—", "西湖街道", "—"]]
    assert ranking.paragraphs[0] == ("每百只探测器年误报次数：南门街道最好（0.80），"
                                     "东街街道排名末位（2.50）。")
    # closure rate: higher is better
    assert ranking.tables[1].rows[0][:2] == ["1", "南门街道"]
    solo = build(_data(children=[]))
    assert solo.sections[2].paragraphs == ["无下级辖区或单位，不作排名。"]
    assert solo.chart("ranking") is None and solo.chart("devices") is None


def test_events_flag_the_units() -> None:
    events = build(_data()).sections[6]
    assert "港湾大厦公司" in events.paragraphs[0] and "超过5次" in events.paragraphs[0]
    # the largest false-alarm units, largest first; a unit with none is not listed
    assert [r[0] for r in events.tables[0].rows] == ["港湾大厦公司", "榕城商场"]
    quiet = build(_data(gb50440_units=[], units=[]))
    assert quiet.sections[6].paragraphs[:2] == ["本月无单日设备误报超过5次的单位（GB 50440）。",
                                                "本月无误报单位。"]


def test_map_colours_sites_by_their_child() -> None:
    b = build(_data())
    m = b.chart("map")
    assert m is not None
    assert [(p["name"], p["value"], p["group"]) for p in m.points] == [
        ("港湾大厦", 4, "东街街道"), ("榕城商场", 1, "南门街道")]
    assert [a["name"] for a in m.areas] == ["东街街道"]
    bare = build(_data(sites=[], boundaries={}))
    assert bare.chart("map") is None
    assert bare.sections[7].paragraphs == ["辖区场所均无坐标、下级无边界数据，未绘制分布图。"]


def test_a_month_not_over_says_so() -> None:
    b = build(_data(complete=False, as_of="2026-11-20"))
    assert b.sections[0].paragraphs[0].startswith("2026年11月（截至2026-11-20，本月尚未结束）")


def test_formats_months_and_refusals() -> None:
    assert fmt(None, "ratio") == "—" and fmt(0.987, "ratio") == "98.7%"
    assert fmt(30, "seconds") == "30.0秒" and fmt(600, "seconds") == "10.0分钟"
    assert change_text(3, 3, "count") == "持平" and change_text(None, 3, "count") == "—"
    assert parse_month("2026-02") == date(2026, 2, 1)
    assert add_months(date(2026, 1, 1), -1) == date(2025, 12, 1)
    for bad in ("2026-13", "2026-1", "26-01", "1999-12"):
        with pytest.raises(Refused):
            parse_month(bad)
    with pytest.raises(Refused):
        build(_data(ranking_keys=("no_such",)))
    # the content is JSON
    assert build(_data()).to_json()["sections"][0]["figures"][0]["key"] == "fires"


def test_no_cjk_font_is_refused_clearly() -> None:
    with pytest.raises(FontMissing, match="fonts-wqy-microhei"):
        find_font({"FIRETOWER_BRIEFING_FONT": "/no/such/font.ttc"})
    latin = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
    if os.path.exists(latin):
        with pytest.raises(FontMissing, match="no Chinese glyphs"):
            find_font({"FIRETOWER_BRIEFING_FONT": latin})
