"""The console's pure logic (api/static/board.js), run in Node: the label table covers every
rule id, state, verdict, class, mode and event kind the centre produces, in English and
Chinese; actors and evidence read as words and units; and the board's grouping keeps every
alarm exactly once, puts each inhibited alarm under its cause, and makes an incident only of
fires of one site whose times overlap (Hypothesis over random boards)."""

from __future__ import annotations

import importlib
import json
import pkgutil
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import alerting.rules
from alerting.rules.panel import CLASS_OF
from dispatch.forwarding import _REASONS
from firetower.alarms import AlarmClass, AlarmState, Mode, Trigger, Verdict
from firetower.model import DeviceKind, Lifecycle

STATIC = Path(__file__).resolve().parents[2] / "api" / "static"
LABELS = json.loads((STATIC / "labels.json").read_text())
# Reads one JSON call per line, answers one JSON result per line.
RUNNER = """
const board = require(process.argv[1]);
const labels = require(process.argv[2]);
const rl = require("readline").createInterface({ input: process.stdin });
rl.on("line", (line) => {
  const { fn, args } = JSON.parse(line);
  let out;
  const withLabels = ["t", "label", "actorLabel", "evidenceLines"].includes(fn);
  try { out = { ok: board[fn](...(withLabels ? [labels, ...args] : args)) }; }
  catch (err) { out = { error: String(err && err.stack) }; }
  process.stdout.write(JSON.stringify(out) + "\\n");
});
"""


