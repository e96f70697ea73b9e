"""The ReadWriteWorkload status as Pydantic models: the one description of what rwscaler writes there.

Everything else derives from these models, so the status written, the CRD and the readers
cannot drift apart:

- `rwscaler.report` builds a `WorkloadStatus` each tick and writes `dump_status` of it;
  `report.OWNED_KEYS` (the keys rwscaler owns under status) are its fields;
- `rwscaler.render_crd` renders the CRD's status schema from its JSON Schema (descriptions,
  types, enums and formats included);
- `rwscaler explain` and the kubectl plugin read a status back with `parse_status`, which never
  fails: a status written by an older or newer version, with foreign keys, missing fields or a
  value of the wrong type, gives a model with what could be read (the rest is None).

Field names are the status's own (camelCase), as in `rwscaler.core.spec`. Every field is
optional and None is never written (`dump_status` leaves it out), so a field absent from a status
reads as None. `memory` (what `decide` remembers, `rwscaler.core.memory`) and a rule's `inputs`
are opaque here: their keys are not rwscaler's API, and the CRD keeps whatever they hold. Pure.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic.config import JsonDict
from pydantic.json_schema import WithJsonSchema

from rwscaler.core.classify import WorkloadClass
from rwscaler.core.roles import RoleSource
from rwscaler.core.vocabulary import (
    ConditionType,
    EffectiveMode,
    RecommendationType,
    Status,
)


class TrendVerdict(StrEnum):
    """Whether reads or writes gain share of the traffic (status.readWriteTrend.verdict)."""

    READS_GAINING_SHARE = "ReadsGainingShare"
    WRITES_GAINING_SHARE = "WritesGainingShare"
    STEADY = "Steady"
    UNKNOWN = "Unknown"


def without_nulls(value: Any) -> Any:
    """The value without null entries at any depth: a merge patch would delete such keys anyway,
    and a status read back must compare equal to the one written."""
    if isinstance(value, Mapping):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value


# A JSON object whose keys are not described here: kept as it is, by rwscaler and the API server.
Opaque = Annotated[
    dict[str, Any],
    AfterValidator(without_nulls),
    WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]


def _words(values: type[StrEnum]) -> str:
    return ", ".join(v.value for v in values)


# An RFC 3339 time in UTC, as rwscaler writes it ("2026-12-05T08:00:00Z"); kept as text so a
# status read back is written back unchanged.
_TIME: JsonDict = {"format": "date-time"}
_INT64: JsonDict = {"format": "int64"}


class _Part(BaseModel):
    # ignore: a key this version does not know (written by another version) is not an error.
    model_config = ConfigDict(extra="ignore", frozen=True)


class StatusReplica(_Part):
    """One read replica as observed this tick."""

    name: str | None = Field(default=None, description="The replica's pod.")
    ready: bool | None = Field(default=None, description="Whether the pod is Ready.")
    lag: str | None = Field(default=None, description="Its replication lag, e.g. 1.2s, or unknown.")
    lagBytes: str | None = Field(
        default=None,
        description="Its replication lag in bytes, e.g. 3.5MiB, or unknown (only with maxReplicationLagBytes).",
    )
    inReadPool: bool | None = Field(default=None, description="Whether it is in the read pool.")
    draining: bool | None = Field(
        default=None, description="True while it is drained before a scale-in (absent otherwise)."
    )


class StatusKeyMetrics(_Part):
    """The key metrics beyond QPS and latency, where the exporters give them (docs/diagnosis.md).

    A metric that is unknown (the preset does not read it, or no series) is left out."""

    readWriteByteRatio: str | None = Field(
        default=None, description="Bytes read by queries per byte of WAL written, e.g. 40.5."
    )
    readCPUShare: str | None = Field(
        default=None, description="Reads' share of the time spent executing statements, e.g. 85%."
    )
    readPool: str | None = Field(
        default=None,
        description="Read pool: server connections busy (of the size rwscaler set) and clients waiting.",
    )
    writePool: str | None = Field(default=None, description="Write pool, as readPool.")
    lockWaits: str | None = Field(
        default=None, description="Sessions waiting for a lock on the primary, on average over the window."
    )
    deadlocksPerMinute: str | None = Field(default=None, description="Deadlocks per minute on the primary.")
    rowsPerWrite: str | None = Field(default=None, description="Rows changed per write statement.")


class StatusObserved(_Part):
    """The signals read from Prometheus this tick, as strings with units."""

    readQPS: str | None = Field(default=None, description="Read queries per second, or unknown.")
    writeQPS: str | None = Field(default=None, description="Write queries per second, or unknown.")
    readLatencyP99: str | None = Field(default=None, description="Read latency p99, e.g. 30ms, or unknown.")
    writeLatencyP99: str | None = Field(default=None, description="Write latency p99, e.g. 12ms, or unknown.")
    replicas: list[StatusReplica] | None = Field(
        default=None,
        description="The read replicas (a scale-in removes the last first), with readiness, lag and "
        "pool membership.",
    )
    unknown: dict[str, str] | None = Field(
        default=None,
        description="Why each unknown signal is unknown: signal (or replicationLag/POD) -> 'Reason: message'.",
    )
    averages: list[str] | None = Field(
        default=None,
        description="The latency signals that are means, not p99s (the exporter has no histograms).",
    )
    keyMetrics: StatusKeyMetrics | None = Field(
        default=None, description="Pools, locks, bytes, CPU split and rows per write, where known."
    )


class StatusReplicaCounts(_Part):
    """Replica counts of the read side."""

    current: int | None = Field(
        default=None,
        description="Read replicas now: the scale target's count, less the primary when it counts it.",
    )
    desired: int | None = Field(default=None, description="Where rwscaler is taking the read side.")
    ready: int | None = Field(default=None, description="Ready replica pods.")


class StatusPrimary(_Part):
    """The pod that is the primary now, and what said so."""

    pod: str | None = Field(default=None, description="The primary's pod.")
    source: RoleSource | None = Field(
        default=None,
        description="What said it is the primary: Label (a role label or primarySelector), Metric "
        "(the preset's role metric) or Layout (the pod of spec.primary.statefulSet).",
    )


class StatusScaleTarget(_Part):
    """The resource rwscaler scales for the read side, and its own replica count."""

    apiVersion: str | None = Field(default=None, description="The target's API version, e.g. apps/v1.")
    kind: str | None = Field(default=None, description="The target's kind, e.g. StatefulSet or Cluster.")
    name: str | None = Field(default=None, description="The target's name in the workload's namespace.")
    replicas: int | None = Field(
        default=None,
        description="The target's own count (its scale subresource's spec.replicas); it includes "
        "the primary unless spec.primary.statefulSet names a StatefulSet apart.",
    )


class StatusRecommendation(_Part):
    """One piece of advice."""

    type: str | None = Field(default=None, description=f"One of {_words(RecommendationType)}.")
    message: str | None = Field(default=None, description="The advice, with the numbers behind it.")
    replicas: int | None = Field(default=None, description="Replica count it refers to, if any.")


class StatusCondition(_Part):
    """A condition, as in Kubernetes' metav1.Condition."""

    type: str = Field(description="Condition type, e.g. Ready or WriteBottleneck.")
    status: Status = Field(description="True, False or Unknown.")
    reason: str | None = Field(default=None, description="CamelCase reason for the last transition.")
    message: str | None = Field(default=None, description="Human-readable explanation.")
    lastTransitionTime: str | None = Field(
        default=None,
        description="When the status last changed (not when it was last checked).",
        json_schema_extra=_TIME,
    )
    observedGeneration: int | None = Field(
        default=None, description="The generation the condition was computed for.", json_schema_extra=_INT64
    )


