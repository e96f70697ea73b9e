"""Builders for the unit tests of the pure decision core.

- `make_spec(**overrides)`: a valid ReadWriteWorkloadSpec; overrides deep-merge into a small base
  manifest, so a test names only what it is about (`make_spec(consistency="strong")`).
- `make_obs(...)`: an Observation with sensible, quiet defaults (reads at 0.6x and writes at 0.5x
  their objectives, every replica ready and caught up); a signal given as None is unknown
  (EmptyResult), never 0.
- `run_ticks(spec, world, ...)`: decide over a sequence of ticks, carrying memory, with the replica
  count following each plan's `scale_to` (what the operator does to the StatefulSet).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rwscaler.core.decide import decide
from rwscaler.core.memory import Memory
from rwscaler.core.observation import Observation, ReplicaObservation, Signal, UnknownReason
from rwscaler.core.plan import Condition, Plan, Reason
from rwscaler.core.spec import ReadWriteWorkloadSpec
from rwscaler.core.vocabulary import ConditionType, RecommendationType, Rule, Status

PRIMARY = "db-0"
REPLICA_SET = "db-replica"

BASE_SPEC: dict[str, Any] = {
    "primary": {"statefulSet": "db"},
    "replicas": {"statefulSet": REPLICA_SET, "minReplicas": 1, "maxReplicas": 8},
    "prometheus": {"url": "http://prometheus.monitoring:9090"},
}

# Defaults of the objectives (spec.py): read 50 ms, write 20 ms, lag 5 s.
READ_OBJECTIVE = 0.050
WRITE_OBJECTIVE = 0.020
LAG_OBJECTIVE = 5.0

SignalInput = float | Signal | None


def deep_merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def spec_dict(**overrides: Any) -> dict[str, Any]:
    return copy.deepcopy(deep_merge(BASE_SPEC, overrides))


def make_spec(**overrides: Any) -> ReadWriteWorkloadSpec:
    return ReadWriteWorkloadSpec.model_validate(spec_dict(**overrides))


def no_stabilization(**overrides: Any) -> ReadWriteWorkloadSpec:
    """A spec whose decisions act at once (windows 0), for rules that are not about timing."""
    behavior = {
        "scaleUp": {"stabilizationWindowSeconds": 0, "maxStep": 10},
        "scaleDown": {"stabilizationWindowSeconds": 0, "maxStep": 10},
    }
    return make_spec(**deep_merge({"behavior": behavior}, overrides))


def signal(value: SignalInput) -> Signal:
    if isinstance(value, Signal):
        return value
    if value is None:
        return Signal.unknown(UnknownReason.EMPTY, "no series")
    return Signal.of(value)


def replica_name(ordinal: int) -> str:
    return f"{REPLICA_SET}-{ordinal}"


def replica(
    ordinal: int,
    lag: SignalInput = 0.1,
    *,
    ready: bool = True,
    synchronous: bool = False,
    connections: int | None = None,
) -> ReplicaObservation:
    return ReplicaObservation(
        name=replica_name(ordinal),
        rank=ordinal,
        ready=ready,
        lag=signal(lag),
        synchronous=synchronous,
        connections=connections,
    )


def make_obs(
    *,
    read_qps: SignalInput = 1000.0,
    write_qps: SignalInput = 100.0,
    read_p99: SignalInput = 0.6 * READ_OBJECTIVE,
    write_p99: SignalInput = 0.5 * WRITE_OBJECTIVE,
    current: int = 2,
    lags: Sequence[SignalInput] | None = None,
    replicas: Sequence[ReplicaObservation] | None = None,
    connections: int | None = None,
) -> Observation:
    """One tick's observation; `current` replicas exist (ordinals 0..current-1) unless given."""
    if replicas is None:
        lag_values: Sequence[SignalInput] = [0.1] * current if lags is None else lags
        replicas = [replica(i, lag, connections=connections) for i, lag in enumerate(lag_values)]
    return Observation(
        read_qps=signal(read_qps),
        write_qps=signal(write_qps),
        read_p99=signal(read_p99),
        write_p99=signal(write_p99),
        current_replicas=current,
        primary=PRIMARY,
        replicas=tuple(replicas),
    )


World = Callable[[float, int], Observation]


@dataclass(frozen=True)
class Tick:
    t: float
    current: int  # replicas before the plan
    plan: Plan


def run_ticks(
    spec: ReadWriteWorkloadSpec,
    world: World | Sequence[Observation],
    *,
    ticks: int | None = None,
    start: float = 0.0,
    step: float | None = None,
    current: int = 2,
    memory: Memory | None = None,
    follow: bool = True,
) -> list[Tick]:
    """decide at start, start+step, ...; memory is carried, and (with `follow`) the replica count
    becomes each plan's scale_to, as the operator's scale of the StatefulSet would make it.

    `world(t, current)` builds each tick's observation; a plain sequence of observations is used
    as given (its own current_replicas)."""
    step = float(spec.behavior.intervalSeconds) if step is None else step
    mem = Memory() if memory is None else memory
    if not callable(world):
        observations = list(world)
        ticks = len(observations) if ticks is None else ticks
    else:
        observations = []
    assert ticks is not None
    out: list[Tick] = []
    for i in range(ticks):
        now = start + i * step
        obs = world(now, current) if callable(world) else observations[i]
        plan = decide(spec, obs, mem, now)
        out.append(Tick(now, obs.current_replicas, plan))
        mem = plan.memory
        if follow and plan.scale_to is not None:
            current = plan.scale_to
        elif not callable(world):
            current = obs.current_replicas
    return out


def last(ticks: Sequence[Tick]) -> Plan:
    return ticks[-1].plan


def cond(plan: Plan, kind: ConditionType) -> Condition:
    return plan.condition(kind)


def is_true(plan: Plan, kind: ConditionType) -> bool:
    return plan.condition(kind).status is Status.TRUE


def rec_types(plan: Plan) -> set[RecommendationType]:
    return {r.type for r in plan.recommendations}


def rules(plan: Plan) -> set[Rule]:
    return {r.rule for r in plan.reasons}


def reason_for(plan: Plan, rule: Rule) -> Reason:
    return next(r for r in plan.reasons if r.rule is rule)


def scaled_up(plan: Plan) -> bool:
    return plan.scale_to is not None and plan.scale_to > plan.current_replicas


def scaled_down(plan: Plan) -> bool:
    return plan.scale_to is not None and plan.scale_to < plan.current_replicas


_BAD_WORDS = ("None", "nan", "Rule.", "Status.", "<", "{", "}")


def assert_readable(text: str) -> None:
    """A message a user reads: non-empty, no Python reprs, no placeholders left unfilled."""
    assert text.strip(), "empty message"
    for bad in _BAD_WORDS:
        assert bad not in text, f"{bad!r} in message {text!r}"


def isclose(a: float | None, b: float) -> bool:
    return a is not None and math.isclose(a, b, rel_tol=1e-9)
