"""The operator's own metrics, served on /metrics for Prometheus (docs/operator-metrics.md).

`handlers` hands every tick's result to `OwnMetrics.tick` (and a deleted workload to `forget`);
`command_run` starts the HTTP server when `rwscaler run --metrics-address` asks for one. What is
exported is what the last tick of each workload decided and saw (replicas, read pool, lag, QPS,
latencies against their objectives, the workload class), counters of what it did (scale actions,
read-pool changes, decisions by rule), how long ticks take, and the Prometheus queries that failed
by reason. Per-workload series carry `namespace` and `name` (and `pod` or `side` where one workload
has several): they go when the workload goes, so the label sets stay as many as the workloads.

A value the tick does not know (a signal Prometheus did not give) is left out, never exported as
0: `rwscaler_signal_known` says which are missing. The per-workload values are read at scrape time
from what the ticks left (a custom collector), so a tick only replaces one small record; the
server runs in a thread of its own (prometheus_client's), and the lock below keeps a scrape from
reading a record half replaced. Only this module imports prometheus_client.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from rwscaler.core.observation import UnknownReason
from rwscaler.reconcile import TickResult

# The reasons a Prometheus query itself fails with (the others say what an answer lacked).
QUERY_FAILURES = (
    UnknownReason.UNREACHABLE,
    UnknownReason.TIMEOUT,
    UnknownReason.HTTP_ERROR,
    UnknownReason.QUERY_ERROR,
)

# The `rule` of a decision no rule took part in (every signal within its objective: it holds).
NO_RULE = "none"

# Ticks take milliseconds when every read is cached, seconds when they wait for a grouped read or a
# slow Prometheus (bounded by spec.prometheus.timeout, at most a minute).
TICK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class _Facts:
    """What one workload's last tick decided and saw (None: not known)."""

    at: float  # unix time of the tick
    problem: str | None  # the Ready=False reason (a missing scale target still decides: reads on the primary)
    desired: int | None = None
    current: int | None = None
    most: int | None = None  # spec.replicas.maxReplicas
    pool: tuple[str, ...] = ()
    fallback: bool = False  # reads on the primary: no replica may serve them
    replicas: tuple[str, ...] = ()  # the replica pods observed
    lags: Mapping[str, float | None] = field(default_factory=dict)  # pod -> seconds
    max_lag_s: float | None = None
    lag_objective_s: float | None = None
    qps: Mapping[str, float | None] = field(default_factory=dict)  # side -> queries/s
    p99: Mapping[str, float | None] = field(default_factory=dict)  # side -> seconds
    objectives: Mapping[str, float] = field(default_factory=dict)  # side -> seconds
    ratio: float | None = None
    workload_class: str | None = None


@dataclass
class _Counts:
    """What the ticks of one workload did, counted since the operator started (or it appeared)."""

    decisions: Counter[str] = field(default_factory=Counter)  # rule -> ticks it fired in
    scale: Counter[str] = field(default_factory=Counter)  # up, down -> actions
    scale_failures: int = 0
    pool_changes: int = 0

    def copy(self) -> _Counts:
        """A snapshot a scrape can read while ticks go on counting."""
        return _Counts(self.decisions.copy(), self.scale.copy(), self.scale_failures, self.pool_changes)


