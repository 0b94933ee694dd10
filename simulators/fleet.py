"""The simulated fleet: sites, one alarm panel per site and the field devices under it.

`per_kind` counts devices of each non-panel kind *per site*, so a fleet has
`sites * (1 + 3 * per_kind)` devices. Ids are `s0003-pnl-0000`, `s0003-smk-0012`,
`s0003-heat-0004`, `s0003-spr-0001`. Every field device has the site's panel as its parent
(`parent_id`), so an offline panel inhibits its devices' offline alarms; the detectors report
through the panel, the sprinkler pressure sensors over a link of their own.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from firetower.model import DeviceKind

KIND_CODES: dict[DeviceKind, str] = {
    DeviceKind.ALARM_PANEL: "pnl",
    DeviceKind.SMOKE_DETECTOR: "smk",
    DeviceKind.HEAT_DETECTOR: "heat",
    DeviceKind.SPRINKLER_PRESSURE: "spr",
}
FIELD_KINDS = (DeviceKind.SMOKE_DETECTOR, DeviceKind.HEAT_DETECTOR,
               DeviceKind.SPRINKLER_PRESSURE)
DETECTOR_KINDS = (DeviceKind.SMOKE_DETECTOR, DeviceKind.HEAT_DETECTOR)
DETECTORS_PER_FLOOR = 8

_STREETS = ("Haibin Road", "Zhongshan Road", "Binjiang Avenue", "Xinhua Street",
            "Harbour Road", "Jiefang Road", "Renmin Road", "Gangwan Avenue")
_USES = ("Office Tower", "Shopping Mall", "Hotel", "Hospital", "School", "Warehouse",
         "Residential Block", "Factory")
# The rooms a detector may be in, by what the building is used for.
ROOMS_BY_USE: dict[str, tuple[str, ...]] = {
    "Office Tower": ("corridor", "lobby", "office", "open-plan office", "meeting room",
                     "kitchen", "server room", "store room", "plant room", "lift lobby",
                     "stairwell"),
    "Shopping Mall": ("corridor", "shop unit", "food court", "kitchen", "store room",
                      "plant room", "management office", "lift lobby", "stairwell"),
    "Hotel": ("corridor", "guest room", "lobby", "kitchen", "restaurant", "laundry",
              "store room", "plant room", "lift lobby", "stairwell"),
    "Hospital": ("corridor", "ward", "nurses' station", "treatment room", "kitchen",
                 "store room", "plant room", "server room", "lift lobby", "stairwell"),
    "School": ("corridor", "classroom", "staff room", "laboratory", "library", "kitchen",
               "store room", "plant room", "stairwell"),
    "Warehouse": ("storage bay", "loading bay", "office", "corridor", "store room",
                  "plant room", "kitchen", "stairwell"),
    "Residential Block": ("corridor", "lift lobby", "lobby", "refuse room", "bicycle store",
                          "plant room", "stairwell", "kitchen"),
    "Factory": ("production hall", "workshop", "office", "store room", "plant room", "kitchen",
                "corridor", "stairwell"),
}
ROOMS = tuple(sorted({r for rooms in ROOMS_BY_USE.values() for r in rooms}))


@dataclass(frozen=True, slots=True)
class SimSite:
    id: str
    name: str
    address: str


@dataclass(frozen=True, slots=True)
class SimDevice:
    id: str
    kind: DeviceKind
    site_id: str
    parent_id: str | None
    zone: int
    point: int
    location: str
    floor: int


@dataclass(frozen=True)
class Fleet:
    """Sites and devices in a fixed order (the order messages are tie-broken in)."""

    seed: int
    sites: tuple[SimSite, ...]
    devices: tuple[SimDevice, ...]
    _by_id: dict[str, SimDevice] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_id.update((d.id, d) for d in self.devices)

    def __len__(self) -> int:
        return len(self.devices)

    def __iter__(self) -> Iterator[SimDevice]:
        return iter(self.devices)

    def get(self, device_id: str) -> SimDevice:
        return self._by_id[device_id]

    def of_kind(self, kind: DeviceKind) -> list[SimDevice]:
        return [d for d in self.devices if d.kind is kind]

    def at_site(self, site_id: str) -> list[SimDevice]:
        return [d for d in self.devices if d.site_id == site_id]

    def children(self, panel_id: str) -> list[SimDevice]:
        return [d for d in self.devices if d.parent_id == panel_id]

    def detectors_of(self, panel_id: str) -> list[SimDevice]:
        """The smoke and heat detectors on the panel's loops (they report through it)."""
        return [d for d in self.children(panel_id) if d.kind in DETECTOR_KINDS]

    def panel_of(self, site_id: str) -> SimDevice:
        return next(d for d in self.devices
                    if d.site_id == site_id and d.kind is DeviceKind.ALARM_PANEL)

    def kinds(self) -> dict[str, DeviceKind]:
        return {d.id: d.kind for d in self.devices}


def device_id(site: int, kind: DeviceKind, index: int) -> str:
    return f"s{site:04d}-{KIND_CODES[kind]}-{index:04d}"


def build_fleet(seed: int, sites: int, per_kind: int) -> Fleet:
    """`sites` sites, each with one panel and `per_kind` devices of each field kind."""
    if sites < 1 or per_kind < 0:
        raise ValueError("need sites >= 1 and per_kind >= 0")
    rng = random.Random(f"fleet/{seed}")
    site_rows: list[SimSite] = []
    devices: list[SimDevice] = []
    for s in range(sites):
        sid = f"s{s:04d}"
        use = rng.choice(_USES)
        site_rows.append(SimSite(sid, f"{use} {s}",
                                 f"{rng.randint(1, 999)} {rng.choice(_STREETS)}"))
        panel = device_id(s, DeviceKind.ALARM_PANEL, 0)
        devices.append(SimDevice(panel, DeviceKind.ALARM_PANEL, sid, None, 0, 0,
                                 "ground floor fire control room", 0))
        for kind in FIELD_KINDS:
            for i in range(per_kind):
                floor = i // DETECTORS_PER_FLOOR
                if kind is DeviceKind.SPRINKLER_PRESSURE:
                    room = "alarm valve room" if i == 0 else "riser"
                    devices.append(SimDevice(device_id(s, kind, i), kind, sid, panel,
                                             floor + 1, 0, f"{_floor(floor)} {room}", floor))
                    continue
                point = i % DETECTORS_PER_FLOOR + 1 + (
                    DETECTORS_PER_FLOOR if kind is DeviceKind.HEAT_DETECTOR else 0)
                room = rng.choice(ROOMS_BY_USE[use])
                devices.append(SimDevice(device_id(s, kind, i), kind, sid, panel, floor + 1,
                                         point, f"{_floor(floor)} {room} {point}", floor))
    return Fleet(seed, tuple(site_rows), tuple(devices))


def _floor(floor: int) -> str:
    return "ground floor" if floor == 0 else f"{floor}F"
