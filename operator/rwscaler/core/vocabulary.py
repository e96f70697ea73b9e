"""The words rwscaler speaks to users: condition types and statuses, rules, recommendations,
Ready reasons, event types and reasons, and the Event record itself.

Constant sets that users filter on (`kubectl get events --field-selector reason=...`, alerts on
a condition's reason). The core's plan, the status renderer (`rwscaler.report`), the tick
(`rwscaler.reconcile`) and the adapters (`rwscaler.kube`, `rwscaler.pooler`) all import them
from here, so no adapter has to import the status renderer for its vocabulary. Pure data.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ConditionType(StrEnum):
    READY = "Ready"
    METRICS_AVAILABLE = "MetricsAvailable"
    READ_CAPACITY_EXHAUSTED = "ReadCapacityExhausted"
    WRITE_BOTTLENECK = "WriteBottleneck"
    CAPACITY_LIMIT = "CapacityLimit"
    REPLICATION_LAG_HIGH = "ReplicationLagHigh"
    SCALING_LIMITED = "ScalingLimited"


class RecommendationType(StrEnum):
    ADD_READ_REPLICAS = "AddReadReplicas"
    PRE_PROVISION_REPLICAS = "PreProvisionReplicas"
    VERTICAL_SCALE_PRIMARY = "VerticalScalePrimary"
    SHARD_WRITES = "ShardWrites"
    ARCHITECTURE_REVIEW = "ArchitectureReview"
    WRITE_OPTIMIZED_STORAGE = "WriteOptimizedStorage"
    # The read objective broke under targetReadQPSPerReplica: lower the target to the learned capacity.
    LOWER_READ_TARGET = "LowerTargetReadQPSPerReplica"
    # Writes commit about one row each at a high rate: batch them (10-100x fewer commits and syncs).
    BATCH_WRITES = "BatchWrites"
    # Sessions wait for locks or deadlock on the primary: a write-side problem replicas do not solve.
    REDUCE_LOCK_CONTENTION = "ReduceLockContention"


class Rule(StrEnum):
    """The rules that can fire; each fired rule becomes a Reason in the plan."""

    READ_CAPACITY_EXHAUSTED = "ReadCapacityExhausted"  # read rising, writes stable
    WRITE_BOTTLENECK = "WriteBottleneck"  # write rising, reads stable
    CAPACITY_LIMIT = "CapacityLimit"  # both rising
    READ_RATIO_RISING = "ReadRatioRising"
    WRITE_RATIO_RISING = "WriteRatioRising"
    CAPACITY_MODEL = "CapacityModel"  # replicas sized from read QPS / target
    READ_FORECAST = "ReadForecast"  # read QPS forecast above the current capacity
    LATENCY_STEP = "LatencyStep"  # replicas stepped up from a read latency breach
    LATENCY_HEADROOM = "LatencyHeadroom"  # replicas stepped down: reads far under the objective
    LEARNED_CAPACITY = "LearnedCapacity"  # the per-replica read load at which the objective broke
    WITHIN_TOLERANCE = "WithinTolerance"
    METRICS_UNKNOWN = "MetricsUnknown"
    STABILIZED = "Stabilized"
    STEP_LIMITED = "StepLimited"
    BOUNDS = "Bounds"
    LAG_BOUND = "LagBound"
    STRONG_CONSISTENCY = "StrongConsistency"
    REPLICA_LEFT_POOL = "ReplicaLeftPool"
    REPLICA_JOINED_POOL = "ReplicaJoinedPool"
    POOL_FALLBACK = "PoolFallbackToPrimary"
    DRAINING = "Draining"
    # The key metrics (core/diagnosis.py):
    READ_POOL_SATURATED = "ReadPoolSaturated"  # clients wait for a read pool connection
    LOCK_CONTENTION = "LockContention"  # lock waits or deadlocks on the primary: the write side
    BATCH_WRITES = "BatchWrites"  # about one row per write statement at a high rate
    DRAIN_COMPLETE = "DrainComplete"
    SCALE = "Scale"
    RECOMMEND_ONLY = "RecommendOnly"
    # The scale target's guards (target_guard.py): each is also a ScalingLimited reason.
    ROLE_UNKNOWN = "RoleUnknown"  # no primary, several, or a role label and metric disagree: hold
    PRIMARY_WOULD_BE_REMOVED = "PrimaryWouldBeRemoved"  # the scale-in would remove the primary's pod
    REMOVAL_ORDER_UNKNOWN = "RemovalOrderUnknown"  # the target's kind picks pods rwscaler cannot foresee


class Status(StrEnum):
    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class EffectiveMode(StrEnum):
    """What the operator actually did with the decision (status.mode)."""

    ENFORCE = "Enforce"
    RECOMMEND = "Recommend"
    PAUSED = "Paused"


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


class EventReason(StrEnum):
    """The only reasons rwscaler posts Events with (constant, so they can be filtered on)."""

    SCALED_UP = "ScaledUp"
    SCALED_DOWN = "ScaledDown"
    SCALE_FAILED = "ScaleFailed"
    READ_POOL_CHANGED = "ReadPoolChanged"
    ROUTING_FAILED = "RoutingFailed"
    NO_ROUTABLE_ENDPOINT = "NoRoutableEndpoint"
    CONDITION_CHANGED = "ConditionChanged"


class ReadyReason(StrEnum):
    """Ready=False (or annotated Ready) reasons set by the operator rather than by `decide`."""

    PAUSED = "Paused"
    SPEC_INVALID = "SpecInvalid"
    PRIMARY_NOT_FOUND = "PrimaryStatefulSetNotFound"
    SCALE_TARGET_NOT_FOUND = "ScaleTargetNotFound"
    SCALE_TARGET_NOT_SCALABLE = "ScaleTargetNotScalable"  # no such kind, or it serves no scale subresource
    PROMETHEUS_NOT_CONFIGURED = "PrometheusNotConfigured"
    SECRET_NOT_FOUND = "SecretNotFound"
    SECRET_KEY_NOT_FOUND = "SecretKeyNotFound"
    POOLER_UNAVAILABLE = "PoolerUnavailable"
    READ_SERVICE_CONFLICT = "ReadServiceConflict"
    ROUTING_FAILED = "RoutingFailed"
    NO_ROUTABLE_ENDPOINT = "NoRoutableEndpoint"
    SCALE_FAILED = "ScaleFailed"
    KUBERNETES_ERROR = "KubernetesError"


@dataclass(frozen=True, slots=True)
class Event:
    type: EventType
    reason: EventReason
    message: str
