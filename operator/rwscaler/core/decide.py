"""decide(spec, observation, memory, now) -> Plan: the whole decision, pure.

No I/O, no clock, no kopf: the operator and the simulator call this same function with plain
data and the time, and everything it needs to remember comes back in `Plan.memory`. The steps:
update the trend averages, judge each side (trends.py), pick the read pool (read_pool.py), size
the replicas (sizing.py), sequence a scale-in behind a drain, then state the conditions and
recommendations with the reasons that produced them.
"""

from __future__ import annotations

import math
from dataclasses import replace

from rwscaler.core.classify import WorkloadClass, classify, read_write_ratio
from rwscaler.core.durations import format_seconds
from rwscaler.core.memory import Drain, Memory
from rwscaler.core.observation import Observation
from rwscaler.core.plan import (
    Condition,
    ConditionType,
    Plan,
    Reason,
    Recommendation,
    RecommendationType,
    Rule,
    Status,
)
from rwscaler.core.pool_sizing import size_pools
from rwscaler.core.read_pool import PoolResult, select_read_pool
from rwscaler.core.sizing import Recommendation as Sizing
from rwscaler.core.sizing import Stabilized, recommend_replicas, stabilize
from rwscaler.core.spec import Consistency, Mode, PoolerKind, ReadWriteWorkloadSpec
from rwscaler.core.trends import (
    LATENCY_TAU,
    QPS_TAU,
    SideState,
    Trend,
    latency_side,
    ratio_shift,
    update_ewma,
    write_side,
)

CQRS_ADVISED_ABOVE = 50.0
CQRS_ADVISED_AGAINST_BELOW = 10.0


def _update_trends(memory: Memory, obs: Observation, spec: ReadWriteWorkloadSpec, now: float) -> Memory:
    dt = now - memory.ewma_time if memory.ewma_time is not None else 0.0
    window = float(spec.behavior.trend.windowSeconds)
    read_qps, write_qps = obs.read_qps.value, obs.write_qps.value
    changes: dict[str, object] = {}
    if read_qps is not None:
        changes["read_qps"] = update_ewma(memory.read_qps, read_qps, dt, now, QPS_TAU)
    if write_qps is not None:
        changes["write_qps"] = update_ewma(memory.write_qps, write_qps, dt, now, QPS_TAU)
    if read_qps is not None and write_qps is not None and read_qps > 0 and write_qps > 0:
        log_ratio = math.log10(read_qps) - math.log10(write_qps)  # no under/overflow of the quotient
        changes["log_ratio"] = update_ewma(memory.log_ratio, log_ratio, dt, now, (window / 6, window))
    if obs.read_p99.value is not None:
        changes["read_latency"] = update_ewma(memory.read_latency, obs.read_p99.value, dt, now, LATENCY_TAU)
    if obs.write_p99.value is not None:
        changes["write_latency"] = update_ewma(
            memory.write_latency, obs.write_p99.value, dt, now, LATENCY_TAU
        )
    if changes:
        changes["ewma_time"] = now
    return replace(memory, **changes)  # type: ignore[arg-type]


