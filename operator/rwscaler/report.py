"""Plan + Observation + the previous status -> the new status and the Events to post. Pure.

The reconcile tick (`rwscaler.reconcile`) calls this after acting; `rwscaler explain` reads what
it wrote. Everything a user sees about a decision is rendered here from the Plan, so status,
events and `explain` cannot disagree:

- `render_status`: the whole status rwscaler owns (the keys in `OWNED_KEYS`), including the
  decision memory (`status.memory`) that a restarted operator continues from, built as the status
  model (`rwscaler.core.status.WorkloadStatus`, the one description of status) and written as
  its JSON; the tick passes what it found of the primary and the scale target;
- `problem_status`: the previous status with `Ready=False` and a specific reason, for a spec that
  passes the schema but cannot be used (a StatefulSet or Secret that does not exist, ...);
- `merge_conditions`: `lastTransitionTime` moves only when a condition's status flips;
- `events`: one Event per scale action, read-pool change and condition flip, with reasons from
  the constant set `EventReason`;
- `needs_patch`: whether anything at all changed; `significant_change`: whether something a
  reader or a restarted operator needs changed (the tick writes at once then, and otherwise only
  refreshes the measured values every `STATUS_REFRESH_S`).

Times are RFC 3339 strings in UTC; numbers a user reads are strings with units, and an unknown
signal says "unknown" and why, never 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rwscaler.core.byte_sizes import format_bytes
from rwscaler.core.classify import WorkloadClass
from rwscaler.core.diagnosis import key_metrics
from rwscaler.core.durations import format_seconds, rfc3339
from rwscaler.core.learned_capacity import LEARNED_CAPACITY_TTL_S
from rwscaler.core.memory import Memory
from rwscaler.core.observation import Aggregation, Observation, Signal, UnknownReason
from rwscaler.core.plan import Condition, Plan
from rwscaler.core.status import (
    OWNED_KEYS as status_model_fields,
)
from rwscaler.core.status import (
    StatusCondition,
    StatusDecision,
    StatusDecisionReason,
    StatusForecast,
    StatusLearnedCapacity,
    StatusObserved,
    StatusPrimary,
    StatusReadWriteTrend,
    StatusRecommendation,
    StatusReplica,
    StatusReplicaCounts,
    StatusScaleTarget,
    TrendVerdict,
    WorkloadStatus,
    dump_status,
    parse_status,
    without_nulls,
)
from rwscaler.core.vocabulary import (
    ConditionType,
    EffectiveMode,
    Event,
    EventReason,
    EventType,
    ReadyReason,
    Status,
)

# The status keys rwscaler writes (the status model's fields); anything else under status
# (another tool's) is left alone.
OWNED_KEYS = status_model_fields

# Memory fields that move on every tick without changing any later decision: a status patch is
# not worth making for them alone (see `needs_patch`).
_VOLATILE_MEMORY_KEYS = ("last_tick",)

# For each condition, the status that calls for attention (a Warning event when it flips there).
_BAD_STATUS: dict[str, str] = {
    ConditionType.READY.value: Status.FALSE.value,
    ConditionType.METRICS_AVAILABLE.value: Status.FALSE.value,
    ConditionType.READ_CAPACITY_EXHAUSTED.value: Status.TRUE.value,
    ConditionType.WRITE_BOTTLENECK.value: Status.TRUE.value,
    ConditionType.CAPACITY_LIMIT.value: Status.TRUE.value,
    ConditionType.REPLICATION_LAG_HIGH.value: Status.TRUE.value,
    ConditionType.SCALING_LIMITED.value: Status.TRUE.value,
}


# A condition is read in `kubectl describe` and one-line tables: its message is at most this long
# (docs/operator.md "Conditions"); the detail is in status.observed.unknown, status.decision and
# `rwscaler explain`. The decision's own messages are written short; this bounds any other (an
# API error quoted in Ready, a long pod name list).
CONDITION_MESSAGE_LIMIT = 200


def short_message(text: str) -> str:
    if len(text) <= CONDITION_MESSAGE_LIMIT:
        return text
    return text[: CONDITION_MESSAGE_LIMIT - 1].rstrip() + "\u2026"


@dataclass(frozen=True, slots=True)
class ScaleOutcome:
    """What the tick did to the replica StatefulSet: scaled from -> to, or failed with a message."""

    from_replicas: int
    to_replicas: int
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ReadyOverride:
    """Replace the decision's Ready condition (paused, routing failed, ...)."""

    status: Status
    reason: ReadyReason
    message: str


def format_ratio(ratio: float | None) -> str:
    if ratio is None:
        return "unknown"
    if math.isinf(ratio):
        return "inf"
    if ratio >= 100:
        return f"{ratio:.0f}"
    if ratio >= 1:
        return f"{ratio:.1f}"
    return f"{ratio:.2g}"


