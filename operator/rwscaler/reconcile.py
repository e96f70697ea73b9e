"""One reconcile tick of one ReadWriteWorkload: observe -> decide -> act -> report.

Called by the per-resource loops (`rwscaler.loops`, started from `rwscaler.handlers`) every
`spec.behavior.intervalSeconds`, and (`check` only) by the create/update handlers. It knows no
kopf and no Kubernetes client: it talks to the cluster through the small `Cluster` protocol and
routes reads through `ReadRouter`s (both in `rwscaler.boundary`, implemented by `rwscaler.kube`),
and reads signals through `rwscaler.metrics.source.MetricsSource`. The unit
tests drive it with in-memory fakes of those protocols.

Level-based: every tick starts from what the cluster says now (the resource is read afresh, the
replica count comes from the scale target) and from the decision memory. Status is written when
something a reader or a restarted operator needs changed (`report.significant_change`), and
otherwise only to refresh the measured values every `report.STATUS_REFRESH_S`; between writes
the tick continues from the status it decided last (`Deps.kept`), so the moving averages keep
moving. A restarted operator continues from `status.memory` (`Memory.resumed`): what it must
not lose was written the tick it changed, so a step is never applied twice.
A spec that passes the schema but cannot be used becomes `Ready=False` with a specific reason
(`ReadyReason`), never an exception.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
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
    Port,
    ReadRouter,
    RouteRequest,
    ScaleTarget,
    TargetState,
)
from rwscaler.core.act_rules import effective_spec, forget_failed_scale, hold_scale_in, scale_count
from rwscaler.core.assemble import PodSeen, assemble, roles_of
from rwscaler.core.decide import decide
from rwscaler.core.memory import Memory
from rwscaler.core.observation import Observation, Signal, UnknownReason
from rwscaler.core.plan import Plan
from rwscaler.core.roles import RoleVerdict
from rwscaler.core.spec import (
    PAUSED_ANNOTATION,
    STATEFULSET_API_VERSION,
    STATEFULSET_KIND,
    PoolerKind,
    PrometheusSpec,
    ReadWriteWorkloadSpec,
    ScaleTargetRef,
    is_paused,
)
from rwscaler.core.status import StatusPrimary, StatusScaleTarget, parse_status
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
class Kept:
    """What this operator last decided for one workload, and what of it is in the API."""

    uid: str
    rendered: dict[str, Any]  # the last status it decided, written or not
    written: tuple[dict[str, Any], ...]  # the last two it wrote (comparable form), newest last
    written_at: float


@dataclass
class Deps:
    cluster: Cluster
    metrics: MetricsSource
    routers: Mapping[PoolerKind, ReadRouter] = field(default_factory=dict)
    clock: Callable[[], float] = time.time
    defaults: OperatorDefaults = OperatorDefaults()
    kept: dict[tuple[str, str], Kept] = field(default_factory=dict)


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
    # What the decision was made from (the operator's own metrics export them: exposition.py).
    observation: Observation | None = None
    spec: ReadWriteWorkloadSpec | None = None


@dataclass(frozen=True, slots=True)
class _Side:
    """A scale target as this tick found it: the port of its kind and its state."""

    port: ScaleTarget
    state: TargetState


@dataclass(frozen=True, slots=True)
class _Usable:
    spec: ReadWriteWorkloadSpec
    target: _Side  # what rwscaler scales
    primary_apart: _Side | None  # the StatefulSet of the primary, in the pair layout
    bearer_token: str | None
    ca_pem: str | None
    # The scale target does not exist (deleted): it counts 0 and has no pods, so its replicas
    # leave the read pool and reads fall back to the primary; nothing is scaled.
    missing: ClusterProblem | None = None


class _MissingTarget:
    """The port of a scale target that does not exist: no pods, nothing to scale."""

    removal_order_known = True

    async def read(self, namespace: str, ref: ScaleTargetRef) -> TargetState | None:
        return None

    async def pods(self, namespace: str, target: TargetState, counts_primary: bool) -> list[PodInfo]:
        return []

    async def scale(self, namespace: str, target: TargetState, count: int) -> None:
        raise ClusterProblem(ReadyReason.SCALE_TARGET_NOT_FOUND, f"{target.ref.describe()} does not exist")


def _interval(raw_spec: object) -> float:
    """The tick interval, read leniently so that even an unusable spec is retried on its own pace."""
    try:
        value = raw_spec["behavior"]["intervalSeconds"]  # type: ignore[index]
    except (KeyError, TypeError):
        return DEFAULT_INTERVAL_SECONDS
    return float(value) if isinstance(value, int | float) and value >= 1 else DEFAULT_INTERVAL_SECONDS


def prometheus_url_problem(url: str) -> str | None:
    """Why a Prometheus URL cannot be used (the same check as spec.prometheus.url at admission and
    in the model: core/field_types.py), or None. For the operator's own --prometheus-url."""
    try:
        PrometheusSpec(url=url)
    except ValidationError as err:
        return "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in err.errors())
    return None