def _drain_and_scale(
    spec: ReadWriteWorkloadSpec, obs: Observation, memory: Memory, desired: int, enforce: bool, now: float
) -> tuple[int | None, Drain | None, tuple[str, ...], list[Reason]]:
    """What to set on the StatefulSet now, sequencing a scale-in behind a drain of the pool.

    Returns the count to set (None: leave it), the drain still under way, the replicas that must
    be out of the read pool this tick (leaving or being drained), and the reasons."""
    current = obs.current_replicas
    if not enforce or desired == current:
        return None, None, (), []
    if desired > current:
        return desired, None, (), [Reason(Rule.SCALE, f"scaling up {current} -> {desired}")]
    leaving = tuple(r.name for r in sorted(obs.replicas, key=lambda r: r.ordinal) if r.ordinal >= desired)
    if spec.pooler.kind is PoolerKind.NONE:
        return desired, None, leaving, [Reason(Rule.SCALE, f"scaling down {current} -> {desired}")]
    drain = memory.drain
    if drain is None or drain.target_replicas != desired or not set(leaving) <= set(drain.replicas):
        drain = Drain(target_replicas=desired, started=now, replicas=leaving)
    else:
        drain = Drain(target_replicas=desired, started=drain.started, replicas=leaving)
    connections = [r.connections for r in obs.replicas if r.name in leaving]
    closed = all(c == 0 for c in connections)
    waited = now - drain.started
    timeout = spec.pooler.drainTimeoutSeconds
    if (closed and waited > 0) or waited >= timeout or not leaving:
        how = "no connection left" if closed and connections else f"drain timeout {timeout}s passed"
        return (
            desired,
            None,
            leaving,
            [
                Reason(
                    Rule.DRAIN_COMPLETE,
                    f"{', '.join(leaving) or 'nothing'} drained ({how}) after {format_seconds(waited)}",
                    (("waitedSeconds", waited),),
                ),
                Reason(Rule.SCALE, f"scaling down {current} -> {desired}"),
            ],
        )
    open_count = sum(c for c in connections if c is not None)
    return (
        None,
        drain,
        leaving,
        [
            Reason(
                Rule.DRAINING,
                f"draining {', '.join(leaving)} before scaling down {current} -> {desired}: "
                f"{open_count if all(c is not None for c in connections) else 'unknown'} server connection(s) "
                f"open, {format_seconds(waited)} of {timeout}s",
                (("openConnections", open_count), ("waitedSeconds", waited)),
            )
        ],
    )


def _cond(kind: ConditionType, status: Status, reason: str, message: str) -> Condition:
    return Condition(kind, status, reason, message)


