"""A device's clock as the device API shows it (docs/alarms.md, "Device clock").

`devices.clock_offset_s` is the smallest (receive time - device time) of the current window,
kept by the ingester (ingest/clock.py); the state is the open `clock` fault's (`ahead`,
`behind`, `reset`), else `ok` once an offset was measured, else unknown (NULL).
"""

from __future__ import annotations

from firetower.alarms import OPEN_STATES_SQL

# For the `devices` row in scope (one lookup in the alarms_one_open unique index).
CLOCK_SQL = ("coalesce((SELECT a.evidence->>'state' FROM alarms a"
             " WHERE a.device_id = devices.id AND a.point = '' AND a.type = 'clock'"
             f" AND a.state IN {OPEN_STATES_SQL} LIMIT 1),"
             " CASE WHEN devices.clock_offset_s IS NOT NULL THEN 'ok' END)")
CLOCK_COLUMNS = f"clock_offset_s, clock_checked_at, {CLOCK_SQL} AS clock"
