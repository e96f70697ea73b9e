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

from rwscaler.core.byte_sizes import parse_bytes
from rwscaler.core.durations import parse_duration
from rwscaler.core.field_types import (
    ByteQuantity,
    ConfigKey,
    Duration,
    HttpURL,
    ObjectName,
    PromQL,
    ServiceName,
    Staleness,
    cel,
    check_workload_name,
)

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


Name = Annotated[str, StringConstraints(min_length=1, max_length=253)]


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


class RoleLabels(StrEnum):
    """Which role labels name the primary among the pods (core/roles.py knows each scheme)."""

    AUTO = "Auto"  # every scheme below
    CLOUDNATIVEPG = "CloudNativePG"  # cnpg.io/instanceRole=primary|replica (and the legacy role label)
    PATRONI = "Patroni"  # spilo-role=master|replica (Zalando/Spilo), role=primary|master|replica (Patroni)
    CRUNCHY_PGO = "CrunchyPGO"  # postgres-operator.crunchydata.com/role=master|replica (PGO, Percona PG v2)
    PERCONA_MYSQL = "PerconaMySQL"  # mysql.percona.com/primary=true on the primary only
    NONE = "None"  # no labels: the role metric, else the layout (the pods of primary.statefulSet)


class SelectorOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


class SelectorRequirement(_Model):
    """One requirement on a pod's labels (as in a Kubernetes LabelSelector)."""

    key: Name = Field(description="The label key.")
    operator: SelectorOperator = Field(description="In, NotIn, Exists or DoesNotExist.")
    values: list[Annotated[str, StringConstraints(max_length=63)]] = Field(
        default=[],
        max_length=64,
        description="The values for In and NotIn; empty for Exists and DoesNotExist.",
    )

    @model_validator(mode="after")
    def _values(self) -> SelectorRequirement:
        wants = self.operator in (SelectorOperator.IN, SelectorOperator.NOT_IN)
        if wants != bool(self.values):
            raise ValueError(f"operator {self.operator} {'needs' if wants else 'takes no'} values")
        return self


class LabelSelector(_Model):
    """A Kubernetes LabelSelector: every matchLabels pair and every requirement must hold."""

    matchLabels: dict[str, Annotated[str, Field(max_length=63, description="The label's value.")]] = Field(
        default={}, description="Labels the pod must carry with exactly these values."
    )
    matchExpressions: list[SelectorRequirement] = Field(
        default=[], max_length=16, description="Further requirements on the pod's labels."
    )

    @model_validator(mode="after")
    def _not_empty(self) -> LabelSelector:
        if not self.matchLabels and not self.matchExpressions:
            raise ValueError(
                "a selector needs matchLabels or matchExpressions (an empty one matches every pod)"
            )
        return self


class PrimarySpec(_Model):
    statefulSet: ObjectName | None = Field(
        default=None,
        description=(
            "A StatefulSet apart from the scale target that runs the primary (the two-StatefulSet "
            "layout). Omit it when the primary is one of the scale target's pods (CloudNativePG, "
            "Patroni/Spilo): then the target's count includes the primary. rwscaler never scales it."
        ),
    )
    roleLabels: RoleLabels = Field(
        default=RoleLabels.AUTO,
        description=(
            "Which role labels name the primary: Auto tries CloudNativePG, Patroni/Spilo, Crunchy PGO "
            "(and Percona PG) and Percona MySQL; None reads no label. The preset's role metric confirms "
            "the label; when they disagree the role is unknown and rwscaler holds."
        ),
    )
    primarySelector: LabelSelector | None = Field(
        default=None,
        description="A pod matching this selector is the primary (for layouts whose labels rwscaler does not know).",
    )


class ScaleTargetRef(_Model):
    apiVersion: Annotated[str, StringConstraints(min_length=1, max_length=253)] = Field(
        description="API group/version of the target, e.g. apps/v1 or postgresql.cnpg.io/v1."
    )
    kind: Annotated[str, StringConstraints(min_length=1, max_length=63)] = Field(
        description="Kind of the target: StatefulSet, Cluster (CloudNativePG), or any kind serving the scale subresource."
    )
    name: ObjectName = Field(description="Name of the target in the workload's namespace.")

    @property
    def group(self) -> str:
        return self.apiVersion.rpartition("/")[0]

    def describe(self) -> str:
        return f"{self.kind} {self.name} ({self.apiVersion})"


STATEFULSET_API_VERSION = "apps/v1"
STATEFULSET_KIND = "StatefulSet"