def _conditions(
    spec: ReadWriteWorkloadSpec,
    obs: Observation,
    read: SideState,
    write: SideState,
    sizing: Sizing,
    stable: Stabilized,
    pool: PoolResult,
    enforce: bool,
) -> tuple[Condition, ...]:
    unknown = obs.unknown_signals()
    conds: list[Condition] = []
    if unknown:
        first = unknown[0][1].reason
        detail = "; ".join(
            f"{name}: {s.reason.value if s.reason else 'unknown'}" + (f" ({s.message})" if s.message else "")
            for name, s in unknown
        )
        conds.append(_cond(ConditionType.READY, Status.FALSE, "MetricsUnavailable", f"holding: {detail}"))
        conds.append(
            _cond(ConditionType.METRICS_AVAILABLE, Status.FALSE, first.value if first else "Unknown", detail)
        )
        for kind in (
            ConditionType.READ_CAPACITY_EXHAUSTED,
            ConditionType.WRITE_BOTTLENECK,
            ConditionType.CAPACITY_LIMIT,
        ):
            conds.append(_cond(kind, Status.UNKNOWN, "MetricsUnavailable", detail))
    else:
        note = ""
        if pool.lag_unknown:
            note = f"; replication lag unknown for {', '.join(pool.lag_unknown)} (kept out of the read pool)"
        conds.append(
            _cond(
                ConditionType.READY,
                Status.TRUE,
                "Reconciled" if enforce else "RecommendOnly",
                "deciding and acting" if enforce else "deciding and reporting; changing nothing",
            )
        )
        conds.append(
            _cond(
                ConditionType.METRICS_AVAILABLE,
                Status.TRUE,
                "SignalsKnown",
                "every signal has a value" + note,
            )
        )
        over_capacity = (
            sizing.capacity_raw is not None
            and sizing.capacity_raw > obs.current_replicas
            and read.trend is Trend.RISING
        )
        read_bound = read.trend is Trend.RISING and write.trend is Trend.STABLE
        both = read.trend is Trend.RISING and write.trend is Trend.RISING
        write_bound = write.trend is Trend.RISING and read.trend is Trend.STABLE
        rl = f"read p99 at {read.level:.2f}x objective" if read.level is not None else "read p99 unknown"
        wl = f"write p99 at {write.level:.2f}x objective" if write.level is not None else "write p99 unknown"
        conds.append(
            _cond(
                ConditionType.READ_CAPACITY_EXHAUSTED,
                Status.TRUE if read_bound or (over_capacity and not write_bound) else Status.FALSE,
                "ReadLatencyRising"
                if read_bound
                else "ReadQPSAboveCapacity"
                if over_capacity
                else "ReadCapacityAvailable",
                f"{rl}, {wl}",
            )
        )
        conds.append(
            _cond(
                ConditionType.WRITE_BOTTLENECK,
                Status.TRUE if write_bound else Status.FALSE,
                "WriteLatencyRising" if write_bound else "WritesWithinObjective",
                f"{wl}, {rl}" + ("; replicas are not added for a write bottleneck" if write_bound else ""),
            )
        )
        conds.append(
            _cond(
                ConditionType.CAPACITY_LIMIT,
                Status.TRUE if both else Status.FALSE,
                "BothSidesRising" if both else "NotBothSidesRising",
                f"{rl}, {wl}",
            )
        )
    if pool.fallback and obs.replicas:
        lag_status, lag_reason = Status.TRUE, "ReadsOnPrimary"
        lag_msg = (
            f"no replica qualifies (lagging: {', '.join(pool.lagging) or 'none'}; lag unknown: "
            f"{', '.join(pool.lag_unknown) or 'none'}): the primary {obs.primary} serves reads"
        )
    elif pool.lagging:
        lag_status, lag_reason = Status.TRUE, "ReplicasLagging"
        lag_msg = f"{', '.join(pool.lagging)} over {spec.objectives.maxReplicationLag}; out of the read pool"
    elif not obs.replicas:
        lag_status, lag_reason = Status.FALSE, "NoReplicas"
        lag_msg = f"no read replicas: the primary {obs.primary} serves reads"
    else:
        lag_status, lag_reason = Status.FALSE, "LagWithinObjective"
        max_lag = "unknown" if pool.max_lag_s is None else format_seconds(pool.max_lag_s)
        lag_msg = f"max lag {max_lag} within {spec.objectives.maxReplicationLag}"
    conds.append(_cond(ConditionType.REPLICATION_LAG_HIGH, lag_status, lag_reason, lag_msg))
    if stable.limited:
        conds.append(
            _cond(
                ConditionType.SCALING_LIMITED,
                Status.TRUE,
                stable.limited[0],
                f"desired {stable.desired} (min {spec.replicas.minReplicas}, max {spec.replicas.maxReplicas}); "
                f"limited by {', '.join(stable.limited)}",
            )
        )
    else:
        conds.append(
            _cond(
                ConditionType.SCALING_LIMITED, Status.FALSE, "DesiredWithinRange", f"desired {stable.desired}"
            )
        )
    return tuple(conds)


def _architecture_advice(ratio: float | None) -> str:
    if ratio is None:
        return "review the architecture: both sides are at their limit"
    shown = "inf" if math.isinf(ratio) else f"{ratio:.1f}"
    if ratio > CQRS_ADVISED_ABOVE:
        return f"ratio {shown}:1 is above 50:1: separating reads from writes (CQRS) is worth evaluating"
    if ratio < CQRS_ADVISED_AGAINST_BELOW:
        return (
            f"ratio {shown}:1 is below 10:1: CQRS is not advised; scale the primary vertically and "
            f"cache hot reads"
        )
    return f"ratio {shown}:1: CQRS only if read and write schemas truly diverge"


