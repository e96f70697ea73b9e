"""What `decide` returns: the action to take and every reason for it, as plain data.

Status, events, `rwscaler explain` and the simulator's timeline all render from a Plan, so the
explanation a user reads is the one the decision was made with.
"""

from __future__ import annotations

from dataclasses import dataclass

from rwscaler.core.forecast import Forecast
from rwscaler.core.memory import Memory
from rwscaler.core.ratio_trend import RatioTrend
from rwscaler.core.vocabulary import ConditionType, RecommendationType, Rule, Status

Inputs = tuple[tuple[str, float | int | str | None], ...]


@dataclass(frozen=True, slots=True)
class Reason:
    rule: Rule
    message: str
    inputs: Inputs = ()


@dataclass(frozen=True, slots=True)
class Condition:
    type: ConditionType
    status: Status
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class Recommendation:
    type: RecommendationType
    message: str
    replicas: int | None = None


@dataclass(frozen=True, slots=True)
class PoolSizing:
    """Connection pool sizes per side, from the seed's guidelines, for the current read pool."""

    write_max_connections: int
    write_min_idle: int
    read_max_connections: int
    read_min_idle: int
    write_connect_timeout_s: float
    read_connect_timeout_s: float
    write_query_timeout_s: float
    read_query_timeout_s: float


@dataclass(frozen=True, slots=True)
class Plan:
    workload_class: str
    ratio: float | None
    current_replicas: int
    desired_replicas: int
    # The replica count to set on the StatefulSet now; None leaves it alone. Always None when
    # the plan is not enforced (Recommend mode) or while a drain has not finished.
    scale_to: int | None
    read_pool: tuple[str, ...]
    pool_fallback: bool
    draining: tuple[str, ...]
    pool_sizing: PoolSizing
    max_lag_s: float | None
    conditions: tuple[Condition, ...]
    recommendations: tuple[Recommendation, ...]
    reasons: tuple[Reason, ...]
    memory: Memory
    enforce: bool
    summary: str
    # The per-replica read capacity the capacity model sized with: targetReadQPSPerReplica, or
    # the learned capacity when lower; None without a target.
    read_capacity: float | None = None
    # The highest replica lag in bytes; None: unknown, or no maxReplicationLagBytes objective.
    max_lag_bytes: float | None = None
    # The read-load forecast the capacity model sized with (None without a capacity model).
    forecast: Forecast | None = None
    # Whether reads or writes gain share of the traffic (ratio_trend.py); None: not judged.
    ratio_trend: RatioTrend | None = None

    def condition(self, kind: ConditionType) -> Condition:
        return next(c for c in self.conditions if c.type is kind)

    def true_conditions(self) -> list[str]:
        return [c.type.value for c in self.conditions if c.status is Status.TRUE]

    def fired(self, rule: Rule) -> bool:
        return any(r.rule is rule for r in self.reasons)
