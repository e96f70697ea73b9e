"""The ReadWriteWorkload resource as Pydantic models: the single source of truth for its schema.

`rwscaler crd` renders the CRD in `crds/` from these models (see `render_crd`), and a test checks
that the committed CRD is exactly that rendering, so the API server and the operator can never
disagree about a field. Field names are the CRD's own (camelCase), so a manifest maps 1:1.
Cross-field rules live here twice on purpose: as CEL (`x-kubernetes-validations`, enforced at
admission) and as model validators (enforced when the simulator or a test loads a YAML file).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.config import JsonDict
from pydantic.json_schema import WithJsonSchema

from rwscaler.core.durations import DURATION_PATTERN, parse_duration

GROUP = "rwscaler.io"
VERSION = "v1alpha1"
KIND = "ReadWriteWorkload"
PLURAL = "readwriteworkloads"
# `metadata.annotations[PAUSED_ANNOTATION] = "true"`: decide and report, change nothing. Read by the
# tick (rwscaler.reconcile) and written by the kubectl plugin, so it lives with the API's names.
PAUSED_ANNOTATION = "rwscaler.io/paused"


def is_paused(body: Mapping[str, Any]) -> bool:
    """Whether a ReadWriteWorkload object (as read from the API) carries the pause annotation."""
    annotations = (body.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(PAUSED_ANNOTATION, "")).lower() == "true"


SHORT_NAME = "rww"


def _positive_duration_text(text: str) -> str:
    if parse_duration(text) <= 0:  # raises with the expected syntax when it does not parse
        raise ValueError(f"duration {text!r} must be positive")
    return text


# Every duration of the resource is positive: the pattern and CEL check it at admission, this
# validator (with a message that shows the syntax, not a regex) when a model is loaded from a file.
Duration = Annotated[
    str,
    AfterValidator(_positive_duration_text),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN}),
]
Name = Annotated[str, StringConstraints(min_length=1, max_length=253)]


def _cel(rule: str, message: str) -> JsonDict:
    return {"rule": rule, "message": message}


def _positive_duration(field: str) -> JsonDict:
    return _cel(f"duration(self.{field}) > duration('0s')", f"{field} must be a positive duration")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=False)


class Consistency(StrEnum):
    EVENTUAL = "eventual"
    BOUNDED = "bounded"
    STRONG = "strong"


class Mode(StrEnum):
    ENFORCE = "Enforce"
    RECOMMEND = "Recommend"


class PoolerKind(StrEnum):
    NONE = "None"
    ENDPOINT_SLICE = "EndpointSlice"
    PGBOUNCER = "PgBouncer"


class MetricsPreset(StrEnum):
    POSTGRES = "postgres"
    CNPG = "cnpg"
    MYSQL = "mysql"
    CUSTOM = "custom"


class PrimarySpec(_Model):
    statefulSet: Name = Field(
        description="The primary's StatefulSet (the write side). rwscaler never scales or removes it."
    )


class ReplicasSpec(_Model):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel("self.minReplicas <= self.maxReplicas", "minReplicas must not exceed maxReplicas")
            ]
        }
    )
    statefulSet: Name = Field(description="The read-replica StatefulSet that rwscaler scales.")
    minReplicas: int = Field(default=1, ge=0, le=1000, description="Fewest read replicas to keep.")
    maxReplicas: int = Field(ge=1, le=1000, description="Most read replicas rwscaler may run.")
    targetReadQPSPerReplica: float | None = Field(
        default=None,
        gt=0,
        description=(
            "Optional capacity model: read queries per second one replica should serve. When set, "
            "replicas are sized from read QPS (and its forecast); when unset, from read latency alone."
        ),
    )

    @model_validator(mode="after")
    def _bounds(self) -> ReplicasSpec:
        if self.minReplicas > self.maxReplicas:
            raise ValueError("minReplicas must not exceed maxReplicas")
        return self


class SecretKeyRef(_Model):
    name: Name = Field(description="Name of a Secret in the workload's namespace.")
    key: Name = Field(description="Key inside the Secret.")


class PrometheusSpec(_Model):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _positive_duration("timeout"),
                _cel(
                    "self.url.startsWith('http://') || self.url.startsWith('https://')",
                    "url must start with http:// or https://",
                ),
            ]
        }
    )
    url: Annotated[str, StringConstraints(min_length=1, max_length=2048)] = Field(
        description="Base URL of the Prometheus HTTP API, e.g. http://prometheus.monitoring:9090."
    )
    bearerTokenSecret: SecretKeyRef | None = Field(
        default=None, description="Secret key holding a bearer token sent with every query."
    )
    caSecret: SecretKeyRef | None = Field(
        default=None, description="Secret key holding a PEM CA bundle used to verify Prometheus' certificate."
    )
    insecureSkipVerify: bool = Field(
        default=False, description="Skip TLS verification (not recommended; verification is on by default)."
    )
    timeout: Duration = Field(default="5s", description="Timeout of one query.")

    @model_validator(mode="after")
    def _scheme(self) -> PrometheusSpec:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError(f"prometheus url {self.url!r} must start with http:// or https://")
        return self


class SignalQueries(_Model):
    readQPS: str | None = Field(default=None, description="PromQL for read queries per second.")
    writeQPS: str | None = Field(default=None, description="PromQL for write queries per second.")
    readLatencyP99: str | None = Field(default=None, description="PromQL for read latency p99, in seconds.")
    writeLatencyP99: str | None = Field(default=None, description="PromQL for write latency p99, in seconds.")
    replicationLag: str | None = Field(
        default=None, description="PromQL for replication lag in seconds, one series per replica pod."
    )


class MetricsSpec(_Model):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "self.preset != 'custom' || (has(self.queries) && has(self.queries.readQPS) && "
                    "has(self.queries.writeQPS) && has(self.queries.readLatencyP99) && "
                    "has(self.queries.writeLatencyP99) && has(self.queries.replicationLag))",
                    "preset custom needs every query: readQPS, writeQPS, readLatencyP99, "
                    "writeLatencyP99, replicationLag",
                ),
                _positive_duration("staleness"),
            ]
        }
    )
    preset: MetricsPreset = Field(
        default=MetricsPreset.POSTGRES,
        description="Named set of PromQL templates for a known exporter; custom means every query is given.",
    )
    queries: SignalQueries | None = Field(
        default=None, description="Per-signal PromQL that overrides the preset's query for that signal."
    )
    staleness: Duration = Field(
        default="1m", description="Samples older than this are treated as missing (unknown), never as 0."
    )

    @model_validator(mode="after")
    def _custom_complete(self) -> MetricsSpec:
        if self.preset is MetricsPreset.CUSTOM:
            q = self.queries
            missing = [
                name
                for name in ("readQPS", "writeQPS", "readLatencyP99", "writeLatencyP99", "replicationLag")
                if q is None or getattr(q, name) is None
            ]
            if missing:
                raise ValueError(f"preset custom needs every query; missing: {', '.join(missing)}")
        return self


class ObjectivesSpec(_Model):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _positive_duration("readLatencyP99"),
                _positive_duration("writeLatencyP99"),
                _positive_duration("maxReplicationLag"),
            ]
        }
    )
    readLatencyP99: Duration = Field(default="50ms", description="Read latency p99 objective.")
    writeLatencyP99: Duration = Field(default="20ms", description="Write latency p99 objective.")
    maxReplicationLag: Duration = Field(
        default="5s", description="A replica lagging more than this leaves the read pool at once."
    )

    @property
    def read_latency_s(self) -> float:
        return parse_duration(self.readLatencyP99)

    @property
    def write_latency_s(self) -> float:
        return parse_duration(self.writeLatencyP99)

    @property
    def max_lag_s(self) -> float:
        return parse_duration(self.maxReplicationLag)


class PgBouncerSpec(_Model):
    deployment: Name = Field(description="The PgBouncer Deployment; its pods are reloaded after a change.")
    configMap: Name = Field(description="ConfigMap holding the [databases] section rwscaler renders.")
    configKey: Name = Field(default="databases.ini", description="Key of that ConfigMap that rwscaler owns.")
    database: Name = Field(description="Database name on the PostgreSQL servers.")
    writeDatabase: Name | None = Field(
        default=None, description="PgBouncer database routed to the primary (default: the database name)."
    )
    readDatabase: Name | None = Field(
        default=None, description="PgBouncer database routed to the read pool (default: <database>_ro)."
    )
    port: int = Field(default=6432, ge=1, le=65535, description="PgBouncer's listen port (admin console).")
    serverPort: int = Field(default=5432, ge=1, le=65535, description="PostgreSQL port on the servers.")
    adminSecret: SecretKeyRef = Field(
        description="Secret key holding 'user:password' for PgBouncer's admin console."
    )


class PoolerSpec(_Model):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "self.kind != 'EndpointSlice' || has(self.readService)",
                    "pooler kind EndpointSlice needs readService",
                ),
                _cel(
                    "self.kind != 'PgBouncer' || has(self.pgbouncer)", "pooler kind PgBouncer needs pgbouncer"
                ),
            ]
        }
    )
    kind: PoolerKind = Field(
        default=PoolerKind.NONE,
        description="How reads are routed: EndpointSlice (a selector-less read Service), PgBouncer, or None.",
    )
    readService: Name | None = Field(
        default=None, description="With kind EndpointSlice: the read Service whose endpoints rwscaler owns."
    )
    pgbouncer: PgBouncerSpec | None = Field(default=None, description="With kind PgBouncer: where it runs.")
    serverCores: int = Field(
        default=4, ge=1, le=1024, description="CPU cores of one database server, for pool sizing (cores x 2)."
    )
    drainTimeoutSeconds: int = Field(
        default=60,
        ge=0,
        le=3600,
        description="Longest wait for connections to a leaving replica to close before it is removed.",
    )

    @model_validator(mode="after")
    def _kind_fields(self) -> PoolerSpec:
        if self.kind is PoolerKind.ENDPOINT_SLICE and self.readService is None:
            raise ValueError("pooler kind EndpointSlice needs readService")
        if self.kind is PoolerKind.PGBOUNCER and self.pgbouncer is None:
            raise ValueError("pooler kind PgBouncer needs pgbouncer")
        return self


class ScalingRules(_Model):
    stabilizationWindowSeconds: int = Field(
        ge=0,
        le=86400,
        description="Recommendations of this direction are smoothed over this window (HPA semantics).",
    )
    maxStep: int = Field(ge=1, le=100, description="Most replicas added or removed in one step.")


class ReadPoolBehavior(_Model):
    reentryLagRatio: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="A replica (re-)enters the read pool only when its lag is under maxReplicationLag x this.",
    )
    reentrySeconds: int = Field(
        default=30,
        ge=0,
        le=3600,
        description="...and has stayed there this long (a new replica joins once caught up, without this wait).",
    )


WEEK_S = 7 * 86400
# History is averaged over 5 minutes before the forecast takes its peak (forecast.py): the peak
# of raw 15 s samples over an hour is their noise (about +2 standard deviations), not the load.
SEASON_SMOOTHING_S = 300


class TrendBehavior(_Model):
    windowSeconds: int = Field(
        default=12 * WEEK_S,
        ge=180,
        le=26 * WEEK_S,
        description=(
            "The trend window: the read:write ratio is judged from one point per periodSeconds over "
            "this span, read from Prometheus's history (default: 12 weekly points)."
        ),
    )
    periodSeconds: int = Field(
        default=WEEK_S,
        ge=60,
        le=4 * WEEK_S,
        description="One point of the trend: the read:write ratio over this period (default a week).",
    )
    shiftSeconds: int = Field(
        default=3 * 86400,
        ge=60,
        le=4 * WEEK_S,
        description=(
            "A shift of the ratio over this last span, against the same span one period earlier, "
            "also counts as a trend (default 3 days)."
        ),
    )
    forecastSeconds: int = Field(
        default=120,
        ge=0,
        le=86400,
        description="How far ahead read QPS is forecast to provision replicas before the objective is breached.",
    )
    seasonsSeconds: list[Annotated[int, Field(ge=60, le=4 * WEEK_S)]] = Field(
        default=[86400, WEEK_S],  # pydantic copies a mutable default per instance
        max_length=4,
        description=(
            "Seasons the forecast looks back on, read from Prometheus's history: the read load at "
            "the same time one season ago and what followed it (default: a day and a week). "
            "Empty: the forecast uses the recent slope only."
        ),
    )
    scaleDownLookaheadSeconds: int = Field(
        default=3600,
        ge=0,
        le=86400,
        description=(
            "A scale-down keeps the replicas that the seasonal forecast says this next span needs "
            "(do not drop a replica the next hour needs again)."
        ),
    )

    @model_validator(mode="after")
    def _spans(self) -> TrendBehavior:
        if self.windowSeconds < 3 * self.periodSeconds:
            raise ValueError(
                f"windowSeconds ({self.windowSeconds}) must hold at least 3 periods of periodSeconds "
                f"({self.periodSeconds}): a trend needs three points"
            )
        if self.shiftSeconds > self.periodSeconds:
            raise ValueError(
                f"shiftSeconds ({self.shiftSeconds}) must not exceed periodSeconds ({self.periodSeconds}): "
                "the shift is compared with the same span one period earlier"
            )
        for season in self.seasonsSeconds:
            if season <= self.scaleDownLookaheadSeconds + SEASON_SMOOTHING_S:
                raise ValueError(
                    f"seasonsSeconds {season} must be longer than scaleDownLookaheadSeconds + "
                    f"{SEASON_SMOOTHING_S} ({self.scaleDownLookaheadSeconds + SEASON_SMOOTHING_S}): what "
                    "followed one season ago must be history"
                )
        return self


class BehaviorSpec(_Model):
    intervalSeconds: int = Field(default=15, ge=1, le=3600, description="Seconds between two decisions.")
    tolerance: float = Field(
        default=0.1, ge=0, lt=1, description="No action while the load is within this fraction of the target."
    )
    scaleUp: ScalingRules = Field(
        default=ScalingRules(stabilizationWindowSeconds=0, maxStep=2), description="Scale-up behavior."
    )
    scaleDown: ScalingRules = Field(
        default=ScalingRules(stabilizationWindowSeconds=300, maxStep=1), description="Scale-down behavior."
    )
    readPool: ReadPoolBehavior = Field(default=ReadPoolBehavior(), description="Read pool hysteresis.")
    trend: TrendBehavior = Field(default=TrendBehavior(), description="Trend detection and forecasting.")

    @model_validator(mode="after")
    def _seasons_past_the_horizon(self) -> BehaviorSpec:
        horizon = self.trend.forecastSeconds + self.intervalSeconds + SEASON_SMOOTHING_S
        for season in self.trend.seasonsSeconds:
            if season <= horizon:
                raise ValueError(
                    f"trend.seasonsSeconds {season} must be longer than trend.forecastSeconds + "
                    f"intervalSeconds + {SEASON_SMOOTHING_S} ({horizon}): what followed one season ago "
                    "must be history"
                )
        return self


class ReadWriteWorkloadSpec(_Model):
    primary: PrimarySpec = Field(description="The write side.")
    replicas: ReplicasSpec = Field(description="The read side and its bounds.")
    prometheus: PrometheusSpec | None = Field(
        default=None,
        description=(
            "Where the signals come from. When omitted, the operator's default "
            "(`rwscaler run --prometheus-url`, the chart's prometheus.url)."
        ),
    )
    metrics: MetricsSpec = Field(default=MetricsSpec(), description="Which PromQL gives each signal.")
    objectives: ObjectivesSpec = Field(default=ObjectivesSpec(), description="Service level objectives.")
    consistency: Consistency = Field(
        default=Consistency.EVENTUAL,
        description=(
            "eventual: replicas under the lag objective serve reads. bounded: the same, and no scale-up "
            "while lag is the bottleneck. strong: only the primary and synchronous replicas serve reads."
        ),
    )
    pooler: PoolerSpec = Field(default=PoolerSpec(), description="How reads are routed to the read pool.")
    behavior: BehaviorSpec = Field(default=BehaviorSpec(), description="How fast and how far to act.")
    mode: Mode = Field(
        default=Mode.ENFORCE, description="Enforce acts; Recommend decides and reports but changes nothing."
    )


class ObjectMeta(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str = "workload"
    namespace: str = "default"


class ReadWriteWorkload(BaseModel):
    """A whole manifest, as read from YAML by the simulator, the CLI and the tests."""

    model_config = ConfigDict(extra="forbid")
    apiVersion: Literal["rwscaler.io/v1alpha1"] = "rwscaler.io/v1alpha1"
    kind: Literal["ReadWriteWorkload"] = "ReadWriteWorkload"
    metadata: ObjectMeta = ObjectMeta()
    spec: ReadWriteWorkloadSpec
    status: dict[str, Any] | None = None
