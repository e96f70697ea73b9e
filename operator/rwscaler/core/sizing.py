"""How many read replicas: the unstabilized recommendation, then HPA-style stabilization and limits.

`recommend_replicas` turns one tick's signals into a raw replica count and says why:
  - capacity model (targetReadQPSPerReplica set): ceil(forecast read QPS / target) plus the
    replicas out of the pool for lag (their capacity is replaced), where the forecast adds the
    read-QPS slope x behavior.trend.forecastSeconds when reads are climbing (pre-provisioning
    before the objective is breached); no change while forecast / (serving x target) is within
    the tolerance band;
  - latency step (read objective breached and the write side stable): one more than the
    capacity model asks for when there is one, else current + max(1, ceil(current x
    (p99/objective - 1))); no new step while replicas asked for are still starting; the
    per-replica read QPS at the breach is remembered as a learned capacity;
  - latency headroom (no capacity model, read p99 under half its objective): one replica fewer,
    unless the learned capacity says the others could not carry the reads;
  - no scale-down while the read side is rising, whatever the capacity model says;
  - refusals: no scale-up while write-bound, while both sides rise unless read capacity alone
    (the capacity model) justifies it, while lag is the bottleneck under `bounded`, and never for
    reads under `strong`; unknown metrics hold the current count.
`stabilize` then applies the per-direction stabilization windows (scale up to the lowest, down to
the highest recommendation of the window, as the HPA does), the max steps, a guard against a
reversal inside a window, and the min/max bounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rwscaler.core.memory import Memory
from rwscaler.core.observation import Observation
from rwscaler.core.plan import Reason, Rule
from rwscaler.core.spec import Consistency, ReadWriteWorkloadSpec
from rwscaler.core.trends import QPS_TAU, SideState, Trend, slope

HEADROOM_LEVEL = 0.5  # read p99 under half its objective is room to remove a replica


@dataclass(frozen=True, slots=True)
class ReplicaAdvice:
    raw: int
    hold: bool  # metrics unknown: keep the count, record nothing
    blocked_up: str | None  # why a scale-up was refused, for ScalingLimited
    capacity_raw: int | None  # what the capacity model alone asks for
    breach_qps_per_replica: float | None
    reasons: tuple[Reason, ...]


def recommend_replicas(
    spec: ReadWriteWorkloadSpec,
    obs: Observation,
    memory: Memory,
    read: SideState,
    write: SideState,
    lag_bound: bool,
    serving_replicas: int,
    lagging_replicas: int = 0,
) -> ReplicaAdvice:
    current = obs.current_replicas
    tol = spec.behavior.tolerance
    learned = memory.breach_qps_per_replica
    unknown = obs.unknown_signals()
    if unknown:
        names = ", ".join(name for name, _ in unknown)
        reason = Reason(
            Rule.METRICS_UNKNOWN,
            f"holding at {current} replicas: {names} unknown; never scaling on missing data",
            tuple((name, s.reason.value if s.reason else None) for name, s in unknown),
        )
        return ReplicaAdvice(current, True, "MetricsUnknown", None, learned, (reason,))
    if spec.consistency is Consistency.STRONG:
        reason = Reason(
            Rule.STRONG_CONSISTENCY,
            f"consistency strong: only the primary and synchronous replicas serve reads, so replicas are "
            f"not added for read capacity (holding at {current})",
        )
        return ReplicaAdvice(current, False, None, None, learned, (reason,))

    read_qps = obs.read_qps.value or 0.0
    reasons: list[Reason] = []
    target = spec.replicas.targetReadQPSPerReplica
    write_stable = write.trend is Trend.STABLE
    read_rising = read.trend is Trend.RISING

    capacity_raw: int | None = None
    forecast: float | None = None
    if target is not None:
        climb = max(0.0, slope(memory.read_qps, QPS_TAU))
        forecast = read_qps + climb * spec.behavior.trend.forecastSeconds
        serving_capacity = (current - lagging_replicas) * target
        usage = forecast / serving_capacity if serving_capacity > 0 else math.inf
        if abs(usage - 1.0) <= tol:
            capacity_raw = current
            reasons.append(
                Reason(
                    Rule.WITHIN_TOLERANCE,
                    f"read load {forecast:.0f}/s is within {tol:.0%} of {current} x {target:g}/s",
                    (("readQPS", read_qps), ("forecastQPS", forecast), ("target", target)),
                )
            )
        else:
            # Replicas out of the pool for lag carry no reads: the capacity they would give is
            # replaced, so the pool keeps enough serving replicas (refused under `bounded`).
            capacity_raw = math.ceil(forecast / target) + lagging_replicas
            reasons.append(
                Reason(
                    Rule.CAPACITY_MODEL,
                    f"{read_qps:.0f} reads/s at {target:g}/s per replica needs {math.ceil(read_qps / target)} "
                    f"replicas"
                    + (
                        f"; forecast {forecast:.0f}/s needs {math.ceil(forecast / target)}"
                        if climb > 0
                        else ""
                    )
                    + (
                        f"; +{lagging_replicas} for replicas out of the pool for lag"
                        if lagging_replicas
                        else ""
                    ),
                    (
                        ("readQPS", read_qps),
                        ("forecastQPS", forecast),
                        ("target", target),
                        ("lagging", lagging_replicas),
                    ),
                )
            )
            if climb > 0 and math.ceil(forecast / target) > math.ceil(read_qps / target):
                reasons.append(
                    Reason(
                        Rule.READ_FORECAST,
                        f"reads climbing {climb * 60:.0f}/s per minute: provisioning for "
                        f"{forecast:.0f}/s {spec.behavior.trend.forecastSeconds}s ahead",
                        (("slopePerSecond", climb), ("forecastSeconds", spec.behavior.trend.forecastSeconds)),
                    )
                )

    raw = current if capacity_raw is None else capacity_raw
    pending = current - sum(1 for r in obs.replicas if r.ready)
    if read.breached and read.level is not None and write_stable:
        learned = read_qps / max(serving_replicas, 1)
        if pending > 0:
            # Replicas asked for are still starting: wait for them before stepping again, or a
            # breach that lasts one provisioning delay would add a replica every tick.
            raw = max(raw, current)
            reasons.append(
                Reason(
                    Rule.LATENCY_STEP,
                    f"read p99 at {read.level:.2f}x its objective; waiting for {pending} starting replica(s)",
                    (("readLatencyRatio", read.level), ("pending", pending)),
                )
            )
        else:
            # With a capacity model the breach says the model is optimistic: one more than it
            # asks for. Without one, a step proportional to the breach (capped by maxStep later).
            step = 1 if target is not None else max(1, math.ceil(current * (read.level - 1.0)))
            raw = max(raw, current + step)
            reasons.append(
                Reason(
                    Rule.LATENCY_STEP,
                    f"read p99 at {read.level:.2f}x its objective with writes stable: at least {current + step} replicas",
                    (("readLatencyRatio", read.level), ("step", step)),
                )
            )
    elif target is None and read.level is not None and read.level < HEADROOM_LEVEL and current > 0:
        after = read_qps / max(current - 1, 1)
        if learned is None or after < learned * (1.0 - tol):
            raw = current - 1
            reasons.append(
                Reason(
                    Rule.LATENCY_HEADROOM,
                    f"read p99 at {read.level:.2f}x its objective: one replica fewer"
                    + (f" (learned capacity {learned:.0f}/s per replica)" if learned else ""),
                    (("readLatencyRatio", read.level), ("learnedQPSPerReplica", learned)),
                )
            )

    if raw < current and read_rising:
        # Whatever the capacity model says, removing a replica while reads are already slow
        # (e.g. replay work from a write surge) only makes them slower.
        raw = current
        reasons.append(
            Reason(
                Rule.LATENCY_STEP,
                f"no scale-down while read p99 is rising ({read.level:.2f}x its objective)",
                (("readLatencyRatio", read.level),),
            )
        )
    blocked: str | None = None
    if raw > current:
        if write.trend is Trend.RISING and not read_rising:
            blocked = "WriteBottleneck"
        elif (
            write.trend is Trend.RISING and read_rising and (capacity_raw is None or capacity_raw <= current)
        ):
            blocked = "CapacityLimit"
        elif lag_bound and spec.consistency is Consistency.BOUNDED:
            blocked = "LagBound"
            reasons.append(
                Reason(
                    Rule.LAG_BOUND,
                    "consistency bounded: replication lag is the bottleneck, so no replica is added "
                    "(a new replica would lag too)",
                )
            )
        if blocked is not None:
            raw = current
        elif write.trend is Trend.RISING and capacity_raw is not None:
            raw = min(raw, max(capacity_raw, current))  # both rising: read capacity alone may justify
    return ReplicaAdvice(raw, False, blocked, capacity_raw, learned, tuple(reasons))


@dataclass(frozen=True, slots=True)
class Stabilized:
    desired: int
    history: tuple[tuple[float, int], ...]
    limited: tuple[str, ...]  # ScalingLimited reasons
    reasons: tuple[Reason, ...]


def _clamp(n: int, lo: int, hi: int) -> int:
    return min(max(n, lo), hi)


def stabilize(
    spec: ReadWriteWorkloadSpec, current: int, rec: ReplicaAdvice, memory: Memory, now: float
) -> Stabilized:
    up, down = spec.behavior.scaleUp, spec.behavior.scaleDown
    lo, hi = spec.replicas.minReplicas, spec.replicas.maxReplicas
    keep = max(up.stabilizationWindowSeconds, down.stabilizationWindowSeconds)
    # HPA semantics: a window covers the recommendations younger than it, plus this tick's.
    history = tuple((t, r) for t, r in memory.recommendations if now - t < keep)
    reasons: list[Reason] = []
    limited: list[str] = []

    if rec.hold:
        desired = current  # and the history is left as it is: a hold records nothing
    else:
        last_recorded = memory.recommendations[-1][0] if memory.recommendations else None
        if last_recorded is None or memory.last_tick is None or last_recorded < memory.last_tick:
            # No history (a new resource, status lost) or the last tick recorded nothing (it held
            # on unknown metrics): as the HPA seeds its history with the current count, a
            # scale-down waits its window instead of following one fresh sample at once.
            history = (*history, (now, current))
        up_rec = min([r for t, r in history if now - t < up.stabilizationWindowSeconds] + [rec.raw])
        down_rec = max([r for t, r in history if now - t < down.stabilizationWindowSeconds] + [rec.raw])
        history = (*history, (now, rec.raw))
        desired = up_rec if current < up_rec else down_rec if current > down_rec else current
        if desired != rec.raw:
            window = up if rec.raw > current else down
            reasons.append(
                Reason(
                    Rule.STABILIZED,
                    f"stabilization window {window.stabilizationWindowSeconds}s keeps {desired} "
                    f"instead of {rec.raw}",
                    (("recommended", rec.raw), ("stabilized", desired)),
                )
            )
        stepped = min(max(desired, current - down.maxStep), current + up.maxStep)
        if _clamp(stepped, lo, hi) != _clamp(desired, lo, hi):
            # Only when the step binds tighter than the bounds would.
            reasons.append(
                Reason(
                    Rule.STEP_LIMITED,
                    f"max step limits {current} -> {desired} to {current} -> {stepped}",
                    (("desired", desired), ("stepped", stepped)),
                )
            )
            limited.append("MaxStep")
            desired = stepped
        last = memory.last_scale_time
        since = now - last if last is not None else None
        reverses = since is not None and (
            (
                memory.last_scale_direction > 0
                and desired < current
                and since < down.stabilizationWindowSeconds
            )
            or (
                memory.last_scale_direction < 0
                and desired > current
                and since < up.stabilizationWindowSeconds
            )
        )
        if reverses:
            desired = current
            limited.append("ReversalGuard")

    bounded = _clamp(desired, lo, hi)
    if rec.raw > hi or bounded != desired:
        which = "maxReplicas" if max(desired, rec.raw) > hi else "minReplicas"
        limited.append("AtMaxReplicas" if which == "maxReplicas" else "AtMinReplicas")
        if bounded != desired:
            reasons.append(
                Reason(Rule.BOUNDS, f"{which} bounds {desired} to {bounded}", (("min", lo), ("max", hi)))
            )
    if rec.blocked_up is not None:
        limited.append(rec.blocked_up)
    return Stabilized(bounded, history, tuple(limited), tuple(reasons))
