"""The policies the simulator compares, all on the same model and trace.

- rwscaler: the operator's own `decide`, memory carried between ticks exactly as status would.
- keda-qps: KEDA's Prometheus scaler on read QPS per replica, HPA behaviour underneath
  (keda_qps.py): the baseline users would actually pick.
- hpa-latency: the Kubernetes HPA algorithm on read p99 against the read objective (usage ratio
  with a 0.1 tolerance, desired = ceil(current x ratio), 300 s scale-down stabilization, the
  default scale-up policy of max(100%, 4 pods) per 15 s, hold on missing metrics) with a
  lag-unaware read pool (every ready replica serves reads). Latency is a poor HPA metric (it
  falls as replicas are added, so the loop oscillates); kept to show that.
- static: maxReplicas throughout, lag-unaware pool.
- oracle: clairvoyant: at each step the fewest replicas that keep reads under the objective over
  the next provisioning delay (it sees the future trace), removed as soon as they are not needed,
  with a lag-aware pool. A lower bound on cost, not a policy anyone can run.

The engine (engine.py) builds one with `make_policy` per run and calls its `decide` every step.
"""

from __future__ import annotations

from collections.abc import Sequence

from rwscaler.core.act_rules import scale_count
from rwscaler.core.classify import classify
from rwscaler.core.decide import decide
from rwscaler.core.memory import Memory
from rwscaler.core.observation import Observation
from rwscaler.core.spec import ReadWriteWorkloadSpec
from rwscaler.sim.decision import Decision, Policy
from rwscaler.sim.hpa import HPA_TOLERANCE, HpaStabilizer, ratio_recommendation
from rwscaler.sim.keda_qps import KedaQpsPolicy
from rwscaler.sim.model import Cluster
from rwscaler.sim.trace import Row

POLICIES = ("rwscaler", "keda-qps", "hpa-latency", "static", "oracle")
__all__ = ["POLICIES", "Decision", "Policy", "available_policies", "make_policy"]


def available_policies(spec: ReadWriteWorkloadSpec) -> list[str]:
    """Every policy that can run on this workload: keda-qps needs targetReadQPSPerReplica."""
    return [p for p in POLICIES if p != "keda-qps" or spec.replicas.targetReadQPSPerReplica is not None]


def _ordinal(name: str) -> int | None:
    head, _, tail = name.rpartition("-")
    return int(tail) if head == "replica" and tail.isdigit() else None


class RwscalerPolicy:
    name = "rwscaler"
    reads_history = True  # the engine gives it Prometheus's history from the trace (history.py)

    def __init__(self, spec: ReadWriteWorkloadSpec) -> None:
        self.spec = spec
        self.memory = Memory()

    def decide(self, index: int, t: float, obs: Observation) -> Decision:
        plan = decide(self.spec, obs, self.memory, t)
        self.memory = plan.memory
        pool = [o for o in (_ordinal(n) for n in plan.read_pool) if o is not None]
        # The count the operator would set, by the same rule (core/act_rules.py); the model's
        # replicas are read replicas only, so the target's own count is not needed here.
        counts = scale_count(self.spec, plan)
        return Decision(
            target=counts[0] if counts is not None else obs.current_replicas,
            pool=pool,
            workload_class=plan.workload_class,
            conditions=plan.true_conditions(),
            recommendations=[r.type.value for r in plan.recommendations],
            plan=plan,
        )


class HpaLatencyPolicy:
    name = "hpa-latency"

    def __init__(self, spec: ReadWriteWorkloadSpec) -> None:
        self.spec = spec
        self.hpa = HpaStabilizer(spec.replicas.minReplicas, spec.replicas.maxReplicas)

    def decide(self, index: int, t: float, obs: Observation) -> Decision:
        current = obs.current_replicas
        wclass = classify(obs.read_qps.value, obs.write_qps.value).value
        if obs.read_p99.value is None:  # the HPA skips a metric it cannot read
            self.hpa.seed(t, current)
            return Decision(self.hpa.clamp(current), None, wclass)
        ratio = obs.read_p99.value / self.spec.objectives.read_latency_s
        recommendation = ratio_recommendation(ratio, current, HPA_TOLERANCE)
        return Decision(self.hpa.desired(t, current, recommendation), None, wclass)


class StaticPolicy:
    name = "static"

    def __init__(self, spec: ReadWriteWorkloadSpec) -> None:
        self.spec = spec

    def decide(self, index: int, t: float, obs: Observation) -> Decision:
        wclass = classify(obs.read_qps.value, obs.write_qps.value).value
        return Decision(self.spec.replicas.maxReplicas, None, wclass)


class OraclePolicy:
    name = "oracle"

    def __init__(self, spec: ReadWriteWorkloadSpec, cluster: Cluster, rows: Sequence[Row]) -> None:
        self.spec = spec
        lo, hi = spec.replicas.minReplicas, spec.replicas.maxReplicas
        objective = spec.objectives.read_latency_s
        need = [max(lo, cluster.min_replicas_for(r.read_qps, r.write_qps, objective, hi)) for r in rows]
        lead = cluster.params.provisioningSeconds
        step = rows[1].t - rows[0].t if len(rows) > 1 else 0.0
        # A replica asked for at row i is ready `lead` seconds later and joins the pool once its
        # lag is seen caught up, a step later; so ask at i for the most any row needs until
        # the decision after next plus that delay.
        self.schedule: list[int] = []
        j = 0
        for i, row in enumerate(rows):
            j = max(j, i)
            while j + 1 < len(rows) and rows[j + 1].t < row.t + 2 * step + lead:
                j += 1
            self.schedule.append(max(need[i : j + 1]))
        self.max_lag = spec.objectives.max_lag_s
        self.cluster, self.rows = cluster, rows

    def decide(self, index: int, t: float, obs: Observation) -> Decision:
        # Clairvoyant: it routes on the true lag, even when Prometheus is down.
        writes = self.rows[index].write_qps
        pool = [r.ordinal for r in self.cluster.ready(t) if self.cluster.lag(r, writes) <= self.max_lag]
        wclass = classify(obs.read_qps.value, obs.write_qps.value).value
        return Decision(self.schedule[index], pool, wclass)


def make_policy(name: str, spec: ReadWriteWorkloadSpec, cluster: Cluster, rows: Sequence[Row]) -> Policy:
    if name == "rwscaler":
        return RwscalerPolicy(spec)
    if name == "keda-qps":
        return KedaQpsPolicy(spec)
    if name == "hpa-latency":
        return HpaLatencyPolicy(spec)
    if name == "static":
        return StaticPolicy(spec)
    if name == "oracle":
        return OraclePolicy(spec, cluster, rows)
    raise ValueError(f"unknown policy {name!r}; choose one of: {', '.join(POLICIES)}")
