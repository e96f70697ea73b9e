"""How many read replicas: the unstabilized recommendation, then HPA-style stabilization and limits.

`recommend_replicas` turns one tick's signals into a raw replica count and says why:
  - capacity model (targetReadQPSPerReplica set): ceil(forecast read QPS / capacity) plus the
    replicas out of the pool for lag (their capacity is replaced, unless lag is the bottleneck:
    decide passes 0 then), where the capacity is the target, or the learned capacity when lower
    (learned_capacity.py), and the forecast (forecast.py) is the highest of the recent climb
    over behavior.trend.forecastSeconds (its slope is trends.climb_rate) and what followed this
    moment one season ago (yesterday, a week ago); no forecast stacks on replicas still
    starting. The tolerance is a hysteresis below the capacity, as the HPA's is around its
    target (it avoids flapping, it does not license running past the capacity): the present
    load past serving x capacity (on its 60 s average, or a sample past the band) scales up at
    once, a forecast must pass it by more than the tolerance, and a scale-down waits until what
    the replicas must keep carrying (the forecast, and the seasons over the scale-down
    lookahead) is under 1 - tolerance of their capacity, then sizes for it;
  - latency step (read objective breached and the write side stable): one more than the
    capacity model asks for when there is one, else current + max(1, ceil(current x
    (p99/objective - 1))); no new step while replicas asked for are still starting, nor while
    the read p99 predates a replica that just joined the pool (settle.py);
  - learned capacity: updated every tick from the read p99 and the per-replica read QPS
    (learned_capacity.py);
  - latency headroom (no capacity model, read p99 under half its objective): one replica fewer,
    unless the learned capacity says the others could not carry the reads;
  - no scale-down while the read side is rising, whatever the capacity model says, unless no
    replica serves reads (the pool fell back to the primary);
  - refusals: no scale-up while write-bound, while lag is the bottleneck under `bounded`, and
    never for reads under `strong`; unknown metrics hold the current count. While both sides rise
    only the capacity model can ask for more (the latency step needs the write side stable), so
    read capacity alone justifies a scale-up then, with no refusal of its own.
`stabilize` then applies the per-direction stabilization windows (scale up to the lowest, down to
the highest recommendation of the window, as the HPA does), the max steps, a guard against a
reversal inside a window, and the min/max bounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rwscaler.core.forecast import Forecast, forecast_read_qps, trend_horizon
from rwscaler.core.learned_capacity import MIN_LEARNED_SHARE, Learned, effective_target, update_learned
from rwscaler.core.memory import Memory
from rwscaler.core.observation import Observation, UnknownReason
from rwscaler.core.plan import Reason
from rwscaler.core.spec import Consistency, ReadWriteWorkloadSpec
from rwscaler.core.trends import SideState, Trend
from rwscaler.core.vocabulary import Rule

HEADROOM_LEVEL = 0.5  # read p99 under half its objective is room to remove a replica


@dataclass(frozen=True, slots=True)
class ReplicaAdvice:
    raw: int
    hold: bool  # metrics unknown: keep the count, record nothing
    blocked_up: str | None  # why a scale-up was refused, for ScalingLimited
    capacity_raw: int | None  # what the capacity model alone asks for
    breach_qps_per_replica: float | None
    reasons: tuple[Reason, ...]
    breach_time: float | None = None  # when the learned capacity was last learned or confirmed
    capacity: float | None = None  # per-replica capacity sized with (target or learned, lower)
    forecast: Forecast | None = None  # the read-load forecast (capacity model only)


def recommend_replicas(
    spec: ReadWriteWorkloadSpec,
    obs: Observation,
    memory: Memory,
    read: SideState,
    write: SideState,
    lag_bound: bool,
    serving_replicas: int,
    lagging_replicas: int,
    *,
    starting: int,
    settled: bool,
    now: float,
    climb: float,
) -> ReplicaAdvice:
    """The raw replica count for this tick. `lagging_replicas`: replicas out of the pool for lag
    whose capacity is replaced (0 while lag is the bottleneck); `starting`: replicas asked for
    that do not serve yet (settle.py); `settled`: the read p99 describes the current pool
    (settle.py); `now`: the time, for the learned capacity's clock; `climb`: the read QPS slope per
    second for the forecast (trends.climb_rate)."""
    current = obs.current_replicas
    tol = spec.behavior.tolerance
    learned = memory.breach_qps_per_replica
    learned_at = memory.breach_time
    unknown = [
        (name, s)
        for name, s in obs.unknown_signals()
        # A latency the preset cannot give in this setup (CloudNativePG without a pooler) does
        # not hold a capacity model, which sizes from read QPS: only the latency rules are off.
        if not (
            spec.replicas.targetReadQPSPerReplica is not None
            and s.reason is UnknownReason.NOT_CONFIGURED
            and name in ("readLatencyP99", "writeLatencyP99")
        )
    ]
    if unknown:
        names = ", ".join(name for name, _ in unknown)
        reason = Reason(
            Rule.METRICS_UNKNOWN,
            f"holding at {current} replicas: {names} unknown; never scaling on missing data",
            tuple((name, s.reason.value if s.reason else None) for name, s in unknown),
        )
        return ReplicaAdvice(current, True, "MetricsUnknown", None, learned, (reason,), learned_at)
    if spec.consistency is Consistency.STRONG:
        reason = Reason(
            Rule.STRONG_CONSISTENCY,
            f"consistency strong: only the primary and synchronous replicas serve reads, so replicas are "
            f"not added for read capacity (holding at {current})",
        )
        return ReplicaAdvice(current, False, None, None, learned, (reason,), learned_at)

    read_qps = obs.read_qps.value or 0.0
    reasons: list[Reason] = []
    pending = starting
    user_target = spec.replicas.targetReadQPSPerReplica
    update = update_learned(
        learned,
        learned_at,
        floor=MIN_LEARNED_SHARE * user_target if user_target is not None else 0.0,
        read=read,
        write=write,
        read_qps=read_qps,
        read_qps_avg=memory.read_qps,
        serving=serving_replicas,
        settled=settled and pending <= 0,
        tolerance=tol,
        now=now,
    )
    learned, learned_at = update.qps_per_replica, update.since
    target = effective_target(user_target, learned)
    reasons.extend(_learned_reasons(update, user_target))
    write_stable = write.trend is Trend.STABLE
    read_rising = read.trend is Trend.RISING

    capacity_raw: int | None = None
    outlook: Forecast | None = None
    if target is not None:
        horizon = trend_horizon(spec)
        smoothed = memory.read_qps.fast if memory.read_qps is not None else read_qps
        outlook = forecast_read_qps(read_qps, smoothed, climb, horizon, obs.history)
        ahead = outlook.expected_qps
        # A scale-down keeps what the seasons say the next lookahead needs (forecast.py).
        keep = max(ahead, outlook.hold_qps or 0.0)
        serving_capacity = (current - lagging_replicas) * target
        present_usage = read_qps / serving_capacity if serving_capacity > 0 else math.inf
        ahead_usage = ahead / serving_capacity if serving_capacity > 0 else math.inf
        keep_usage = keep / serving_capacity if serving_capacity > 0 else math.inf
        # The forecast covers one provisioning delay; replicas still starting were asked for to
        # cover it, so a forecast (whose slope, after a jump, is still the jump's) does not stack
        # on them: while they start, only the present load adds replicas.
        awaiting = pending
        forecast = ahead if awaiting <= 0 else read_qps
        # Aim at the objective: the present load past the capacity scales up at once (the
        # tolerance does not license running past it). A forecast, less certain, must pass it
        # by more than the tolerance; the band never reaches past a learned breaking point.
        band = 1.0 + tol
        if learned is not None:
            band = min(band, max(1.0, learned / target))
        # The present load is judged on its 60 s average (smoothed, the fast one of trends.py)
        # when lower than the sample: one noisy sample at 101% of the capacity is no reason to
        # add a replica, a sample past the band is (a jump is not noise).
        sustained_usage = min(
            present_usage, smoothed / serving_capacity if serving_capacity > 0 else math.inf
        )
        up = present_usage > band or sustained_usage > 1.0 or (awaiting <= 0 and ahead_usage > band)
        # The tolerance is the hysteresis below the capacity, as the HPA's: a scale-down waits
        # until what the replicas must keep carrying is under 1 - tolerance of their capacity,
        # then sizes for it; noise crossing the capacity cannot flap the count back.
        down_to = math.ceil(keep / target) + lagging_replicas
        down = not up and keep_usage < 1.0 - tol and down_to < current
        if not up and not down:
            capacity_raw = current
            reasons.append(
                Reason(
                    Rule.WITHIN_TOLERANCE,
                    f"read load {read_qps:.0f}/s (forecast {ahead:.0f}/s, keep {keep:.0f}/s) fits "
                    f"{current} x {target:g}/s"
                    + (
                        "; waiting for the replicas asked for to serve before provisioning for the forecast"
                        if awaiting > 0 and ahead_usage > band
                        else f" within its {tol:.0%} tolerance"
                    ),
                    (("readQPS", read_qps), ("forecastQPS", ahead), ("target", target)),
                )
            )
        else:
            sized_for = forecast if up else keep
            # Replicas out of the pool for lag carry no reads: the capacity they would give is
            # replaced, so the pool keeps enough serving replicas (refused under `bounded`).
            capacity_raw = math.ceil(sized_for / target) + lagging_replicas if up else down_to
            basis = outlook.basis if (up or keep == ahead) else (outlook.hold_basis or outlook.basis)
            reasons.append(
                Reason(
                    Rule.CAPACITY_MODEL,
                    f"{read_qps:.0f} reads/s at {target:g}/s per replica needs {math.ceil(read_qps / target)} "
                    f"replicas"
                    + (
                        f"; forecast ({_basis_words(basis)}) {sized_for:.0f}/s needs "
                        f"{math.ceil(sized_for / target)}"
                        if sized_for > read_qps
                        else ""
                    )
                    + (
                        f"; +{lagging_replicas} for replicas out of the pool for lag"
                        if lagging_replicas
                        else ""
                    ),
                    (
                        ("readQPS", read_qps),
                        ("forecastQPS", sized_for),
                        ("basis", basis),
                        ("target", target),
                        ("lagging", lagging_replicas),
                    ),
                )
            )
            if up and math.ceil(sized_for / target) > math.ceil(read_qps / target):
                reasons.append(
                    Reason(
                        Rule.READ_FORECAST,
                        (
                            f"reads climbing {climb * 60:.0f}/s per minute"
                            if outlook.basis == "trend"
                            else f"{outlook.basis} the read load rose to {sized_for:.0f}/s (scaled to today)"
                        )
                        + f": provisioning for {sized_for:.0f}/s {outlook.horizon_s:.0f}s ahead",
                        (
                            ("slopePerSecond", climb),
                            ("forecastSeconds", outlook.horizon_s),
                            ("basis", outlook.basis),
                        ),
                    )
                )

    raw = current if capacity_raw is None else capacity_raw
    if read.breached and (read.level is not None or read.cause is not None) and write_stable:
        # A breach of the read p99, or clients waiting for a read pool connection (diagnosis.py).
        why = _breach_words(read)
        if pending > 0:
            # Replicas asked for are still starting: wait for them before stepping again, or a
            # breach that lasts one provisioning delay would add a replica every tick.
            raw = max(raw, current)
            reasons.append(
                Reason(
                    Rule.LATENCY_STEP,
                    f"{why}; waiting for {pending} starting replica(s)",
                    (("readLatencyRatio", read.level), ("pending", pending)),
                )
            )
        elif not settled:
            # A replica joined the pool within the p99's window: the breach was measured on the
            # smaller pool before it, so it says nothing about the pool now (settle.py).
            raw = max(raw, current)
            reasons.append(
                Reason(
                    Rule.LATENCY_STEP,
                    f"{why} was measured before the replica(s) that "
                    f"just joined the read pool served; waiting one latency window",
                    (("readLatencyRatio", read.level),),
                )
            )
        else:
            # With a capacity model the breach says the model is optimistic: one more than it
            # asks for. Without one, a step proportional to the breach (capped by maxStep later).
            proportional = 1 if read.level is None else math.ceil(current * (read.level - 1.0))
            step = 1 if target is not None else max(1, proportional)
            raw = max(raw, current + step)
            reasons.append(
                Reason(
                    Rule.LATENCY_STEP,
                    f"{why} with writes stable: at least {current + step} replicas",
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

    if raw < current and read_rising and serving_replicas > 0:
        # Whatever the capacity model says, removing a replica while reads are already slow
        # (e.g. replay work from a write surge) only makes them slower. With no replica in the
        # read pool (every one lagging: reads fell back to the primary) removing one slows no read.
        raw = current
        reasons.append(
            Reason(
                Rule.LATENCY_STEP,
                f"no scale-down while read p99 is rising ({read.level:.2f}x its objective)"
                if read.cause is None and read.level is not None
                else f"no scale-down while {_breach_words(read)}",
                (("readLatencyRatio", read.level),),
            )
        )
    blocked: str | None = None
    if raw > current:
        # Both sides rising needs no refusal of its own: the latency step, the only scale-up
        # besides the capacity model, waits for the write side to be stable, so a count above
        # the current one then is the capacity model's alone (read capacity justifies it; the
        # Hypothesis property test_both_rising_adds_only_what_the_capacity_model_asks_for holds it).
        if write.trend is Trend.RISING and not read_rising:
            blocked = "WriteBottleneck"
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
    return ReplicaAdvice(
        raw, False, blocked, capacity_raw, learned, tuple(reasons), learned_at, target, outlook
    )


def _breach_words(read: SideState) -> str:
    p99 = "read p99 unknown" if read.level is None else f"read p99 at {read.level:.2f}x its objective"
    if read.cause is None:
        return p99
    return f"clients waiting for a read pool connection ({p99})"


def _basis_words(basis: str) -> str:
    return {"trend": "the recent climb", "present": "the present load"}.get(basis, f"as {basis}")


def _learned_reasons(update: Learned, target: float | None) -> list[Reason]:
    """What happened to the learned capacity this tick, in words (nothing when nothing did)."""
    value = update.qps_per_replica
    if update.event in ("learned", "confirmed") and value is not None:
        below = target is not None and value < target
        return [
            Reason(
                Rule.LEARNED_CAPACITY,
                f"read p99 broke its objective at {value:.0f} reads/s per replica: capacity "
                f"{update.event}"
                + (f", sizing with it instead of targetReadQPSPerReplica {target:g}" if below else ""),
                (("learnedQPSPerReplica", value), ("target", target)),
            )
        ]
    if update.event == "forgotten":
        return [
            Reason(
                Rule.LEARNED_CAPACITY,
                "replicas carry more than the learned capacity with read p99 well under its objective: "
                "learned capacity forgotten",
            )
        ]
    if update.event == "expired":
        return [Reason(Rule.LEARNED_CAPACITY, "learned capacity expired (no breach confirmed it for a week)")]
    return []


@dataclass(frozen=True, slots=True)
class Stabilized:
    desired: int
    history: tuple[tuple[float, int], ...]
    limited: tuple[str, ...]  # ScalingLimited reasons
    reasons: tuple[Reason, ...]
    detail: str = ""  # said after the limits in ScalingLimited's message (the scale target's guards)


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