class StatusLearnedCapacity(_Part):
    """The per-replica read load at which the read objective broke, when one is learned."""

    readQPSPerReplica: str | None = Field(
        default=None, description="The learned load per replica, e.g. 640/s."
    )
    since: str | None = Field(
        default=None, description="When it was last learned or confirmed.", json_schema_extra=_TIME
    )
    expires: str | None = Field(
        default=None, description="When it is forgotten unless confirmed again.", json_schema_extra=_TIME
    )
    sizingWith: bool | None = Field(
        default=None, description="Whether replicas are sized with it (it is under targetReadQPSPerReplica)."
    )


class StatusForecast(_Part):
    """With targetReadQPSPerReplica: the read load the capacity model provisions for and keeps."""

    expectedReadQPS: str | None = Field(
        default=None, description="The read load provisioned for, e.g. 900/s."
    )
    horizon: str | None = Field(default=None, description="How far ahead that load is expected, e.g. 5m.")
    basis: str | None = Field(
        default=None, description="What said so: present, trend, yesterday or a week ago."
    )
    keepReadQPS: str | None = Field(
        default=None, description="The read load a scale-down keeps capacity for."
    )
    keepHorizon: str | None = Field(default=None, description="How far ahead that load is kept for.")
    keepBasis: str | None = Field(default=None, description="What said so.")


class StatusReadWriteTrend(_Part):
    """Whether reads or writes gain share over the trend window."""

    verdict: TrendVerdict | None = Field(default=None, description=f"One of {_words(TrendVerdict)}.")
    points: int | None = Field(default=None, description="How many weekly points of the ratio are known.")
    message: str | None = Field(default=None, description="What the trend rules concluded, in words.")


class StatusDecisionReason(_Part):
    """One rule that fired."""

    rule: str | None = Field(default=None, description="The rule, e.g. LatencyStep or Stabilized.")
    message: str | None = Field(default=None, description="What it found, in words.")
    inputs: Opaque | None = Field(default=None, description="The numbers it decided on, by name.")


class StatusDecision(_Part):
    """The last decision: a summary and every rule that fired."""

    summary: str | None = Field(default=None, description="The decision in one sentence.")
    reasons: list[StatusDecisionReason] | None = Field(
        default=None, description="The rules that fired, in order."
    )


