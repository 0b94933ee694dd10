"""docs/performance.md is exactly what `firetower bench report` makes of its template and the
kept records (issue 14: the page regenerates from the records byte for byte)."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from bench import report
from bench.records import RECORDS_DIR


def _args(tmp_path: Path, **over: object) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    report.configure(p)
    args = p.parse_args([])
    args.output = tmp_path / "performance.md"
    for k, v in over.items():
        setattr(args, k, v)
    return args


def test_the_page_regenerates_byte_for_byte(tmp_path: Path) -> None:
    args = _args(tmp_path)
    assert report.main(args) == 0
    assert args.output.read_bytes() == report.OUTPUT.read_bytes(), (
        "docs/performance.md is not what `firetower bench report` makes of "
        "docs/performance.md.in and bench/records/: edit the template, then regenerate")


def test_check_mode_tells_a_stale_page(tmp_path: Path) -> None:
    assert report.main(_args(tmp_path, output=report.OUTPUT, check=True)) == 0
    stale = tmp_path / "stale.md"
    stale.write_bytes(report.OUTPUT.read_bytes().replace(b"|", b"!", 1))
    assert report.main(_args(tmp_path, output=stale, check=True)) == 1


def test_every_record_the_page_uses_is_kept() -> None:
    """A figure comes from a record: each record the template names is a file of
    bench/records/ (deleting one breaks the page), and the records section lists them all."""
    template = report.TEMPLATE.read_text()
    ids = report.record_ids(template)
    benchmarks = {rid.rsplit("-", 1)[0] for rid in ids}
    assert {"ingest", "alerting", "webhooks", "e2e", "broker-kill"} <= benchmarks
    page = report.OUTPUT.read_text()
    for rid in ids:
        assert (RECORDS_DIR / f"{rid}.json").exists(), rid
        assert f"| `{rid}` |" in page.split("## Records", 1)[1], rid


def test_a_figure_follows_its_record(tmp_path: Path) -> None:
    """Change a figure in a copy of a record the page uses: the page changes with it."""
    template = report.TEMPLATE.read_text()
    rid = next(r for r in report.record_ids(template) if r.startswith("ingest-"))
    copy = tmp_path / "records"
    shutil.copytree(RECORDS_DIR, copy)
    path = copy / f"{rid}.json"
    data = json.loads(path.read_text())
    data["results"]["ingest"]["msgs_per_s"] = 123_457
    path.write_text(json.dumps(data))
    assert "123,457 msg/s" in report.render(template, copy)
    assert "123,457 msg/s" not in report.render(template, RECORDS_DIR)


def test_a_missing_record_or_figure_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(report.ReportError, match="no record"):
        report.render("{{ingest-19700101T000000Z:results.x}}", RECORDS_DIR)
    rid = sorted(p.stem for p in RECORDS_DIR.glob("*.json"))[0]
    with pytest.raises(report.ReportError, match=r"no 'results\.nothing'"):
        report.render(f"{{{{{rid}:results.nothing}}}}", RECORDS_DIR)
    with pytest.raises(report.ReportError, match="no table"):
        report.render(f"{{{{table nothing {rid}}}}}", RECORDS_DIR)
    args = _args(tmp_path, template=tmp_path / "t.md.in")
    args.template.write_text("{{ingest-19700101T000000Z:results.x}}\n")
    assert report.main(args) == 2 and not args.output.exists()


@pytest.mark.parametrize(("value", "spec", "text"), [
    (23619, "", "23,619"), (0.8312, ".2f", "0.83"), (None, "", report.DASH), (True, "", "yes"),
    (29999, "goal>=30000", "not met"), (30000, "goal>=30000", "met"),
    (50.0, "goal<=50", "met"), (50.1, "goal<=50", "not met"), (1234.5, ",.0f", "1,234"),
], ids=["int", "spec", "none", "bool", "below", "at", "max-at", "max-above", "rounded"])
def test_format(value: object, spec: str, text: str) -> None:
    assert report.fmt(value, spec) == text
