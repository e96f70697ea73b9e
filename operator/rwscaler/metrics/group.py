"""Splitting query answers back into per-workload signals, and judging each value.

`prometheus.py` asks each preset signal once for a whole group of workloads (the template
rendered with the union of their placeholders); this module finds, in that one answer, the
series that belong to each workload (by the template's `by` labels and `Owner`) and turns them
into `Signal`s. The same judging serves custom queries (one workload, `by` empty or `pod`).

Every way a value can be missing or unusable is a distinct `UnknownReason` whose message names
the signal: no series (EmptyResult), several series where one was expected (MultipleSeries),
NaN/Inf (NotANumber), a newest sample older than `spec.metrics.staleness` (StaleSample).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from rwscaler.core.observation import Aggregation, Signal, UnknownReason
from rwscaler.metrics.client import QueryFailure, Series
from rwscaler.metrics.promql import AGGREGATION_LABEL, PART_LABEL, pooler_databases, sets_of
from rwscaler.metrics.signals import LATENCY_SIGNALS, Owner, SignalName
from rwscaler.metrics.source import WorkloadQuery

Key = tuple[str, ...]


@dataclass(slots=True)
class Indexed:
    """One answer, indexed by the values of the `by` labels."""

    by: tuple[str, ...]
    # True when the query carried a freshness part: then a value without a stamp is not current.
    dated: bool = False
    values: dict[Key, list[float]] = field(default_factory=dict)
    # Per key, the oldest of the "ts" part's values: when the newest sample feeding it was taken.
    fresh: dict[Key, float] = field(default_factory=dict)
    # Keys whose value series says it is an average stand-in (a preset's histogram fallback).
    averages: set[Key] = field(default_factory=set)


def index(series: Sequence[Series], by: tuple[str, ...], dated: bool = False) -> Indexed:
    out = Indexed(by, dated)
    for s in series:
        key = tuple(s.labels.get(label, "") for label in by)
        if s.labels.get(PART_LABEL) == "ts":
            if math.isfinite(s.value):
                out.fresh[key] = min(out.fresh.get(key, math.inf), s.value)
        else:
            out.values.setdefault(key, []).append(s.value)
            if s.labels.get(AGGREGATION_LABEL) == Aggregation.AVERAGE.value:
                out.averages.add(key)
    return out


@dataclass(frozen=True, slots=True)
class Judge:
    """What a value is checked against: the signal's name (for messages), time, staleness."""

    signal: SignalName
    now: float
    staleness_s: float
    aggregation: Aggregation = Aggregation.PERCENTILE
    hint: str = ""

    def failure(self, failure: QueryFailure) -> Signal:
        return Signal.unknown(failure.reason, f"{self.signal}: {failure.message}")

    def one(self, answer: Indexed, key: Key) -> Signal:
        """The signal of one key: exactly one finite, fresh value, or the reason why not."""
        values = answer.values.get(key, [])
        value = values[0] if len(values) == 1 else math.nan
        stamp = answer.fresh.get(key)
        if (
            math.isfinite(value)
            and (stamp is not None or not answer.dated)
            and (stamp is None or self.now - stamp <= self.staleness_s)
        ):
            # The common case first, without building the words a problem would need.
            return Signal.of(value, Aggregation.AVERAGE if key in answer.averages else self.aggregation)
        where = _where(answer.by, key)
        if not values:
            hint = f" ({self.hint})" if self.hint else ""
            return Signal.unknown(UnknownReason.EMPTY, f"{self.signal}: no series for {where}{hint}")
        if len(values) > 1:
            return Signal.unknown(
                UnknownReason.MULTIPLE_SERIES,
                f"{self.signal}: {len(values)} series for {where} where one was expected "
                "(aggregate the query, e.g. sum by (...) or max by (pod) (...))",
            )
        value = values[0]
        if not math.isfinite(value):
            why = " (an average over no queries in the window is 0/0)" if math.isnan(value) else ""
            return Signal.unknown(
                UnknownReason.NOT_A_NUMBER, f"{self.signal}: the value for {where} is {value}{why}"
            )
        stamp = answer.fresh.get(key)
        if stamp is None and answer.dated:
            # A rate over a window can still be computed from samples taken before the series
            # stopped being scraped; the instant timestamp() has nothing: the value is not current.
            return Signal.unknown(
                UnknownReason.STALE,
                f"{self.signal}: no current sample for {where} (its series stopped being scraped)",
            )
        if stamp is not None and self.now - stamp > self.staleness_s:
            return Signal.unknown(
                UnknownReason.STALE,
                f"{self.signal}: the newest sample for {where} is {self.now - stamp:.0f}s old "
                f"(staleness bound {self.staleness_s:g}s)",
            )
        average = key in answer.averages
        return Signal.of(value, Aggregation.AVERAGE if average else self.aggregation)

    def total(self, answer: Indexed, keys: Sequence[Key]) -> Signal:
        """Several keys' values as one: the sum of rates, the highest of latencies (a per-instance
        layout's worst server stands for the p99, an upper bound); unknown as soon as one key is
        (a partial sum undercounts)."""
        parts = [self.one(answer, key) for key in keys]
        for part in parts:
            if not part.known:
                return part
        if not parts:
            return Signal.unknown(UnknownReason.EMPTY, f"{self.signal}: the workload has no pods to read")
        # Latencies and ratios are not added: the worst server's stands for the whole.
        combine = max if self.signal in (*LATENCY_SIGNALS, SignalName.ROWS_PER_WRITE) else sum
        return Signal.of(combine(p.value for p in parts if p.value is not None), parts[0].aggregation)


def _where(by: tuple[str, ...], key: Key) -> str:
    if not by:
        return "the workload's query"
    return ", ".join(f'{label}="{value}"' for label, value in zip(by, key, strict=True))


def owner_keys(owner: Owner, q: WorkloadQuery) -> list[Key]:
    """The keys (values of the template's `by` labels) whose series are this workload's."""
    ns = q.namespace
    if owner is Owner.READ_DATABASE:
        db = pooler_databases(q).read
        return [(ns, db)] if db is not None else []
    if owner is Owner.WRITE_DATABASE:
        db = pooler_databases(q).write
        return [(ns, db)] if db is not None else []
    if owner is Owner.PRIMARY_SET:
        return [(ns, s) for s in sets_of(q.primary_pods)]
    if owner is Owner.READ_SET:
        return [(ns, s) for s in sets_of(q.read_pods)]
    if owner is Owner.ALL_SETS:
        return [(ns, s) for s in sets_of(q.pods)]
    if owner is Owner.ALL_PODS:
        return [(ns, pod) for pod in q.pods]
    return [(ns, pod) for pod in q.replica_pods]
