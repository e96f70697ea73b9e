"""Which servers serve reads: the read-pool rules of DESIGN.md, as one pure function.

- A replica stays in the pool while it is ready and its lag is known and at most the objective;
  it leaves at once when either fails (a replica whose lag is missing leaves alone: the others
  stay).
- A replica that left the pool re-enters only after its lag has stayed under
  objective x reentryLagRatio for reentrySeconds (hysteresis against flapping).
- A new replica starts out of the pool and joins once it is ready and caught up (lag under
  objective x reentryLagRatio): the warm-up gate. It has not flapped, so it does not wait out the
  hysteresis. On the very first tick (no memory yet) replicas that qualify to stay are taken as
  in the pool, so starting the operator does not empty it.
- Replicas being drained for a scale-in are out of the pool.
- strong consistency: only synchronous replicas at lag 0 may serve, next to the primary.
- The pool is never empty: with no qualifying replica, the primary serves reads.
- When the lag query itself failed for every replica (Prometheus unreachable, a timeout, an HTTP
  or query error), or nothing at all is known (a metrics outage), the pool is held as it was:
  unknown means hold, and emptying the pool onto the primary because Prometheus did not answer
  would overload the primary for no observed reason.
  Readiness still applies: a replica that stops being ready leaves. Stale reads are possible in
  that window; the plan says the pool is held. A replica whose own series is missing or stale
  (the query worked) leaves the pool alone.
- Pods at or above the StatefulSet's replica count are on their way out and never serve reads.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from rwscaler.core.durations import format_seconds
from rwscaler.core.memory import ReplicaMemory
from rwscaler.core.observation import Observation, ReplicaObservation, Signal, UnknownReason
from rwscaler.core.plan import Reason
from rwscaler.core.spec import Consistency, ReadWriteWorkloadSpec
from rwscaler.core.vocabulary import Rule


@dataclass(frozen=True, slots=True)
class PoolResult:
    endpoints: tuple[str, ...]
    fallback: bool
    replicas_in_pool: tuple[str, ...]
    memory: dict[str, ReplicaMemory]
    lagging: tuple[str, ...]  # lag known and over the objective
    out_for_lag: tuple[str, ...]  # served reads before, now out of the pool for lag (not warming up)
    lag_unknown: tuple[str, ...]
    max_lag_s: float | None
    reasons: tuple[Reason, ...]


# The lag query itself failed (Prometheus down, timeout, error), as opposed to a replica whose
# series is missing or stale: the former says nothing about any replica.
_QUERY_FAILURES = frozenset(
    {UnknownReason.UNREACHABLE, UnknownReason.TIMEOUT, UnknownReason.HTTP_ERROR, UnknownReason.QUERY_ERROR}
)


def _query_failed(lag: Signal) -> bool:
    return lag.value is None and lag.reason in _QUERY_FAILURES


def _qualifies_to_stay(r: ReplicaObservation, max_lag: float, strong: bool) -> bool:
    if not r.ready or r.lag.value is None:
        return False
    if strong:
        return r.synchronous and r.lag.value == 0
    return r.lag.value <= max_lag


def select_read_pool(
    spec: ReadWriteWorkloadSpec,
    obs: Observation,
    previous: dict[str, ReplicaMemory],
    draining: tuple[str, ...],
    first_tick: bool,
    now: float,
) -> PoolResult:
    max_lag = spec.objectives.max_lag_s
    behavior = spec.behavior.readPool
    reentry_lag = max_lag * behavior.reentryLagRatio
    strong = spec.consistency is Consistency.STRONG
    memory: dict[str, ReplicaMemory] = {}
    in_pool: list[str] = []
    reasons: list[Reason] = []

    # Pods at or above the StatefulSet's count are being removed: never route reads to them.
    staying = [r for r in obs.replicas if r.rank < obs.current_replicas]
    seen = [r for r in staying if r.ready]
    blind = len(obs.unknown_signals()) == 4 and all(r.lag.value is None for r in seen)
    outage = bool(previous) and bool(seen) and (blind or all(_query_failed(r.lag) for r in seen))
    for r in sorted(staying, key=lambda r: r.rank):
        before = previous.get(r.name)
        if outage:
            held = before is not None and before.in_pool and r.ready
            memory[r.name] = replace(before, in_pool=held) if before is not None else ReplicaMemory()
            if held and r.name not in draining:
                in_pool.append(r.name)
            continue
        stay = _qualifies_to_stay(r, max_lag, strong)
        under_reentry = stay and (strong or (r.lag.value is not None and r.lag.value < reentry_lag))
        healthy_since = None
        if under_reentry:
            healthy_since = before.healthy_since if before and before.healthy_since is not None else now
        was_in = before.in_pool if before is not None else first_tick
        left_before = before is not None and before.left_pool
        if was_in:
            now_in = stay
        elif left_before:
            now_in = (
                under_reentry and healthy_since is not None and now - healthy_since >= behavior.reentrySeconds
            )
        else:
            now_in = under_reentry
        left = (left_before or was_in) and not now_in
        memory[r.name] = ReplicaMemory(in_pool=now_in, healthy_since=healthy_since, left_pool=left)
        lag_text = "unknown" if r.lag.value is None else format_seconds(r.lag.value)
        inputs = (("replica", r.name), ("ready", str(r.ready)), ("lagSeconds", r.lag.value))
        if was_in and not now_in and before is not None:
            why = "not ready" if not r.ready else f"lag {lag_text} over {spec.objectives.maxReplicationLag}"
            if r.lag.value is None:
                why = f"its lag is unknown ({r.lag.reason.value if r.lag.reason else 'missing'})"
            reasons.append(Reason(Rule.REPLICA_LEFT_POOL, f"{r.name} left the read pool: {why}", inputs))
        elif now_in and not was_in:
            held_for = f" for {behavior.reentrySeconds}s" if left_before else " (caught up)"
            reasons.append(
                Reason(
                    Rule.REPLICA_JOINED_POOL,
                    f"{r.name} joined the read pool: lag {lag_text} under {format_seconds(reentry_lag)}{held_for}",
                    inputs,
                )
            )
        if now_in and r.name not in draining:
            in_pool.append(r.name)

    if outage:
        reasons.append(
            Reason(
                Rule.METRICS_UNKNOWN,
                f"replication lag could not be queried: read pool held as last decided "
                f"({', '.join(in_pool) or 'the primary'})",
            )
        )
    lags = [r.lag.value for r in staying if r.lag.value is not None]
    lagging = tuple(r.name for r in staying if r.lag.value is not None and r.lag.value > max_lag)
    lag_unknown = tuple(r.name for r in staying if r.lag.value is None)
    ready = {r.name for r in seen}
    out_for_lag = tuple(name for name in lagging if memory[name].left_pool and name in ready)
    fallback = not in_pool and not strong  # under strong, primary-only is the design, not a fallback
    if fallback:
        reasons.append(
            Reason(
                Rule.POOL_FALLBACK,
                f"no replica qualifies for the read pool ({len(staying)} replicas, "
                f"{len(lagging)} lagging, {len(lag_unknown)} with unknown lag): the primary {obs.primary} serves reads",
                (("replicas", len(staying)), ("lagging", len(lagging))),
            )
        )
    endpoints = ((obs.primary, *in_pool) if strong else tuple(in_pool)) or (obs.primary,)
    return PoolResult(
        endpoints=endpoints,
        fallback=fallback,
        replicas_in_pool=tuple(in_pool),
        memory=memory,
        lagging=lagging,
        out_for_lag=out_for_lag,
        lag_unknown=lag_unknown,
        max_lag_s=max(lags) if lags else None,
        reasons=tuple(reasons),
    )