class WorkloadStatus(_Part):
    """What rwscaler observed, decided and did, with its reasons."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-preserve-unknown-fields": True})

    observedGeneration: int | None = Field(
        default=None,
        description="The spec generation this status was computed for.",
        json_schema_extra=_INT64,
    )
    mode: EffectiveMode | None = Field(
        default=None, description="What was done with the decision: Enforce, Recommend or Paused."
    )
    workloadClass: WorkloadClass | None = Field(default=None, description="Class from the read:write ratio.")
    readWriteRatio: str | None = Field(default=None, description="Reads per write, e.g. 42.5 or inf.")
    observed: StatusObserved | None = Field(
        default=None, description="The signals read this tick, as strings with units, and each replica."
    )
    replicas: StatusReplicaCounts | None = Field(default=None, description="Replica counts of the read side.")
    primary: StatusPrimary | None = Field(
        default=None, description="The pod that is the primary now, and what said so."
    )
    scaleTarget: StatusScaleTarget | None = Field(
        default=None, description="The resource rwscaler scales for the read side, and its own count."
    )
    readEndpoints: list[str] | None = Field(
        default=None,
        description="The read pool rwscaler decided: the pods it routes reads to (the primary when "
        "the pool fell back). In Recommend mode or when paused, what it would route to.",
    )
    lastScaleTime: str | None = Field(
        default=None, description="When rwscaler last changed the replica count.", json_schema_extra=_TIME
    )
    maxReplicationLag: str | None = Field(default=None, description="Highest replica lag seen, e.g. 1.2s.")
    maxReplicationLagBytes: str | None = Field(
        default=None,
        description="Highest replica lag in bytes seen, e.g. 3.5MiB; only with objectives.maxReplicationLagBytes.",
    )
    recommendations: list[StatusRecommendation] | None = Field(
        default=None, description="What rwscaler advises beyond what it does itself."
    )
    conditions: list[StatusCondition] | None = Field(
        default=None,
        description=_words(ConditionType) + ".",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    learnedCapacity: StatusLearnedCapacity | None = Field(
        default=None,
        description="The per-replica read load at which the read objective broke, when one is learned.",
    )
    forecast: StatusForecast | None = Field(
        default=None, description="The read load the capacity model provisions for and keeps."
    )
    readWriteTrend: StatusReadWriteTrend | None = Field(
        default=None, description="Whether reads or writes gain share over the trend window."
    )
    decision: StatusDecision | None = Field(default=None, description="The last decision and its reasons.")
    memory: Opaque | None = Field(
        default=None,
        description="What the decision core remembers between ticks, read back by the next tick.",
    )


OWNED_KEYS: tuple[str, ...] = tuple(WorkloadStatus.model_fields)


def dump_status(status: WorkloadStatus) -> dict[str, Any]:
    """The status as written to the API: JSON values, no nulls at any depth."""
    result: dict[str, Any] = status.model_dump(mode="json", exclude_none=True)
    return result


# Each repair removes at least one value; a status needing more is given up on (read as empty).
_MAX_REPAIRS = 64


def _child(data: Any, key: str | int) -> tuple[bool, Any]:
    """(whether `data` holds `key`, the value there)."""
    if isinstance(data, Mapping):
        return (key in data, data.get(key))
    if isinstance(data, list) and isinstance(key, int) and 0 <= key < len(data):
        return (True, data[key])
    return (False, None)


def _reachable(data: Any, loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    """The longest prefix of an error's location that names a value present in `data`."""
    path: list[str | int] = []
    for key in loc:
        present, data = _child(data, key)
        if not present:
            break
        path.append(key)
    return tuple(path)


def _remove(data: Any, path: tuple[str | int, ...]) -> None:
    for key in path[:-1]:
        data = data[key]
    del data[path[-1]]


def parse_status(data: object) -> WorkloadStatus:
    """A status as read from the API, whatever version wrote it; never raises.

    Keys this version does not know are ignored; a value it cannot read (the wrong type, a
    condition without a type) is left out, and the rest is kept."""
    if not isinstance(data, Mapping):
        return WorkloadStatus()
    try:
        # Validation builds new objects all the way down (Opaque blocks too, by without_nulls),
        # so the result shares nothing with `data` and `data` needs no copy: a tick parses the
        # status several times, and the copy was half of its CPU.
        return WorkloadStatus.model_validate(data)
    except ValidationError:
        pass
    raw = copy.deepcopy(dict(data))  # the repairs below remove what cannot be read
    for _ in range(_MAX_REPAIRS):
        try:
            return WorkloadStatus.model_validate(raw)
        except ValidationError as err:
            paths = {_reachable(raw, tuple(e["loc"])) for e in err.errors()}
            paths.discard(())
            if not paths:
                break
            # Deepest and highest index first, so no removal shifts another's position.
            for path in sorted(paths, key=lambda p: (len(p), p), reverse=True):
                _remove(raw, path)
    return WorkloadStatus()