def _format_qps(signal: Signal) -> str:
    if signal.value is None:
        return "unknown"
    return f"{signal.value:.2f}".rstrip("0").rstrip(".")


def _format_duration(signal: Signal) -> str:
    return "unknown" if signal.value is None else format_seconds(signal.value)


def _unknown_text(signal: Signal) -> str:
    reason = signal.reason.value if signal.reason else "Unknown"
    return f"{reason}: {signal.message}" if signal.message else reason


def _observed(obs: Observation, plan: Plan) -> StatusObserved:
    signals = {
        "readQPS": (obs.read_qps, _format_qps),
        "writeQPS": (obs.write_qps, _format_qps),
        "readLatencyP99": (obs.read_p99, _format_duration),
        "writeLatencyP99": (obs.write_p99, _format_duration),
    }
    unknown = {name: _unknown_text(s) for name, (s, _) in signals.items() if not s.known}
    pool = set(plan.read_pool)
    replicas = [
        StatusReplica(
            name=r.name,
            ready=r.ready,
            lag=_format_duration(r.lag),
            lagBytes=None
            if r.lag_bytes.reason is UnknownReason.NOT_CONFIGURED
            else _format_bytes(r.lag_bytes),
            inReadPool=r.name in pool,
            draining=True if r.name in plan.draining else None,
        )
        for r in sorted(obs.replicas, key=lambda r: r.rank)
    ]
    for r in obs.replicas:
        if not r.lag.known:
            unknown[f"replicationLag/{r.name}"] = _unknown_text(r.lag)
    # An exporter without histograms gives a mean where a p99 is asked for: say which.
    averages = [n for n, (s, _) in signals.items() if s.known and s.aggregation is Aggregation.AVERAGE]
    return StatusObserved(
        **{name: fmt(s) for name, (s, fmt) in signals.items()},
        replicas=replicas,
        unknown=unknown or None,
        averages=averages or None,
        keyMetrics=key_metrics(
            obs.diagnostics, plan.pool_sizing.read_max_connections, plan.pool_sizing.write_max_connections
        ),
    )


def _format_bytes(signal: Signal) -> str:
    return "unknown" if signal.value is None else format_bytes(signal.value)


def _json_value(value: float | int | str | None) -> float | int | str | None:
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else "-inf" if value < 0 else "nan"
    if isinstance(value, float):
        return round(value, 6)
    return value


def _decision(plan: Plan) -> StatusDecision:
    return StatusDecision(
        summary=plan.summary,
        reasons=[
            StatusDecisionReason(
                rule=r.rule.value,
                message=r.message,
                inputs={k: _json_value(v) for k, v in r.inputs} if r.inputs else None,
            )
            for r in plan.reasons
        ],
    )


def merge_conditions(
    previous: Sequence[StatusCondition], conditions: Iterable[Condition], now: float, generation: int | None
) -> list[StatusCondition]:
    """Conditions as status entries; `lastTransitionTime` is kept unless the status flipped."""
    before = {c.type: c for c in previous}
    out: list[StatusCondition] = []
    for c in conditions:
        old = before.get(c.type.value)
        kept = None if old is None or old.status is not c.status else old.lastTransitionTime
        out.append(
            StatusCondition(
                type=c.type.value,
                status=c.status,
                reason=c.reason,
                message=short_message(c.message),
                lastTransitionTime=rfc3339(now) if kept is None else kept,
                observedGeneration=generation,
            )
        )
    return out


def _apply_override(conditions: Sequence[Condition], override: ReadyOverride | None) -> list[Condition]:
    if override is None:
        return list(conditions)
    return [
        Condition(c.type, override.status, override.reason.value, override.message)
        if c.type is ConditionType.READY
        else c
        for c in conditions
    ]


