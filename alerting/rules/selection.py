"""Rule selection: which rules evaluate a device's readings, by device kind, as a table.

Every kind's readings also feed the early warnings (trends over hourly means), last. Two rules
apply to every kind and are called by the engine, not from this table: a device's events go
to `panel.evaluate` (a panel's points, or a device's own fire, fault and mode events), and
supervision (`supervision.went_offline` / `came_online`) runs on the heartbeat deadline, the
last will and the next message. Adding a device kind is adding a row here.
"""

from __future__ import annotations

from collections.abc import Callable
from types import MappingProxyType

from alerting.device import DeviceState
from alerting.rules import early_warning, heat, panel, smoke, sprinkler
from alerting.rules.base import Context
from firetower.model import DeviceKind, Telemetry

TelemetryRule = Callable[[Context, DeviceState, Telemetry], None]

# Device kind -> the rules a reading steps, in order.
TELEMETRY_RULES: MappingProxyType[DeviceKind, tuple[TelemetryRule, ...]] = MappingProxyType({
    DeviceKind.SMOKE_DETECTOR: (smoke.evaluate_in_zone, early_warning.evaluate),
    DeviceKind.HEAT_DETECTOR: (heat.evaluate, early_warning.evaluate),
    DeviceKind.SPRINKLER_PRESSURE: (sprinkler.evaluate, early_warning.evaluate),
    DeviceKind.ALARM_PANEL: (panel.evaluate_telemetry, early_warning.evaluate),
})