class ReplicasSpec(_Model):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("self.minReplicas <= self.maxReplicas", "minReplicas must not exceed maxReplicas"),
                cel(
                    "has(self.statefulSet) != has(self.scaleTargetRef)",
                    "set exactly one of replicas.statefulSet and replicas.scaleTargetRef",
                ),
            ]
        }
    )
    scaleTargetRef: ScaleTargetRef | None = Field(
        default=None,
        description=(
            "What rwscaler scales, as HPA's scaleTargetRef: any resource serving the scale subresource "
            "(a StatefulSet, a CloudNativePG Cluster, ...); its pods come from the subresource's selector."
        ),
    )
    statefulSet: ObjectName | None = Field(
        default=None,
        description="Shorthand for scaleTargetRef {apiVersion: apps/v1, kind: StatefulSet, name}.",
    )
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
        if (self.statefulSet is None) == (self.scaleTargetRef is None):
            raise ValueError("set exactly one of replicas.statefulSet and replicas.scaleTargetRef")
        return self

    @property
    def target(self) -> ScaleTargetRef:
        """The scale target, with the statefulSet shorthand spelled out."""
        if self.scaleTargetRef is not None:
            return self.scaleTargetRef
        assert self.statefulSet is not None  # _bounds: exactly one is set
        return ScaleTargetRef(
            apiVersion=STATEFULSET_API_VERSION, kind=STATEFULSET_KIND, name=self.statefulSet
        )


class SecretKeyRef(_Model):
    name: ObjectName = Field(description="Name of a Secret in the workload's namespace.")
    key: ConfigKey = Field(description="Key inside the Secret.")