def render_status(
    plan: Plan,
    obs: Observation,
    *,
    previous: Mapping[str, Any],
    generation: int | None,
    now: float,
    mode: EffectiveMode,
    ready_override: ReadyOverride | None = None,
    primary: StatusPrimary | None = None,
    scale_target: StatusScaleTarget | None = None,
) -> dict[str, Any]:
    """The whole status rwscaler owns, for this tick's plan, as written to the API.

    `primary` and `scale_target` are what the tick found (None: left out of status)."""
    ready_pods = sum(1 for r in obs.replicas if r.ready)
    conditions = _apply_override(plan.conditions, ready_override)
    status = WorkloadStatus(
        observedGeneration=generation,
        mode=mode,
        workloadClass=WorkloadClass(plan.workload_class),
        readWriteRatio=format_ratio(plan.ratio),
        observed=_observed(obs, plan),
        replicas=StatusReplicaCounts(
            current=plan.current_replicas, desired=plan.desired_replicas, ready=ready_pods
        ),
        primary=primary,
        scaleTarget=scale_target,
        readEndpoints=list(plan.read_pool),
        lastScaleTime=None if plan.memory.last_scale_time is None else rfc3339(plan.memory.last_scale_time),
        maxReplicationLag="unknown" if plan.max_lag_s is None else format_seconds(plan.max_lag_s),
        # Known only with objectives.maxReplicationLagBytes; left out otherwise (and when unknown:
        # ReplicationLagHigh then names the replicas whose lag is unknown).
        maxReplicationLagBytes=None if plan.max_lag_bytes is None else format_bytes(plan.max_lag_bytes),
        recommendations=[
            StatusRecommendation(type=r.type.value, message=r.message, replicas=r.replicas)
            for r in plan.recommendations
        ],
        conditions=merge_conditions(parse_status(previous).conditions or [], conditions, now, generation),
        learnedCapacity=_learned_capacity(plan),
        forecast=_forecast(plan),
        readWriteTrend=_read_write_trend(plan),
        decision=_decision(plan),
        memory=plan.memory.to_status(),
    )
    return dump_status(status)


def _forecast(plan: Plan) -> StatusForecast | None:
    """The read load the capacity model provisions for and keeps, and what said so (forecast.py).
    None (left out) without a capacity model."""
    f = plan.forecast
    if f is None:
        return None
    return StatusForecast(
        expectedReadQPS=f"{f.expected_qps:.0f}/s",
        horizon=format_seconds(f.horizon_s),
        basis=f.basis,
        keepReadQPS=None if f.hold_qps is None else f"{f.hold_qps:.0f}/s",
        keepHorizon=None if f.hold_qps is None else format_seconds(f.hold_horizon_s),
        keepBasis=f.hold_basis,
    )


def _read_write_trend(plan: Plan) -> StatusReadWriteTrend | None:
    """Whether reads or writes gain share over the trend window (ratio_trend.py), in words."""
    t = plan.ratio_trend
    if t is None:
        return None
    verdict = _TREND_VERDICTS[t.direction] if t.known else TrendVerdict.UNKNOWN
    return StatusReadWriteTrend(verdict=verdict, points=t.points, message=t.message)


_TREND_VERDICTS = {
    1: TrendVerdict.READS_GAINING_SHARE,
    -1: TrendVerdict.WRITES_GAINING_SHARE,
    0: TrendVerdict.STEADY,
}


def _learned_capacity(plan: Plan) -> StatusLearnedCapacity | None:
    """The per-replica read load at which the read objective broke, when one is learned: its value,
    when it was last learned or confirmed, when it expires, and whether replicas are sized with it
    (it is under targetReadQPSPerReplica). None (left out) when nothing is learned."""
    mem = plan.memory
    value = mem.breach_qps_per_replica
    if value is None:
        return None
    since = mem.breach_time
    return StatusLearnedCapacity(
        readQPSPerReplica=f"{value:.0f}/s",
        since=None if since is None else rfc3339(since),
        expires=None if since is None else rfc3339(since + LEARNED_CAPACITY_TTL_S),
        sizingWith=plan.read_capacity is not None and plan.read_capacity == value,
    )


def problem_status(
    previous: Mapping[str, Any],
    *,
    generation: int | None,
    now: float,
    reason: ReadyReason,
    message: str,
) -> dict[str, Any]:
    """The previous status (memory included, so nothing is forgotten) with Ready=False and why."""
    before = parse_status(previous)
    old_conditions = before.conditions or []
    kept = [c for c in old_conditions if c.type != ConditionType.READY.value]
    ready = merge_conditions(
        old_conditions,
        [Condition(ConditionType.READY, Status.FALSE, reason.value, message)],
        now,
        generation,
    )
    update: dict[str, Any] = {"conditions": ready + kept}
    if generation is not None:
        update["observedGeneration"] = generation
    return dump_status(before.model_copy(update=update))


def comparable(status: Mapping[str, Any]) -> dict[str, Any]:
    """The keys rwscaler owns, without nulls and without memory's tick clock: two statuses that
    compare equal here say the same."""
    out = {k: without_nulls(status.get(k)) for k in OWNED_KEYS if status.get(k) is not None}
    memory = out.get("memory")
    if isinstance(memory, dict):
        out["memory"] = {k: v for k, v in memory.items() if k not in _VOLATILE_MEMORY_KEYS}
    return out


