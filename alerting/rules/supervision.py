"""Supervision: a per-device heartbeat deadline (per kind, configurable), kept by the engine's
timer heap to the second, plus the last will (status offline) which raises at once.

A panel that is offline inhibits its children's offline alarms: they are raised and shown as
inhibited (`inhibited_by = 'offline:<panel>'`), never dropped, and lose the mark when the panel
comes back.
"""

from __future__ import annotations

from alerting.device import DeviceState

OFFLINE = "offline"


def inhibitor(parent: DeviceState | None) -> str | None:
    """What inhibits a child's offline alarm: its panel being offline."""
    if parent is not None and parent.is_active(OFFLINE):
        return f"{OFFLINE}:{parent.info.id}"
    return None