def _spec_problem(err: ValidationError) -> str:
    parts = []
    for e in err.errors()[:5]:
        where = ".".join(str(p) for p in e["loc"]) or "spec"
        parts.append(f"{where}: {e['msg']}")
    return "; ".join(parts)


def spec_problem(spec: object) -> str | None:
    """Why the models refuse a spec (as SpecInvalid says it), or None; for the admission webhook."""
    try:
        ReadWriteWorkloadSpec.model_validate(spec or {})
    except ValidationError as err:
        return _spec_problem(err)
    return None


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
    assert spec.prometheus is not None  # _with_defaults filled it (a URL `rwscaler run` checked)
    apart: _Side | None = None
    if spec.primary_apart is not None:
        primary_ref = ScaleTargetRef(
            apiVersion=STATEFULSET_API_VERSION, kind=STATEFULSET_KIND, name=spec.primary_apart
        )
        primary_port = await cluster.target(primary_ref)
        primary_state = await primary_port.read(namespace, primary_ref)
        if primary_state is None:
            raise ClusterProblem(
                ReadyReason.PRIMARY_NOT_FOUND,
                f"the primary StatefulSet {namespace}/{spec.primary_apart} does not exist",
            )
        apart = _Side(primary_port, primary_state)
    ref = spec.replicas.target
    port = await cluster.target(ref)
    state = await port.read(namespace, ref)
    missing = None
    if state is None:
        missing = ClusterProblem(
            ReadyReason.SCALE_TARGET_NOT_FOUND,
            f"the scale target {ref.describe()} does not exist in {namespace}; reads go to the primary",
        )
        port, state = _MissingTarget(), TargetState(ref, "", 0, "")
    token = ca = None
    if spec.prometheus.bearerTokenSecret is not None:
        secret = spec.prometheus.bearerTokenSecret
        token = (await cluster.read_secret(namespace, secret.name, secret.key)).strip()
    if spec.prometheus.caSecret is not None:
        secret = spec.prometheus.caSecret
        ca = await cluster.read_secret(namespace, secret.name, secret.key)
    return _Usable(spec, _Side(port, state), apart, token, ca, missing)


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


