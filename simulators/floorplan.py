"""Floor plans for the demo sites: one SVG per floor, drawn in code and deterministic from
(seed, site, floor), with the spot of every device on it.

A floor is a rectangle with a corridor along its middle, a row of rooms on each side, a stair
core at each end (Stair A top left, Stair B bottom right) and a lift lobby; the rooms are
the ones the floor's devices are in (their `location` names the room: "1F office 5"), filled
up with toilets and stores, and on the ground floor the fire control room (the panel), the
alarm valve room and the entrance lobby. Each device sits inside its room; sprinkler risers
run in the stair cores.

Spots are fractions of the plan (x of its width, y of its height), as `devices.x/y` store
them: the SVG's width and height equal its viewBox, so a fraction is a pixel of the image.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from simulators.fleet import ROOMS, SimDevice

W, H = 1000, 600
LEFT, RIGHT, TOP, BOTTOM = 40, 960, 70, 560   # the building's outer walls
CORRIDOR = (285, 345)                          # its y extent
CORE_W, LIFT_W = 110, 120
DOOR_W = 34
LABEL_BAND = 40   # a room's name is drawn in its top 40 px, where no device sits

FILL = {"corridor": "#f7f7f4", "stair": "#e4e4e4", "lift lobby": "#ecebe6",
        "kitchen": "#e6f0f7", "toilets": "#e6f0f7", "plant room": "#e9e9e9",
        "server room": "#ebe7f3", "fire control room": "#fbe3e1",
        "alarm valve room": "#e1ecfb", "lobby": "#f3efe4"}
ROOM_FILL = "#fbfaf6"
STRUCTURAL = {"corridor", "stairwell", "lift lobby", "riser"}
FILLERS = ("toilets", "store room", "cleaner's store", "office", "meeting room")
ROOM_NAMES = (*ROOMS, "alarm valve room", "riser", "fire control room")


@dataclass
class Room:
    name: str        # the type, as devices name it ("office")
    label: str       # as drawn ("Office 2")
    x: float
    y: float
    w: float
    h: float
    side: str        # "top" or "bottom" of the corridor, "corridor", "core"
    devices: list[SimDevice] = field(default_factory=list)

    @property
    def centre(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h / 2


@dataclass(frozen=True)
class FloorPlan:
    id: str                                   # "GF", "1F", ...
    name: str                                 # "Ground floor", "1st floor"
    level: int
    svg: bytes
    spots: dict[str, tuple[float, float]]     # device id -> (x, y) fractions
    marks: dict[str, tuple[float, float]]     # named places (entrances, stairs, valves, ...)


def floor_id(level: int) -> str:
    return "GF" if level == 0 else f"{level}F"


def floor_name(level: int) -> str:
    if level == 0:
        return "Ground floor"
    suffix = "th" if 10 <= level % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(
        level % 10, "th")
    return f"{level}{suffix} floor"


def room_of(device: SimDevice) -> str:
    """The room type a device's location names ("1F meeting room 4" -> "meeting room")."""
    for name in sorted(ROOM_NAMES, key=len, reverse=True):
        if name in device.location:
            return name
    return "corridor"


def draw_floor(seed: int, site_id: str, title: str, level: int,
               devices: list[SimDevice]) -> FloorPlan:
    rng = random.Random(f"plan/{seed}/{site_id}/{level}")
    rooms, cores, corridor, lift = _layout(rng, level, devices)
    spots: dict[str, tuple[float, float]] = {}
    by_name: dict[str, list[Room]] = {}
    for r in rooms:
        by_name.setdefault(r.name, []).append(r)
    stairs = cores
    for i, d in enumerate(devices):
        name = room_of(d)
        if name in ("stairwell", "riser"):
            room = stairs[i % 2]
        elif name in ("corridor",):
            room = corridor
        elif name == "lift lobby":
            room = lift
        else:
            options = by_name.get(name) or [corridor]
            room = options[i % len(options)]
        room.devices.append(d)
    for room in [*rooms, *cores, corridor, lift]:
        for d, (x, y) in zip(room.devices, _spread(rng, room), strict=True):
            spots[d.id] = (round(x / W, 4), round(y / H, 4))
    marks = {"stair_a": _frac(cores[0].centre), "stair_b": _frac(cores[1].centre),
             "lift": _frac(lift.centre)}
    for r in rooms:
        if r.name in ("fire control room", "alarm valve room", "lobby", "kitchen",
                      "server room", "plant room"):
            marks.setdefault(r.name.replace(" ", "_"), _frac(r.centre))
    if level == 0:
        marks["main_entrance"] = _frac((_entrance_x(rooms), BOTTOM))
    marks["hydrant_1"] = _frac((LEFT + (RIGHT - LEFT) / 3, CORRIDOR[0] + 8))
    marks["hydrant_2"] = _frac((LEFT + 2 * (RIGHT - LEFT) / 3, CORRIDOR[0] + 8))
    svg = _svg(title, level, rooms, cores, corridor, lift)
    return FloorPlan(floor_id(level), floor_name(level), level, svg, spots, marks)


