"""Per-workload reads served from shared grouped reads (rwscaler.metrics.share).

The operator asks for one workload at a time, on each workload's own tick; the queries per
interval must still not grow with the number of workloads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace

from test_metrics_presets import dead_url, many

from rwscaler.core.observation import Signal
from rwscaler.metrics.prometheus import PrometheusMetricsSource
from rwscaler.metrics.share import SharedReads
from rwscaler.metrics.source import MetricsReading, WorkloadQuery

URL = "http://prometheus:9090"


class CountingReads:
    """A stand-in for the grouped read: records every batch, answers each key with a marker."""

    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[list[str]] = []
        self.delay = delay

    async def __call__(self, queries: Sequence[WorkloadQuery], now: float) -> dict[str, MetricsReading]:
        self.batches.append(sorted(q.key for q in queries))
        if self.delay:
            await asyncio.sleep(self.delay)
        return {q.key: MetricsReading.all_unknown(Signal.of(now), q.replica_pods) for q in queries}


def group_of(q: WorkloadQuery) -> str:
    return q.spec.prometheus.url


def stamp(reading: MetricsReading) -> float | None:
    return reading.read_qps.value


async def test_workloads_ticking_apart_share_one_read() -> None:
    reads = CountingReads()
    shared = SharedReads(reads, group_of, lambda q: 5.0)
    a, b, c = many(3, URL)
    await shared.read([a], 100.0)  # first: only a is known
    await shared.read([b], 103.0)  # b is new; a's reading is past half its bound: read along
    await shared.read([c], 103.5)  # c is new; a and b are fresh: c alone (a small read)
    got_a = await shared.read([a], 104.0)  # a: served from b's read
    await shared.read([b], 108.5)  # b's reading is past its bound: everybody due is read along
    got_c = await shared.read([c], 109.0)
    assert reads.batches == [
        ["ns0/db0"],
        ["ns0/db0", "ns1/db1"],
        ["ns2/db2"],
        ["ns0/db0", "ns1/db1", "ns2/db2"],
    ]
    assert stamp(got_a[a.key]) == 103.0 and stamp(got_c[c.key]) == 108.5


async def test_a_reading_older_than_the_bound_is_read_again() -> None:
    reads = CountingReads()
    shared = SharedReads(reads, group_of, lambda q: 5.0)
    (a,) = many(1, URL)
    await shared.read([a], 100.0)
    assert stamp((await shared.read([a], 104.9))[a.key]) == 100.0
    assert stamp((await shared.read([a], 105.1))[a.key]) == 105.1
    # A clock that went back never serves a reading "from the future".
    assert stamp((await shared.read([a], 90.0))[a.key]) == 90.0
    assert len(reads.batches) == 3


async def test_a_changed_workload_is_read_for_its_current_pods() -> None:
    reads = CountingReads()
    shared = SharedReads(reads, group_of, lambda q: 5.0)
    (a,) = many(1, URL)
    await shared.read([a], 100.0)
    scaled = replace(a, replica_pods=(*a.replica_pods, "db0-replica-1"))
    got = await shared.read([scaled], 100.1)
    assert len(reads.batches) == 2 and set(got[a.key].replica_lag) == {"db0-replica-0", "db0-replica-1"}


async def test_custom_workloads_are_not_refreshed_on_other_ticks() -> None:
    reads = CountingReads()
    shared = SharedReads(reads, group_of, lambda q: 5.0)
    (custom,) = many(1, URL, {"preset": "custom", "queries": {s: "vector(1)" for s in _SIGNALS}})
    preset_a, preset_b = many(2, URL)[0], replace(many(2, URL)[1], key="ns1/other")
    await shared.read([custom], 100.0)
    await shared.read([preset_a], 100.1)
    await shared.read([preset_b], 103.0)
    # custom's own queries ride along only when it asks itself.
    assert reads.batches[1:] == [["ns0/db0"], ["ns0/db0", "ns1/other"]]


_SIGNALS = ("readQPS", "writeQPS", "readLatencyP99", "writeLatencyP99", "replicationLag")


async def test_concurrent_misses_of_a_group_wait_for_one_read() -> None:
    reads = CountingReads(delay=0.05)
    shared = SharedReads(reads, group_of, lambda q: 5.0)
    qs = many(20, URL)
    results = await asyncio.gather(*(shared.read([q], 100.0) for q in qs))
    # The first caller's read carries what was remembered then; everyone registered before the
    # lock was taken is served by at most one more read.
    assert len(reads.batches) <= 2
    assert all(q.key in r for q, r in zip(qs, results, strict=True))


async def test_groups_are_read_independently_and_concurrently() -> None:
    reads = CountingReads(delay=0.2)
    shared = SharedReads(reads, group_of, lambda q: 5.0)
    a = many(1, URL)[0]
    b = many(1, "http://other:9090")[0]
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.gather(shared.read([a], 100.0), shared.read([b], 100.0))
    assert loop.time() - started < 0.35  # two groups side by side, not one after the other
    assert sorted(map(tuple, reads.batches)) == [("ns0/db0",), ("ns0/db0",)]


async def test_workloads_that_stop_asking_are_forgotten() -> None:
    reads = CountingReads()
    shared = SharedReads(reads, group_of, lambda q: 5.0)
    a, b = many(2, URL)
    await shared.read([a], 100.0)
    await shared.read([b], 1000.0)  # a has not asked for 900 s: no longer read for
    assert reads.batches[-1] == ["ns1/db1"]


async def test_source_queries_stay_constant_when_every_workload_asks_alone() -> None:
    source = PrometheusMetricsSource()  # default reuse: half an interval (15 s), at most 5 s
    workloads = many(200, dead_url())
    sent: list[int] = []
    try:
        for round_start in (0.0, 15.0, 30.0):  # three intervals; each workload ticks at its own phase
            before = source.queries_sent
            for i, q in enumerate(workloads):
                await source.read([q], 1000.0 + round_start + i * 15.0 / len(workloads))
            sent.append(source.queries_sent - before)
    finally:
        await source.close()
    # The first interval, every workload is new: nobody could have read it before it asked.
    # Once every workload is known, an interval costs about interval / reuse + 1 grouped reads
    # of 7 queries (docs/metrics.md), for 200 workloads (asked alone, 200 x 7 = 1400).
    assert sent[1] <= 7 * (15 // 5 + 1) and sent[2] <= 7 * (15 // 5 + 1), sent