def _previous(deps: Deps, owner: OwnerRef, in_api: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The status this tick continues from, and whether it was read back from the API (a restart,
    or someone else wrote status since): then the memory is `resumed`."""
    kept = deps.kept.get((owner.namespace, owner.name))
    if kept is not None and kept.uid == owner.uid and report.comparable(in_api) in kept.written:
        return kept.rendered, False
    return in_api, True


async def _checkpoint(
    deps: Deps,
    body: Mapping[str, Any],
    status: dict[str, Any],
    events: Sequence[Event],
    now: float,
) -> bool:
    """Write status when something significant changed or the refresh is due (else keep it in
    process only); post the events. True when status was written."""
    owner = _owner(body)
    in_api = _status(body)
    key = (owner.namespace, owner.name)
    kept = deps.kept.get(key)
    due = kept is None or kept.uid != owner.uid or now - kept.written_at >= report.STATUS_REFRESH_S
    if not (due or events or report.significant_change(in_api, status)):
        if kept is not None:
            kept.rendered = status
        return False
    rv = (body.get("metadata") or {}).get("resourceVersion")
    changed = report.needs_patch(in_api, status)
    # A 409 (the workload changed since it was read: a spec edit, another writer) writes nothing;
    # what this tick did (routed, decided) happened all the same: it is said now, kept in process
    # and written by the next tick, so a change that reverts before then is not lost.
    conflict = changed and not await deps.cluster.patch_status(
        owner.namespace, owner.name, in_api, status, rv
    )
    if events:
        await deps.cluster.post_events(owner, events)
    ours = kept is not None and kept.uid == owner.uid
    if conflict:
        # The status in the API (maybe none yet: kopf's own patch of a new workload races the
        # first write) is what this tick continued from: the next tick does too, from `status`.
        before = kept.written[-1:] if kept is not None and ours else ()
        deps.kept[key] = Kept(owner.uid, status, (*before, report.comparable(in_api)), 0.0)
        return False
    written = (*(kept.written[-1:] if kept is not None and ours else ()), report.comparable(status))
    deps.kept[key] = Kept(owner.uid, status, written, now)
    return changed


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
        usable = await _load(deps.cluster, namespace, body, deps.defaults)
        if usable.missing is not None:
            raise usable.missing
    except ClusterProblem as problem:
        await _report_problem(deps, body, problem, deps.clock())
        return problem.reason
    return None


# ---- observe ---------------------------------------------------------------------------------


async def _read_metrics(deps: Deps, query: WorkloadQuery, now: float) -> MetricsReading:
    try:
        readings = await deps.metrics.read([query], now)
    except Exception as err:  # the contract says a source never raises; hold if one does anyway
        log.exception("metrics source failed for %s", query.key)
        return MetricsReading.all_unknown(
            Signal.unknown(UnknownReason.UNREACHABLE, f"metrics source failed: {err}"), query.pods
        )
    reading = readings.get(query.key)
    if reading is None:
        return MetricsReading.all_unknown(
            Signal.unknown(UnknownReason.NOT_OBSERVED, "the metrics source returned no reading"),
            query.pods,
        )
    return reading


async def _connections(
    deps: Deps, owner: OwnerRef, spec: ReadWriteWorkloadSpec, pods: Sequence[PodInfo]
) -> Mapping[str, int | None]:
    """Server connections per pod from a router that can count them; unknown otherwise."""
    router = deps.routers.get(spec.pooler.kind)
    if not isinstance(router, ConnectionCounter):
        return {}
    request = ConnectionsRequest(
        owner, spec, tuple(Endpoint(p.name, p.uid, p.ip) for p in pods if p.ip is not None)
    )
    try:
        return await router.connections(request)
    except ClusterProblem as err:
        log.warning("%s/%s: connection counts unknown: %s", owner.namespace, owner.name, err.message)
        return {}


@dataclass(frozen=True, slots=True)
class _Seen:
    obs: Observation
    roles: RoleVerdict
    pods: Mapping[str, PodInfo]


def _seen(pod: PodInfo, apart: bool) -> PodSeen:
    return PodSeen(pod.name, pod.ready, None if apart else pod.rank, pod.labels, in_primary_set=apart)


async def _observe(
    deps: Deps, owner: OwnerRef, usable: _Usable, previous: Mapping[str, Any], now: float
) -> _Seen:
    spec = usable.spec
    target = usable.target
    pods = await target.port.pods(owner.namespace, target.state, spec.target_counts_primary)
    seen = [_seen(p, apart=False) for p in pods]
    if usable.primary_apart is not None:
        apart = await usable.primary_apart.port.pods(owner.namespace, usable.primary_apart.state, False)
        pods += apart
        seen += [_seen(p, apart=True) for p in apart]
    # Which pods to read the write side from, before this tick's role metric is in: what the
    # labels and the layout say, and the primary the last tick found (a promotion it saw).
    found = parse_status(previous).primary
    last = found.pod if found is not None else None
    hinted = [replace(p, is_replica=Signal.of(0.0)) if p.name == last else p for p in seen]
    planned = roles_of(spec, hinted)
    query = WorkloadQuery(
        key=f"{owner.namespace}/{owner.name}",
        namespace=owner.namespace,
        name=owner.name,
        spec=spec,
        primary_pods=planned.primaries,
        replica_pods=tuple(sorted(p.name for p in seen if p.name not in planned.primaries)),
        bearer_token=usable.bearer_token,
        ca_pem=usable.ca_pem,
    )
    reading = await _read_metrics(deps, query, now)
    connections = await _connections(deps, owner, spec, [p for p in pods if p.name in query.replica_pods])
    current = max(0, target.state.count - (1 if spec.target_counts_primary else 0))
    obs, roles = assemble(
        spec,
        reading.sides(planned.primaries),
        reading.onto(seen, connections),
        current,
        reading.history,
        target.port.removal_order_known,
    )
    return _Seen(obs, roles, {p.name: p for p in pods})


# ---- act -------------------------------------------------------------------------------------


async def _scale(usable: _Usable, namespace: str, plan: Plan) -> ScaleOutcome | None:
    counts = scale_count(usable.spec, plan)
    if counts is None:
        return None
    replicas, count = counts
    try:
        await usable.target.port.scale(namespace, usable.target.state, count)
    except ClusterProblem as err:
        return ScaleOutcome(plan.current_replicas, replicas, err.message)
    return ScaleOutcome(plan.current_replicas, replicas)


def _ports(pods: Iterable[PodInfo]) -> tuple[Port, ...]:
    """The database's ports, from the first pod that declares any (the slice's and Service's ports)."""
    return next((p.ports for p in pods if p.ports), ())


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
    primary: str,
) -> ReadyOverride | None:
    kind = usable.spec.pooler.kind
    if kind is PoolerKind.NONE:
        return None
    router = deps.routers.get(kind)
    if router is None:
        return ReadyOverride(
            Status.FALSE, ReadyReason.POOLER_UNAVAILABLE, f"pooler kind {kind.value} is not available here"
        )
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
        ports=_ports(pods.values()),
    )
    try:
        await router.apply(request)
    except ClusterProblem as err:
        return ReadyOverride(Status.FALSE, err.reason, err.message)
    return None


