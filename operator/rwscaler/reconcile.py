"""One reconcile tick of one ReadWriteWorkload: observe -> decide -> act -> report.

Called by the per-resource loops (`rwscaler.loops`, started from `rwscaler.handlers`) every
`spec.behavior.intervalSeconds`, and (`check` only) by the create/update handlers. It knows no
kopf and no Kubernetes client: it talks to the cluster through the small `Cluster` protocol and
routes reads through `ReadRouter`s (both in `rwscaler.boundary`, implemented by `rwscaler.kube`),
and reads signals through `rwscaler.metrics.source.MetricsSource`. The unit
tests drive it with in-memory fakes of those protocols.

Level-based: every tick starts from what the cluster says now (the resource is read afresh, the
replica count comes from the StatefulSet) and from the decision memory in `status.memory`, so a
restarted operator continues where it stopped and a step is never applied twice.
A spec that passes the schema but cannot be used becomes `Ready=False` with a specific reason
(`ReadyReason`), never an exception.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import ValidationError

from rwscaler import report
from rwscaler.boundary import (
    Cluster,
    ClusterProblem,
    ConnectionCounter,
    ConnectionsRequest,
    Endpoint,
    OwnerRef,
    PodInfo,
    ReadRouter,
    RouteRequest,
    StatefulSetInfo,
)
from rwscaler.core.decide import decide
from rwscaler.core.memory import Drain, Memory
from rwscaler.core.observation import Observation, ReplicaObservation, Signal, UnknownReason
from rwscaler.core.plan import Plan
from rwscaler.core.spec import (
    PAUSED_ANNOTATION,
    Mode,
    PoolerKind,
    PrometheusSpec,
    ReadWriteWorkloadSpec,
    is_paused,
)
from rwscaler.core.vocabulary import ConditionType, EffectiveMode, Event, ReadyReason, Status
from rwscaler.metrics.source import MetricsReading, MetricsSource, WorkloadQuery
from rwscaler.report import ReadyOverride, ScaleOutcome

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS = 15.0


@dataclass(frozen=True)
class OperatorDefaults:
    """What the operator's command line supplies for workloads whose spec leaves it out."""

    prometheus_url: str | None = None  # `--prometheus-url`: spec.prometheus when it is omitted


@dataclass
class Deps:
    cluster: Cluster
    metrics: MetricsSource
    routers: Mapping[PoolerKind, ReadRouter] = field(default_factory=dict)
    clock: Callable[[], float] = time.time
    defaults: OperatorDefaults = OperatorDefaults()


# ---- results ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TickResult:
    interval: float  # seconds until the next tick
    gone: bool = False
    problem: ReadyReason | None = None
    plan: Plan | None = None
    patched: bool = False
    events: tuple[Event, ...] = ()
    scale: ScaleOutcome | None = None


@dataclass(frozen=True, slots=True)
class _Usable:
    spec: ReadWriteWorkloadSpec
    primary: StatefulSetInfo
    replicas: StatefulSetInfo
    bearer_token: str | None
    ca_pem: str | None


def _interval(raw_spec: object) -> float:
    """The tick interval, read leniently so that even an unusable spec is retried on its own pace."""
    try:
        value = raw_spec["behavior"]["intervalSeconds"]  # type: ignore[index]
    except (KeyError, TypeError):
        return DEFAULT_INTERVAL_SECONDS
    return float(value) if isinstance(value, int | float) and value >= 1 else DEFAULT_INTERVAL_SECONDS


def prometheus_url_problem(url: str) -> str | None:
    """Why a Prometheus URL cannot be used (the CRD only checks its scheme), or None."""
    if any(ch.isspace() for ch in url):
        return f"prometheus.url {url!r} contains whitespace"
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as err:
        return f"prometheus.url {url!r} cannot be parsed: {err}"
    if parts.scheme not in ("http", "https"):
        return f"prometheus.url {url!r} must start with http:// or https://"
    if not parts.hostname:
        return f"prometheus.url {url!r} has no host"
    if port == 0:
        return f"prometheus.url {url!r} has port 0"
    return None


def _spec_problem(err: ValidationError) -> str:
    parts = []
    for e in err.errors()[:5]:
        where = ".".join(str(p) for p in e["loc"]) or "spec"
        parts.append(f"{where}: {e['msg']}")
    return "; ".join(parts)


def _with_defaults(spec: ReadWriteWorkloadSpec, defaults: OperatorDefaults) -> ReadWriteWorkloadSpec:
    """The spec with the operator's defaults filled in where the user left them out."""
    if spec.prometheus is not None:
        return spec
    if defaults.prometheus_url is None:
        raise ClusterProblem(
            ReadyReason.PROMETHEUS_NOT_CONFIGURED,
            "spec.prometheus is not set and the operator has no default (rwscaler run --prometheus-url, "
            "the chart's prometheus.url)",
        )
    return spec.model_copy(update={"prometheus": PrometheusSpec(url=defaults.prometheus_url)})


