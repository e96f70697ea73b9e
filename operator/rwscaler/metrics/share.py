"""Serving per-workload reads from shared, grouped reads of every workload.

The operator runs one loop per ReadWriteWorkload, each ticking on its own schedule and asking
the source for its one workload. Asked literally, that costs every workload its own five
queries per interval. `SharedReads` turns those calls back into grouped reads:

- every workload that asked recently is remembered (with its latest WorkloadQuery);
- when a workload's reading is missing or older than its reuse bound, ONE grouped read is made
  for it and for every remembered workload of the same group (same Prometheus, timeout and
  rate window) whose reading is past half its bound, and all their readings are kept;
- a workload that ticks shortly after is served that kept reading, if it was made for exactly
  its current WorkloadQuery (same spec, same pods) and is younger than the bound;
- concurrent misses of one group wait for one read (single flight), not one read each.

With a reuse bound of B seconds and an interval of I seconds, a group costs at most about
I / B + 1 grouped reads per interval whatever the number of workloads. Workloads with custom
queries are refreshed only when they ask themselves: their queries are theirs alone, and asking
them on every other workload's tick would multiply them.

Used by `prometheus.py`; knows nothing of HTTP or PromQL.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass

from rwscaler.core.spec import MetricsPreset
from rwscaler.metrics.source import MetricsReading, WorkloadQuery

ReadAll = Callable[[Sequence[WorkloadQuery], float], Awaitable[dict[str, MetricsReading]]]


@dataclass(frozen=True, slots=True)
class _Kept:
    query: WorkloadQuery
    at: float
    reading: MetricsReading


def shareable(q: WorkloadQuery) -> bool:
    """True when every signal comes from grouped preset queries (no per-workload query)."""
    if q.spec.metrics.preset is MetricsPreset.CUSTOM:
        return False
    overrides = q.spec.metrics.queries
    return overrides is None or all(v is None for v in overrides.model_dump().values())


def default_reuse_s(q: WorkloadQuery) -> float:
    # Half an interval, at most 5 s: a reading is never much older than the scrape it came from.
    return min(q.spec.behavior.intervalSeconds / 2.0, 5.0)


_FORGET_EVERY_S = 1.0


def forget_after_s(q: WorkloadQuery) -> float:
    # A workload that stopped asking (deleted, or its loop stopped) leaves the groups.
    return max(3.0 * q.spec.behavior.intervalSeconds, 60.0)


class SharedReads:
    def __init__(
        self,
        read_all: ReadAll,
        group_of: Callable[[WorkloadQuery], Hashable],
        reuse_s: Callable[[WorkloadQuery], float] = default_reuse_s,
    ) -> None:
        self._read_all = read_all
        self._group_of = group_of
        self._reuse_s = reuse_s
        self._seen: dict[str, tuple[WorkloadQuery, float]] = {}
        self._kept: dict[str, _Kept] = {}
        self._locks: dict[Hashable, asyncio.Lock] = {}
        self._forgot_at = -math.inf

    def _fresh(self, q: WorkloadQuery, now: float) -> MetricsReading | None:
        kept = self._kept.get(q.key)
        if kept is None or kept.query != q:
            return None
        age = now - kept.at
        return kept.reading if 0 <= age <= self._reuse_s(q) else None

    def _due(self, q: WorkloadQuery, now: float) -> bool:
        """Worth refreshing along: no reading, one for other pods, or past half its reuse bound.

        A workload whose reading is still young is left out, so that a newly created workload
        (whose first ask nobody could foresee) costs a small read of its own instead of a read
        of the whole group every time one appears.
        """
        kept = self._kept.get(q.key)
        if kept is None or kept.query != q:
            return True
        age = now - kept.at
        return not 0 <= age <= self._reuse_s(q) / 2

    def _forget(self, now: float) -> None:
        # Every workload asks on each of its ticks: looking through all of them on every ask
        # made each tick O(workloads) (0.7 ms a tick at 1,000). Once a second is soon enough
        # for a bound of at least 60 s.
        if 0 <= now - self._forgot_at < _FORGET_EVERY_S:
            return
        self._forgot_at = now
        for key, (q, seen) in list(self._seen.items()):
            if now - seen > forget_after_s(q):
                del self._seen[key]
                self._kept.pop(key, None)

    async def read(self, queries: Sequence[WorkloadQuery], now: float) -> dict[str, MetricsReading]:
        for q in queries:
            self._seen[q.key] = (q, now)
        self._forget(now)
        out: dict[str, MetricsReading] = {}
        misses: dict[Hashable, list[WorkloadQuery]] = {}
        for q in queries:
            reading = self._fresh(q, now)
            if reading is not None:
                out[q.key] = reading
            else:
                misses.setdefault(self._group_of(q), []).append(q)
        results = await asyncio.gather(*(self._refresh(group, qs, now) for group, qs in misses.items()))
        for readings in results:
            out.update(readings)
        return out

    async def _refresh(
        self, group: Hashable, wanted: list[WorkloadQuery], now: float
    ) -> dict[str, MetricsReading]:
        lock = self._locks.setdefault(group, asyncio.Lock())
        async with lock:
            out: dict[str, MetricsReading] = {}
            missing: list[WorkloadQuery] = []
            for q in wanted:  # another caller's read may have served us while we waited
                reading = self._fresh(q, now)
                if reading is not None:
                    out[q.key] = reading
                else:
                    missing.append(q)
            if not missing:
                return out
            keys = {q.key for q in missing}
            others = [
                q
                for q, _ in self._seen.values()
                if q.key not in keys and shareable(q) and self._group_of(q) == group and self._due(q, now)
            ]
            batch = missing + others
            readings = await self._read_all(batch, now)
            for q in batch:
                reading = readings.get(q.key)
                if reading is not None:
                    self._kept[q.key] = _Kept(q, now, reading)
            out.update({q.key: readings[q.key] for q in missing})
            return out
