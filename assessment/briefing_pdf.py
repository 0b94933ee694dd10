"""The briefing as a PDF with charts, and its charts as SVG for the web page
(docs/assessment.md, "Briefings").

- PDF: reportlab (BSD) lays out the sections of `assessment.briefing.Briefing`: the title, the
  paragraphs, the key figures (value, previous month, change, target), the tables and the
  charts;
- charts: matplotlib (PSF-style licence, Agg backend, no pyplot state) draws the trends, the
  rankings and the map (sites as points, children's boundaries as a choropleth);
- Chinese text needs a CJK TrueType font: FIRETOWER_BRIEFING_FONT, else the first of
  `FONT_CANDIDATES` that exists (Debian's fonts-wqy-microhei, installed by `make fonts`). With
  none, `find_font` raises `FontMissing` rather than print boxes for every character.
  reportlab embeds TrueType outlines only: CFF-based OpenType fonts (Noto Sans CJK's .ttc/.otf)
  are refused with the same error.
"""

# The Chinese text uses full-width punctuation (full-width commas, brackets, colons) on purpose.
# ruff: noqa: RUF001

from __future__ import annotations

import io
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assessment.briefing import Briefing, Chart, Section, Table

FONT_ENV = "FIRETOWER_BRIEFING_FONT"
FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
)
FONT_NAME = "FiretowerCJK"
_PROBE = "简报火警"   # characters the font must have
_lock = threading.Lock()
_registered: dict[str, str] = {}   # font path -> matplotlib family name


class FontMissing(RuntimeError):
    """No usable CJK TrueType font: the briefing is not generated."""


@dataclass(frozen=True)
class Font:
    path: str
    family: str   # matplotlib's name of it


def find_font(env: dict[str, str] | None = None) -> Font:
    """The CJK font of the briefings, registered with reportlab and matplotlib; FontMissing
    with what to do when there is none."""
    env = dict(os.environ) if env is None else env
    chosen = env.get(FONT_ENV) or ""
    candidates = [chosen] if chosen else list(FONT_CANDIDATES)
    problems = []
    for path in candidates:
        if not Path(path).is_file():
            problems.append(f"{path}: no such file")
            continue
        try:
            return _register(path)
        except FontMissing as exc:
            problems.append(str(exc))
    raise FontMissing(
        "no CJK TrueType font for the briefings (" + "; ".join(problems) + "): install "
        "fonts-wqy-microhei (`make fonts`) or set " + FONT_ENV + " to a TrueType .ttf/.ttc "
        "with Chinese glyphs")


def _register(path: str) -> Font:
    from matplotlib import font_manager
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    with _lock:
        if path in _registered:
            return Font(path, _registered[path])
        try:
            ttf = TTFont(FONT_NAME, path, subfontIndex=0)
        except Exception as exc:  # reportlab: TTFError, postscript outlines, bad file
            raise FontMissing(f"{path}: {exc}") from None
        missing = [ch for ch in _PROBE if ord(ch) not in ttf.face.charToGlyph]
        if missing:
            raise FontMissing(f"{path}: has no Chinese glyphs ({''.join(missing)})")
        pdfmetrics.registerFont(ttf)
        font_manager.fontManager.addfont(path)
        family = font_manager.FontProperties(fname=path).get_name()
        _registered[path] = family
        return Font(path, family)


# -- charts -----------------------------------------------------------------------------------

_COLORS = ("#c0392b", "#2471a3", "#229954", "#b9770e")


def _axis_text(unit: str) -> str:
    return {"ratio": "%", "count": "起/处", "per_100_detectors_per_year": "次/百只·年",
            "seconds": "秒"}.get(unit, "")


def _scaled(values: list[float | None], unit: str) -> list[float]:
    k = 100.0 if unit == "ratio" else 1.0
    return [float("nan") if v is None else v * k for v in values]


