"""What the writers of the libraries (hazards/, notify/) share: the connection they take, their
clock, and how they refuse.

`Refused` carries what a caller answers: `missing` (the record is not there: 404), `conflict`
(its state does not allow it: 409, with the `allowed` steps), else a rule of the request (422).
The API turns it into its answer in one place (`api.errors.refusals`).
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
from asyncpg.pool import PoolConnectionProxy

# A connection of the centre (firetower.db): its JSON codec encodes the jsonb columns.
Conn = asyncpg.Connection | PoolConnectionProxy


class Refused(ValueError):
    def __init__(self, message: str, *, conflict: bool = False, missing: bool = False,
                 allowed: list[str] | None = None) -> None:
        super().__init__(message)
        self.conflict = conflict
        self.missing = missing
        self.allowed = allowed or []


def now_or(now: datetime | None) -> datetime:
    """`now` as given (tests and sweeps pass their own), else the clock."""
    return now if now is not None else datetime.now(UTC)