def needs_patch(previous: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """True unless the new status equals the old one, ignoring only memory's tick timestamp."""
    return comparable(previous) != comparable(new)


# How long a status may keep showing measured values that moved while nothing else did: the
# numbers (QPS, latencies, lag, ratio, the summary's figures, the moving averages) refresh at
# least this often; anything else is written the tick it changes. docs/operator.md "Status".
STATUS_REFRESH_S = 120.0


def _significant(status: Mapping[str, Any]) -> dict[str, Any]:
    """What of a status may not wait for the refresh: everything but the measured values."""
    s = parse_status(status)
    observed = s.observed
    return {
        "observedGeneration": s.observedGeneration,
        "mode": s.mode,
        "workloadClass": s.workloadClass,
        "replicas": s.replicas,
        "primary": s.primary,
        "scaleTarget": s.scaleTarget,
        "readEndpoints": s.readEndpoints,
        "lastScaleTime": s.lastScaleTime,
        "pool": None
        if observed is None or observed.replicas is None
        else [(r.name, r.ready, r.inReadPool, r.draining) for r in observed.replicas],
        "unknown": None if observed is None or observed.unknown is None else sorted(observed.unknown),
        "conditions": [(c.type, c.status, c.reason) for c in s.conditions or []],
        "recommendations": [(r.type, r.replicas) for r in s.recommendations or []],
        "rules": [r.rule for r in (s.decision.reasons or [])] if s.decision else None,
        "learned": None
        if s.learnedCapacity is None
        else (s.learnedCapacity.readQPSPerReplica, s.learnedCapacity.sizingWith),
        "trend": None if s.readWriteTrend is None else (s.readWriteTrend.verdict, s.readWriteTrend.points),
        "memory": None if s.memory is None else Memory.from_status(s.memory).checkpoint_key(),
    }


def significant_change(previous: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether something other than the measured values changed: a condition's status or reason,
    counts, the read pool, the primary, a rule or recommendation, or what the decision memory must
    keep across a restart (`Memory.checkpoint_key`)."""
    return _significant(previous) != _significant(new)


def _conditions_by_type(status: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    items = status.get("conditions")
    return {str(c.get("type")): c for c in (items if isinstance(items, list) else []) if isinstance(c, dict)}


def condition_events(previous: Mapping[str, Any], new: Mapping[str, Any]) -> list[Event]:
    """One ConditionChanged event per condition whose status flipped (or appeared)."""
    before = _conditions_by_type(previous)
    out: list[Event] = []
    for kind, cond in _conditions_by_type(new).items():
        old = before.get(kind)
        if old is not None and old.get("status") == cond.get("status"):
            continue
        was = old.get("status") if old is not None else "none"
        bad = _BAD_STATUS.get(kind) == cond.get("status")
        if old is None and not bad:
            continue  # a condition that starts out fine is not news
        out.append(
            Event(
                EventType.WARNING if bad else EventType.NORMAL,
                EventReason.CONDITION_CHANGED,
                f"{kind} {was} -> {cond.get('status')} ({cond.get('reason')}): {cond.get('message')}",
            )
        )
    return out


def pool_events(previous: Mapping[str, Any], new: Mapping[str, Any], *, applied: bool) -> list[Event]:
    """A ReadPoolChanged event when the set of read endpoints changed."""
    old_raw = previous.get("readEndpoints")
    old = [str(e) for e in old_raw] if isinstance(old_raw, list) else []
    now = [str(e) for e in new.get("readEndpoints", [])]
    if old == now or not now:
        return []
    joined = [e for e in now if e not in old]
    left = [e for e in old if e not in now]
    parts = [f"read pool: {', '.join(now)}"]
    if joined:
        parts.append(f"joined: {', '.join(joined)}")
    if left:
        parts.append(f"left: {', '.join(left)}")
    if not applied:
        parts.append("not applied (Recommend mode, paused, or the router failed: see Ready)")
    return [Event(EventType.NORMAL, EventReason.READ_POOL_CHANGED, "; ".join(parts))]


def scale_events(outcome: ScaleOutcome | None, plan: Plan) -> list[Event]:
    """One event per scale action, naming the rule that drove it."""
    if outcome is None:
        return []
    if outcome.error is not None:
        return [
            Event(
                EventType.WARNING,
                EventReason.SCALE_FAILED,
                f"scaling {outcome.from_replicas} -> {outcome.to_replicas} failed: {outcome.error}",
            )
        ]
    up = outcome.to_replicas > outcome.from_replicas
    return [
        Event(
            EventType.NORMAL,
            EventReason.SCALED_UP if up else EventReason.SCALED_DOWN,
            f"scaled read replicas {outcome.from_replicas} -> {outcome.to_replicas}: {plan.summary}",
        )
    ]


def events(
    previous: Mapping[str, Any],
    new: Mapping[str, Any],
    plan: Plan | None = None,
    *,
    scale: ScaleOutcome | None = None,
    pool_applied: bool = True,
) -> list[Event]:
    """Every Event for one tick: scale action first, then pool change, then condition flips."""
    out: list[Event] = []
    if plan is not None:
        out.extend(scale_events(scale, plan))
        out.extend(pool_events(previous, new, applied=pool_applied))
    out.extend(condition_events(previous, new))
    return out