def _draw(chart: Chart, font: Font, fmt_name: str) -> bytes:
    from matplotlib import rc_context
    from matplotlib.figure import Figure

    wide = chart.kind == "map"
    with rc_context({"font.family": font.family, "axes.unicode_minus": False,
                     "svg.fonttype": "path", "font.size": 9}):
        fig = Figure(figsize=(7.0, 4.6 if wide else 3.2), dpi=150)
        ax = fig.add_subplot()
        if chart.kind == "line":
            for i, s in enumerate(chart.series):
                ax.plot(chart.labels, _scaled(s.values, chart.unit), marker="o",
                        color=_COLORS[i % len(_COLORS)], label=s.name)
            ax.tick_params(axis="x", labelrotation=45)
        elif chart.kind == "bars":
            _bars(ax, chart)
        else:
            _map(fig, ax, chart)
        ax.set_title(chart.title)
        if chart.kind != "map":
            ax.set_ylabel(_axis_text(chart.unit))
            ax.grid(axis="y", alpha=0.3)
            if len(chart.series) > 1:
                ax.legend(loc="upper left", fontsize=8)
        fig.tight_layout()
        out = io.BytesIO()
        fig.savefig(out, format=fmt_name, metadata=_metadata(fmt_name))
        return out.getvalue()


def _metadata(fmt_name: str) -> dict[str, Any]:
    # no creation date: the same content draws the same bytes
    return {"Date": None} if fmt_name == "svg" else {}


def _bars(ax: Any, chart: Chart) -> None:
    n = max(1, len(chart.series))
    width = 0.8 / n
    xs = list(range(len(chart.labels)))
    for i, s in enumerate(chart.series):
        ax.bar([x + (i - (n - 1) / 2) * width for x in xs], _scaled(s.values, chart.unit),
               width=width, color=_COLORS[i % len(_COLORS)], label=s.name)
    ax.set_xticks(xs)
    ax.set_xticklabels(chart.labels, rotation=45 if len(chart.labels) > 4 else 0,
                       ha="right" if len(chart.labels) > 4 else "center")


def _rings(geometry: dict[str, Any]) -> list[list[list[float]]]:
    coords = geometry.get("coordinates") or []
    if geometry.get("type") == "Polygon":
        return [coords[0]] if coords else []
    if geometry.get("type") == "MultiPolygon":
        return [poly[0] for poly in coords if poly]
    return []


def _map(fig: Any, ax: Any, chart: Chart) -> None:
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.patches import Polygon

    values = [float(x["value"]) for x in chart.areas + chart.points if x.get("value") is not None]
    norm = Normalize(vmin=0.0, vmax=max([1.0, *values]))
    cmap = colormaps["OrRd"]
    for area in chart.areas:
        v = area.get("value")
        for ring in _rings(area["geometry"]):
            ax.add_patch(Polygon([(p[0], p[1]) for p in ring], closed=True,
                                 facecolor="#eeeeee" if v is None else cmap(norm(v)),
                                 edgecolor="#555555", linewidth=0.8))
            xs = [p[0] for p in ring]
            ys = [p[1] for p in ring]
            ax.annotate(area["name"], ((min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2),
                        ha="center", fontsize=7)
    if chart.points:
        ax.scatter([p["lon"] for p in chart.points], [p["lat"] for p in chart.points],
                   c=[cmap(norm(p["value"])) if p.get("value") is not None else "#999999"
                      for p in chart.points], s=30, edgecolors="#333333", linewidths=0.5,
                   zorder=3)
    ax.autoscale_view()
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_xlabel("经度")
    ax.set_ylabel("纬度")
    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, shrink=0.8,
                 label=_axis_text(chart.unit))


def chart_svg(chart: Chart, font: Font) -> bytes:
    """A chart as SVG for the web page (glyphs drawn as paths: no font needed to view it)."""
    return _draw(chart, font, "svg")


def chart_png(chart: Chart, font: Font) -> bytes:
    return _draw(chart, font, "png")


# -- the PDF ----------------------------------------------------------------------------------

