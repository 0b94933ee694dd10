"""The numbers of the loop, in one place: default deadlines, escalation, work-order SLAs and the
thresholds of the hazard rules (docs/hazards.md, "Defaults"). Every one can be changed by a
JSON file named by `FIRETOWER_HAZARD_POLICY`; a file that names an unknown key or a value out
of range is refused at start, never half applied.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from hazards.model import Severity

HOUR = 3600.0
DAY = 24 * HOUR

# Alarm classes that open a maintenance work order, with (respond within, repair within).
DEFAULT_SLA: dict[str, tuple[float, float]] = {
    "supervisory": (2 * HOUR, 1 * DAY),     # a closed valve, low pressure: urgent
    "fault": (4 * HOUR, 3 * DAY),
    "offline": (4 * HOUR, 2 * DAY),
    "early_warning": (24 * HOUR, 7 * DAY),  # predicted, not yet failed
}


class PolicyError(ValueError):
    """The policy file is unreadable, names an unknown key or holds a value out of range."""


@dataclass(frozen=True, slots=True)
class HazardPolicy:
    # rectification deadline from when a hazard is found, by severity
    general_deadline_s: float = 15 * DAY
    major_deadline_s: float = 30 * DAY
    # an overdue hazard moves up one level with this much more time
    escalation_extension_s: float = 7 * DAY
    # the levels whose ownership makes a hazard listed for supervision (挂牌督办)
    listing_levels: tuple[str, ...] = ("district", "city", "province")
    # a rectification must carry at least one photo or file of the result
    photo_required_on_submit: bool = True
    # work orders
    sla: Mapping[str, tuple[float, float]] = field(default_factory=lambda: dict(DEFAULT_SLA))
    work_order_grace_s: float = 300.0      # an alarm open this long opens an order (flapping)
    repeat_window_s: float = 30 * DAY      # an order within this of the last one repeats it
    # hazard rules (hazards/rules.py)
    offline_hazard_s: float = 24 * HOUR
    fault_hazard_s: float = 72 * HOUR
    early_warning_hazard_s: float = 7 * DAY   # predicted to reach its limit within this
    false_alarms_per_day: int = 5             # GB 50440: more than 5 a day is a hazard
    # the loop's sweep period
    sweep_interval_s: float = 10.0

    def deadline(self, severity: Severity) -> timedelta:
        s = self.major_deadline_s if severity is Severity.MAJOR else self.general_deadline_s
        return timedelta(seconds=s)

    def sla_for(self, alarm_class: str) -> tuple[timedelta, timedelta]:
        respond, repair = self.sla[alarm_class]
        return timedelta(seconds=respond), timedelta(seconds=repair)


DEFAULT_POLICY = HazardPolicy()
_NAMES = {f.name for f in fields(HazardPolicy)}


def from_mapping(values: Mapping[str, Any], base: HazardPolicy = DEFAULT_POLICY) -> HazardPolicy:
    unknown = set(values) - _NAMES
    if unknown:
        raise PolicyError(f"unknown hazard policy keys: {', '.join(sorted(unknown))}")
    changes: dict[str, Any] = {}
    for name, value in values.items():
        if name == "sla":
            if not isinstance(value, dict):
                raise PolicyError("sla: an object of alarm class -> [respond_s, repair_s]")
            sla = dict(base.sla)
            for cls, pair in value.items():
                if cls not in DEFAULT_SLA:
                    raise PolicyError(f"sla: unknown alarm class {cls!r}")
                if (not isinstance(pair, list) or len(pair) != 2
                        or not all(isinstance(x, int | float) and x > 0 for x in pair)
                        or pair[0] > pair[1]):
                    raise PolicyError(f"sla.{cls}: [respond_s, repair_s], both > 0, respond <= repair")
                sla[cls] = (float(pair[0]), float(pair[1]))
            changes["sla"] = sla
        elif name == "listing_levels":
            if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
                raise PolicyError("listing_levels: a list of jurisdiction levels")
            changes[name] = tuple(value)
        elif name == "photo_required_on_submit":
            if not isinstance(value, bool):
                raise PolicyError(f"{name}: true or false")
            changes[name] = value
        elif name == "false_alarms_per_day":
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise PolicyError(f"{name}: a whole number >= 1")
            changes[name] = value
        else:
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise PolicyError(f"{name}: a number of seconds >= 0")
            changes[name] = float(value)
    return replace(base, **changes)


def from_env(environ: Mapping[str, str] = os.environ) -> HazardPolicy:
    path = environ.get("FIRETOWER_HAZARD_POLICY")
    if not path:
        return DEFAULT_POLICY
    try:
        values = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise PolicyError(f"FIRETOWER_HAZARD_POLICY={path}: {exc}") from exc
    if not isinstance(values, dict):
        raise PolicyError(f"FIRETOWER_HAZARD_POLICY={path}: a JSON object")
    return from_mapping(values)
