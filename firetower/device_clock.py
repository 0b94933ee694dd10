"""Device clocks: when a message's own timestamp is believed (docs/protocol.md, "Timestamps").

A message cannot arrive before it was sent, so a stamp later than the centre's receive time by
more than `AHEAD_TOLERANCE` comes from a clock that is ahead. A stamp before 2000 comes from a
clock that restarted (a panel that lost power counts from 1970, or from its firmware's build
date). A stamp older than `BEHIND_LIMIT` is older than anything the broker or a gateway can
still be holding, so it too comes from a wrong clock. None of these is a reason to refuse the
message: a fire is a fire whatever its panel's clock says. The message is accepted with the
receive time as its `ts` (for storage and the rules), the device's stamp is kept in `device_ts`
and the row is marked with the `ClockState`.

A stamp that is missing or names no time at all (no UTC offset, 2026-02-30, year 0, offset
+25:00, a number) is no reason either: the message is accepted with the receive time, no
`device_ts`, and the clock `invalid` (`unreadable()`); the decoder keeps what was sent in
`extra["ts"]`.

Pure functions: the decoder calls `stamp()` for every message whose stamp is unusual (the
common case never gets here), the rule engine's clock supervision (alerting/rules/clock.py)
and the tests use `classify()` and `describe_offset()`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from firetower.model import ClockState

# No device of this protocol was made before 2000; earlier stamps are clocks that restarted.
EPOCH_FLOOR = datetime(2000, 1, 1, tzinfo=UTC)
# A stamp may be ahead of the receive time by this much: the centre's own clock error (NTP,
# GB 50440 asks for <= 5 s) plus a device clock that is right to within the clock fault limit
# (alerting/config.py ClockParams.limit_s, 60 s by default). Beyond it the stamp is not used.
AHEAD_TOLERANCE = timedelta(seconds=60)
# Older than this, a stamp is not a late delivery: persistent broker sessions expire after
# 14 days (deploy/mosquitto/firetower.conf, persistent_client_expiration), and twice that leaves
# a gateway's own store-and-forward buffer a margin. Status messages are exempt: a retained
# birth message legitimately carries the time its connection was made, however long ago.
BEHIND_LIMIT = timedelta(days=30)


def classify(ts: datetime, received_at: datetime, *, status: bool = False) -> ClockState:
    """What the centre makes of a stamp `ts` received at `received_at` (both aware)."""
    if ts < EPOCH_FLOOR:
        return ClockState.RESET
    if ts > received_at + AHEAD_TOLERANCE:
        return ClockState.AHEAD
    if not status and ts < received_at - BEHIND_LIMIT:
        return ClockState.BEHIND
    return ClockState.OK


def stamp(ts: datetime, received_at: datetime, *, status: bool = False
          ) -> tuple[datetime, datetime | None, ClockState | None]:
    """(ts to store and evaluate, the device's stamp if it is not that, the clock mark or None).
    A believed stamp gives (ts, None, None): the row's `device_ts` and `clock` stay NULL."""
    state = classify(ts, received_at, status=status)
    if state is ClockState.OK:
        return ts, None, None
    try:
        device_ts = ts.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 with an offset: the nearest representable instant
        device_ts = _FIRST if ts.year == 1 else _LAST
    return received_at, device_ts, state


def unreadable(received_at: datetime) -> tuple[datetime, None, ClockState]:
    """`stamp()` for a message with no stamp, or one that names no time: the receive time,
    no device time, `invalid`."""
    return received_at, None, ClockState.INVALID


_FIRST = datetime.min.replace(tzinfo=UTC)
_LAST = datetime.max.replace(tzinfo=UTC)


_UNITS = ((86_400.0, "days"), (3_600.0, "h"), (60.0, "min"))


def describe_offset(offset_s: float) -> str:
    """`offset_s` = centre time minus device time, in words: '365.0 days ahead', '2.5 min
    behind', '0.3 s behind'. A positive offset is a device clock that is behind."""
    size = abs(offset_s)
    where = "behind" if offset_s > 0 else "ahead"
    for unit, name in _UNITS:
        if size >= unit:
            return f"{size / unit:.1f} {name} {where}"
    return f"{size:.1f} s {where}"