class PrometheusSpec(_Model):
    url: HttpURL = Field(
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


class SignalQueries(_Model):
    readQPS: PromQL | None = Field(default=None, description="PromQL for read queries per second.")
    writeQPS: PromQL | None = Field(default=None, description="PromQL for write queries per second.")
    readLatencyP99: PromQL | None = Field(
        default=None, description="PromQL for read latency p99, in seconds."
    )
    writeLatencyP99: PromQL | None = Field(
        default=None, description="PromQL for write latency p99, in seconds."
    )
    replicationLag: PromQL | None = Field(
        default=None, description="PromQL for replication lag in seconds, one series per replica pod."
    )
    replicationLagBytes: PromQL | None = Field(
        default=None,
        description=(
            "PromQL for replication lag in bytes (WAL not yet replayed), one series per replica pod. "
            "Read only when objectives.maxReplicationLagBytes is set."
        ),
    )
    isReplica: PromQL | None = Field(
        default=None,
        description=(
            "PromQL confirming each pod's role: 1 for a replica, 0 for the primary, one series per pod "
            "(label pod). Optional: without it the role labels (or the layout) alone name the primary."
        ),
    )


class MetricsSpec(_Model):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.preset != 'custom' || (has(self.queries) && has(self.queries.readQPS) && "
                    "has(self.queries.writeQPS) && has(self.queries.readLatencyP99) && "
                    "has(self.queries.writeLatencyP99) && has(self.queries.replicationLag))",
                    "preset custom needs every query: readQPS, writeQPS, readLatencyP99, "
                    "writeLatencyP99, replicationLag",
                ),
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
    staleness: Staleness = Field(
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
    readLatencyP99: Duration = Field(default="50ms", description="Read latency p99 objective.")
    writeLatencyP99: Duration = Field(default="20ms", description="Write latency p99 objective.")
    maxReplicationLag: Duration = Field(
        default="5s", description="A replica lagging more than this leaves the read pool at once."
    )
    maxReplicationLagBytes: ByteQuantity | None = Field(
        default=None,
        description=(
            "Optional: a replica whose unreplayed WAL exceeds this (e.g. 64Mi) leaves the read pool too, "
            "and one whose byte lag is unknown does not serve reads. Time lag alone misses a replica "
            "that fell behind during a write burst; bytes alone mislead on an idle primary."
        ),
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

    @property
    def max_lag_bytes(self) -> int | None:
        return None if self.maxReplicationLagBytes is None else parse_bytes(self.maxReplicationLagBytes)


class PgBouncerSpec(_Model):
    deployment: ObjectName = Field(
        description="The PgBouncer Deployment; its pods are reloaded after a change."
    )
    configMap: ObjectName = Field(description="ConfigMap holding the [databases] section rwscaler renders.")
    configKey: ConfigKey = Field(
        default="databases.ini", description="Key of that ConfigMap that rwscaler owns."
    )
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
                cel(
                    "self.kind != 'EndpointSlice' || has(self.readService)",
                    "pooler kind EndpointSlice needs readService",
                ),
                cel(
                    "self.kind != 'PgBouncer' || has(self.pgbouncer)", "pooler kind PgBouncer needs pgbouncer"
                ),
            ]
        }
    )
    kind: PoolerKind = Field(
        default=PoolerKind.NONE,
        description="How reads are routed: EndpointSlice (a selector-less read Service), PgBouncer, or None.",
    )
    readService: ServiceName | None = Field(
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
    """One direction's rules; each field has its own default, so a partial block keeps the rest."""

    stabilizationWindowSeconds: int
    maxStep: int


_WINDOW_WORDS = "Recommendations of this direction are smoothed over this window (HPA semantics)."
_STEP_WORDS = "Most replicas added or removed in one step."


class ScaleUpRules(ScalingRules):
    stabilizationWindowSeconds: int = Field(default=0, ge=0, le=86400, description=_WINDOW_WORDS)
    maxStep: int = Field(default=2, ge=1, le=100, description=_STEP_WORDS)


class ScaleDownRules(ScalingRules):
    stabilizationWindowSeconds: int = Field(default=300, ge=0, le=86400, description=_WINDOW_WORDS)
    maxStep: int = Field(default=1, ge=1, le=100, description=_STEP_WORDS)


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
    scaleUp: ScaleUpRules = Field(default=ScaleUpRules(), description="Scale-up behavior.")
    scaleDown: ScaleDownRules = Field(default=ScaleDownRules(), description="Scale-down behavior.")
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


_SAME_STATEFULSET = (
    "primary.statefulSet names the scale target itself: it is for a primary StatefulSet apart from "
    "the replicas; omit it when the primary is one of the target's pods"
)

# The presets that read replication lag in bytes (metrics/presets.py); the others need the query.
BYTE_LAG_PRESETS = ("postgres", "cnpg")


class ReadWriteWorkloadSpec(_Model):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.objectives) || !has(self.objectives.maxReplicationLagBytes) || "
                    "!has(self.metrics) || self.metrics.preset in ['postgres', 'cnpg'] || "
                    "(has(self.metrics.queries) && has(self.metrics.queries.replicationLagBytes))",
                    "objectives.maxReplicationLagBytes needs metrics.queries.replicationLagBytes: "
                    "only the postgres and cnpg presets read byte lag",
                ),
                cel(
                    "!has(self.primary) || !has(self.primary.statefulSet) || "
                    "(has(self.replicas.statefulSet) ? self.replicas.statefulSet != self.primary.statefulSet : "
                    "!(self.replicas.scaleTargetRef.apiVersion == 'apps/v1' && "
                    "self.replicas.scaleTargetRef.kind == 'StatefulSet' && "
                    "self.replicas.scaleTargetRef.name == self.primary.statefulSet))",
                    _SAME_STATEFULSET,
                ),
            ]
        }
    )
    primary: PrimarySpec = Field(
        default=PrimarySpec(), description="The write side: where the primary runs and how it is recognised."
    )
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

    @model_validator(mode="after")
    def _primary_apart_from_the_target(self) -> ReadWriteWorkloadSpec:
        target = self.replicas.target
        if (
            target.apiVersion == STATEFULSET_API_VERSION
            and target.kind == STATEFULSET_KIND
            and target.name == self.primary.statefulSet
        ):
            raise ValueError(_SAME_STATEFULSET)
        return self

    @model_validator(mode="after")
    def _byte_lag_readable(self) -> ReadWriteWorkloadSpec:
        queries = self.metrics.queries
        if (
            self.objectives.maxReplicationLagBytes is not None
            and self.metrics.preset.value not in BYTE_LAG_PRESETS
            and (queries is None or queries.replicationLagBytes is None)
        ):
            raise ValueError(
                "objectives.maxReplicationLagBytes needs metrics.queries.replicationLagBytes: "
                "only the postgres and cnpg presets read byte lag"
            )
        return self

    @property
    def primary_apart(self) -> str | None:
        """The StatefulSet that runs the primary apart from the scale target, or None when the
        primary is one of the target's pods (then the target's count includes it)."""
        return self.primary.statefulSet  # admission refuses one that names the target itself

    @property
    def target_counts_primary(self) -> bool:
        """The documented rule: the target's count includes the primary unless primary.statefulSet
        names a StatefulSet apart from it."""
        return self.primary_apart is None


class ObjectMeta(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: Annotated[str, AfterValidator(check_workload_name)] = "workload"
    namespace: str = "default"


class ReadWriteWorkload(BaseModel):
    """A whole manifest, as read from YAML by the simulator, the CLI and the tests."""

    model_config = ConfigDict(extra="forbid")
    apiVersion: Literal["rwscaler.io/v1alpha1"] = "rwscaler.io/v1alpha1"
    kind: Literal["ReadWriteWorkload"] = "ReadWriteWorkload"
    metadata: ObjectMeta = ObjectMeta()
    spec: ReadWriteWorkloadSpec
    status: dict[str, Any] | None = None
