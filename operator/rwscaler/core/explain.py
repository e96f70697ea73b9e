"""The words of a decision: conditions, recommendations and the one-line summary of a Plan.

Pure functions of what `decide` computed; kept apart from the decision so that what is decided and
how it is said can each be read on their own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rwscaler.core.byte_sizes import format_bytes
from rwscaler.core.classify import WorkloadClass
from rwscaler.core.diagnosis import Diagnosis
from rwscaler.core.durations import format_seconds
from rwscaler.core.observation import Observation, Signal
from rwscaler.core.plan import Condition, Reason, Recommendation
from rwscaler.core.ratio_trend import RatioTrend
from rwscaler.core.read_pool import PoolResult, objective_text
from rwscaler.core.sizing import ReplicaAdvice, Stabilized
from rwscaler.core.spec import Consistency, ReadWriteWorkloadSpec
from rwscaler.core.trends import SideState, Trend
from rwscaler.core.vocabulary import ConditionType, RecommendationType, Rule, Status

CQRS_ADVISED_ABOVE = 50.0
CQRS_ADVISED_AGAINST_BELOW = 10.0


def conditions(
    spec: ReadWriteWorkloadSpec,
    obs: Observation,
    read: SideState,
    write: SideState,
    sizing: ReplicaAdvice,
    stable: Stabilized,
    pool: PoolResult,
    enforce: bool,
    diagnosis: Diagnosis,
) -> tuple[Condition, ...]:
    unknown = obs.unknown_signals()
    conds: list[Condition] = []
    if unknown:
        first = unknown[0][1]
        # The short form; every signal's reason and message are in status.observed.unknown.
        detail = f"{names_text([name for name, _ in unknown], most=4)} unknown ({_unknown_reason(first)})"
        conds.append(Condition(ConditionType.READY, Status.FALSE, "MetricsUnavailable", f"holding: {detail}"))
        conds.append(
            Condition(
                ConditionType.METRICS_AVAILABLE,
                Status.FALSE,
                first.reason.value if first.reason else "Unknown",
                detail,
            )
        )
        for kind in (
            ConditionType.READ_CAPACITY_EXHAUSTED,
            ConditionType.WRITE_BOTTLENECK,
            ConditionType.CAPACITY_LIMIT,
        ):
            conds.append(Condition(kind, Status.UNKNOWN, "MetricsUnavailable", detail))
    else:
        note = f"; lag unknown for {names_text(pool.lag_unknown)}" if pool.lag_unknown else ""
        conds.append(
            Condition(
                ConditionType.READY,
                Status.TRUE,
                "Reconciled" if enforce else "RecommendOnly",
                "deciding and acting" if enforce else "deciding and reporting; changing nothing",
            )
        )
        conds.append(
            Condition(
                ConditionType.METRICS_AVAILABLE,
                Status.TRUE,
                "SignalsKnown",
                "read and write QPS and latency known" + note,
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
        pool_saturated = read.cause == Rule.READ_POOL_SATURATED.value
        contended = write.cause == Rule.LOCK_CONTENTION.value
        if pool_saturated:
            waiting = obs.diagnostics.read_pool_waiting.value or 0.0
            rl += f", {waiting:.1f} clients waiting for a read pool connection"
        if contended and diagnosis.lock_contention is not None:
            wl += f", {diagnosis.lock_contention}"
        if write.surge is not None:
            wl += f", write QPS at {write.surge:.1f}x its 5-minute average (a write surge)"
        conds.append(
            Condition(
                ConditionType.READ_CAPACITY_EXHAUSTED,
                Status.TRUE if read_bound or (over_capacity and not write_bound) else Status.FALSE,
                "ReadPoolSaturated"
                if read_bound and pool_saturated
                else "ReadLatencyRising"
                if read_bound
                else "ReadQPSAboveCapacity"
                if over_capacity
                else "ReadCapacityAvailable",
                f"{rl}, {wl}",
            )
        )
        conds.append(
            Condition(
                ConditionType.WRITE_BOTTLENECK,
                Status.TRUE if write_bound else Status.FALSE,
                ("LockContention" if contended else "WriteLatencyRising")
                if write_bound
                else "WritesWithinObjective",
                f"{wl}, {rl}" + ("; replicas are not added for a write bottleneck" if write_bound else ""),
            )
        )
        conds.append(
            Condition(
                ConditionType.CAPACITY_LIMIT,
                Status.TRUE if both else Status.FALSE,
                "BothSidesRising" if both else "NotBothSidesRising",
                f"{rl}, {wl}",
            )
        )
    conds.append(lag_condition(spec, obs, pool))
    if stable.limited:
        conds.append(
            Condition(
                ConditionType.SCALING_LIMITED,
                Status.TRUE,
                stable.limited[0],
                f"desired {stable.desired} (min {spec.replicas.minReplicas}, max {spec.replicas.maxReplicas}); "
                f"limited by {', '.join(stable.limited)}" + (f": {stable.detail}" if stable.detail else ""),
            )
        )
    else:
        conds.append(
            Condition(
                ConditionType.SCALING_LIMITED, Status.FALSE, "DesiredWithinRange", f"desired {stable.desired}"
            )
        )
    return tuple(conds)


def names_text(names: Sequence[str], most: int = 3) -> str:
    """Names as a condition message lists them: the first `most`, then how many more."""
    shown = ", ".join(names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _unknown_reason(signal: Signal) -> str:
    return signal.reason.value if signal.reason else "Unknown"


def lag_condition(spec: ReadWriteWorkloadSpec, obs: Observation, pool: PoolResult) -> Condition:
    """ReplicationLagHigh, in every consistency mode: True only for a lag known to be over an
    objective, False only when every replica's lag is known and within, Unknown otherwise."""
    kind = ConditionType.REPLICATION_LAG_HIGH
    primary_serves = f"the primary {obs.primary} serves reads"
    if not obs.replicas:
        return Condition(kind, Status.FALSE, "NoReplicas", f"no read replicas: {primary_serves}")
    if pool.max_lag_s is None and not pool.lag_unknown:
        # Every replica is at or above the target's count: on its way out, serving no reads.
        return Condition(kind, Status.FALSE, "NoReplicas", f"no read replica stays: {primary_serves}")
    if pool.lagging:
        where = primary_serves if pool.fallback else "out of the read pool"
        return Condition(
            kind,
            Status.TRUE,
            "ReadsOnPrimary" if pool.fallback else "ReplicasLagging",
            f"{names_text(pool.lagging)} over {objective_text(spec)}; {where}",
        )
    if pool.lag_unknown:
        lags = {r.name: r for r in obs.replicas}
        first = lags[pool.lag_unknown[0]]
        signal = first.lag if first.lag.value is None else first.lag_bytes
        where = (
            "read pool held as last decided"
            if pool.held
            else primary_serves
            if pool.fallback
            else "kept out of the read pool"
        )
        return Condition(
            kind,
            Status.UNKNOWN,
            "LagUnknown",
            f"lag unknown for {names_text(pool.lag_unknown)} ({_unknown_reason(signal)}); {where}",
        )
    message = f"max lag {format_seconds(pool.max_lag_s or 0.0)} within {spec.objectives.maxReplicationLag}"
    if spec.objectives.max_lag_bytes is not None and pool.max_lag_bytes is not None:
        message += (
            f", {format_bytes(pool.max_lag_bytes)} within {format_bytes(spec.objectives.max_lag_bytes)}"
        )
    return Condition(kind, Status.FALSE, "LagWithinObjective", message)


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


