"""The city view's pure logic (api/static/city.js, FiretowerCity) run in Node: the worst open
alarm of each site ignores test-mode and closed alarms, and the map's per-jurisdiction circles
hold each site once, under the right node, with its alarms counted."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

CITY = Path(__file__).resolve().parents[2] / "api" / "static" / "city.js"


def call(fn: str, *args: Any) -> Any:
    node = shutil.which("node")
    assert node, "Node.js is needed for the console's logic tests (make setup installs npm)"
    script = (f"const c = require({json.dumps(str(CITY))});"
              f"const out = c[{json.dumps(fn)}](...{json.dumps(args)});"
              # Sets as lists, Maps as objects
              "process.stdout.write(JSON.stringify(out, (k, v) => v instanceof Set ? [...v]"
              " : v instanceof Map ? Object.fromEntries(v) : v));")
    out = subprocess.run([node, "-e", script], capture_output=True, text=True, timeout=30,
                         check=True)
    return json.loads(out.stdout)


def _node(id_: int, path: list[int], level: str, **extra: Any) -> dict[str, Any]:
    return {"id": id_, "parent_id": path[-2] if len(path) > 1 else None, "level": level,
            "code": f"c{id_}", "name": f"n{id_}", "center_lat": None, "center_lon": None,
            "path": [{"id": p} for p in path], **extra}


def test_worst_alarm_per_site() -> None:
    alarms = [{"site_id": "a", "class": "fault", "state": "active", "mode": "normal"},
              {"site_id": "a", "class": "fire", "state": "active", "mode": "test"},
              {"site_id": "a", "class": "supervisory", "state": "acknowledged", "mode": "normal"},
              {"site_id": "b", "class": "fire", "state": "closed", "mode": "normal"},
              {"site_id": "b", "class": "offline", "state": "active", "mode": "normal"},
              {"site_id": None, "class": "fire", "state": "active", "mode": "normal"}]
    assert call("worstBySite", alarms) == {"a": "supervisory", "b": "offline"}


def test_clusters_per_district() -> None:
    nodes = [_node(1, [1], "city"), _node(2, [1, 2], "district", center_lat=26.0, center_lon=119.0),
             _node(3, [1, 3], "district"), _node(4, [1, 2, 4], "grid"),
             _node(5, [1, 3, 5], "grid")]
    sites = [{"id": "a", "jurisdiction_id": 4, "latitude": 26.1, "longitude": 119.1},
             {"id": "b", "jurisdiction_id": 5, "latitude": 27.0, "longitude": 120.0},
             {"id": "c", "jurisdiction_id": 5, "latitude": 27.2, "longitude": 120.2},
             {"id": "d", "jurisdiction_id": None, "latitude": 1, "longitude": 1}]
    alarms = [{"site_id": "b", "class": "fire", "state": "active", "mode": "normal"},
              {"site_id": "c", "class": "fault", "state": "active", "mode": "normal"},
              {"site_id": "c", "class": "fault", "state": "active", "mode": "normal"}]
    out = {c["node"]["id"]: c for c in call("clusters", nodes, sites, alarms)}
    assert set(out) == {2, 3}
    assert [s["id"] for s in out[2]["sites"]] == ["a"] and out[2]["worst"] is None
    assert (out[2]["lat"], out[2]["lon"]) == (26.0, 119.0)  # its own centre
    assert [s["id"] for s in out[3]["sites"]] == ["b", "c"]
    assert out[3]["worst"] == "fire" and out[3]["counts"] == {"fire": 1, "fault": 2}
    assert out[3]["lat"] == pytest.approx(27.1)  # the mean of its sites


def test_tree_children_and_subtree() -> None:
    nodes = [_node(2, [1, 2], "district"), _node(4, [1, 2, 4], "grid"),
             _node(6, [1, 2, 6], "grid")]
    assert sorted(call("subtreeIds", nodes, 2)) == [2, 4, 6]
    assert sorted(call("subtreeIds", nodes, 4)) == [4]
    # node 1 is not visible: node 2 is a root of what the caller sees
    kids = call("children", nodes)
    assert [n["id"] for n in kids["null"]] == [2]
    assert [n["id"] for n in kids["2"]] == [4, 6]
    assert [n["id"] for n in call("clusterNodes", nodes)] == [4, 6]
