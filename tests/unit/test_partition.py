"""Device partitions (ingest/partition.py) and packet-sized subscription lists
(firetower/mqtt.py): stable, in range, balanced, and every device served exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt.client import topic_matches_sub

from firetower.mqtt import SUBSCRIBE_MAX_BYTES, SUBSCRIBE_MAX_FILTERS, filter_chunks
from firetower.protocol import topic_for
from ingest.partition import (
    Partitioning,
    device_key,
    device_partition,
    parse_owned,
    partition_of,
    priority_filters,
    session_client_id,
    topic_filter,
)

ids = st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True)
counts = st.integers(min_value=1, max_value=1024)


# -- the hash ---------------------------------------------------------------------------------
def test_known_values_never_change() -> None:
    """Pinned: a change here moves devices between workers (and their broker sessions)."""
    assert [partition_of("s1", p) for p in (2, 3, 4, 7, 16, 1024)] == [0, 2, 0, 5, 4, 340]
    assert [partition_of("site-0001", p) for p in (2, 3, 4, 7, 16, 1024)] == [0, 0, 2, 5, 14, 894]
    assert [partition_of("t-smok-00000", p) for p in (2, 3, 4, 7, 16, 1024)] == [1, 0, 1, 1, 1, 561]


def test_same_in_another_process_with_another_hash_seed() -> None:
    code = ("from ingest.partition import partition_of;"
            "print([partition_of(f'site-{i}', 7) for i in range(50)])")
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env=dict(os.environ, PYTHONHASHSEED=seed)).stdout for seed in ("1", "2")}
    assert runs == {str([partition_of(f"site-{i}", 7) for i in range(50)]) + "\n"}


@given(ids, counts)
def test_in_range_and_deterministic(key: str, partitions: int) -> None:
    p = partition_of(key, partitions)
    assert 0 <= p < partitions
    assert partition_of(key, partitions) == p


@given(ids)
def test_one_partition_is_partition_zero(key: str) -> None:
    assert partition_of(key, 1) == 0


def test_zero_partitions_refused() -> None:
    with pytest.raises(ValueError):
        partition_of("x", 0)


@pytest.mark.parametrize("partitions", [2, 3, 4, 8, 16])
def test_sequential_site_ids_spread_evenly(partitions: int) -> None:
    n = 20_000
    share = Counter(partition_of(f"site-{i:05d}", partitions) for i in range(n))
    assert set(share) == set(range(partitions))
    expected = n / partitions
    sd = (expected * (1 - 1 / partitions)) ** 0.5  # binomial: what a uniform hash gives
    for count in share.values():
        assert abs(count - expected) < 4 * sd  # 2.8 % of the share for P = 2, 11 % for P = 16


# -- what is hashed ---------------------------------------------------------------------------
@given(ids, ids)
def test_a_site_keeps_its_devices_together(site: str, device: str) -> None:
    assert device_key(device, site) == site
    assert device_partition(device, site, 8) == partition_of(site, 8)


@given(ids)
def test_a_device_without_a_site_goes_by_its_id(device: str) -> None:
    assert device_key(device, None) == device
    assert device_partition(device, None, 8) == partition_of(device, 8)


# -- which partitions a worker owns ---------------------------------------------------------
@pytest.mark.parametrize(("spec", "partitions", "owned"), [
    (None, 4, (0, 1, 2, 3)),
    ("", 4, (0, 1, 2, 3)),
    ("all", 2, (0, 1)),
    ("0,2", 4, (0, 2)),
    (" 2 , 0 ", 4, (0, 2)),
    ("0-2", 4, (0, 1, 2)),
    ("3,0-1,1", 4, (0, 1, 3)),
    ("0", 1, (0,)),
])
def test_parse_owned(spec: str | None, partitions: int, owned: tuple[int, ...]) -> None:
    assert parse_owned(spec, partitions) == owned


@pytest.mark.parametrize(("spec", "partitions"), [
    ("4", 4), ("-1", 4), ("0,x", 4), ("2-1", 4), ("0-4", 4), ("1.5", 4), (",", 4), ("0", 0),
])
def test_parse_owned_refuses(spec: str, partitions: int) -> None:
    with pytest.raises(ValueError):
        parse_owned(spec, partitions)


@given(counts.flatmap(lambda n: st.tuples(st.just(n), st.sets(st.integers(0, n - 1), min_size=1))))
def test_parse_owned_reads_back_any_list(case: tuple[int, set[int]]) -> None:
    partitions, owned = case
    assert parse_owned(",".join(map(str, owned)), partitions) == tuple(sorted(owned))


@given(st.integers(2, 16).flatmap(
    lambda n: st.tuples(st.just(n), st.lists(st.integers(0, 3), min_size=n, max_size=n))),
    st.lists(st.tuples(ids, st.one_of(st.none(), ids)), max_size=50))
def test_workers_that_split_the_partitions_serve_each_device_exactly_once(
        layout: tuple[int, list[int]], devices: list[tuple[str, str | None]]) -> None:
    partitions, worker_of = layout  # partition p is run by worker worker_of[p]
    workers = [Partitioning.of(partitions, [p for p in range(partitions) if worker_of[p] == w])
               for w in set(worker_of)]
    for device, site in devices:
        assert sum(w.owns(device, site) for w in workers) == 1


def test_partitioning_from_settings_and_flags() -> None:
    from firetower.settings import Settings

    one = Partitioning.from_settings(Settings(env="development"))
    assert (one.partitions, one.owned, one.partitioned, one.serves_all) == (1, (0,), False, True)
    two = Partitioning.from_settings(Settings(env="development", ingest_partitions=4,
                                              ingest_owned_partitions="1,3"))
    assert (two.partitioned, two.serves_all, two.owned) == (True, False, (1, 3))
    assert Partitioning.of(3).serves_all
    with pytest.raises(ValueError):
        Partitioning.of(2, [2])
    with pytest.raises(ValueError):
        Partitioning.of(2, [])


# -- sessions and topic filters -----------------------------------------------------------
def test_session_client_ids() -> None:
    assert session_client_id("firetower-ingest", 0) == "firetower-ingest-p0"
    assert session_client_id("firetower-ingest", 12) == "firetower-ingest-p12"


@given(ids, ids)
def test_a_device_filter_matches_its_own_topics_only(device: str, other: str) -> None:
    bulk, prio = topic_filter(device), priority_filters(device)
    for kind in ("telemetry", "event", "status"):
        for d in (device, other):
            on_bulk = topic_matches_sub(bulk, topic_for(d, kind))
            on_prio = any(topic_matches_sub(f, topic_for(d, kind)) for f in prio)
            assert on_bulk == (d == device and kind == "telemetry")
            assert on_prio == (d == device and kind != "telemetry")
    assert not topic_matches_sub(bulk, f"fire/v1/{device}/telemetry/extra")


@given(st.lists(ids, max_size=3000),
       st.integers(1, SUBSCRIBE_MAX_FILTERS), st.integers(70, SUBSCRIBE_MAX_BYTES))
def test_filter_chunks_keep_every_filter_once_in_order_within_the_limits(
        names: list[str], max_filters: int, max_bytes: int) -> None:
    filters = [topic_filter(n) for n in names]
    chunks = list(filter_chunks(filters, max_filters, max_bytes))
    assert [f for c in chunks for f in c] == filters
    for c in chunks:
        assert 1 <= len(c) <= max_filters
        assert sum(len(f.encode()) + 3 for f in c) <= max_bytes


def test_filter_chunks_default_limits_fit_the_broker_packet_size() -> None:
    longest = topic_filter("x" * 64)  # 74 bytes
    chunks = list(filter_chunks([longest] * 5000))
    assert max(len(c) for c in chunks) * (len(longest) + 3) < 65536  # firetower.conf max_packet_size
    assert sum(map(len, chunks)) == 5000