# -- layout -----------------------------------------------------------------------------------
def _layout(rng: random.Random, level: int, devices: list[SimDevice],
            ) -> tuple[list[Room], list[Room], Room, Room]:
    counts: dict[str, int] = {}
    for d in devices:
        name = room_of(d)
        if name not in STRUCTURAL:
            counts[name] = counts.get(name, 0) + 1
    names: list[str] = []
    for name in sorted(counts):
        names += [name] * math.ceil(counts[name] / 3)   # three heads to a room at most
    if level == 0:
        for must in ("fire control room", "alarm valve room", "lobby"):
            if must not in names:
                names.append(must)
    while len(names) < 6:
        names.append(FILLERS[rng.randrange(len(FILLERS))])
    rng.shuffle(names)
    ground = level == 0
    if ground:   # the control room and the lobby at the front, by the main entrance
        for must in ("lobby", "fire control room"):
            names.remove(must)
            names.insert(0, must)
    cy0, cy1 = CORRIDOR
    core_a = Room("stairwell", "Stair A", LEFT, TOP, CORE_W, cy0 - TOP, "core")
    core_b = Room("stairwell", "Stair B", RIGHT - CORE_W, cy1, CORE_W, BOTTOM - cy1, "core")
    mid = (LEFT + RIGHT) / 2
    lift = Room("lift lobby", "Lifts", mid - LIFT_W / 2, TOP, LIFT_W, cy0 - TOP, "top")
    # three stretches of wall along the corridor, each with rooms in proportion to its length
    stretches = [(LEFT + CORE_W, mid - LIFT_W / 2, TOP, cy0, "top"),
                 (mid + LIFT_W / 2, RIGHT, TOP, cy0, "top"),
                 (LEFT, RIGHT - CORE_W, cy1, BOTTOM, "bottom")]
    if ground:   # the front (bottom) row first: the lobby and control room open onto the street
        stretches = [stretches[2], *stretches[:2]]
    total = sum(b - a for a, b, *_ in stretches)
    rows: list[Room] = []
    taken = 0
    for i, (a, b, y0, y1, side) in enumerate(stretches):
        n = len(names) - taken if i == len(stretches) - 1 else max(
            1, round(len(names) * (b - a) / total))
        rows += _row(rng, names[taken:taken + n], a, b, y0, y1, side)
        taken += n
    top = [r for r in rows if r.side == "top"]
    bottom = [r for r in rows if r.side == "bottom"]
    corridor = Room("corridor", "Corridor", LEFT, cy0, RIGHT - LEFT, cy1 - cy0, "corridor")
    rooms = top + bottom
    seen: dict[str, int] = {}
    for r in rooms:
        seen[r.name] = seen.get(r.name, 0) + 1
    numbered: dict[str, int] = {}
    for r in rooms:
        if seen[r.name] > 1:
            numbered[r.name] = numbered.get(r.name, 0) + 1
            r.label = f"{r.name.capitalize()} {numbered[r.name]}"
    return rooms, [core_a, core_b], corridor, lift


def _row(rng: random.Random, names: list[str], x0: float, x1: float, y0: float, y1: float,
         side: str) -> list[Room]:
    if not names:
        return []
    weights = [rng.uniform(1.0, 1.7) for _ in names]
    total = sum(weights)
    span = x1 - x0
    rooms, x = [], x0
    for i, (name, wgt) in enumerate(zip(names, weights, strict=True)):
        w = x1 - x if i == len(names) - 1 else round(span * wgt / total)
        rooms.append(Room(name, name.capitalize(), x, y0, w, y1 - y0, side))
        x += w
    return rooms


