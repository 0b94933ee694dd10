"""Test, disabled (屏蔽) and maintenance windows per device (optionally one panel point) or site.

A signal during a window is still raised and recorded, marked with the mode, and never
forwarded as a fire. When windows overlap the strongest wins: disabled, then test, then
maintenance. Windows end at `expires_at` (every operator window has one) or when ended.
"""

from __future__ import annotations

from dataclasses import dataclass

from firetower.alarms import Mode

STRENGTH = {Mode.DISABLED: 3, Mode.TEST: 2, Mode.MAINTENANCE: 1, Mode.NORMAL: 0}


@dataclass(frozen=True, slots=True)
class ModeWindow:
    scope: str  # 'device' | 'site'
    target: str
    point: str | None  # None = the whole device
    mode: Mode
    owner: str
    reason: str
    starts_at: float
    expires_at: float | None

    def covers(self, point: str, now: float) -> bool:
        """In force at `now` for `point` ('z/p'); a window on 'z/0' covers all of zone z."""
        if self.starts_at > now or (self.expires_at is not None and now >= self.expires_at):
            return False
        p = self.point
        return p is None or p == point or (p.endswith("/0") and point.startswith(p[:-1]))


class ModeTable:
    def __init__(self, windows: list[ModeWindow] | None = None) -> None:
        self.windows: dict[tuple[str, str], list[ModeWindow]] = {}
        for w in windows or []:
            self.add(w)

    def add(self, w: ModeWindow) -> None:
        self.windows.setdefault((w.scope, w.target), []).append(w)

    def end(self, scope: str, target: str, point: str | None, mode: Mode) -> None:
        ws = self.windows.get((scope, target))
        if ws:
            ws[:] = [w for w in ws if not (w.point == point and w.mode is mode)]

    def mode_for(self, device_id: str, site_id: str | None, point: str, now: float,
                 parent: str | None = None, zone: int | None = None
                 ) -> tuple[Mode, ModeWindow | None]:
        """The mode for a signal of `device_id` (at a panel `point`); a detector is also
        covered by its panel's windows on the whole panel or on its zone."""
        if not self.windows:
            return Mode.NORMAL, None
        best: ModeWindow | None = None
        scopes = [(("device", device_id), point), (("site", site_id or ""), point)]
        if parent:
            scopes.append((("device", parent), f"{zone or 0}/x"))
        for scope_key, pt in scopes:
            for w in self.windows.get(scope_key, ()):
                if w.covers(pt, now) and (best is None
                                          or STRENGTH[w.mode] > STRENGTH[best.mode]):
                    best = w
        return (best.mode, best) if best else (Mode.NORMAL, None)
