"""Presence as supervision sees it: a device is online only while it has no open `offline`
alarm, whatever its last status message said.

`devices.online` is what the device last said about itself (its birth message or its last
will, stored by the ingester). A device that goes silent says nothing: the rule engine raises
`offline` when its heartbeat deadline passes (docs/alarms.md, supervision). Health shown to an
operator follows that alarm, so a silent device is never counted online.
"""

from __future__ import annotations

from firetower.alarms import OPEN_STATES_SQL

# `online` of the `devices` row in scope (one lookup in the alarms_one_open unique index).
ONLINE_SQL = ("CASE WHEN EXISTS (SELECT 1 FROM alarms a WHERE a.device_id = devices.id"
              f" AND a.point = '' AND a.type = 'offline' AND a.state IN {OPEN_STATES_SQL})"
              " THEN false ELSE devices.online END")