def _recommendations(
    spec: ReadWriteWorkloadSpec,
    obs: Observation,
    conds: tuple[Condition, ...],
    read: SideState,
    sizing: Sizing,
    ratio: float | None,
    ratio_moves: int,
    enforce: bool,
) -> tuple[tuple[Recommendation, ...], list[Reason]]:
    by_type = {c.type: c for c in conds}
    current = obs.current_replicas
    hi = spec.replicas.maxReplicas
    recs: list[Recommendation] = []
    reasons: list[Reason] = []
    if sizing.raw > current:
        if sizing.raw > hi:
            text = f"reads need {sizing.raw} replicas but maxReplicas is {hi}: raise maxReplicas"
        elif not enforce:
            text = f"add {sizing.raw - current} read replica(s) ({current} -> {sizing.raw}); Recommend mode applies nothing"
        else:
            text = f"adding read replicas {current} -> {sizing.raw}"
        recs.append(Recommendation(RecommendationType.ADD_READ_REPLICAS, text, sizing.raw))
    if by_type[ConditionType.READ_CAPACITY_EXHAUSTED].status is Status.TRUE and read.breached:
        reasons.append(
            Reason(Rule.READ_CAPACITY_EXHAUSTED, by_type[ConditionType.READ_CAPACITY_EXHAUSTED].message)
        )
    if by_type[ConditionType.WRITE_BOTTLENECK].status is Status.TRUE:
        msg = by_type[ConditionType.WRITE_BOTTLENECK].message
        reasons.append(Reason(Rule.WRITE_BOTTLENECK, msg))
        recs.append(
            Recommendation(
                RecommendationType.VERTICAL_SCALE_PRIMARY,
                "the write side is the bottleneck: give the primary more CPU, memory or faster storage",
            )
        )
        recs.append(
            Recommendation(
                RecommendationType.SHARD_WRITES,
                f"if the primary is already large, shard writes ({obs.write_qps.value or 0:.0f} writes/s today); "
                f"more read replicas would only add replication load",
            )
        )
    if by_type[ConditionType.CAPACITY_LIMIT].status is Status.TRUE:
        reasons.append(Reason(Rule.CAPACITY_LIMIT, by_type[ConditionType.CAPACITY_LIMIT].message))
        recs.append(Recommendation(RecommendationType.ARCHITECTURE_REVIEW, _architecture_advice(ratio)))
    if spec.consistency is Consistency.STRONG and read.breached:
        recs.append(
            Recommendation(
                RecommendationType.VERTICAL_SCALE_PRIMARY,
                "consistency strong: the primary serves every read; scale it up or cache reads with a short TTL",
            )
        )
    if ratio_moves > 0:
        reasons.append(Reason(Rule.READ_RATIO_RISING, "reads are gaining share of the traffic"))
        recs.append(
            Recommendation(
                RecommendationType.PRE_PROVISION_REPLICAS,
                "the read share is rising: provision read replicas ahead of the objective"
                + (f" ({sizing.capacity_raw} for the forecast load)" if sizing.capacity_raw else ""),
                sizing.capacity_raw,
            )
        )
    elif ratio_moves < 0:
        reasons.append(Reason(Rule.WRITE_RATIO_RISING, "writes are gaining share of the traffic"))
        recs.append(
            Recommendation(
                RecommendationType.WRITE_OPTIMIZED_STORAGE,
                "the write share keeps rising: evaluate write-optimized storage (LSM, append-only, batching)",
            )
        )
    # One recommendation per type: the first (most specific) message wins.
    seen: set[RecommendationType] = set()
    unique = []
    for r in recs:
        if r.type not in seen:
            seen.add(r.type)
            unique.append(r)
    return tuple(unique), reasons