def recommendations(
    spec: ReadWriteWorkloadSpec,
    obs: Observation,
    conds: tuple[Condition, ...],
    read: SideState,
    sizing: ReplicaAdvice,
    ratio: float | None,
    shares: RatioTrend,
    enforce: bool,
    diagnosis: Diagnosis,
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
    if diagnosis.lock_contention is not None:
        recs.append(
            Recommendation(
                RecommendationType.REDUCE_LOCK_CONTENTION,
                f"{diagnosis.lock_contention} on the primary: shorten transactions, update rows in a "
                f"consistent order and index the rows updated; read replicas do not help",
            )
        )
    if diagnosis.batch_writes is not None:
        recs.append(Recommendation(RecommendationType.BATCH_WRITES, diagnosis.batch_writes))
    if by_type[ConditionType.WRITE_BOTTLENECK].status is Status.TRUE and diagnosis.lock_contention is None:
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
    forecast, capacity = sizing.forecast, sizing.capacity
    if (
        forecast is not None
        and capacity is not None
        and forecast.basis not in ("present", "trend")
        and math.ceil(forecast.expected_qps / capacity) > math.ceil((obs.read_qps.value or 0.0) / capacity)
    ):
        # A season (yesterday, a week ago) says the load is coming: provision ahead of it.
        need = min(math.ceil(forecast.expected_qps / capacity), hi)
        recs.append(
            Recommendation(
                RecommendationType.PRE_PROVISION_REPLICAS,
                f"{forecast.basis} the read load rose to {forecast.expected_qps:.0f}/s (scaled to today) "
                f"within {forecast.horizon_s:.0f}s: {need} replica(s) ready before it"
                + ("; Recommend mode applies nothing" if not enforce else ""),
                need,
            )
        )
    trend_rec = trend_recommendation(shares, sizing.capacity_raw)
    if trend_rec is not None:
        rule = Rule.READ_RATIO_RISING if shares.direction > 0 else Rule.WRITE_RATIO_RISING
        reasons.append(Reason(rule, shares.message))
        recs.append(trend_rec)
    learned, target = sizing.breach_qps_per_replica, spec.replicas.targetReadQPSPerReplica
    if learned is not None and target is not None and learned < target:
        suggested = math.floor(learned)
        recs.append(
            Recommendation(
                RecommendationType.LOWER_READ_TARGET,
                f"read p99 broke its objective at {learned:.0f} reads/s per replica, under "
                f"targetReadQPSPerReplica {target:g}: sizing with {learned:.0f}/s until the learned "
                f"capacity expires or is contradicted; set targetReadQPSPerReplica to {suggested} or lower",
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


def summarize(
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


def trend_recommendation(shares: RatioTrend, replicas: int | None = None) -> Recommendation | None:
    """What a side gaining share of the traffic calls for (`replicas`: what the capacity model
    sizes for the forecast load, when it has one); None when neither side gains. Also the weekly
    report's recommendation (weekly.py)."""
    if shares.direction > 0:
        return Recommendation(
            RecommendationType.PRE_PROVISION_REPLICAS,
            "the read share is rising: provision read replicas ahead of the objective"
            + (f" ({replicas} for the forecast load)" if replicas else ""),
            replicas,
        )
    if shares.direction < 0:
        return Recommendation(
            RecommendationType.WRITE_OPTIMIZED_STORAGE,
            "the write share keeps rising: evaluate write-optimized storage (LSM, append-only, batching)",
        )
    return None
