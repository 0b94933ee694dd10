"""Fleet layout: ids, counts, parents, determinism."""

from __future__ import annotations

import pytest

from firetower.model import DeviceKind
from firetower.protocol import DEVICE_ID_RE
from simulators.fleet import build_fleet


def test_layout_and_ids() -> None:
    fleet = build_fleet(3, sites=5, per_kind=12)
    assert len(fleet) == 5 * (1 + 3 * 12)
    assert len(fleet.sites) == 5
    assert fleet.get("s0003-smk-0011").kind is DeviceKind.SMOKE_DETECTOR
    assert fleet.get("s0000-pnl-0000").kind is DeviceKind.ALARM_PANEL
    assert len({d.id for d in fleet}) == len(fleet)
    for d in fleet:
        assert DEVICE_ID_RE.fullmatch(d.id)
        assert d.id.startswith(d.site_id + "-")
        if d.kind is DeviceKind.ALARM_PANEL:
            assert d.parent_id is None
            continue
        assert d.parent_id == fleet.panel_of(d.site_id).id   # sprinkler sensors too
        assert d.zone == d.floor + 1
        if d.kind is not DeviceKind.SPRINKLER_PRESSURE:
            assert d.point > 0
    assert len(fleet.children("s0002-pnl-0000")) == 36
    assert len(fleet.detectors_of("s0002-pnl-0000")) == 24


def test_same_seed_same_fleet() -> None:
    assert build_fleet(9, 3, 4) == build_fleet(9, 3, 4)
    assert build_fleet(9, 3, 4).sites != build_fleet(10, 3, 4).sites


def test_rejects_empty() -> None:
    with pytest.raises(ValueError):
        build_fleet(1, 0, 3)