def _primary_status(roles: RoleVerdict) -> StatusPrimary | None:
    if roles.primary is None or roles.source is None:
        return None
    return StatusPrimary(pod=roles.primary, source=roles.source)


def _target_status(state: TargetState) -> StatusScaleTarget:
    ref = state.ref
    return StatusScaleTarget(apiVersion=ref.apiVersion, kind=ref.kind, name=ref.name, replicas=state.count)


# ---- the tick --------------------------------------------------------------------------------


async def reconcile(deps: Deps, namespace: str, name: str) -> TickResult:
    """One tick for one workload. Raises only for unexpected errors (the loop logs and retries)."""
    now = deps.clock()
    body = await deps.cluster.get_workload(namespace, name)
    if body is None:
        deps.kept.pop((namespace, name), None)  # nothing kept for a workload that is gone
        return TickResult(interval=DEFAULT_INTERVAL_SECONDS, gone=True)
    interval = _interval(body.get("spec"))
    owner = _owner(body)
    previous, resumed = _previous(deps, owner, _status(body))
    generation = _generation(body)
    try:
        usable = await _load(deps.cluster, namespace, body, deps.defaults)
        seen = await _observe(deps, owner, usable, previous, now)
    except ClusterProblem as problem:
        patched, events = await _report_problem(deps, body, problem, now)
        return TickResult(interval, problem=problem.reason, patched=patched, events=events)

    obs = seen.obs
    paused = is_paused(body)
    spec = effective_spec(usable.spec, paused)
    memory = Memory.from_status(previous.get("memory"))
    if resumed:
        memory = memory.resumed(now)
    plan = decide(spec, obs, memory, now)

    # Route first, then scale: a replica leaves the pool before its pod can go.
    routing_problem: ReadyOverride | None = None
    if plan.enforce:
        routing_problem = await _route(deps, owner, usable, plan, seen.pods, obs.primary)
        if routing_problem is not None:
            plan = hold_scale_in(plan, obs, now)
    outcome = await _scale(usable, namespace, plan) if usable.missing is None else None
    scale_events = tuple(report.scale_events(outcome, plan))
    if scale_events:
        # Said at once: the scale happened (or failed) whatever becomes of the rest of the tick.
        await deps.cluster.post_events(owner, scale_events)
    override: ReadyOverride | None = routing_problem
    if usable.missing is not None:
        override = ReadyOverride(Status.FALSE, usable.missing.reason, usable.missing.message)
    if outcome is not None and outcome.error is not None:
        plan = forget_failed_scale(plan, memory)
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
        plan,
        obs,
        previous=previous,
        generation=generation,
        now=now,
        mode=mode,
        ready_override=override,
        primary=_primary_status(seen.roles),
        scale_target=_target_status(usable.target.state),
    )
    events = tuple(
        report.events(previous, status, plan, pool_applied=plan.enforce and routing_problem is None)
    )
    patched = await _checkpoint(deps, body, status, events, now)
    missing = usable.missing.reason if usable.missing is not None else None
    return TickResult(
        interval,
        problem=missing,
        plan=plan,
        patched=patched,
        events=scale_events + events,
        scale=outcome,
        observation=obs,
        spec=usable.spec,
    )