async def _load(
    cluster: Cluster, namespace: str, body: Mapping[str, Any], defaults: OperatorDefaults
) -> _Usable:
    """Parse the spec and resolve what it names; ClusterProblem says what is unusable."""
    try:
        parsed = ReadWriteWorkloadSpec.model_validate(body.get("spec") or {})
        spec = _with_defaults(parsed, defaults)
    except ValidationError as err:
        raise ClusterProblem(ReadyReason.SPEC_INVALID, f"the spec is invalid: {_spec_problem(err)}") from None
    assert spec.prometheus is not None  # _with_defaults filled it
    if spec.primary.statefulSet == spec.replicas.statefulSet:
        raise ClusterProblem(
            ReadyReason.SPEC_INVALID,
            f"replicas.statefulSet {spec.replicas.statefulSet!r} is the primary's StatefulSet; "
            "rwscaler never scales the primary",
        )
    url_problem = prometheus_url_problem(spec.prometheus.url)
    if url_problem:
        raise ClusterProblem(ReadyReason.PROMETHEUS_URL_INVALID, url_problem)
    primary = await cluster.get_statefulset(namespace, spec.primary.statefulSet)
    if primary is None:
        raise ClusterProblem(
            ReadyReason.PRIMARY_NOT_FOUND,
            f"the primary StatefulSet {namespace}/{spec.primary.statefulSet} does not exist",
        )
    replicas = await cluster.get_statefulset(namespace, spec.replicas.statefulSet)
    if replicas is None:
        raise ClusterProblem(
            ReadyReason.REPLICAS_NOT_FOUND,
            f"the replica StatefulSet {namespace}/{spec.replicas.statefulSet} does not exist",
        )
    token = ca = None
    if spec.prometheus.bearerTokenSecret is not None:
        ref = spec.prometheus.bearerTokenSecret
        token = (await cluster.read_secret(namespace, ref.name, ref.key)).strip()
    if spec.prometheus.caSecret is not None:
        ref = spec.prometheus.caSecret
        ca = await cluster.read_secret(namespace, ref.name, ref.key)
    return _Usable(spec, primary, replicas, token, ca)


def _owner(body: Mapping[str, Any]) -> OwnerRef:
    meta = body.get("metadata") or {}
    return OwnerRef(namespace=meta.get("namespace", ""), name=meta.get("name", ""), uid=meta.get("uid", ""))


def _generation(body: Mapping[str, Any]) -> int | None:
    gen = (body.get("metadata") or {}).get("generation")
    return gen if isinstance(gen, int) else None


def _status(body: Mapping[str, Any]) -> dict[str, Any]:
    status = body.get("status")
    return dict(status) if isinstance(status, Mapping) else {}


async def _write(
    deps: Deps,
    body: Mapping[str, Any],
    previous: Mapping[str, Any],
    status: Mapping[str, Any],
    events: Sequence[Event],
) -> bool:
    """Patch the status if anything changed, then post the events that status change implies.

    When the workload changed since this tick read it, nothing is written and no event is
    posted: the next tick decides again from the fresh object (and posts those events then)."""
    owner = _owner(body)
    if report.needs_patch(previous, status):
        rv = (body.get("metadata") or {}).get("resourceVersion")
        written = await deps.cluster.patch_status(owner.namespace, owner.name, previous, status, rv)
        if not written:
            return False
    if events:
        await deps.cluster.post_events(owner, events)
    return report.needs_patch(previous, status)


async def _report_problem(
    deps: Deps, body: Mapping[str, Any], problem: ClusterProblem, now: float
) -> tuple[bool, tuple[Event, ...]]:
    previous = _status(body)
    status = report.problem_status(
        previous, generation=_generation(body), now=now, reason=problem.reason, message=problem.message
    )
    events = tuple(report.events(previous, status))
    patched = await _write(deps, body, previous, status, events)
    return patched, events


async def check(deps: Deps, namespace: str, name: str) -> ReadyReason | None:
    """Validate a workload (spec and what it names) and report Ready=False at once if unusable.

    What the create/update handlers run: a usable spec is left to the next tick."""
    body = await deps.cluster.get_workload(namespace, name)
    if body is None:
        return None
    try:
        await _load(deps.cluster, namespace, body, deps.defaults)
    except ClusterProblem as problem:
        await _report_problem(deps, body, problem, deps.clock())
        return problem.reason
    return None


# ---- observe ---------------------------------------------------------------------------------


def primary_pod_name(spec: ReadWriteWorkloadSpec) -> str:
    """The primary is the primary StatefulSet's ordinal-0 pod: the read pool's fallback."""
    return f"{spec.primary.statefulSet}-0"