def _spread(rng: random.Random, room: Room) -> list[tuple[float, float]]:
    """Spots for the room's devices: evenly along its length, a little jitter, clear of the
    walls and of the room's label (drawn at its centre)."""
    n = len(room.devices)
    if not n:
        return []
    m = 16.0
    x0, x1 = room.x + m, room.x + room.w - m
    y0, y1 = room.y + (LABEL_BAND if room.side in ("top", "bottom") else m), room.y + room.h - m
    out = []
    for k in range(n):
        f = (k + 1) / (n + 1)
        if x1 - x0 >= y1 - y0:
            x = x0 + f * (x1 - x0) + rng.uniform(-4, 4)
            y = y0 + (y1 - y0) * (0.3 if k % 2 else 0.7) + rng.uniform(-6, 6)
        else:
            x = x0 + (x1 - x0) * (0.3 if k % 2 else 0.7) + rng.uniform(-4, 4)
            y = y0 + f * (y1 - y0) + rng.uniform(-4, 4)
        out.append((min(max(x, x0), x1), min(max(y, y0), y1)))
    return out


def _entrance_x(rooms: list[Room]) -> float:
    lobby = next((r for r in rooms if r.name == "lobby"), None)
    return lobby.x + lobby.w / 2 if lobby else (LEFT + RIGHT) / 2


def _frac(p: tuple[float, float]) -> tuple[float, float]:
    return round(p[0] / W, 4), round(p[1] / H, 4)


# -- drawing ----------------------------------------------------------------------------------
def _svg(title: str, level: int, rooms: list[Room], cores: list[Room], corridor: Room,
         lift: Room) -> bytes:
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" '
           f'viewBox="0 0 {W} {H}" font-family="Helvetica, Arial, sans-serif">',
           f'<rect width="{W}" height="{H}" fill="#ffffff"/>',
           f'<text x="{LEFT}" y="30" font-size="18" font-weight="bold" fill="#222">'
           f'{escape(title)} · {escape(floor_name(level))} ({floor_id(level)})</text>',
           f'<text x="{LEFT}" y="52" font-size="12" fill="#666">Fire alarm layout plan · '
           'not to scale for construction</text>']
    for r in [corridor, *rooms, lift, *cores]:
        fill = FILL.get("stair" if r.side == "core" else r.name, ROOM_FILL)
        out.append(_rect(r, fill, "#555", 2))
    for c in cores:
        out += _stairs(c)
    out += _lifts(lift)
    for r in [*rooms, lift]:
        out.append(_door(r))
    for r in rooms:   # the name in the band along the room's top, clear of the devices
        size = min(13.0, (r.w - 8) / (0.58 * len(r.label)))   # narrow rooms: smaller type
        out.append(f'<text x="{r.x + r.w / 2:.0f}" y="{r.y + LABEL_BAND - 12:.0f}" '
                   f'font-size="{size:.1f}" fill="#333" text-anchor="middle">'
                   f'{escape(r.label)}</text>')
    out.append(f'<text x="{corridor.x + corridor.w / 2:.0f}" y="{corridor.y + 36:.0f}" '
               'font-size="12" fill="#888" text-anchor="middle" letter-spacing="6">'
               'CORRIDOR</text>')
    for k in (1, 2):   # hose reel / hydrant cabinets on the corridor wall
        x = LEFT + k * (RIGHT - LEFT) / 3
        out.append(f'<rect x="{x - 12:.0f}" y="{CORRIDOR[0] + 2}" width="24" height="12" '
                   'fill="#d32f2f"/>')
        out.append(f'<text x="{x:.0f}" y="{CORRIDOR[0] + 12}" font-size="9" fill="#fff" '
                   'text-anchor="middle">FH</text>')
    for c in cores:
        out.append(_exit_sign(c.x + c.w / 2, CORRIDOR[0] + 14 if c.y < CORRIDOR[0]
                              else CORRIDOR[1] - 14))
    if level == 0:
        ex = _entrance_x(rooms)
        out.append(f'<line x1="{ex - 30:.0f}" y1="{BOTTOM}" x2="{ex + 30:.0f}" y2="{BOTTOM}" '
                   'stroke="#ffffff" stroke-width="8"/>')
        out.append(f'<path d="M{ex:.0f} {BOTTOM + 28} l-8 -12 h16 z" fill="#2e7d32"/>')
        out.append(f'<text x="{ex:.0f}" y="{BOTTOM + 36}" font-size="11" fill="#2e7d32" '
                   'text-anchor="middle">MAIN ENTRANCE</text>')
    out.append(f'<rect x="{LEFT}" y="{TOP}" width="{RIGHT - LEFT}" height="{BOTTOM - TOP}" '
               'fill="none" stroke="#222" stroke-width="7"/>')
    if level == 0:   # the entrance gap in the outer wall
        ex = _entrance_x(rooms)
        out.append(f'<line x1="{ex - 26:.0f}" y1="{BOTTOM}" x2="{ex + 26:.0f}" y2="{BOTTOM}" '
                   'stroke="#ffffff" stroke-width="9"/>')
    out += _north_and_scale()
    out.append("</svg>")
    return "\n".join(out).encode()