def render_pdf(briefing: Briefing, font: Font, *, generated: str = "") -> bytes:
    """The briefing as an A4 PDF: title, then each section with its text, key figures,
    tables and charts."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.platypus import Flowable, Image, Paragraph, SimpleDocTemplate, Spacer

    base = ParagraphStyle("body", fontName=FONT_NAME, fontSize=10.5, leading=16,
                          wordWrap="CJK", firstLineIndent=21)
    styles = {
        "title": ParagraphStyle("title", parent=base, fontSize=18, leading=26, alignment=1,
                                firstLineIndent=0, spaceAfter=6),
        "sub": ParagraphStyle("sub", parent=base, fontSize=9, alignment=1, firstLineIndent=0,
                              textColor=colors.grey, spaceAfter=10),
        "h": ParagraphStyle("h", parent=base, fontSize=13.5, leading=20, firstLineIndent=0,
                            spaceBefore=10, spaceAfter=4, textColor=colors.HexColor("#8b1a1a")),
        "body": base,
        "cell": ParagraphStyle("cell", parent=base, fontSize=8.5, leading=11,
                               firstLineIndent=0),
    }
    width = A4[0] - 36 * mm
    story: list[Flowable] = [
        Paragraph(_esc(briefing.title), styles["title"]),
        Paragraph(_esc(f"统计月份 {briefing.month}（{briefing.timezone}）"
                       + ("" if briefing.complete else "，本月尚未结束")
                       + (f"  生成于 {generated}" if generated else "")), styles["sub"]),
    ]
    for section in briefing.sections:
        story.append(Paragraph(_esc(section.title), styles["h"]))
        story += [Paragraph(_esc(p), styles["body"]) for p in section.paragraphs]
        if section.figures:
            story += [Spacer(1, 4), _figure_table(section, styles["cell"], width)]
        for table in section.tables:
            story += [Spacer(1, 4), _table(table, styles["cell"], width)]
        for name in section.charts:
            chart = briefing.chart(name)
            if chart is None:
                continue
            png = chart_png(chart, font)
            h = (4.6 if chart.kind == "map" else 3.2) / 7.0 * width
            story += [Spacer(1, 4), Image(io.BytesIO(png), width=width, height=h)]
    out = io.BytesIO()
    doc = SimpleDocTemplate(out, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm,
                            topMargin=16 * mm, bottomMargin=16 * mm, title=briefing.title,
                            author="Firetower", subject=f"{briefing.name} {briefing.month}",
                            invariant=1)
    doc.build(story, onFirstPage=_footer, onLaterPages=_footer)
    return out.getvalue()


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _footer(canvas: Any, doc: Any) -> None:
    from reportlab.lib.units import mm

    canvas.saveState()
    canvas.setFont(FONT_NAME, 8)
    canvas.drawCentredString(doc.pagesize[0] / 2, 9 * mm, f"— {doc.page} —")
    canvas.restoreState()


def _grid(rows: list[list[str]], style: Any, widths: list[float]) -> Any:
    from reportlab.lib import colors
    from reportlab.platypus import Paragraph, TableStyle
    from reportlab.platypus import Table as PdfTable

    cells = [[Paragraph(_esc(c), style) for c in row] for row in rows]
    t = PdfTable(cells, colWidths=widths, repeatRows=1)
    t.setStyle(TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.4, colors.HexColor("#999999")),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#f2dede")),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
    ]))
    return t


def _figure_table(section: Section, style: Any, width: float) -> Any:
    rows = [["指标", "本月", "上月", "较上月", "年度目标（年累计）"]]
    rows += [[f.name, f.value_text, f.previous_text, f.change_text, f.target_text]
             for f in section.figures]
    return _grid(rows, style, [width * w for w in (0.28, 0.14, 0.14, 0.16, 0.28)])


def _table(table: Table, style: Any, width: float) -> Any:
    n = max(1, len(table.columns))
    first = 0.34 if n > 2 else 0.5
    rest = (1 - first) / max(1, n - 1)
    widths = [width * first] + [width * rest] * (n - 1)
    if table.columns and table.columns[0] == "名次":
        widths = [width * 0.12, width * 0.5, width * 0.38][:n]
    return _grid([table.columns, *table.rows], style, widths)

