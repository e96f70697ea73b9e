"""The simulation loop: each step, the policy sees what Prometheus would have seen at the end
of the previous step, decides, and the model serves the step's load with the replicas and read
pool that decision left. Every policy runs through this same loop.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from rwscaler.core.assemble import PodSeen, SidesSeen, assemble
from rwscaler.core.observation import History, Observation, Signal, UnknownReason
from rwscaler.core.spec import ReadWriteWorkloadSpec
from rwscaler.sim.history import TraceHistory
from rwscaler.sim.model import Cluster, ModelParams, StepResult
from rwscaler.sim.policies import Decision, make_policy
from rwscaler.sim.trace import Row, Scenario

PRIMARY = "primary"


@dataclass
class Summary:
    read_slo_violation_minutes: float = 0.0
    write_slo_violation_minutes: float = 0.0
    replica_hours: float = 0.0
    stale_read_fraction: float = 0.0
    scale_ups: int = 0
    scale_downs: int = 0
    max_replicas: int = 0


@dataclass
class Result:
    policy: str
    scenario: str
    summary: Summary
    timeline: list[dict[str, Any]] = field(default_factory=list)
    fired: list[tuple[float, str]] = field(default_factory=list)  # (t, rule) moments for the plot

    def to_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "scenario": self.scenario,
            "summary": {k: round(v, 4) if isinstance(v, float) else v for k, v in vars(self.summary).items()},
            "timeline": self.timeline,
        }


def _observe(
    spec: ReadWriteWorkloadSpec,
    row: Row,
    last: tuple[Row, StepResult],
    cluster: Cluster,
    current: int,
    pool: list[int],
    history: History,
) -> Observation:
    seen_row, seen = last
    if not row.metrics_available:
        down = Signal.unknown(UnknownReason.UNREACHABLE, "Prometheus is down (trace metrics_available=0)")
        sides = SidesSeen(down, down, down, down)
    else:
        sides = SidesSeen(
            Signal.of(seen_row.read_qps),
            Signal.of(seen_row.write_qps),
            Signal.of(seen.read_p99),
            Signal.of(seen.write_p99),
        )
    # The model's primary runs apart from the replicas (the pair layout) and is the primary by
    # that layout; its replicas go highest ordinal first, as a StatefulSet's do.
    pods = [PodSeen(PRIMARY, ready=True, rank=None, in_primary_set=True)]
    for r in sorted(cluster.replicas, key=lambda r: r.ordinal):
        ready = r.ready_at <= row.t
        lag = Signal.unknown(UnknownReason.NOT_OBSERVED, "pod not running")
        if ready:
            lag = Signal.of(cluster.lag(r, seen_row.write_qps)) if row.metrics_available else sides.read_qps
        # The simulated pooler knows its connections: none to a replica that served no reads.
        pods.append(PodSeen(r.name, ready, r.ordinal, lag=lag, connections=1 if r.ordinal in pool else 0))
    obs, _roles = assemble(spec, sides, pods, current, history)
    return obs


def simulate(
    scenario: Scenario, policy_name: str, spec: ReadWriteWorkloadSpec, params: ModelParams
) -> Result:
    params = params.model_copy(update={"slowdowns": (*params.slowdowns, *scenario.slowdowns)})
    cluster = Cluster.start(params)
    rows = scenario.rows
    policy = make_policy(policy_name, spec, cluster, rows)
    # Only a policy that reads Prometheus's history pays for building it.
    past = TraceHistory(rows, spec, scenario.step) if getattr(policy, "reads_history", False) else None
    objective_r, objective_w = spec.objectives.read_latency_s, spec.objectives.write_latency_s
    max_lag = spec.objectives.max_lag_s
    target = params.initialReplicas
    pool = [r.ordinal for r in cluster.ready(0.0)]
    # What Prometheus saw before the first step: the first row served by the initial replicas.
    last = (
        rows[0],
        copy.deepcopy(cluster).step(rows[0].t, 0.0, rows[0].read_qps, rows[0].write_qps, pool, max_lag),
    )
    summary = Summary(max_replicas=target)
    result = Result(policy_name, scenario.name, summary)
    total_reads = stale_reads = 0.0
    for i, row in enumerate(rows):
        dt = (rows[i + 1].t - row.t) if i + 1 < len(rows) else scenario.step
        obs = _observe(spec, row, last, cluster, target, pool, past.at(i) if past is not None else History())
        decision: Decision = policy.decide(i, row.t, obs)
        if decision.target != target:
            if decision.target > target:
                summary.scale_ups += 1
            else:
                summary.scale_downs += 1
            cluster.scale_to(decision.target, row.t, row.write_qps)
            target = decision.target
        pool = decision.pool if decision.pool is not None else [r.ordinal for r in cluster.ready(row.t)]
        res = cluster.step(row.t, dt, row.read_qps, row.write_qps, pool, max_lag)
        last = (row, res)
        n = len(cluster.replicas)
        summary.max_replicas = max(summary.max_replicas, n)
        summary.replica_hours += n * dt / 3600.0
        if res.read_p99 > objective_r:
            summary.read_slo_violation_minutes += dt / 60.0
        if res.write_p99 > objective_w:
            summary.write_slo_violation_minutes += dt / 60.0
        total_reads += row.read_qps * dt
        stale_reads += res.stale_reads * dt
        if decision.plan is not None:
            for reason in decision.plan.reasons:
                result.fired.append((row.t, reason.rule.value))
        result.timeline.append(
            {
                "t": row.t,
                "read_qps": round(row.read_qps, 2),
                "write_qps": round(row.write_qps, 2),
                "replicas": n,
                "ready_replicas": len(cluster.ready(row.t)),
                "read_pool": sorted(res.reads_by_server) or [PRIMARY],
                "read_p99_ms": round(res.read_p99 * 1000, 3),
                "write_p99_ms": round(res.write_p99 * 1000, 3),
                "max_lag_seconds": round(max(res.lags.values()), 3) if res.lags else None,
                "workload_class": decision.workload_class,
                "metrics_available": row.metrics_available,
                "conditions": decision.conditions,
                "recommendations": decision.recommendations,
            }
        )
    summary.stale_read_fraction = stale_reads / total_reads if total_reads else 0.0
    return result