async def _read_metrics(deps: Deps, query: WorkloadQuery, now: float) -> MetricsReading:
    try:
        readings = await deps.metrics.read([query], now)
    except Exception as err:  # the contract says a source never raises; hold if one does anyway
        log.exception("metrics source failed for %s", query.key)
        return MetricsReading.all_unknown(
            Signal.unknown(UnknownReason.UNREACHABLE, f"metrics source failed: {err}"), query.replica_pods
        )
    reading = readings.get(query.key)
    if reading is None:
        return MetricsReading.all_unknown(
            Signal.unknown(UnknownReason.NOT_OBSERVED, "the metrics source returned no reading"),
            query.replica_pods,
        )
    return reading


async def _connections(
    deps: Deps, owner: OwnerRef, spec: ReadWriteWorkloadSpec, replica_pods: Sequence[PodInfo]
) -> Mapping[str, int | None]:
    """Server connections per replica from a router that can count them; unknown otherwise."""
    router = deps.routers.get(spec.pooler.kind)
    if not isinstance(router, ConnectionCounter):
        return {}
    request = ConnectionsRequest(
        owner, spec, tuple(Endpoint(p.name, p.uid, p.ip) for p in replica_pods if p.ip is not None)
    )
    try:
        return await router.connections(request)
    except ClusterProblem as err:
        log.warning("%s/%s: connection counts unknown: %s", owner.namespace, owner.name, err.message)
        return {}


async def _observe(
    deps: Deps, owner: OwnerRef, usable: _Usable, now: float
) -> tuple[Observation, list[PodInfo], list[PodInfo]]:
    cluster = deps.cluster
    primary_pods = await cluster.list_pods(owner.namespace, usable.primary)
    replica_pods = await cluster.list_pods(owner.namespace, usable.replicas)
    query = WorkloadQuery(
        key=f"{owner.namespace}/{owner.name}",
        namespace=owner.namespace,
        name=owner.name,
        spec=usable.spec,
        primary_pods=tuple(p.name for p in primary_pods),
        replica_pods=tuple(p.name for p in replica_pods),
        bearer_token=usable.bearer_token,
        ca_pem=usable.ca_pem,
    )
    reading = await _read_metrics(deps, query, now)
    connections = await _connections(deps, owner, usable.spec, replica_pods)
    missing = Signal.unknown(UnknownReason.NOT_OBSERVED, "no lag series for this pod")
    obs = Observation(
        read_qps=reading.read_qps,
        write_qps=reading.write_qps,
        read_p99=reading.read_p99,
        write_p99=reading.write_p99,
        current_replicas=usable.replicas.replicas,
        primary=primary_pod_name(usable.spec),
        replicas=tuple(
            ReplicaObservation(
                name=p.name,
                ordinal=p.ordinal,
                ready=p.ready,
                lag=reading.replica_lag.get(p.name, missing),
                connections=connections.get(p.name),
            )
            for p in replica_pods
        ),
        history=reading.history,
    )
    return obs, primary_pods, replica_pods


# ---- act -------------------------------------------------------------------------------------


async def _scale(deps: Deps, owner: OwnerRef, spec: ReadWriteWorkloadSpec, plan: Plan) -> ScaleOutcome | None:
    if not plan.enforce or plan.scale_to is None:
        return None
    # decide keeps to the bounds; clamp again here because this is the line that touches the cluster.
    target = min(max(plan.scale_to, spec.replicas.minReplicas), spec.replicas.maxReplicas)
    if target == plan.current_replicas:
        return None
    try:
        await deps.cluster.scale(owner.namespace, spec.replicas.statefulSet, target)
    except ClusterProblem as err:
        return ScaleOutcome(plan.current_replicas, target, err.message)
    return ScaleOutcome(plan.current_replicas, target)


def _endpoints(plan: Plan, pods: Mapping[str, PodInfo], primary: str) -> tuple[Endpoint, ...]:
    chosen = [pods[name] for name in plan.read_pool if name in pods and pods[name].ip]
    if not chosen and primary in pods and pods[primary].ip:
        chosen = [pods[primary]]  # the pool is never empty: the primary serves when nothing else can
    return tuple(Endpoint(p.name, p.uid, p.ip) for p in chosen if p.ip)


