"""Demo site details and floor plans (no database): deterministic, valid for the API, every
device placed on a floor of its site, inside the building and inside a room of its kind."""

from __future__ import annotations

from xml.etree import ElementTree

from hypothesis import given, settings
from hypothesis import strategies as st

from api.schemas import FloorCreate, SiteCreate
from simulators import floorplan
from simulators.fleet import build_fleet
from simulators.sites import site_details

SVG = "{http://www.w3.org/2000/svg}"


def test_same_seed_same_sites_and_plans() -> None:
    a = site_details(build_fleet(4, 3, 10), build_fleet(4, 3, 10).sites[2])
    b = site_details(build_fleet(4, 3, 10), build_fleet(4, 3, 10).sites[2])
    assert a == b
    c = site_details(build_fleet(5, 3, 10), build_fleet(5, 3, 10).sites[2])
    assert c.floors[0].svg != a.floors[0].svg and c.contacts != a.contacts


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31), st.integers(1, 3), st.integers(0, 20))
def test_every_device_has_a_spot_on_a_plan_of_its_site(seed: int, sites: int,
                                                        per_kind: int) -> None:
    fleet = build_fleet(seed, sites, per_kind)
    for site in fleet.sites:
        det = site_details(fleet, site)
        SiteCreate(id=site.id, name=site.name, address=det.address, latitude=det.latitude,
                   longitude=det.longitude, contacts=det.contacts, fire_plan=det.fire_plan)
        devices = fleet.at_site(site.id)
        assert [f.level for f in det.floors] == sorted({d.floor for d in devices})
        placed: dict[str, tuple[float, float]] = {}
        for f in det.floors:
            FloorCreate(id=f.id, name=f.name, level=f.level)
            root = ElementTree.fromstring(f.svg)
            w, h = float(root.get("width") or 0), float(root.get("height") or 0)
            assert root.get("viewBox") == f"0 0 {w:g} {h:g}"
            assert not list(root.iter(f"{SVG}script")) and b"href" not in f.svg
            for did, (x, y) in f.spots.items():
                assert fleet.get(did).floor == f.level
                px, py = x * w, y * h
                assert floorplan.LEFT < px < floorplan.RIGHT
                assert floorplan.TOP < py < floorplan.BOTTOM
            placed.update(f.spots)
        assert set(placed) == {d.id for d in devices}
        assert len(set(placed.values())) == len(placed)   # no two markers on one spot


def test_a_device_sits_in_the_room_its_location_names() -> None:
    fleet = build_fleet(1, 2, 10)
    site = fleet.sites[0]
    det = site_details(fleet, site)
    ground = det.floors[0]
    texts = [t for t in ElementTree.fromstring(ground.svg).iter(f"{SVG}text")]
    rects = [r for r in ElementTree.fromstring(ground.svg).iter(f"{SVG}rect")]
    boxes = {}
    for t in texts:   # each room's name is drawn centred in its top band
        tx, ty = float(t.get("x") or 0), float(t.get("y") or 0)
        for r in rects:
            x, y = float(r.get("x") or 0), float(r.get("y") or 0)
            rw, rh = float(r.get("width") or 0), float(r.get("height") or 0)
            if abs(x + rw / 2 - tx) < 1 and y < ty < y + floorplan.LABEL_BAND and rh > 100:
                boxes.setdefault((t.text or "").lower(), []).append((x, y, rw, rh))
    panel = fleet.panel_of(site.id)
    px, py = ground.spots[panel.id]
    (x, y, rw, rh), = boxes["fire control room"]
    assert x < px * 1000 < x + rw and y + floorplan.LABEL_BAND <= py * 600 < y + rh
    for d in fleet.at_site(site.id):
        room = floorplan.room_of(d)
        if d.floor != 0 or room in floorplan.STRUCTURAL:
            continue
        dx, dy = ground.spots[d.id]
        inside = [b for name, bs in boxes.items() if name.startswith(room) for b in bs
                  if b[0] < dx * 1000 < b[0] + b[2] and b[1] < dy * 600 < b[1] + b[3]]
        assert inside, (d.id, d.location)
