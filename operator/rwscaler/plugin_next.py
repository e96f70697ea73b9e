"""When the next action is allowed: the lines `kubectl rwscaler explain` adds to `rwscaler explain`.

Called by `rwscaler.command_plugin` with a ReadWriteWorkload object (a plain dict, as read from
the API) and the time. Pure: the clock is an argument. Derived only from what the operator wrote
(status.mode, status.replicas, read through `rwscaler.core.status.parse_status`, and
status.memory, read as `rwscaler.core.memory.Memory`: last_tick, recommendations,
last_scale_time, last_scale_direction, drain) and the spec's behavior and bounds, following the
same rules as `rwscaler.core.sizing.stabilize`: a decision every `intervalSeconds`; a scale in
one direction waits until no recommendation inside that direction's stabilization window argues
against it; a reversal (down after up, or up after down) waits that window after the last
scale; a scale-in waits for its drain. The times are the earliest possible, if the signals call for the action.

The operator does not rewrite status when only memory.last_tick would change, so the time of the
next decision is known only while last_tick + intervalSeconds is still ahead; past it, the
decision is "due now" and the gates count from now.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from rwscaler.core.durations import format_seconds, rfc3339
from rwscaler.core.memory import Memory
from rwscaler.core.spec import BehaviorSpec, is_paused
from rwscaler.core.status import StatusReplicaCounts, parse_status
from rwscaler.core.vocabulary import EffectiveMode

# Closer to now than this is "now" (not "in 0ms" or "-0ms ago").
NOW_SLACK_S = 0.5


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _behavior(spec: Mapping[str, Any]) -> BehaviorSpec:
    try:
        return BehaviorSpec.model_validate(spec.get("behavior") or {})
    except ValidationError:
        return BehaviorSpec()


def when(t: float, now: float) -> str:
    """An instant as RFC 3339 with how far it is from now ("2026-12-05T08:00:00Z, in 4m45s")."""
    delta = t - now
    if abs(delta) < NOW_SLACK_S:
        return f"{rfc3339(t)} (now)"
    if delta > 0:
        return f"{rfc3339(t)} (in {format_seconds(delta)})"
    return f"{rfc3339(t)} ({format_seconds(-delta)} ago)"


def _earliest(candidates: list[tuple[float, str]], next_tick: float, now: float) -> str:
    """The latest of the gates, said with the reason that sets it."""
    t, why = max(candidates, key=lambda c: c[0])
    if t <= next_tick:
        return "at the next decision" + (f", {when(next_tick, now)}" if next_tick > now else " (due now)")
    return f"not before {when(t, now)}: {why}"


def _scale_up(
    behavior: BehaviorSpec,
    memory: Memory,
    current: int,
    high: int | None,
    next_tick: float,
    now: float,
) -> str:
    if high is not None and current >= high:
        return f"not possible: at maxReplicas {high}"
    window = behavior.scaleUp.stabilizationWindowSeconds
    gates: list[tuple[float, str]] = [(next_tick, "")]
    last, direction = memory.last_scale_time, memory.last_scale_direction
    if last is not None and direction < 0:
        gates.append(
            (
                last + window,
                f"scaled down at {rfc3339(last)}; no reversal within the scaleUp window {window}s",
            )
        )
    holding = [(t, r) for t, r in memory.recommendations if r <= current]
    if holding and window > 0:
        t, r = max(holding)
        gates.append(
            (
                t + window,
                f"{r} replicas were recommended at {rfc3339(t)}, inside the scaleUp window {window}s",
            )
        )
    return _earliest(gates, next_tick, now)


def _scale_down(
    behavior: BehaviorSpec,
    memory: Memory,
    current: int,
    low: int,
    last_tick: float,
    next_tick: float,
    now: float,
) -> str:
    if current <= low:
        return f"not possible: at minReplicas {low}"
    window = behavior.scaleDown.stabilizationWindowSeconds
    gates: list[tuple[float, str]] = [(next_tick, "")]
    last, direction = memory.last_scale_time, memory.last_scale_direction
    if last is not None and direction > 0:
        gates.append(
            (
                last + window,
                f"scaled up at {rfc3339(last)}; no reversal within the scaleDown window {window}s",
            )
        )
    history = memory.recommendations
    if window > 0 and (not history or history[-1][0] < last_tick):
        # The last tick recorded nothing (it held): the next one seeds the window with the current
        # count, as the HPA does, so a scale-down waits a whole window from then.
        gates.append(
            (next_tick + window, f"the scaleDown window {window}s starts again at the next decision")
        )
    holding = [(t, r) for t, r in history if r >= current]
    if holding and window > 0:
        t, r = max(holding)
        gates.append(
            (
                t + window,
                f"{r} replicas were recommended at {rfc3339(t)}, inside the scaleDown window {window}s",
            )
        )
    return _earliest(gates, next_tick, now)


def next_action(obj: Mapping[str, Any], now: float) -> list[str]:
    """Lines saying when the next decision is due and the earliest each kind of action may happen.

    Empty when the operator has not decided yet (`rwscaler explain` says so already)."""
    status, spec = parse_status(obj.get("status")), _mapping(obj.get("spec"))
    if status.decision is None or not status.decision.model_fields_set:
        return []
    memory = Memory.from_status(status.memory)
    behavior = _behavior(spec)
    interval = behavior.intervalSeconds
    lines = ["  next action (the earliest, if the signals call for it):"]
    last_tick = memory.last_tick
    if last_tick is None:
        lines.append("    decision:   unknown (status.memory has no time of the last decision)")
        return lines
    next_tick = last_tick + interval
    if next_tick > now:
        lines.append(f"    decision:   {when(next_tick, now)}, one every {interval}s")
    else:
        # The operator skips a status write that would change only memory.last_tick, so an old
        # last_tick means nothing changed since (or no operator runs): this cannot tell which.
        lines.append(
            f"    decision:   one every {interval}s (status last changed {when(last_tick, now)}; "
            "it is rewritten only when something changes)"
        )
        next_tick = now
    mode = status.mode
    if is_paused(obj) and mode is not EffectiveMode.PAUSED:
        lines.append(
            "    changes:    none once the operator sees the annotation rwscaler.io/paused=true "
            f"(status still says mode {mode})"
        )
        return lines
    if mode is EffectiveMode.PAUSED and not is_paused(obj):
        lines.append("    changes:    paused until the operator sees that the pause annotation is gone")
        return lines
    if mode is EffectiveMode.PAUSED:
        lines.append(
            "    changes:    none while paused (annotation rwscaler.io/paused=true); "
            "`kubectl rwscaler resume` lets it act again"
        )
        return lines
    if mode is EffectiveMode.RECOMMEND:
        lines.append("    changes:    none: mode Recommend (rwscaler decides and reports only)")
        return lines
    # The count after the last decision: the desired one when it acted (Enforce), which the next
    # decision starts from; the observed one otherwise.
    replicas = status.replicas or StatusReplicaCounts()
    current = replicas.current if replicas.desired is None else replicas.desired
    if current is None:
        lines.append("    scaling:    unknown (status has no current replica count)")
        return lines
    bounds = _mapping(spec.get("replicas"))
    low = _number(bounds.get("minReplicas"))
    high = _number(bounds.get("maxReplicas"))
    lines.append(
        "    scale up:   "
        + _scale_up(behavior, memory, current, None if high is None else int(high), next_tick, now)
    )
    drain = memory.drain
    if drain is not None:
        leaving = ", ".join(drain.replicas) or "?"
        lines.append(
            f"    scale down: under way: draining {leaving} since {rfc3339(drain.started)}, "
            f"then to {drain.target_replicas} "
            "(once no connection is left, or at the pooler's drain timeout)"
        )
    else:
        lines.append(
            "    scale down: "
            + _scale_down(
                behavior, memory, current, 1 if low is None else int(low), last_tick, next_tick, now
            )
        )
    return lines
