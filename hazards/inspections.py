"""The double-random draw (双随机): which targets are inspected and by whom, as a pure,
reproducible function (docs/patrols-and-inspections.md, "The draw").

Targets are drawn by weighted sampling without replacement (Efraimidis and Spirakis, 2006):
each candidate gets the key ln(u) / w, where w is its weight and u a number in (0, 1) taken
from SHA-256 of (seed, candidate id); the `targets` largest keys win. Then each drawn target,
in the order drawn, gets `per_target` inspectors: those of the pool with the largest hash of
(seed, target id, inspector id) among the eligible ones (not tied to the target, not already
at `max_per_inspector`, never the same one twice for a target).

Why it reproduces on any machine: a candidate's key depends only on the seed, its own id and
its weight, never on the order of the input or on a random generator's state; ln is
`decimal`'s, which is correctly rounded (the same digits everywhere, unlike the platform's
floating-point log); ties fall to the smaller id. The record (`DrawRecord.to_json`) holds the
seed, the parameters, every candidate with its counts, weight and key, the pool and the result;
`verify` runs the draw again from the record and compares.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

ALGORITHM = "es-sha256-v1"
RISK_CLASSES = ("key", "crowded", "general", "small")
# Risk class -> base weight: a key unit (重点单位) is drawn about 8 times as often as a small
# venue with the same history. A draw may set its own table (0 leaves a class out).
RISK_WEIGHTS: dict[str, int] = {"key": 8, "crowded": 4, "general": 2, "small": 1}
# History, in tenths added to a base of 10 (each count capped, so one noisy unit cannot
# swamp the draw): a fire +5, a false alarm +1, a complaint +3, an overdue hazard +5.
HISTORY_TENTHS: dict[str, tuple[int, int]] = {  # count -> (tenths each, cap)
    "fires": (5, 10), "false_alarms": (1, 50), "complaints": (3, 20), "overdue_hazards": (5, 10)}
_CTX = Context(prec=40, rounding=ROUND_HALF_EVEN)
_SPAN = 2 ** 128


@dataclass(frozen=True, slots=True)
class Candidate:
    id: str
    risk_class: str = "general"
    fires: int = 0
    false_alarms: int = 0
    complaints: int = 0
    overdue_hazards: int = 0
    label: str = ""  # a name for people reading the record; not part of the draw


@dataclass(frozen=True, slots=True)
class Inspector:
    id: str
    ties: frozenset[str] = frozenset()  # target ids it must not inspect (conflict of interest)
    label: str = ""


@dataclass(frozen=True, slots=True)
class Params:
    targets: int
    per_target: int = 2
    max_per_inspector: int | None = None
    risk_weights: Mapping[str, int] = field(default_factory=lambda: dict(RISK_WEIGHTS))


@dataclass(frozen=True, slots=True)
class Assignment:
    target: str
    inspectors: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Result:
    assignments: tuple[Assignment, ...]   # in the order drawn
    weights: Mapping[str, int]            # candidate id -> weight
    keys: Mapping[str, str]               # candidate id -> key (decimal text), weight > 0 only

    @property
    def targets(self) -> list[str]:
        return [a.target for a in self.assignments]


def weight(c: Candidate, risk_weights: Mapping[str, int] = RISK_WEIGHTS) -> int:
    """The candidate's weight: its class's base times (10 + history tenths)."""
    base = risk_weights.get(c.risk_class, 0)
    tenths = 10
    for name, (each, cap) in HISTORY_TENTHS.items():
        tenths += each * min(max(getattr(c, name), 0), cap)
    return base * tenths


def _hash(*parts: str) -> int:
    digest = hashlib.sha256("\x1f".join((ALGORITHM, *parts)).encode()).digest()
    return int.from_bytes(digest[:16], "big")


def uniform(seed: str, target_id: str) -> Decimal:
    """u in (0, 1) from (seed, id)."""
    return _CTX.divide(Decimal(_hash(seed, "target", target_id) + 1), Decimal(_SPAN + 1))


def key(seed: str, target_id: str, w: int) -> Decimal:
    """Efraimidis-Spirakis key ln(u) / w (the largest keys are drawn); w > 0."""
    return _CTX.divide(_CTX.ln(uniform(seed, target_id)), Decimal(w))


def draw(seed: str, candidates: Iterable[Candidate], pool: Iterable[Inspector],
         params: Params) -> Result:
    """Draw `params.targets` targets and `params.per_target` inspectors for each. Fewer when
    there are fewer candidates of positive weight, or fewer eligible inspectors; weight 0 is
    never drawn. Duplicate ids are refused (ValueError)."""
    cands = list(candidates)
    inspectors = list(pool)
    if len({c.id for c in cands}) != len(cands):
        raise ValueError("candidate ids must be unique")
    if len({i.id for i in inspectors}) != len(inspectors):
        raise ValueError("inspector ids must be unique")
    if params.targets < 0 or params.per_target < 0:
        raise ValueError("counts must not be negative")
    weights = {c.id: weight(c, params.risk_weights) for c in cands}
    keys = {cid: key(seed, cid, w) for cid, w in weights.items() if w > 0}
    # largest key first; equal keys: smaller id first
    order = sorted(keys, key=lambda cid: (-keys[cid], cid))[:params.targets]
    load: dict[str, int] = {}
    assignments = []
    for target in order:
        eligible = [i for i in inspectors if target not in i.ties
                    and (params.max_per_inspector is None
                         or load.get(i.id, 0) < params.max_per_inspector)]
        eligible.sort(key=lambda i: (-_hash(seed, "inspector", target, i.id), i.id))
        chosen = tuple(i.id for i in eligible[:params.per_target])
        for i in chosen:
            load[i] = load.get(i, 0) + 1
        assignments.append(Assignment(target, chosen))
    return Result(tuple(assignments), weights, {cid: str(k) for cid, k in keys.items()})


# -- the record: what anyone needs to run the draw again --------------------------------------

@dataclass(frozen=True, slots=True)
class DrawRecord:
    seed: str
    params: Params
    candidates: tuple[Candidate, ...]
    pool: tuple[Inspector, ...]
    result: Result
    algorithm: str = ALGORITHM

    def to_json(self) -> dict[str, Any]:
        return {
            "algorithm": self.algorithm,
            "seed": self.seed,
            "parameters": {"targets": self.params.targets, "per_target": self.params.per_target,
                           "max_per_inspector": self.params.max_per_inspector,
                           "risk_weights": dict(self.params.risk_weights)},
            "candidates": [{"id": c.id, "label": c.label, "risk_class": c.risk_class,
                            "fires": c.fires, "false_alarms": c.false_alarms,
                            "complaints": c.complaints, "overdue_hazards": c.overdue_hazards,
                            "weight": self.result.weights[c.id],
                            "key": self.result.keys.get(c.id)}
                           for c in sorted(self.candidates, key=lambda c: c.id)],
            "inspectors": [{"id": i.id, "label": i.label, "ties": sorted(i.ties)}
                           for i in sorted(self.pool, key=lambda i: i.id)],
            "result": [{"target": a.target, "inspectors": list(a.inspectors)}
                       for a in self.result.assignments],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DrawRecord:
        p = data["parameters"]
        params = Params(int(p["targets"]), int(p["per_target"]),
                        None if p.get("max_per_inspector") is None
                        else int(p["max_per_inspector"]),
                        {str(k): int(v) for k, v in p["risk_weights"].items()})
        cands = tuple(Candidate(str(c["id"]), str(c["risk_class"]), int(c["fires"]),
                                int(c["false_alarms"]), int(c["complaints"]),
                                int(c["overdue_hazards"]), str(c.get("label", "")))
                      for c in data["candidates"])
        pool = tuple(Inspector(str(i["id"]), frozenset(str(t) for t in i.get("ties", ())),
                               str(i.get("label", ""))) for i in data["inspectors"])
        weights = {str(c["id"]): int(c["weight"]) for c in data["candidates"]}
        keys = {str(c["id"]): str(c["key"]) for c in data["candidates"]
                if c.get("key") is not None}
        result = Result(tuple(Assignment(str(a["target"]), tuple(str(i) for i in a["inspectors"]))
                              for a in data["result"]), weights, keys)
        return cls(str(data["seed"]), params, cands, pool, result, str(data["algorithm"]))


def record(seed: str, candidates: Iterable[Candidate], pool: Iterable[Inspector],
           params: Params) -> DrawRecord:
    cands, inspectors = tuple(candidates), tuple(pool)
    return DrawRecord(seed, params, cands, inspectors, draw(seed, cands, inspectors, params))


@dataclass(frozen=True, slots=True)
class Verification:
    matches: bool
    recorded: list[dict[str, Any]]
    recomputed: list[dict[str, Any]]
    reason: str = ""


def verify(data: Mapping[str, Any]) -> Verification:
    """Run a recorded draw again from its own inputs and compare: the result, and each
    candidate's weight and key."""
    rec = DrawRecord.from_json(data)
    recorded = [dict(a) for a in data["result"]]
    if rec.algorithm != ALGORITHM:
        return Verification(False, recorded, [], f"unknown algorithm {rec.algorithm!r}")
    again = record(rec.seed, rec.candidates, rec.pool, rec.params).to_json()
    reason = ""
    if again["result"] != recorded:
        reason = "the result differs"
    elif [(c["id"], c["weight"], c["key"]) for c in again["candidates"]] != \
            [(c["id"], c["weight"], c.get("key")) for c in data["candidates"]]:
        reason = "a candidate's weight or key differs"
    return Verification(not reason, recorded, again["result"], reason)
