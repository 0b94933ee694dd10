"""What an operator needs to act on a demo site, generated from the fleet and its seed: a full
address, coordinates, the people to call, the fire plan (building, entrances, water sources,
hazards) and the floors with their plans and device spots (simulators/floorplan.py).

The values keep to what the API accepts and returns (api/schemas.py: `Contact`, `FirePlan`,
`PlanItem`, floor ids), so a demo site reads back through `/sites` like one entered by hand.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from firetower.model import DeviceKind
from simulators.fleet import Fleet, SimSite
from simulators.floorplan import FloorPlan, draw_floor

# A coastal city's districts (centre latitude, longitude) and postcodes: the demo's city.
CITY = "Shenzhen"
DISTRICTS = _DISTRICTS = (("Futian", 22.541, 114.055, "518000"), ("Luohu", 22.548, 114.131, "518001"),
              ("Nanshan", 22.531, 113.930, "518052"), ("Bao'an", 22.555, 113.883, "518101"),
              ("Longgang", 22.721, 114.247, "518116"), ("Yantian", 22.557, 114.237, "518081"))
_SURNAMES = ("Li", "Wang", "Zhang", "Liu", "Chen", "Yang", "Huang", "Zhao", "Wu", "Zhou",
             "Xu", "Sun", "Ma", "Zhu", "Hu", "Guo", "He", "Lin", "Luo", "Gao")
_GIVEN = ("Wei", "Fang", "Min", "Jing", "Lei", "Jun", "Yan", "Tao", "Ping", "Hui", "Qiang",
          "Xin", "Hao", "Ying", "Bo", "Lan", "Yun", "Jie", "Ning", "Kai")
_HAZARDS = {
    "Hospital": ("Medical oxygen store and manifold", "Oxygen cylinders; shut-off valve at the "
                 "manifold room door. Non-ambulant patients on the wards."),
    "Shopping Mall": ("Food court gas supply", "Natural gas to the food court kitchens; "
                      "isolation valve by the loading bay."),
    "Hotel": ("Kitchen gas supply", "Natural gas to the kitchen; sleeping guests at night."),
    "School": ("Science laboratory store", "Small quantities of flammable solvents and acids."),
    "Warehouse": ("High-bay racking", "Palletised plastics stored to 9 m; in-rack sprinklers."),
    "Factory": ("Solvent store", "Flammable liquids in a rated store; foam extinguishers."),
    "Residential Block": ("Electric bicycle parking", "Lithium-ion batteries charging on the "
                          "ground floor; residents asleep at night."),
    "Office Tower": ("Diesel generator", "Day tank of 1,000 L diesel in the plant room."),
}
_CONSTRUCTION = ("reinforced concrete frame", "steel frame with concrete floors",
                 "reinforced concrete shear walls")


@dataclass(frozen=True)
class SiteDetails:
    site_id: str
    address: str
    latitude: float
    longitude: float
    contacts: list[dict[str, str]]
    fire_plan: dict[str, Any]
    floors: list[FloorPlan]


def site_details(fleet: Fleet, site: SimSite) -> SiteDetails:
    """The site's details, the same for the same fleet (seed) every time."""
    rng = random.Random(f"site/{fleet.seed}/{site.id}")
    district, lat0, lon0, postcode = _DISTRICTS[rng.randrange(len(_DISTRICTS))]
    lat = round(lat0 + rng.uniform(-0.025, 0.025), 6)
    lon = round(lon0 + rng.uniform(-0.03, 0.03), 6)
    address = f"{site.address}, {district} District, {CITY} {postcode}"
    devices = fleet.at_site(site.id)
    levels = sorted({d.floor for d in devices})
    floors = [draw_floor(fleet.seed, site.id, site.name, level,
                         [d for d in devices if d.floor == level]) for level in levels]
    use = site.name.rsplit(" ", 1)[0]
    return SiteDetails(site.id, address, lat, lon, _contacts(rng, use),
                       _fire_plan(rng, site, use, floors, lat, lon, devices), floors)


def _person(rng: random.Random) -> str:
    return f"{_SURNAMES[rng.randrange(len(_SURNAMES))]} {_GIVEN[rng.randrange(len(_GIVEN))]}"