class Node:
    def __init__(self) -> None:
        node = shutil.which("node")
        assert node, "Node.js is needed to test api/static/board.js (apt-get install nodejs)"
        self.proc = subprocess.Popen(
            [node, "-e", RUNNER, str(STATIC / "board.js"), str(STATIC / "labels.json")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def __call__(self, fn: str, *args: Any) -> Any:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps({"fn": fn, "args": list(args)}) + "\n")
        self.proc.stdin.flush()
        out = json.loads(self.proc.stdout.readline())
        assert "error" not in out, out["error"]
        return out["ok"]

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(5)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()


@pytest.fixture(scope="module")
def js() -> Iterator[Node]:
    node = Node()
    yield node
    node.close()


# -- labels ---------------------------------------------------------------------------------
def _rule_ids() -> set[str]:
    """Every alarm type the rule engine raises: the rule modules' id constants, the panel's
    categories, offline and clock."""
    ids = {f"panel.{cat.value}" for cat in CLASS_OF}
    for info in pkgutil.iter_modules(alerting.rules.__path__):
        module = importlib.import_module(f"alerting.rules.{info.name}")
        ids |= {v for k, v in vars(module).items() if k.isupper() and isinstance(v, str)
                and (v in ("offline", "clock") or (
                    "." in v and v.split(".")[0] in ("smoke", "heat", "sprinkler", "panel",
                                                     "battery")))}
    return ids


def test_both_languages_have_the_same_keys() -> None:
    assert set(LABELS["en"]) == set(LABELS["zh"])
    assert all(v.strip() for lang in LABELS.values() for v in lang.values())


def test_every_rule_state_verdict_class_mode_event_and_kind_has_a_label() -> None:
    rules = _rule_ids()
    assert {"smoke.threshold", "panel.fire", "offline", "sprinkler.waterflow"} <= rules
    wanted = ({f"rule.{r}" for r in rules} | {f"state.{s.value}" for s in AlarmState
                                              if s.value != "none"}
              | {f"verdict.{v.value}" for v in Verdict} | {f"class.{c.value}" for c in AlarmClass}
              | {f"mode.{m.value}" for m in Mode} | {f"event.{t.value}" for t in Trigger}
              | {f"event.{k}" for k in ("update", "comment", "assign", "forward", "mode")}
              | {f"kind.{k.value}" for k in DeviceKind}
              | {f"lifecycle.{x.value}" for x in Lifecycle}
              | {f"basis.{b}" for b in _REASONS} | {"actor.engine", "actor.dispatch",
                                                    "actor.operator"})
    for lang in ("en", "zh"):
        assert wanted - set(LABELS[lang]) == set(), lang


@pytest.mark.parametrize(("lang", "actor", "text"), [
    ("en", "operator:li.wei", "Operator li.wei"), ("zh", "operator:li.wei", "值班员 li.wei"),
    ("en", "engine", "Rule engine"), ("zh", "dispatch", "转发服务"),
    ("en", "someone-else", "someone-else")])
def test_actor_labels(js: Node, lang: str, actor: str, text: str) -> None:
    assert js("actorLabel", lang, actor) == text


def test_rule_labels_fall_back_to_the_raw_id(js: Node) -> None:
    assert js("label", "zh", "rule", "smoke.threshold") == "烟雾浓度超过报警阈值"
    assert js("label", "en", "verdict", "true_fire") == "True fire"
    assert js("label", "en", "rule", "rule.from.the.future") == "rule.from.the.future"


@pytest.mark.parametrize(("saved", "browser", "lang"), [
    (None, ["zh-CN", "en"], "zh"), (None, ["de-DE", "en-GB"], "en"), ("en", ["zh-TW"], "en"),
    ("zh", [], "zh"), ("fr", ["fr"], "en")])
def test_language_from_the_browser_unless_chosen(js: Node, saved: str | None,
                                                 browser: list[str], lang: str) -> None:
    assert js("pickLang", saved, browser) == lang


def test_evidence_in_words_and_units(js: Node) -> None:
    smoke = {"rule": "smoke.threshold", "for_s": 10, "obscuration_pct_per_m": 4.237,
             "alarm_pct_per_m": 3.0}  # as stored (jsonb orders keys by length): measured first
    assert js("evidenceLines", "en", smoke) == [
        ["Smoke obscuration", "4.24 %/m (alarm level 3 %/m)"], ["held for", "10 s"]]
    assert js("evidenceLines", "zh", smoke)[0] == ["烟雾遮光率", "4.24 %/m (报警阈值 3 %/m)"]
    flow = {"rule": "sprinkler.waterflow", "flow_lps": 1.8, "pressure_kpa": 412.3}
    assert js("evidenceLines", "en", flow) == [["Water flow", "1.8 L/s"],
                                               ["Pressure", "412 kPa"]]
    panel = {"rule": "panel.fire", "category": "fire", "zone": 3, "point": 12,
             "component": "smoke_detector", "location": "3F east"}
    assert js("evidenceLines", "en", panel) == [
        ["Signal", "Fire"], ["Zone", "3"], ["Point", "12"], ["Component", "smoke_detector"],
        ["Location", "3F east"]]


# -- grouping -------------------------------------------------------------------------------
T0 = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def alarm(i: int, cls: str = "offline", site: str = "s1", device: str | None = None,
          state: str = "active", at: int = 0, cleared: int | None = None,
          inhibited_by: str | None = None, mode: str = "normal") -> dict[str, Any]:
    return {"id": i, "class": cls, "site_id": site, "device_id": device or f"d{i}",
            "state": state, "mode": mode, "type": cls, "inhibited_by": inhibited_by,
            "raised_at": (T0 + timedelta(seconds=at)).isoformat(),
            "cleared_at": None if cleared is None else (T0 + timedelta(seconds=cleared)).isoformat()}


def test_offline_panel_with_30_children_is_one_row_cause_first(js: Node) -> None:
    board = [alarm(i, device=f"smk-{i}", at=i, inhibited_by="offline:pnl-1")
             for i in range(2, 32)] + [alarm(1, device="pnl-1", at=0)]
    board.append(alarm(40, "fault", "s2", at=5))
    rows = js("groupBoard", board)
    assert [(r["kind"], r["cls"], len(r["members"])) for r in rows] == [
        ("single", "fault", 1), ("cause", "offline", 31)]
    assert rows[1]["head"]["device_id"] == "pnl-1"
    assert rows[1]["members"][0]["device_id"] == "pnl-1"  # the cause first


def test_floods_are_one_row_per_site_and_class(js: Node) -> None:
    board = [alarm(i, "fault", "s1", at=i) for i in range(1, 6)]
    board += [alarm(i, "fault", "s2", at=i) for i in range(6, 8)]  # 2 < FLOOD_MIN
    board += [alarm(9, "offline", "s1", device="pnl-9", at=0),
              alarm(10, "offline", "s1", at=1, inhibited_by="offline:pnl-9"),
              alarm(11, "offline", "s1", at=9)]
    rows = js("groupBoard", board)
    kinds = [(r["kind"], r["cls"], r["site_id"], len(r["members"])) for r in rows]
    assert kinds == [("single", "fault", "s2", 1), ("single", "fault", "s2", 1),  # newest first
                     ("flood", "fault", "s1", 5), ("flood", "offline", "s1", 3)]
    offline = rows[3]["members"]
    assert [a["id"] for a in offline] == [9, 10, 11]  # cause, its child, then the rest


def test_an_incident_of_five_fires_is_one_row_and_one_popup(js: Node) -> None:
    board = [alarm(i, "fire", "s1", at=i * 20) for i in range(1, 6)]
    board.append(alarm(6, "fire", "s2", at=30))
    board.append(alarm(7, "fire", "s1", at=10, mode="test"))  # a test is no part of it
    rows = js("groupBoard", board)
    assert sorted((r["kind"], r["site_id"], len(r["members"])) for r in rows) == [
        ("incident", "s1", 5), ("single", "s1", 1), ("single", "s2", 1)]
    pops = js("popups", rows)
    assert sorted(len(p["members"]) for p in pops) == [1, 5]  # the test fire does not pop up


def test_fires_apart_in_time_are_separate_incidents(js: Node) -> None:
    board = [alarm(1, "fire", at=0, cleared=60), alarm(2, "fire", at=30, cleared=90),
             alarm(3, "fire", at=200), alarm(4, "fire", at=300)]
    groups = js("incidents", board)
    assert [[a["id"] for a in g] for g in groups] == [[1, 2], [3, 4]]


CLASSES = ["fire", "supervisory", "fault", "offline", "early_warning"]
STATES = ["active", "acknowledged", "verified", "cleared_unack", "cleared"]


@st.composite
def boards(draw: st.DrawFn) -> list[dict[str, Any]]:
    n = draw(st.integers(0, 40))
    out = []
    for i in range(1, n + 1):
        cls = draw(st.sampled_from(CLASSES))
        at = draw(st.integers(0, 600))
        cleared = draw(st.one_of(st.none(), st.integers(at, 900)))
        inhibitor = draw(st.one_of(st.none(), st.integers(1, max(1, n)).map(lambda j: f"offline:d{j}")))
        out.append(alarm(i, cls, draw(st.sampled_from(["s1", "s2", None])),
                         state=draw(st.sampled_from(STATES)), at=at, cleared=cleared,
                         inhibited_by=inhibitor if cls == "offline" else None,
                         mode=draw(st.sampled_from(["normal", "normal", "test"]))))
    return out


def _span(a: dict[str, Any]) -> tuple[datetime, datetime]:
    end = datetime.max.replace(tzinfo=UTC) if a["cleared_at"] is None else \
        datetime.fromisoformat(a["cleared_at"])
    return datetime.fromisoformat(a["raised_at"]), end


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(board=boards())
def test_grouping_properties(js: Node, board: list[dict[str, Any]]) -> None:
    rows = js("groupBoard", board)
    ids = [a["id"] for r in rows for a in r["members"]]
    assert sorted(ids) == sorted(a["id"] for a in board)  # each alarm exactly once
    assert [r["priority"] for r in rows] == sorted(r["priority"] for r in rows)
    row_of = {a["id"]: i for i, r in enumerate(rows) for a in r["members"]}
    by_device = {}
    for a in board:
        if a["class"] == "offline":
            by_device.setdefault(a["device_id"], []).append(a)
    for r in rows:
        assert r["members"][0]["id"] == r["head"]["id"]
        assert {a["class"] for a in r["members"]} == {r["cls"]}
        assert {a["site_id"] for a in r["members"]} == {r["site_id"]}
        if r["kind"] == "incident":
            assert r["cls"] == "fire" and len(r["members"]) >= 2
            assert len({a["mode"] == "normal" for a in r["members"]}) == 1
            spans = sorted(_span(a) for a in r["members"])
            end = spans[0][1]
            for start, stop in spans[1:]:  # a chain of overlapping times
                assert start <= end
                end = max(end, stop)
        if r["kind"] == "single" and r["cls"] == "fire":
            a = r["head"]
            for other in board:  # no overlapping fire of the same site and mode is apart
                if other["id"] != a["id"] and other["class"] == "fire" and \
                        other["site_id"] == a["site_id"] and \
                        (other["mode"] == "normal") == (a["mode"] == "normal"):
                    s1, e1 = _span(a)
                    s2, e2 = _span(other)
                    assert not (s1 <= e2 and s2 <= e1), (a, other)
    for a in board:  # an inhibited alarm sits in its cause's row, after it
        if not a["inhibited_by"]:
            continue
        causes = [c for c in by_device.get(a["inhibited_by"][8:], []) if c["id"] != a["id"]]
        if len(causes) == 1 and not causes[0]["inhibited_by"] and \
                causes[0]["site_id"] == a["site_id"]:
            cause = causes[0]
            assert row_of[a["id"]] == row_of[cause["id"]]
            members = [m["id"] for m in rows[row_of[a["id"]]]["members"]]
            assert members.index(cause["id"]) < members.index(a["id"])
    pops = js("popups", rows)
    fire_rows_with_active = [r for r in rows if r["cls"] == "fire" and any(
        m["state"] == "active" and m["mode"] == "normal" for m in r["members"])]
    assert len(pops) == len(fire_rows_with_active)
