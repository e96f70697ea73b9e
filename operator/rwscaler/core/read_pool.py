"""Which servers serve reads: the read-pool rules of DESIGN.md, as one pure function.

- A replica stays in the pool while it is ready and its lag is known and at most the objective
  (maxReplicationLag, and maxReplicationLagBytes when set: both); it leaves at once when either
  fails (a replica whose lag is missing leaves alone: the others stay).
- A replica that left the pool re-enters only after its lag has stayed under
  objective x reentryLagRatio (each objective) for reentrySeconds (hysteresis against flapping).
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

from rwscaler.core.byte_sizes import format_bytes
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
    lagging: tuple[str, ...]  # lag known and over an objective (seconds, or bytes when set)
    out_for_lag: tuple[str, ...]  # served reads before, now out of the pool for lag (not warming up)
    lag_unknown: tuple[str, ...]
    max_lag_s: float | None
    reasons: tuple[Reason, ...]
    max_lag_bytes: float | None = None  # None: unknown, or no byte objective
    held: bool = False  # the lag query failed for every replica: the pool is held as it was


# The lag query itself failed (Prometheus down, timeout, error), as opposed to a replica whose
# series is missing or stale: the former says nothing about any replica.
_QUERY_FAILURES = frozenset(
    {UnknownReason.UNREACHABLE, UnknownReason.TIMEOUT, UnknownReason.HTTP_ERROR, UnknownReason.QUERY_ERROR}
)


def _query_failed(lag: Signal) -> bool:
    return lag.value is None and lag.reason in _QUERY_FAILURES


@dataclass(frozen=True, slots=True)
class _Limits:
    """How far behind a replica may be: seconds, and bytes when that objective is set."""

    seconds: float
    bytes: float | None

    def known(self, r: ReplicaObservation) -> bool:
        return r.lag.value is not None and (self.bytes is None or r.lag_bytes.value is not None)

    def within(self, r: ReplicaObservation, strict: bool = False) -> bool:
        """Both known lags at most (`strict`: under) their limits; False when one is unknown."""
        if not self.known(r):
            return False
        pairs = [(r.lag.value, self.seconds)]
        if self.bytes is not None:
            pairs.append((r.lag_bytes.value, self.bytes))
        return all(v is not None and (v < limit if strict else v <= limit) for v, limit in pairs)

    def over(self, r: ReplicaObservation) -> bool:
        """A known lag over its limit (the other one may be unknown)."""
        if r.lag.value is not None and r.lag.value > self.seconds:
            return True
        return self.bytes is not None and r.lag_bytes.value is not None and r.lag_bytes.value > self.bytes

    def scaled(self, ratio: float) -> _Limits:
        return _Limits(self.seconds * ratio, None if self.bytes is None else self.bytes * ratio)

    def text(self, r: ReplicaObservation) -> str:
        """The replica's lag as the messages show it: seconds, and bytes when they count."""
        seconds = "unknown" if r.lag.value is None else format_seconds(r.lag.value)
        if self.bytes is None:
            return seconds
        size = "unknown" if r.lag_bytes.value is None else format_bytes(r.lag_bytes.value)
        return f"{seconds}, {size}"


def _qualifies_to_stay(r: ReplicaObservation, limits: _Limits, strong: bool) -> bool:
    if not r.ready or not limits.known(r):
        return False
    if strong:
        return r.synchronous and r.lag.value == 0
    return limits.within(r)


def _unknown_part(r: ReplicaObservation, limits: _Limits) -> Signal:
    """The lag signal that is unknown (seconds first)."""
    return r.lag if r.lag.value is None or limits.bytes is None else r.lag_bytes


def select_read_pool(
    spec: ReadWriteWorkloadSpec,
    obs: Observation,
    previous: dict[str, ReplicaMemory],
    draining: tuple[str, ...],
    first_tick: bool,
    now: float,
) -> PoolResult:
    behavior = spec.behavior.readPool
    limits = _Limits(spec.objectives.max_lag_s, spec.objectives.max_lag_bytes)
    reentry = limits.scaled(behavior.reentryLagRatio)
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
        stay = _qualifies_to_stay(r, limits, strong)
        under_reentry = stay and (strong or reentry.within(r, strict=True))
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
        lag_text = limits.text(r)
        inputs: tuple[tuple[str, str | float | None], ...] = (
            ("replica", r.name),
            ("ready", str(r.ready)),
            ("lagSeconds", r.lag.value),
        )
        if limits.bytes is not None:
            inputs = (*inputs, ("lagBytes", r.lag_bytes.value))
        if was_in and not now_in and before is not None:
            why = "not ready" if not r.ready else f"lag {lag_text} over {objective_text(spec)}"
            if r.ready and not limits.known(r):
                unknown = _unknown_part(r, limits)
                what = "lag" if unknown is r.lag else "byte lag"
                why = f"its {what} is unknown ({unknown.reason.value if unknown.reason else 'missing'})"
            reasons.append(Reason(Rule.REPLICA_LEFT_POOL, f"{r.name} left the read pool: {why}", inputs))
        elif now_in and not was_in:
            held_for = f" for {behavior.reentrySeconds}s" if left_before else " (caught up)"
            reasons.append(
                Reason(
                    Rule.REPLICA_JOINED_POOL,
                    f"{r.name} joined the read pool: lag {lag_text} under {_limits_text(reentry)}{held_for}",
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
    byte_lags = [r.lag_bytes.value for r in staying if r.lag_bytes.value is not None]
    lagging = tuple(r.name for r in staying if limits.over(r))
    lag_unknown = tuple(r.name for r in staying if not limits.known(r) and not limits.over(r))
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
        max_lag_bytes=max(byte_lags) if byte_lags and limits.bytes is not None else None,
        held=outage,
    )


def objective_text(spec: ReadWriteWorkloadSpec) -> str:
    """The lag objective as messages show it: "5s", or "5s / 64MiB" with the byte objective."""
    o = spec.objectives
    if o.max_lag_bytes is None:
        return str(o.maxReplicationLag)
    return f"{o.maxReplicationLag} / {format_bytes(o.max_lag_bytes)}"


def _limits_text(limits: _Limits) -> str:
    seconds = format_seconds(limits.seconds)
    return seconds if limits.bytes is None else f"{seconds} / {format_bytes(limits.bytes)}"
