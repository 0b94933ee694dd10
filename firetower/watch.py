"""Heightened watch (重大活动 / 节日安保): the settings a watch window lays over the normal ones.

A watch window (table `watch_windows`, docs/notifications.md "Heightened watch") covers a
jurisdiction subtree or a list of sites for a bounded time. Its settings only ever tighten:

- `heartbeat_s`: devices are declared offline after at most this long silent;
- `verification_s`: a lone smoke detector's alarm verification lasts at most this long;
- `prealarm_ratio`: the smoke pre-alarm level is at most this fraction of the alarm level;
- `escalation_factor`: escalation delays are multiplied by this (≤ 1: faster).

The rule engine applies the first three (alerting/config.py); notify/ the fourth. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# Bounds of each setting: (lowest, highest). A heartbeat below 10 s would declare devices
# offline between two normal keep-alives of any real device; verification is at most 60 s
# anyway (NFPA 72); a pre-alarm below 20 % of the alarm level is noise.
BOUNDS: dict[str, tuple[float, float]] = {
    "heartbeat_s": (10.0, 3600.0),
    "verification_s": (0.0, 60.0),
    "prealarm_ratio": (0.2, 1.0),
    "escalation_factor": (0.05, 1.0),
}


class WatchError(ValueError):
    """A watch window's settings are refused; the message says why."""


@dataclass(frozen=True, slots=True)
class WatchSettings:
    heartbeat_s: float | None = None
    verification_s: float | None = None
    prealarm_ratio: float | None = None
    escalation_factor: float | None = None

    def to_json(self) -> dict[str, float]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def tighter(self, other: WatchSettings) -> WatchSettings:
        """Both overlays at once (two windows over one site): the tighter of each setting."""
        def low(a: float | None, b: float | None) -> float | None:
            return b if a is None else a if b is None else min(a, b)
        return WatchSettings(low(self.heartbeat_s, other.heartbeat_s),
                             low(self.verification_s, other.verification_s),
                             low(self.prealarm_ratio, other.prealarm_ratio),
                             low(self.escalation_factor, other.escalation_factor))


def parse_settings(obj: object) -> WatchSettings:
    """The settings of a JSON object; WatchError names the first bad key or value."""
    if not isinstance(obj, dict):
        raise WatchError(f"watch settings must be a JSON object, got {type(obj).__name__}")
    values: dict[str, Any] = {}
    for key, value in obj.items():
        if key not in BOUNDS:
            raise WatchError(f"unknown watch setting {key!r} (settings: {', '.join(BOUNDS)})")
        if value is None:
            continue
        if type(value) not in (int, float):
            raise WatchError(f"{key} must be a number, got {value!r}")
        lo, hi = BOUNDS[key]
        if not lo <= float(value) <= hi:
            raise WatchError(f"{key} must be between {lo:g} and {hi:g}, got {value!r}")
        values[key] = float(value)
    if not values:
        raise WatchError("a watch window must tighten at least one setting "
                         f"({', '.join(BOUNDS)})")
    return WatchSettings(**values)