def decide(spec: ReadWriteWorkloadSpec, observation: Observation, memory: Memory, now: float) -> Plan:
    obs = observation
    enforce = spec.mode is Mode.ENFORCE
    first_tick = memory.last_tick is None
    mem = _update_trends(memory, obs, spec, now)
    tol = spec.behavior.tolerance
    objectives = spec.objectives
    read = latency_side(obs.read_p99.value, objectives.read_latency_s, tol, mem.read_latency)
    write = latency_side(obs.write_p99.value, objectives.write_latency_s, tol, mem.write_latency)
    write = write_side(write, mem.write_qps, mem.read_qps, tol)

    draining = memory.drain.replicas if (memory.drain is not None and enforce) else ()
    pool = select_read_pool(spec, obs, memory.pool, draining, first_tick, now)
    lag_bound = bool(obs.replicas) and len(pool.lagging) * 2 > len(obs.replicas)
    sizing = recommend_replicas(
        spec, obs, mem, read, write, lag_bound, len(pool.replicas_in_pool), len(pool.out_for_lag)
    )
    stable = stabilize(spec, obs.current_replicas, sizing, mem, now)
    scale_to, drain, leaving, scale_reasons = _drain_and_scale(spec, obs, mem, stable.desired, enforce, now)
    if set(leaving) - set(draining):
        # Replicas that start draining (or go at once) this tick leave the pool this tick.
        pool = select_read_pool(spec, obs, memory.pool, leaving, first_tick, now)

    ratio = read_write_ratio(obs.read_qps.value, obs.write_qps.value)
    wclass = classify(obs.read_qps.value, obs.write_qps.value)
    ratio_moves = ratio_shift(mem.log_ratio, now, float(spec.behavior.trend.windowSeconds))
    conds = _conditions(spec, obs, read, write, sizing, stable, pool, enforce)
    recs, rule_reasons = _recommendations(spec, obs, conds, read, sizing, ratio, ratio_moves, enforce)

    reasons = [*rule_reasons, *sizing.reasons, *stable.reasons, *pool.reasons, *scale_reasons]
    if not enforce and stable.desired != obs.current_replicas:
        reasons.append(
            Reason(
                Rule.RECOMMEND_ONLY,
                f"Recommend mode: would scale {obs.current_replicas} -> {stable.desired}; changing nothing",
            )
        )
    scaled = scale_to is not None and scale_to != obs.current_replicas
    new_memory = replace(
        mem,
        last_tick=now,
        recommendations=stable.history,
        pool=pool.memory,
        drain=drain,
        breach_qps_per_replica=sizing.breach_qps_per_replica,
        last_scale_time=now if scaled else mem.last_scale_time,
        last_scale_direction=(1 if (scale_to or 0) > obs.current_replicas else -1)
        if scaled
        else mem.last_scale_direction,
    )
    return Plan(
        workload_class=wclass.value,
        ratio=ratio,
        current_replicas=obs.current_replicas,
        desired_replicas=stable.desired,
        scale_to=scale_to,
        read_pool=pool.endpoints,
        pool_fallback=pool.fallback,
        draining=drain.replicas if drain else (),
        pool_sizing=size_pools(spec.pooler.serverCores, len(pool.endpoints)),
        max_lag_s=pool.max_lag_s,
        conditions=conds,
        recommendations=recs,
        reasons=tuple(reasons),
        memory=new_memory,
        enforce=enforce,
        summary=_summary(
            wclass, ratio, obs.current_replicas, stable.desired, scale_to, tuple(reasons), enforce
        ),
    )


_HEADLINE_RULES = (
    Rule.METRICS_UNKNOWN,
    Rule.DRAINING,
    Rule.WRITE_BOTTLENECK,
    Rule.CAPACITY_LIMIT,
    Rule.LAG_BOUND,
    Rule.LATENCY_STEP,
    Rule.READ_FORECAST,
    Rule.CAPACITY_MODEL,
    Rule.LATENCY_HEADROOM,
    Rule.STABILIZED,
    Rule.STRONG_CONSISTENCY,
    Rule.POOL_FALLBACK,
)


def _summary(
    wclass: WorkloadClass,
    ratio: float | None,
    current: int,
    desired: int,
    scale_to: int | None,
    reasons: tuple[Reason, ...],
    enforce: bool,
) -> str:
    shown = "unknown" if ratio is None else "inf" if math.isinf(ratio) else f"{ratio:.1f}:1"
    if scale_to is not None and scale_to != current:
        action = f"scaling {current} -> {scale_to}"
    elif desired != current:
        action = f"{'would scale' if not enforce else 'heading'} {current} -> {desired}"
    else:
        action = f"holding at {current}"
    why = next((r.message for rule in _HEADLINE_RULES for r in reasons if r.rule is rule), "")
    return f"{wclass.value} ({shown}): {action}" + (f"; {why}" if why else "")