def _rect(r: Room, fill: str, stroke: str, width: float) -> str:
    return (f'<rect x="{r.x:.0f}" y="{r.y:.0f}" width="{r.w:.0f}" height="{r.h:.0f}" '
            f'fill="{fill}" stroke="{stroke}" stroke-width="{width}"/>')


def _door(r: Room) -> str:
    """A gap in the wall to the corridor and the door leaf's swing."""
    x = r.x + min(r.w - DOOR_W - 8, 12)
    y = CORRIDOR[0] if r.side == "top" else CORRIDOR[1]
    sweep = -1 if r.side == "top" else 1
    return (f'<line x1="{x:.0f}" y1="{y}" x2="{x + DOOR_W:.0f}" y2="{y}" stroke="#ffffff" '
            f'stroke-width="4"/><path d="M{x:.0f} {y} l0 {sweep * DOOR_W} '
            f'a{DOOR_W} {DOOR_W} 0 0 {1 if sweep < 0 else 0} {DOOR_W} {-sweep * DOOR_W}" '
            'fill="none" stroke="#999" stroke-width="1"/>')


def _stairs(c: Room) -> list[str]:
    out = []
    x0, x1 = c.x + 14, c.x + c.w - 14
    y = c.y + 16
    while y < c.y + c.h - 22:
        out.append(f'<line x1="{x0:.0f}" y1="{y:.0f}" x2="{x1:.0f}" y2="{y:.0f}" '
                   'stroke="#9a9a9a" stroke-width="1"/>')
        y += 14
    cx = c.x + c.w / 2
    out.append(f'<line x1="{cx:.0f}" y1="{c.y + c.h - 24:.0f}" x2="{cx:.0f}" y2="{c.y + 22:.0f}" '
               'stroke="#555" stroke-width="1.5"/>')
    out.append(f'<path d="M{cx:.0f} {c.y + 16:.0f} l-5 9 h10 z" fill="#555"/>')
    out.append(f'<text x="{cx:.0f}" y="{c.y + c.h - 8:.0f}" font-size="12" fill="#333" '
               f'text-anchor="middle">{escape(c.label)}</text>')
    return out


def _lifts(lift: Room) -> list[str]:
    out = []
    size = 40
    for k in range(2):
        x = lift.x + 14 + k * (size + 12)
        y = lift.y + 18
        out.append(f'<rect x="{x:.0f}" y="{y:.0f}" width="{size}" height="{size}" fill="none" '
                   'stroke="#777" stroke-width="1.5"/>')
        out.append(f'<path d="M{x:.0f} {y:.0f} l{size} {size} M{x + size:.0f} {y:.0f} '
                   f'l{-size} {size}" stroke="#aaa" stroke-width="1"/>')
    cx, _ = lift.centre
    out.append(f'<text x="{cx:.0f}" y="{lift.y + lift.h - 16:.0f}" font-size="13" fill="#333" '
               'text-anchor="middle">Lifts</text>')
    return out


def _exit_sign(x: float, y: float) -> str:
    return (f'<rect x="{x - 17:.0f}" y="{y - 7:.0f}" width="34" height="13" fill="#2e7d32"/>'
            f'<text x="{x:.0f}" y="{y + 3:.0f}" font-size="9" fill="#fff" '
            'text-anchor="middle">EXIT</text>')


def _north_and_scale() -> list[str]:
    x, y = RIGHT - 24, 34
    return [f'<path d="M{x} {y - 20} l-8 22 l8 -6 l8 6 z" fill="#333"/>',
            f'<text x="{x}" y="{y + 14}" font-size="11" fill="#333" text-anchor="middle">N</text>',
            f'<line x1="{RIGHT - 190}" y1="{y}" x2="{RIGHT - 90}" y2="{y}" stroke="#333" '
            'stroke-width="2"/>',
            f'<text x="{RIGHT - 140}" y="{y - 6}" font-size="11" fill="#333" '
            'text-anchor="middle">10 m</text>']