async def _route(
    deps: Deps,
    owner: OwnerRef,
    usable: _Usable,
    plan: Plan,
    pods: Mapping[str, PodInfo],
) -> ReadyOverride | None:
    kind = usable.spec.pooler.kind
    if kind is PoolerKind.NONE:
        return None
    router = deps.routers.get(kind)
    if router is None:
        return ReadyOverride(
            Status.FALSE, ReadyReason.POOLER_UNAVAILABLE, f"pooler kind {kind.value} is not available here"
        )
    primary = primary_pod_name(usable.spec)
    p = pods.get(primary)
    endpoints = _endpoints(plan, pods, primary)
    if not endpoints:
        # Never route reads nowhere: keep what the pooler has until a pod of the pool has an IP.
        return ReadyOverride(
            Status.FALSE,
            ReadyReason.NO_ROUTABLE_ENDPOINT,
            f"no pod of the read pool ({', '.join(plan.read_pool)}) nor the primary has an IP yet; "
            "the pooler keeps its last routing",
        )
    request = RouteRequest(
        owner=owner,
        spec=usable.spec,
        plan=plan,
        endpoints=endpoints,
        primary=Endpoint(p.name, p.uid, p.ip) if p is not None and p.ip else None,
        ports=usable.replicas.ports or usable.primary.ports,
    )
    try:
        await router.apply(request)
    except ClusterProblem as err:
        return ReadyOverride(Status.FALSE, err.reason, err.message)
    return None


def _hold_scale_in(plan: Plan, obs: Observation, now: float) -> Plan:
    """The pool change may not have reached the pooler: no scale-in this tick, and the drain's
    clock restarts, so its timeout only ever counts time the leaving replicas were routed away."""
    scaling_in = plan.scale_to is not None and plan.scale_to < plan.current_replicas
    drain = plan.memory.drain
    target = plan.scale_to if scaling_in else drain.target_replicas if drain is not None else None
    if target is None:
        return plan
    leaving = tuple(r.name for r in obs.replicas if r.ordinal >= target)
    return replace(
        plan,
        scale_to=None if scaling_in else plan.scale_to,
        memory=replace(plan.memory, drain=Drain(target_replicas=target, started=now, replicas=leaving)),
    )


# ---- the tick --------------------------------------------------------------------------------


async def reconcile(deps: Deps, namespace: str, name: str) -> TickResult:
    """One tick for one workload. Raises only for unexpected errors (the loop logs and retries)."""
    now = deps.clock()
    body = await deps.cluster.get_workload(namespace, name)
    if body is None:
        return TickResult(interval=DEFAULT_INTERVAL_SECONDS, gone=True)
    interval = _interval(body.get("spec"))
    owner = _owner(body)
    previous = _status(body)
    generation = _generation(body)
    try:
        usable = await _load(deps.cluster, namespace, body, deps.defaults)
        obs, primary_pods, replica_pods = await _observe(deps, owner, usable, now)
    except ClusterProblem as problem:
        patched, events = await _report_problem(deps, body, problem, now)
        return TickResult(interval, problem=problem.reason, patched=patched, events=events)

    paused = is_paused(body)
    acting = usable.spec.mode is Mode.ENFORCE and not paused
    spec = usable.spec if not paused else usable.spec.model_copy(update={"mode": Mode.RECOMMEND})
    memory = Memory.from_status(previous.get("memory"))
    plan = decide(spec, obs, memory, now)

    # Route first, then scale: a replica leaves the pool before its pod can go.
    routing_problem: ReadyOverride | None = None
    if acting:
        pods = {p.name: p for p in (*primary_pods, *replica_pods)}
        routing_problem = await _route(deps, owner, usable, plan, pods)
        if routing_problem is not None:
            plan = _hold_scale_in(plan, obs, now)
    outcome = await _scale(deps, owner, spec, plan)
    scale_events = tuple(report.scale_events(outcome, plan))
    if scale_events:
        # Said at once: the scale happened (or failed) whatever becomes of the rest of the tick.
        await deps.cluster.post_events(owner, scale_events)
    override: ReadyOverride | None = routing_problem
    if outcome is not None and outcome.error is not None:
        # Nothing changed in the cluster: keep the memory of the last scale that did happen.
        plan = replace(
            plan,
            memory=replace(
                plan.memory,
                last_scale_time=memory.last_scale_time,
                last_scale_direction=memory.last_scale_direction,
            ),
        )
        override = override or ReadyOverride(Status.FALSE, ReadyReason.SCALE_FAILED, outcome.error)
    if paused and override is None:
        ready = plan.condition(ConditionType.READY)
        override = ReadyOverride(
            ready.status,
            ReadyReason.PAUSED,
            f"annotation {PAUSED_ANNOTATION}=true: deciding and reporting, changing nothing"
            + (f" ({ready.message})" if ready.status is not Status.TRUE else ""),
        )

    mode = EffectiveMode.PAUSED if paused else EffectiveMode(usable.spec.mode.value)
    status = report.render_status(
        plan, obs, previous=previous, generation=generation, now=now, mode=mode, ready_override=override
    )
    events = tuple(report.events(previous, status, plan, pool_applied=acting and routing_problem is None))
    patched = await _write(deps, body, previous, status, events)
    return TickResult(interval, plan=plan, patched=patched, events=scale_events + events, scale=outcome)