class OwnMetrics(Collector):
    """The registry the /metrics endpoint serves, and what the ticks report into it."""

    def __init__(self, query_errors: Callable[[], Mapping[str, int]] = dict) -> None:
        """`query_errors`: the Prometheus queries that failed so far, by unknown-reason (the
        metrics source's count); read at scrape time."""
        self.registry = CollectorRegistry(auto_describe=True)
        self._query_errors = query_errors
        self._lock = threading.Lock()
        self._facts: dict[Key, _Facts] = {}
        self._counts: dict[Key, _Counts] = {}
        self._durations = Histogram(
            "rwscaler_reconcile_duration_seconds",
            "How long one tick of one workload took (observe, decide, act, report), by outcome: "
            "decided, problem (the workload could not be decided: Ready=False), failed (the tick raised).",
            ["outcome"],
            buckets=TICK_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(self)

    # ---- what the ticks report ----------------------------------------------------------------
    def tick(self, namespace: str, name: str, result: TickResult, seconds: float) -> None:
        """One tick's result (not a gone workload's: `forget` that one)."""
        outcome = "decided" if result.plan is not None else "problem"
        self._durations.labels(outcome).observe(seconds)
        facts = _facts_of(result, time.time())
        key = (namespace, name)
        with self._lock:
            counts = self._counts.setdefault(key, _Counts())
            before = self._facts.get(key)
            if result.plan is not None:
                rules = {reason.rule.value for reason in result.plan.reasons}
                counts.decisions.update(rules or {NO_RULE})
                if before is not None and before.desired is not None and before.pool != facts.pool:
                    counts.pool_changes += 1
            scale = result.scale
            if scale is not None and scale.error is not None:
                counts.scale_failures += 1
            elif scale is not None and scale.to_replicas != scale.from_replicas:
                counts.scale["up" if scale.to_replicas > scale.from_replicas else "down"] += 1
            self._facts[key] = facts

    def failed(self, seconds: float) -> None:
        """A tick that raised (the loops retry it with backoff)."""
        self._durations.labels("failed").observe(seconds)

    def forget(self, namespace: str, name: str) -> None:
        """The workload is gone: its series go too."""
        with self._lock:
            self._facts.pop((namespace, name), None)
            self._counts.pop((namespace, name), None)

    # ---- what a scrape reads (prometheus_client's Collector) ------------------------------------
    def collect(self) -> Iterator[Any]:
        with self._lock:
            facts = list(self._facts.items())
            counts = [(key, c.copy()) for key, c in self._counts.items()]
        yield from _gauges(facts)
        yield from _counters(counts)
        errors = CounterMetricFamily(
            "rwscaler_prometheus_query_errors",
            "Prometheus queries (signals and history) that failed, by the unknown-reason the signals got.",
            labels=["reason"],
        )
        # Every reason a query can fail with, from 0: a dashboard or an alert over rate() sees a
        # series before the first failure (a missing series would read as unknown).
        failures = {reason.value for reason in QUERY_FAILURES}
        counted = dict(self._query_errors())
        for reason in sorted(failures | {r for r, n in counted.items() if n}):
            errors.add_metric([reason], counted.get(reason, 0))
        yield errors

    def serve(self, host: str, port: int) -> Callable[[], None]:
        """Serve /metrics on host:port in a thread; returns what stops it."""
        server, thread = start_http_server(port, host, registry=self.registry)

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

        return stop


def _facts_of(result: TickResult, now: float) -> _Facts:
    plan, obs, spec = result.plan, result.observation, result.spec
    problem = result.problem.value if result.problem is not None else None
    if plan is None or obs is None or spec is None:
        return _Facts(now, problem or "Unknown")
    objectives = spec.objectives
    return _Facts(
        at=now,
        problem=problem,
        desired=plan.desired_replicas,
        current=plan.current_replicas,
        most=spec.replicas.maxReplicas,
        pool=tuple(plan.read_pool),
        fallback=plan.pool_fallback,
        replicas=tuple(r.name for r in obs.replicas),
        lags={r.name: r.lag.value for r in obs.replicas},
        max_lag_s=plan.max_lag_s,
        lag_objective_s=objectives.max_lag_s,
        qps={"read": obs.read_qps.value, "write": obs.write_qps.value},
        p99={"read": obs.read_p99.value, "write": obs.write_p99.value},
        objectives={"read": objectives.read_latency_s, "write": objectives.write_latency_s},
        ratio=plan.ratio,
        workload_class=plan.workload_class,
    )


def _gauges(facts: list[tuple[Key, _Facts]]) -> Iterator[GaugeMetricFamily]:
    wl = ["namespace", "name"]

    def family(name: str, doc: str, extra: tuple[str, ...] = ()) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, doc, labels=[*wl, *extra])

    last = family("rwscaler_last_tick_timestamp_seconds", "When the workload's last tick ran (unix time).")
    problem = family(
        "rwscaler_workload_problem",
        "1 while the workload cannot be decided (Ready=False), with the reason.",
        ("reason",),
    )
    desired = family("rwscaler_replicas_desired", "Read replicas the last decision wants.")
    current = family("rwscaler_replicas_current", "Read replicas the scale target has.")
    most = family(
        "rwscaler_replicas_max", "spec.replicas.maxReplicas: the most read replicas rwscaler may run."
    )
    fallback = family(
        "rwscaler_read_pool_fallback", "1 while reads go to the primary because no replica may serve them."
    )
    pool_size = family(
        "rwscaler_read_pool_size", "Pods serving reads (the primary alone when every replica lags)."
    )
    member = family(
        "rwscaler_read_pool_member", "1 for a replica in the read pool, 0 for one left out.", ("pod",)
    )
    lag = family("rwscaler_replication_lag_seconds", "Each replica's lag, where known.", ("pod",))
    max_lag = family("rwscaler_replication_lag_max_seconds", "The highest replica lag, where known.")
    lag_objective = family("rwscaler_replication_lag_objective_seconds", "spec.objectives.maxReplicationLag.")
    qps = family("rwscaler_qps", "Read and write queries per second, where known.", ("side",))
    p99 = family("rwscaler_latency_p99_seconds", "Read and write latency p99, where known.", ("side",))
    objective = family("rwscaler_latency_objective_seconds", "The latency p99 objectives.", ("side",))
    ratio = family("rwscaler_read_write_ratio", "Read QPS over write QPS, where known.")
    klass = family(
        "rwscaler_workload_class", "1 for the workload's class (ReadHeavy, WriteHeavy, ...).", ("class",)
    )
    known = family(
        "rwscaler_signal_known", "1 when the signal came from Prometheus, 0 when it is unknown.", ("signal",)
    )
    for (ns, name), f in facts:
        w = [ns, name]
        last.add_metric(w, f.at)
        if f.problem is not None:
            problem.add_metric([*w, f.problem], 1)
        if f.desired is None or f.current is None:
            continue  # nothing was decided: nothing else is known
        desired.add_metric(w, f.desired)
        current.add_metric(w, f.current)
        if f.most is not None:
            most.add_metric(w, f.most)
        fallback.add_metric(w, 1 if f.fallback else 0)
        pool_size.add_metric(w, len(f.pool))
        for pod in f.replicas:
            member.add_metric([*w, pod], 1 if pod in f.pool else 0)
            value = f.lags.get(pod)
            if value is not None:
                lag.add_metric([*w, pod], value)
        if f.max_lag_s is not None:
            max_lag.add_metric(w, f.max_lag_s)
        if f.lag_objective_s is not None:
            lag_objective.add_metric(w, f.lag_objective_s)
        for side in ("read", "write"):
            for out, values, signal in ((qps, f.qps, f"{side}QPS"), (p99, f.p99, f"{side}LatencyP99")):
                value = values.get(side)
                known.add_metric([*w, signal], 0 if value is None else 1)
                if value is not None:
                    out.add_metric([*w, side], value)
        for side, seconds in f.objectives.items():
            objective.add_metric([*w, side], seconds)
        if f.ratio is not None:
            ratio.add_metric(w, f.ratio)
        if f.workload_class is not None:
            klass.add_metric([*w, f.workload_class], 1)
    yield from (
        last,
        problem,
        desired,
        current,
        most,
        fallback,
        pool_size,
        member,
        lag,
        max_lag,
        lag_objective,
        qps,
        p99,
        objective,
        ratio,
        klass,
        known,
    )


def _counters(counts: list[tuple[Key, _Counts]]) -> Iterator[CounterMetricFamily]:
    wl = ["namespace", "name"]
    decisions = CounterMetricFamily(
        "rwscaler_decisions", "Ticks whose decision a rule took part in, by rule.", labels=[*wl, "rule"]
    )
    scale = CounterMetricFamily(
        "rwscaler_scale_actions",
        "Scale actions on the replicas' scale target, by direction.",
        labels=[*wl, "direction"],
    )
    failures = CounterMetricFamily(
        "rwscaler_scale_failures", "Scale actions the API server refused.", labels=wl
    )
    pool = CounterMetricFamily("rwscaler_read_pool_changes", "Ticks that changed the read pool.", labels=wl)
    for (ns, name), c in counts:
        w = [ns, name]
        for rule, count in sorted(c.decisions.items()):
            decisions.add_metric([*w, rule], count)
        for direction in ("up", "down"):
            scale.add_metric([*w, direction], c.scale[direction])
        failures.add_metric(w, c.scale_failures)
        pool.add_metric(w, c.pool_changes)
    yield from (decisions, scale, failures, pool)
