"""Which servers serve reads: the read-pool rules of DESIGN.md, as one pure function.

- A replica stays in the pool while it is ready and its lag is known and at most the objective;
  it leaves at once when either fails (a replica whose lag is missing leaves alone: the others
  stay).
- Out of the pool, a replica (re-)enters only after its lag has stayed under
  objective x reentryLagRatio for reentrySeconds (hysteresis). A new replica starts out of the
  pool, so the same gate is its warm-up: it joins only once caught up. On the very first tick
  (no memory yet) replicas that qualify to stay are taken as in the pool, so starting the
  operator does not empty it.
- Replicas being drained for a scale-in are out of the pool.
- strong consistency: only synchronous replicas at lag 0 may serve, next to the primary.
- The pool is never empty: with no qualifying replica, the primary serves reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from rwscaler.core.durations import format_seconds
from rwscaler.core.memory import ReplicaMemory
from rwscaler.core.observation import Observation, ReplicaObservation
from rwscaler.core.plan import Reason, Rule
from rwscaler.core.spec import Consistency, ReadWriteWorkloadSpec


@dataclass(frozen=True, slots=True)
class PoolResult:
    endpoints: tuple[str, ...]
    fallback: bool
    replicas_in_pool: tuple[str, ...]
    memory: dict[str, ReplicaMemory]
    lagging: tuple[str, ...]  # lag known and over the objective
    lag_unknown: tuple[str, ...]
    max_lag_s: float | None
    reasons: tuple[Reason, ...]


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

    for r in sorted(obs.replicas, key=lambda r: r.ordinal):
        before = previous.get(r.name)
        stay = _qualifies_to_stay(r, max_lag, strong)
        under_reentry = stay and (strong or (r.lag.value is not None and r.lag.value < reentry_lag))
        healthy_since = None
        if under_reentry:
            healthy_since = before.healthy_since if before and before.healthy_since is not None else now
        was_in = before.in_pool if before is not None else first_tick
        if was_in:
            now_in = stay
        else:
            now_in = (
                under_reentry and healthy_since is not None and now - healthy_since >= behavior.reentrySeconds
            )
        memory[r.name] = ReplicaMemory(in_pool=now_in, healthy_since=healthy_since)
        lag_text = "unknown" if r.lag.value is None else format_seconds(r.lag.value)
        inputs = (("replica", r.name), ("ready", str(r.ready)), ("lagSeconds", r.lag.value))
        if was_in and not now_in and before is not None:
            why = "not ready" if not r.ready else f"lag {lag_text} over {spec.objectives.maxReplicationLag}"
            if r.lag.value is None:
                why = f"its lag is unknown ({r.lag.reason.value if r.lag.reason else 'missing'})"
            reasons.append(Reason(Rule.REPLICA_LEFT_POOL, f"{r.name} left the read pool: {why}", inputs))
        elif now_in and not was_in:
            reasons.append(
                Reason(
                    Rule.REPLICA_JOINED_POOL,
                    f"{r.name} joined the read pool: lag {lag_text} stayed under "
                    f"{format_seconds(reentry_lag)} for {behavior.reentrySeconds}s",
                    inputs,
                )
            )
        if now_in and r.name not in draining:
            in_pool.append(r.name)

    lags = [r.lag.value for r in obs.replicas if r.lag.value is not None]
    lagging = tuple(r.name for r in obs.replicas if r.lag.value is not None and r.lag.value > max_lag)
    lag_unknown = tuple(r.name for r in obs.replicas if r.lag.value is None)
    fallback = not in_pool and not strong  # under strong, primary-only is the design, not a fallback
    if fallback:
        reasons.append(
            Reason(
                Rule.POOL_FALLBACK,
                f"no replica qualifies for the read pool ({len(obs.replicas)} replicas, "
                f"{len(lagging)} lagging, {len(lag_unknown)} with unknown lag): the primary {obs.primary} serves reads",
                (("replicas", len(obs.replicas)), ("lagging", len(lagging))),
            )
        )
    endpoints = ((obs.primary, *in_pool) if strong else tuple(in_pool)) or (obs.primary,)
    return PoolResult(
        endpoints=endpoints,
        fallback=fallback,
        replicas_in_pool=tuple(in_pool),
        memory=memory,
        lagging=lagging,
        lag_unknown=lag_unknown,
        max_lag_s=max(lags) if lags else None,
        reasons=tuple(reasons),
    )