def _mobile(rng: random.Random) -> str:
    return f"+86 13{rng.randrange(10)} {rng.randrange(10_000):04d} {rng.randrange(10_000):04d}"


def _contacts(rng: random.Random, use: str) -> list[dict[str, str]]:
    desk = f"+86 755 {rng.randrange(2000, 9000):04d} {rng.randrange(10_000):04d}"
    domain = f"{use.lower().replace(' ', '')}{rng.randrange(10, 99)}.example.cn"
    return [
        {"name": "Fire control room (24 h)", "role": "Duty operator on site", "phone": desk,
         "email": ""},
        {"name": _person(rng), "role": "Fire safety manager (消防安全管理人)",
         "phone": _mobile(rng), "email": f"safety@{domain}"},
        {"name": _person(rng), "role": "Building manager", "phone": _mobile(rng),
         "email": f"facilities@{domain}"},
        {"name": _person(rng), "role": "Maintenance contractor, fire systems",
         "phone": _mobile(rng), "email": ""},
    ]


def _fire_plan(rng: random.Random, site: SimSite, use: str, floors: list[FloorPlan],
               lat: float, lon: float, devices: list[Any]) -> dict[str, Any]:
    ground = floors[0]
    g = ground.id

    def item(name: str, description: str, mark: str | None = None, *, floor: FloorPlan = ground,
             north_m: float = 0.0, east_m: float = 0.0) -> dict[str, Any]:
        out: dict[str, Any] = {"name": name, "description": description,
                               "latitude": round(lat + north_m / 111_000.0, 6),
                               "longitude": round(lon + east_m / 103_000.0, 6)}
        spot = floor.marks.get(mark) if mark else None
        if spot is not None:
            out.update(floor_id=floor.id, x=spot[0], y=spot[1])
        return out

    street = site.address.split(" ", 1)[1]
    entrances = [item("Main entrance", f"{street} side; the fire control room is inside, "
                      "next to the lobby. Fire lift in the lift lobby.", "main_entrance",
                      north_m=-20.0),
                 item("Stair A (firefighting stair)", "Ground-floor door on the east side, "
                      "dry riser inlet beside it.", "stair_a", north_m=15.0, east_m=-25.0),
                 item("Stair B", "Exit to the rear service road.", "stair_b", north_m=-15.0,
                      east_m=25.0)]
    hydrant_m = rng.randrange(20, 60)
    water = [item("Street hydrant", f"Municipal hydrant on {street}, {hydrant_m} m west of the "
                  "main entrance, DN100.", north_m=-28.0, east_m=-hydrant_m),
             item("Sprinkler alarm valve and fire brigade inlet", "Wet-pipe alarm valve; the "
                  "pumper connection is on the outside wall of the valve room.",
                  "alarm_valve_room"),
             item("Fire hose reels", "On every floor in the corridor (FH on the plans).",
                  "hydrant_1")]
    hazard_name, hazard_text = _HAZARDS.get(use, ("Electrical switchroom", "Live 10 kV "
                                                  "equipment; isolate before using water."))
    hazards = [item(hazard_name, hazard_text, "plant_room"),
               item("Main electrical switchroom", "Isolate the building supply here; "
                    "emergency lighting and fire pumps stay on their own circuits.")]
    occupants = rng.randrange(40, 400) * len(floors)
    sprinklers = sum(1 for d in devices if d.kind is DeviceKind.SPRINKLER_PRESSURE)
    notes = (f"{use}, {len(floors)} storey{'s' if len(floors) > 1 else ''} monitored "
             f"({', '.join(f.id for f in floors)}), {_CONSTRUCTION[rng.randrange(3)]}, built "
             f"{rng.randrange(1995, 2021)}. About {occupants} people by day. Fire control room "
             f"on the ground floor ({g}) by the main entrance; the panel's repeater is at "
             "reception. Wet-pipe sprinklers throughout"
             + (f" ({sprinklers} pressure sensors on the risers)" if sprinklers else "")
             + "; jockey pump and fire pumps in the pump room. Assembly point: the forecourt "
             "across the street.")
    return {"entrances": entrances, "water_sources": water, "hazards": hazards,
            "notes": notes}
