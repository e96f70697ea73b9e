"""What becomes of a plan when acting on it meets the world: pure rules the tick and the simulator share.

`rwscaler.reconcile` applies them around its calls to the cluster and the pooler, and the
simulator's rwscaler policy (`rwscaler.sim.policies`) applies the same ones to the simulated
cluster, so a rule here is tested once and behaves the same in both:

- `effective_spec`: a paused workload is decided in Recommend mode (it reports, changes nothing);
- `scale_count`: the count to set on the scale target, clamped to the bounds once more at the
  line that touches the cluster, and including the primary when the target counts it;
- `hold_scale_in`: the pool change may not have reached the pooler: no scale-in this tick;
- `forget_failed_scale`: a scale the API refused did not happen: the memory keeps the last one
  that did, so the stabilization and reversal guards count from it.
"""

from __future__ import annotations

from dataclasses import replace

from rwscaler.core.memory import Drain, Memory
from rwscaler.core.observation import Observation
from rwscaler.core.plan import Plan
from rwscaler.core.spec import Mode, ReadWriteWorkloadSpec


def effective_spec(spec: ReadWriteWorkloadSpec, paused: bool) -> ReadWriteWorkloadSpec:
    """The spec `decide` runs with: a paused workload recommends and acts on nothing."""
    return spec.model_copy(update={"mode": Mode.RECOMMEND}) if paused else spec


def scale_count(spec: ReadWriteWorkloadSpec, plan: Plan) -> tuple[int, int] | None:
    """(read replicas, the target's own count) to set now, or None when nothing is to be set.

    `decide` keeps to the bounds already; the clamp is repeated because this is the number that
    reaches the cluster. The target's count includes the primary when it counts it
    (`spec.target_counts_primary`)."""
    if not plan.enforce or plan.scale_to is None:
        return None
    replicas = min(max(plan.scale_to, spec.replicas.minReplicas), spec.replicas.maxReplicas)
    if replicas == plan.current_replicas:
        return None
    return replicas, replicas + (1 if spec.target_counts_primary else 0)


def hold_scale_in(plan: Plan, obs: Observation, now: float) -> Plan:
    """The pool change may not have reached the pooler: no scale-in this tick, and the drain's
    clock restarts, so its timeout only ever counts time the leaving replicas were routed away."""
    scaling_in = plan.scale_to is not None and plan.scale_to < plan.current_replicas
    drain = plan.memory.drain
    target = plan.scale_to if scaling_in else drain.target_replicas if drain is not None else None
    if target is None:
        return plan
    leaving = tuple(r.name for r in obs.replicas if r.rank >= target)
    return replace(
        plan,
        scale_to=None if scaling_in else plan.scale_to,
        memory=replace(plan.memory, drain=Drain(target_replicas=target, started=now, replicas=leaving)),
    )


def forget_failed_scale(plan: Plan, before: Memory) -> Plan:
    """The plan with the memory of the last scale that did happen (`before`'s), not this one."""
    return replace(
        plan,
        memory=replace(
            plan.memory,
            last_scale_time=before.last_scale_time,
            last_scale_direction=before.last_scale_direction,
        ),
    )
