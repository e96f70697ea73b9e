"""decide(spec, observation, memory, now) -> Plan: the whole decision, pure.

No I/O, no clock, no kopf: the operator and the simulator call this same function with plain
data and the time, and everything it needs to remember comes back in `Plan.memory`. The steps:
update the trend averages, judge each side (trends.py) and the read:write trend
(ratio_trend.py), pick the read pool (read_pool.py), size
the replicas (sizing.py), sequence a scale-in behind a drain, then state the conditions and
recommendations with the reasons that produced them (explain.py).
"""

from __future__ import annotations

from dataclasses import replace

from rwscaler.core.classify import classify, read_write_ratio
from rwscaler.core.diagnosis import diagnose
from rwscaler.core.durations import format_seconds
from rwscaler.core.explain import conditions, recommendations, summarize
from rwscaler.core.memory import Drain, Memory
from rwscaler.core.observation import Observation
from rwscaler.core.plan import Plan, Reason
from rwscaler.core.pool_sizing import size_pools
from rwscaler.core.ratio_trend import ratio_trend
from rwscaler.core.read_pool import select_read_pool
from rwscaler.core.settle import pool_grew, settling, starting_replicas
from rwscaler.core.sizing import recommend_replicas, stabilize
from rwscaler.core.spec import Mode, PoolerKind, ReadWriteWorkloadSpec
from rwscaler.core.target_guard import guard_scale
from rwscaler.core.trends import (
    LATENCY_TAU,
    QPS_TAU,
    climb_rate,
    latency_side,
    update_ewma,
    write_side,
)
from rwscaler.core.vocabulary import Rule


def _update_trends(memory: Memory, obs: Observation, spec: ReadWriteWorkloadSpec, now: float) -> Memory:
    dt = now - memory.ewma_time if memory.ewma_time is not None else 0.0
    read_qps, write_qps = obs.read_qps.value, obs.write_qps.value
    changes: dict[str, object] = {}
    if read_qps is not None:
        changes["read_qps"] = update_ewma(memory.read_qps, read_qps, dt, now, QPS_TAU)
    if write_qps is not None:
        changes["write_qps"] = update_ewma(memory.write_qps, write_qps, dt, now, QPS_TAU)
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
    leaving = tuple(r.name for r in sorted(obs.replicas, key=lambda r: r.rank) if r.rank >= desired)
    if spec.pooler.kind is PoolerKind.NONE:
        return desired, None, leaving, [Reason(Rule.SCALE, f"scaling down {current} -> {desired}")]
    drain = memory.drain
    if drain is None or not set(leaving) <= set(drain.replicas):
        drain = Drain(target_replicas=desired, started=now, replicas=leaving)
    else:
        # Fewer replicas to remove than the drain began with (the target rose mid-drain): those
        # still leaving have been out of the pool since it started, so its clock runs on.
        drain = Drain(target_replicas=desired, started=drain.started, replicas=leaving)
    connections = [r.connections for r in obs.replicas if r.name in leaving]
    closed = all(c == 0 for c in connections)
    waited = now - drain.started
    timeout = spec.pooler.drainTimeoutSeconds
    if (closed and waited > 0) or waited >= timeout or not leaving:
        if not leaving:
            how = "no replica pod left to drain"
        elif closed:
            how = "no connection left"
        else:
            how = f"drain timeout {timeout}s passed"
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
    # The key metrics sharpen the sides: a saturated read pool, lock contention (diagnosis.py).
    diagnosis = diagnose(obs, read, write)
    read, write = diagnosis.read, diagnosis.write

    draining = memory.drain.replicas if (memory.drain is not None and enforce) else ()
    pool = select_read_pool(spec, obs, memory.pool, draining, first_tick, now)
    # Lag is the bottleneck when more than half the replicas whose lag is known lag: replicas
    # still starting say nothing about it (docs/decisions.md).
    known_lag = sum(1 for r in obs.replicas if r.ready and r.lag.value is not None)
    lag_bound = known_lag > 0 and len(pool.lagging) * 2 > known_lag
    grew = pool_grew(memory.read_pool, memory.pool, pool.replicas_in_pool, first_tick)
    grew_at = now if grew else memory.pool_grew_at
    sizing = recommend_replicas(
        spec,
        obs,
        mem,
        read,
        write,
        lag_bound,
        len(pool.replicas_in_pool),
        # Replicas out of the pool for lag are replaced, unless lag is the bottleneck (more than
        # half the replicas lag): then the write stream every replica replays is the cause, and
        # a new replica would lag too.
        0 if lag_bound else len(pool.out_for_lag),
        starting=starting_replicas(obs, pool.memory),
        settled=not settling(grew_at, now, float(spec.behavior.intervalSeconds)),
        now=now,
        climb=climb_rate(
            memory.read_qps,
            mem.read_qps,
            now - memory.ewma_time if memory.ewma_time is not None else 0.0,
            QPS_TAU,
        ),
    )
    stable = guard_scale(obs, stabilize(spec, obs.current_replicas, sizing, mem, now))
    scale_to, drain, leaving, scale_reasons = _drain_and_scale(spec, obs, mem, stable.desired, enforce, now)
    if set(leaving) - set(draining):
        # Replicas that start draining (or go at once) this tick leave the pool this tick.
        pool = select_read_pool(spec, obs, memory.pool, leaving, first_tick, now)

    ratio = read_write_ratio(obs.read_qps.value, obs.write_qps.value)
    wclass = classify(obs.read_qps.value, obs.write_qps.value)
    shares = ratio_trend(obs.history.ratios)
    conds = conditions(spec, obs, read, write, sizing, stable, pool, enforce, diagnosis)
    recs, rule_reasons = recommendations(spec, obs, conds, read, sizing, ratio, shares, enforce, diagnosis)

    reasons = [
        *diagnosis.reasons,
        *rule_reasons,
        *sizing.reasons,
        *stable.reasons,
        *pool.reasons,
        *scale_reasons,
    ]
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
        breach_time=sizing.breach_time,
        pool_grew_at=grew_at,
        read_pool=pool.replicas_in_pool,
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
        max_lag_bytes=pool.max_lag_bytes,
        conditions=conds,
        recommendations=recs,
        reasons=tuple(reasons),
        memory=new_memory,
        enforce=enforce,
        summary=summarize(
            wclass, ratio, obs.current_replicas, stable.desired, scale_to, tuple(reasons), enforce
        ),
        read_capacity=sizing.capacity,
        forecast=sizing.forecast,
        ratio_trend=shares,
    )
