"""Heightened watch windows (重大活动 / 节日安保) as the rule engine sees them.

A window (table `watch_windows`, settings: firetower/watch.py) is loaded with the sites it
covers already resolved (alerting/loader.py: a jurisdiction's subtree or its list of sites). It
is active while `starts_at <= now < ends_at`; a cancelled or ended window is not loaded at all.
While active it tightens the parameters of every device of its sites (alerting/config.py
`tighten`, applied after the overrides, so a watch never loosens anything); several windows
over one site combine by `WatchSettings.tighter`. The service re-applies them at each bound
(`next_bound`) and on a configuration NOTIFY (alerting/service.py). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from firetower.watch import WatchSettings


@dataclass(frozen=True, slots=True)
class WatchWindow:
    id: int
    name: str
    starts_at: float  # seconds since the epoch (the centre's clock)
    ends_at: float
    site_ids: frozenset[str]
    settings: WatchSettings

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at


def active(windows: Iterable[WatchWindow], now: float) -> list[WatchWindow]:
    return [w for w in windows if w.active(now)]


def by_site(windows: Iterable[WatchWindow]) -> dict[str, WatchSettings]:
    """The combined settings per covered site (the tighter of each, over every window)."""
    out: dict[str, WatchSettings] = {}
    for w in windows:
        for site in w.site_ids:
            have = out.get(site)
            out[site] = w.settings if have is None else have.tighter(w.settings)
    return out


def next_bound(windows: Iterable[WatchWindow], now: float) -> float | None:
    """The next start or end of a window after `now` (None: no bound ahead)."""
    ahead = [t for w in windows for t in (w.starts_at, w.ends_at) if t > now]
    return min(ahead) if ahead else None
