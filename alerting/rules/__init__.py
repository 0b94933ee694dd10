"""The rules: one module per family, each a pure function over a device's state and a message;
`selection.TELEMETRY_RULES` says which of them a device kind's readings step.

Rule ids (the alarm `type`): smoke.threshold, smoke.prealarm, heat.fixed, heat.rate_of_rise,
sprinkler.waterflow, sprinkler.low_pressure, sprinkler.leak, sprinkler.jockey_cycling,
panel.<category>, offline, clock, battery.depleting, sprinkler.pressure_trend,
smoke.chamber_drift.
"""
