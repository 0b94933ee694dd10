"""Device partitions for scaling the ingester and rule engine out (docs/scaling.md). Pure: no I/O.

A device belongs to partition `blake2b-64(key) mod P`, where the key is the device's **site**
(its id where it has none). Hashing the site, not the device, keeps every device of a building
on one worker: the rule engine's cross-device logic (zone coincidence between detectors of one
panel zone, a panel inhibiting its detectors' offline alarms, panel-reported test and disabled
windows, the per-site alarm groups) only works when those devices share an engine.

The hash is fixed (not Python's `hash()`, which is salted per process), so every worker, every
restart and any other tool computes the same partition: the first 8 bytes of BLAKE2b of the
UTF-8 key, as a big-endian unsigned integer, modulo P.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from firetower.protocol import TOPIC_ROOT
from firetower.settings import Settings


def partition_of(key: str, partitions: int) -> int:
    """The partition of a partition key (a site id, or a device id without a site)."""
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, not {partitions}")
    if partitions == 1:
        return 0
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % partitions


def device_key(device_id: str, site_id: str | None) -> str:
    """What a device is partitioned by: its site, or its own id if it has no site."""
    return site_id or device_id


def device_partition(device_id: str, site_id: str | None, partitions: int) -> int:
    return partition_of(device_key(device_id, site_id), partitions)


def parse_owned(spec: str | None, partitions: int) -> tuple[int, ...]:
    """`"0,2"` or `"0-3,6"` -> sorted partition numbers; None, "" or "all" -> every partition."""
    if partitions < 1:
        raise ValueError(f"partitions must be at least 1, not {partitions}")
    if spec is None or spec.strip().lower() in ("", "all"):
        return tuple(range(partitions))
    owned: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        lo, sep, hi = part.partition("-")
        try:
            first, last = (int(lo), int(hi)) if sep else (int(part), int(part))
        except ValueError:
            raise ValueError(f"owned partitions {spec!r}: {part!r} is not a number or a range "
                             "such as 0-3") from None
        if first > last:
            raise ValueError(f"owned partitions {spec!r}: empty range {part!r}")
        if first < 0 or last >= partitions:
            raise ValueError(f"owned partitions {spec!r}: {part!r} is outside 0..{partitions - 1}")
        owned.update(range(first, last + 1))
    return tuple(sorted(owned))


def session_client_id(base: str, partition: int) -> str:
    """The MQTT client id of a partition's persistent session (fixed, so any worker that runs
    the partition later resumes the same session and its queued messages)."""
    return f"{base}-p{partition}"


def priority_client_id(session_id: str) -> str:
    """The client id of the session that carries a session's events and status (fire first:
    the broker queues per session, so they never wait behind telemetry)."""
    return f"{session_id}-priority"


def topic_filter(device_id: str) -> str:
    """One device's telemetry, as one exact filter (the bulk session of its partition)."""
    return f"{TOPIC_ROOT}/{device_id}/telemetry"


def priority_filters(device_id: str) -> list[str]:
    """One device's events and status (the priority session of its partition)."""
    return [f"{TOPIC_ROOT}/{device_id}/event", f"{TOPIC_ROOT}/{device_id}/status"]


@dataclass(frozen=True, slots=True)
class Partitioning:
    """How many partitions there are and which of them this worker serves."""

    partitions: int = 1
    owned: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise ValueError(f"partitions must be at least 1, not {self.partitions}")
        if not self.owned or any(p < 0 or p >= self.partitions for p in self.owned):
            raise ValueError(f"owned partitions {self.owned} are not within 0..{self.partitions - 1}")

    @classmethod
    def of(cls, partitions: int, owned: str | Iterable[int] | None = None) -> Partitioning:
        if owned is None or isinstance(owned, str):
            numbers = parse_owned(owned, partitions)
        else:
            numbers = tuple(sorted(set(owned)))
        return cls(partitions, numbers)

    @classmethod
    def from_settings(cls, settings: Settings) -> Partitioning:
        return cls.of(settings.ingest_partitions, settings.ingest_owned_partitions)

    @property
    def partitioned(self) -> bool:
        """Whether devices are split over sessions (P > 1); P = 1 is the single `fire/#` session."""
        return self.partitions > 1

    @property
    def serves_all(self) -> bool:
        return len(self.owned) == self.partitions

    def partition(self, device_id: str, site_id: str | None) -> int:
        return device_partition(device_id, site_id, self.partitions)

    def owns(self, device_id: str, site_id: str | None) -> bool:
        """Whether this worker serves the device (always, with P = 1 or every partition owned)."""
        return self.serves_all or self.partition(device_id, site_id) in self.owned
