"""reconcile.py: one tick, observe -> decide -> act -> report, against in-memory fakes.

`FakeCluster` keeps objects as dicts and applies status merge patches as the API server would.
What it does NOT check (the cluster tier in tests/integration/cluster does): admission and CEL,
RBAC, resourceVersions and conflicts, the status subresource's isolation from spec, owner
references and garbage collection, and any controller: scaling a StatefulSet changes its
`replicas` but no pod appears or goes until a test says so (`add_pods`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from tests.unit.builders import READ_OBJECTIVE, WRITE_OBJECTIVE, spec_dict

from rwscaler.boundary import (
    ClusterProblem,
    ConnectionsRequest,
    OwnerRef,
    PodInfo,
    RouteRequest,
    ScaleTarget,
    TargetState,
)
from rwscaler.core.observation import Signal, UnknownReason
from rwscaler.core.spec import PoolerKind, ScaleTargetRef
from rwscaler.core.vocabulary import Event, EventReason, ReadyReason
from rwscaler.kube.objects import merge_patch
from rwscaler.metrics.source import MetricsReading, WorkloadQuery
from rwscaler.reconcile import Deps, Kept, OperatorDefaults, check, prometheus_url_problem, reconcile
from rwscaler.report import OWNED_KEYS

NS = "shop"
NAME = "orders"
T0 = 1_700_000_000.0


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386, as the API server applies `application/merge-patch+json`."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = apply_merge_patch(out.get(key), value)
    return out


@dataclass
class FakeStatefulSet:
    count: int
    uid: str


class FakeStatefulSetTarget:
    """A StatefulSet as `kube/targets/statefulset.py` serves it: highest ordinals go first."""

    removal_order_known = True

    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster

    async def read(self, namespace: str, ref: ScaleTargetRef) -> TargetState | None:
        sts = self.cluster.statefulsets.get(ref.name)
        return None if sts is None else TargetState(ref, sts.uid, sts.count, f"app={ref.name}")

    async def pods(self, namespace: str, target: TargetState, counts_primary: bool) -> list[PodInfo]:
        offset = 1 if counts_primary else 0
        return [
            replace(p, rank=int(p.name.rpartition("-")[2]) - offset)
            for p in self.cluster.pods.get(target.ref.name, [])
        ]

    async def scale(self, namespace: str, target: TargetState, count: int) -> None:
        if self.cluster.scale_error:
            raise ClusterProblem(ReadyReason.SCALE_FAILED, self.cluster.scale_error)
        self.cluster.scaled.append((target.ref.name, count))
        self.cluster.statefulsets[target.ref.name].count = count


@dataclass
class FakeCluster:
    workloads: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    statefulsets: dict[str, FakeStatefulSet] = field(default_factory=dict)
    pods: dict[str, list[PodInfo]] = field(default_factory=dict)
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)
    scaled: list[tuple[str, int]] = field(default_factory=list)
    status_patches: int = 0
    posted: list[Event] = field(default_factory=list)
    scale_error: str | None = None
    conflict_once: bool = False  # the next status patch meets a changed resourceVersion

    async def get_workload(self, namespace: str, name: str) -> dict[str, Any] | None:
        body = self.workloads.get((namespace, name))
        return copy.deepcopy(body) if body is not None else None

    async def target(self, ref: ScaleTargetRef) -> ScaleTarget:
        if ref.kind != "StatefulSet":
            raise ClusterProblem(ReadyReason.SCALE_TARGET_NOT_SCALABLE, f"no kind {ref.kind}")
        return FakeStatefulSetTarget(self)

    async def read_secret(self, namespace: str, name: str, key: str) -> str:
        if name not in self.secrets:
            raise ClusterProblem(
                ReadyReason.SECRET_NOT_FOUND, f"the Secret {namespace}/{name} does not exist"
            )
        if key not in self.secrets[name]:
            raise ClusterProblem(ReadyReason.SECRET_KEY_NOT_FOUND, f"no key {key}")
        return self.secrets[name][key]

    async def patch_status(
        self,
        namespace: str,
        name: str,
        previous: Mapping[str, Any],
        status: Mapping[str, Any],
        resource_version: str | None,
    ) -> bool:
        if self.conflict_once:
            self.conflict_once = False
            return False
        owned = {k: previous[k] for k in OWNED_KEYS if k in previous}
        body = self.workloads[(namespace, name)]
        body["status"] = apply_merge_patch(body.get("status") or {}, merge_patch(owned, status))
        self.status_patches += 1
        return True

    async def post_events(self, owner: OwnerRef, events: Sequence[Event]) -> None:
        self.posted.extend(events)

    # ---- test helpers ----
    def add_statefulset(self, name: str, replicas: int) -> None:
        self.statefulsets[name] = FakeStatefulSet(replicas, f"uid-{name}")
        self.add_pods(name, replicas)

    def add_pods(
        self, name: str, count: int, *, ready: bool = True, labels: dict[str, str] | None = None
    ) -> None:
        self.pods[name] = [
            PodInfo(f"{name}-{i}", f"uid-{name}-{i}", ready, f"10.0.0.{i + 1}", labels or {})
            for i in range(count)
        ]

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self.workloads[(NS, NAME)].get("status") or {}
        return result

    def condition(self, kind: str) -> dict[str, Any]:
        return next(c for c in self.status()["conditions"] if c["type"] == kind)


@dataclass
class FakeMetrics:
    read_p99: float | None = 0.6 * READ_OBJECTIVE
    write_p99: float | None = 0.5 * WRITE_OBJECTIVE
    read_qps: float | None = 1000.0
    write_qps: float | None = 100.0
    lags: dict[str, float | None] = field(default_factory=dict)
    default_lag: float | None = 0.1
    roles: dict[str, float | None] = field(default_factory=dict)  # the role metric per pod; absent: no series
    queries: list[WorkloadQuery] = field(default_factory=list)

    @staticmethod
    def _sig(value: float | None) -> Signal:
        return Signal.unknown(UnknownReason.UNREACHABLE, "down") if value is None else Signal.of(value)

    async def read(self, queries: Sequence[WorkloadQuery], now: float) -> dict[str, MetricsReading]:
        self.queries.extend(queries)
        return {
            q.key: MetricsReading(
                read_qps=self._sig(self.read_qps),
                write_qps=self._sig(self.write_qps),
                read_p99=self._sig(self.read_p99),
                write_p99=self._sig(self.write_p99),
                replica_lag={p: self._sig(self.lags.get(p, self.default_lag)) for p in q.replica_pods},
                is_replica={p: self._sig(self.roles[p]) for p in q.pods if p in self.roles},
            )
            for q in queries
        }

    async def close(self) -> None:
        return None


@dataclass
class FakeRouter:
    requests: list[RouteRequest] = field(default_factory=list)
    problem: ClusterProblem | None = None

    async def apply(self, request: RouteRequest) -> bool:
        if self.problem is not None:
            raise self.problem
        self.requests.append(request)
        return True

    def served(self) -> list[str]:
        return [e.pod for e in self.requests[-1].endpoints]


class Clock:
    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@dataclass
class World:
    cluster: FakeCluster
    metrics: FakeMetrics
    router: FakeRouter
    clock: Clock

    defaults: OperatorDefaults = field(default_factory=OperatorDefaults)
    # What this operator process keeps between ticks (a new World is a restarted operator).
    kept: dict[tuple[str, str], Kept] = field(default_factory=dict)

    def deps(self) -> Deps:
        routers = {PoolerKind.ENDPOINT_SLICE: self.router}
        return Deps(self.cluster, self.metrics, routers, self.clock, self.defaults, kept=self.kept)

    async def tick(self, advance: float = 0.0) -> Any:
        self.clock.t += advance
        return await reconcile(self.deps(), NS, NAME)


def _workload(spec: dict[str, Any], annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "rwscaler.io/v1alpha1",
        "kind": "ReadWriteWorkload",
        "metadata": {
            "name": NAME,
            "namespace": NS,
            "uid": "uid-rww",
            "generation": 1,
            "annotations": annotations or {},
        },
        "spec": spec,
    }


FAST = {
    "replicas": {"statefulSet": "db-replica", "minReplicas": 1, "maxReplicas": 5},
    "pooler": {"kind": "EndpointSlice", "readService": "db-read"},
    "behavior": {
        "intervalSeconds": 2,
        "scaleUp": {"stabilizationWindowSeconds": 0, "maxStep": 1},
        "scaleDown": {"stabilizationWindowSeconds": 0, "maxStep": 1},
        "readPool": {"reentrySeconds": 0},
    },
}


def make_world(annotations: dict[str, str] | None = None, **overrides: Any) -> World:
    cluster = FakeCluster()
    cluster.add_statefulset("db", 1)
    cluster.add_statefulset("db-replica", 2)
    cluster.workloads[(NS, NAME)] = _workload(spec_dict(**{**FAST, **overrides}), annotations)
    return World(cluster, FakeMetrics(), FakeRouter(), Clock())


def reasons(events: Sequence[Event]) -> list[EventReason]:
    return [e.reason for e in events]


async def test_read_breach_scales_the_replicas_never_the_primary() -> None:
    w = make_world()
    await w.tick()
    w.metrics.read_p99 = 2 * READ_OBJECTIVE
    result = await w.tick(2)
    assert w.cluster.scaled == [("db-replica", 3)]
    assert w.cluster.statefulsets["db"].count == 1
    assert EventReason.SCALED_UP in reasons(result.events)
    status = w.cluster.status()
    assert status["replicas"]["current"] == 2 and status["replicas"]["desired"] == 3
    assert status["lastScaleTime"]
    assert w.cluster.condition("ReadCapacityExhausted")["status"] == "True"
    assert status["memory"]["last_scale_direction"] == 1


async def test_write_breach_adds_no_replica_and_recommends() -> None:
    w = make_world()
    await w.tick()
    w.metrics.write_p99 = 3 * WRITE_OBJECTIVE
    await w.tick(2)
    await w.tick(2)
    assert w.cluster.scaled == []
    assert w.cluster.condition("WriteBottleneck")["status"] == "True"
    types = {r["type"] for r in w.cluster.status()["recommendations"]}
    assert {"VerticalScalePrimary", "ShardWrites"} <= types


async def test_the_router_gets_exactly_the_pool_and_the_primary_when_all_lag() -> None:
    w = make_world()
    await w.tick()
    assert w.router.served() == ["db-replica-0", "db-replica-1"]
    assert [e.ip for e in w.router.requests[-1].endpoints] == ["10.0.0.1", "10.0.0.2"]
    w.metrics.lags = {"db-replica-1": 60.0}
    await w.tick(2)
    assert w.router.served() == ["db-replica-0"]
    w.metrics.default_lag = 60.0
    result = await w.tick(2)
    assert w.router.served() == ["db-0"]
    assert w.cluster.condition("ReplicationLagHigh")["status"] == "True"
    assert EventReason.READ_POOL_CHANGED in reasons(result.events)
    w.metrics.default_lag, w.metrics.lags = 0.1, {}
    await w.tick(2)
    await w.tick(2)
    assert w.router.served() == ["db-replica-0", "db-replica-1"]


async def test_metrics_down_holds_and_stops_patching() -> None:
    w = make_world()
    await w.tick()
    w.metrics.read_qps = w.metrics.write_qps = w.metrics.read_p99 = w.metrics.write_p99 = None
    w.metrics.default_lag = None
    for _ in range(3):
        await w.tick(2)
    assert w.cluster.condition("MetricsAvailable")["status"] == "False"
    assert w.cluster.scaled == []
    patches = w.cluster.status_patches
    result = await w.tick(2)
    assert not result.patched and w.cluster.status_patches == patches
    assert result.events == ()


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda w: w.cluster.statefulsets.pop("db"), ReadyReason.PRIMARY_NOT_FOUND),
        (lambda w: w.cluster.statefulsets.pop("db-replica"), ReadyReason.SCALE_TARGET_NOT_FOUND),
        (
            # Admission refuses it too; a spec stored before that rule is refused by the model.
            lambda w: w.cluster.workloads[(NS, NAME)]["spec"]["prometheus"].update(url="http://host:99999"),
            ReadyReason.SPEC_INVALID,
        ),
        (
            lambda w: w.cluster.workloads[(NS, NAME)]["spec"]["prometheus"].update(
                bearerTokenSecret={"name": "prom", "key": "token"}
            ),
            ReadyReason.SECRET_NOT_FOUND,
        ),
        (
            lambda w: w.cluster.workloads[(NS, NAME)]["spec"]["replicas"].update(minReplicas=9),
            ReadyReason.SPEC_INVALID,
        ),
        (
            lambda w: w.cluster.workloads[(NS, NAME)]["spec"]["replicas"].update(
                scaleTargetRef={"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "db-replica"}
            ),
            ReadyReason.SPEC_INVALID,
        ),
        (
            lambda w: w.cluster.workloads[(NS, NAME)]["spec"]["replicas"].update(
                statefulSet=None,
                scaleTargetRef={"apiVersion": "example.com/v1", "kind": "Thing", "name": "db-replica"},
            ),
            ReadyReason.SCALE_TARGET_NOT_SCALABLE,
        ),
    ],
)
async def test_unusable_spec_is_ready_false_with_a_specific_reason(mutate: Any, reason: ReadyReason) -> None:
    w = make_world()
    await w.tick()
    mutate(w)
    assert await check(w.deps(), NS, NAME) is reason
    ready = w.cluster.condition("Ready")
    assert (ready["status"], ready["reason"]) == ("False", reason.value)
    result = await w.tick(2)
    assert result.problem is reason and result.interval == 2
    assert w.cluster.scaled == []
    assert "memory" in w.cluster.status()


async def test_without_spec_prometheus_the_operators_default_is_used() -> None:
    w = make_world()
    del w.cluster.workloads[(NS, NAME)]["spec"]["prometheus"]
    w.defaults = OperatorDefaults(prometheus_url="http://prometheus.monitoring:9090")
    result = await w.tick()
    assert result.problem is None
    prometheus = w.metrics.queries[-1].spec.prometheus
    assert prometheus is not None and prometheus.url == "http://prometheus.monitoring:9090"


async def test_without_spec_prometheus_or_a_default_the_workload_says_so() -> None:
    w = make_world()
    del w.cluster.workloads[(NS, NAME)]["spec"]["prometheus"]
    result = await w.tick()
    assert result.problem is ReadyReason.PROMETHEUS_NOT_CONFIGURED
    ready = w.cluster.condition("Ready")
    assert (ready["status"], ready["reason"]) == ("False", "PrometheusNotConfigured")
    assert "--prometheus-url" in ready["message"]
    assert w.metrics.queries == [] and w.cluster.scaled == []


async def test_spec_prometheus_wins_over_the_operators_default() -> None:
    w = make_world()
    w.defaults = OperatorDefaults(prometheus_url="http://elsewhere:9090")
    await w.tick()
    prometheus = w.metrics.queries[-1].spec.prometheus
    assert prometheus is not None and prometheus.url != "http://elsewhere:9090"


async def test_a_secret_token_reaches_the_metrics_source() -> None:
    w = make_world(
        prometheus={"url": "https://prom:9090", "bearerTokenSecret": {"name": "prom", "key": "token"}}
    )
    w.cluster.secrets["prom"] = {"token": "s3cret\n"}
    await w.tick()
    assert w.metrics.queries[-1].bearer_token == "s3cret"
    assert w.metrics.queries[-1].replica_pods == ("db-replica-0", "db-replica-1")


@pytest.mark.parametrize("how", ["recommend", "paused"])
async def test_recommend_and_paused_change_nothing(how: str) -> None:
    if how == "recommend":
        w = make_world(mode="Recommend")
    else:
        w = make_world(annotations={"rwscaler.io/paused": "true"})
    w.metrics.read_p99 = 2 * READ_OBJECTIVE
    await w.tick()
    await w.tick(2)
    assert w.cluster.scaled == [] and w.router.requests == []
    status = w.cluster.status()
    assert status["replicas"]["desired"] > status["replicas"]["current"]
    assert status["mode"] == ("Recommend" if how == "recommend" else "Paused")
    ready = w.cluster.condition("Ready")
    assert ready["reason"] == ("RecommendOnly" if how == "recommend" else "Paused")
    assert any(r["type"] == "AddReadReplicas" for r in status["recommendations"])


async def test_a_restarted_operator_continues_from_status_memory() -> None:
    """A new Deps (fresh operator, nothing in its memory) reads status.memory: no double step."""
    w = make_world(behavior={**FAST["behavior"], "scaleUp": {"stabilizationWindowSeconds": 0, "maxStep": 1}})
    w.metrics.read_p99 = 2 * READ_OBJECTIVE
    await w.tick()
    assert w.cluster.scaled == [("db-replica", 3)]
    memory_before = w.cluster.status()["memory"]
    # The operator restarts; the next tick comes from a brand-new process state.
    restarted = World(w.cluster, w.metrics, FakeRouter(), w.clock)
    w.cluster.add_pods("db-replica", 3, ready=False)  # the new replica is still starting
    await restarted.tick(2)
    assert w.cluster.scaled == [("db-replica", 3)], "the restarted operator must not step again"
    memory_after = w.cluster.status()["memory"]
    assert memory_after["last_scale_time"] == memory_before["last_scale_time"]
    assert memory_after["last_scale_direction"] == 1


async def test_a_restarted_operator_keeps_the_read_pool_hysteresis() -> None:
    """A replica recovering from lag stays out for reentrySeconds, across a restart too: a fresh
    memory would take it back at once (first tick), the persisted one does not."""
    w = make_world(behavior={**FAST["behavior"], "readPool": {"reentrySeconds": 30}})
    await w.tick()
    w.metrics.lags = {"db-replica-1": 60.0}
    await w.tick(2)
    assert w.router.served() == ["db-replica-0"]
    w.metrics.lags = {}
    await w.tick(2)  # recovering: under the re-entry threshold from now on
    restarted = World(w.cluster, w.metrics, FakeRouter(), w.clock)
    await restarted.tick(2)
    assert restarted.router.served() == ["db-replica-0"], "re-entry must still wait after a restart"
    await restarted.tick(30)
    assert restarted.router.served() == ["db-replica-0", "db-replica-1"]


async def test_scale_failure_is_reported_and_not_remembered_as_done() -> None:
    w = make_world()
    await w.tick()
    w.cluster.scale_error = "forbidden: statefulsets/scale"
    w.metrics.read_p99 = 2 * READ_OBJECTIVE
    result = await w.tick(2)
    assert EventReason.SCALE_FAILED in reasons(result.events)
    assert w.cluster.condition("Ready")["reason"] == "ScaleFailed"
    assert "last_scale_time" not in w.cluster.status()["memory"]


async def test_routing_problem_is_ready_false() -> None:
    w = make_world()
    w.router.problem = ClusterProblem(ReadyReason.READ_SERVICE_CONFLICT, "the Service has a selector")
    await w.tick()
    ready = w.cluster.condition("Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ReadServiceConflict")


async def test_pooler_without_a_router_is_reported() -> None:
    w = make_world(
        pooler={
            "kind": "PgBouncer",
            "pgbouncer": {
                "deployment": "pgb",
                "configMap": "pgb",
                "database": "app",
                "adminSecret": {"name": "pgb", "key": "admin"},
            },
        }
    )
    await w.tick()
    assert w.cluster.condition("Ready")["reason"] == "PoolerUnavailable"


async def test_a_deleted_workload_ends_its_loop() -> None:
    w = make_world()
    await w.tick()
    assert (NS, NAME) in w.kept
    del w.cluster.workloads[(NS, NAME)]
    assert (await w.tick()).gone
    assert (NS, NAME) not in w.kept, "nothing kept in process for a workload that is gone"


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("http://prometheus.monitoring:9090", True),
        ("https://127.0.0.1:9090/prefix", True),
        ("http://", False),
        ("http://host:99999", False),
        ("http://host name:9090", False),
        ("ftp://host", False),
    ],
)
def test_prometheus_url_problem(url: str, ok: bool) -> None:
    assert (prometheus_url_problem(url) is None) is ok


@dataclass
class CountingRouter(FakeRouter):
    """A router that also counts server connections per replica (as a PgBouncer router would)."""

    counts: dict[str, int | None] = field(default_factory=dict)

    async def connections(self, request: ConnectionsRequest) -> Mapping[str, int | None]:
        return {e.pod: self.counts.get(e.pod, 0) for e in request.replicas}


async def test_a_scale_in_waits_for_the_leaving_replica_to_drain() -> None:
    w = make_world()
    w.router = CountingRouter(counts={"db-replica-1": 3})
    w.metrics.read_p99 = 0.1 * READ_OBJECTIVE  # far under the objective: one replica fewer
    await w.tick()
    result = await w.tick(2)
    assert w.cluster.scaled == [], "not while the leaving replica still holds connections"
    assert w.router.served() == ["db-replica-0"], "the leaving replica left the pool first"
    assert result.plan is not None and result.plan.draining == ("db-replica-1",)
    w.router.counts = {"db-replica-1": 0}
    await w.tick(2)
    assert w.cluster.scaled == [("db-replica", 1)]


async def test_a_status_conflict_is_written_by_the_next_tick_and_what_was_done_is_said_at_once() -> None:
    """A 409 writes nothing; the tick's routing happened all the same, so its events are posted and
    the next tick writes the status, even when the change has reverted by then (nothing lost)."""
    w = make_world()
    await w.tick()
    w.metrics.lags = {"db-replica-1": 60.0}
    w.cluster.conflict_once = True
    w.cluster.posted.clear()
    result = await w.tick(2)
    assert not result.patched
    assert w.router.served() == ["db-replica-0"]
    assert EventReason.READ_POOL_CHANGED in reasons(w.cluster.posted), "what was done is said"
    assert w.cluster.status()["readEndpoints"] == ["db-replica-0", "db-replica-1"], "not written yet"
    await w.tick(2)
    assert w.cluster.status()["readEndpoints"] == ["db-replica-0"], "written by the next tick"
    pool_changes = [e for e in w.cluster.posted if e.reason is EventReason.READ_POOL_CHANGED]
    assert len(pool_changes) == 1, "and not said twice"


async def test_a_conflict_on_the_first_write_does_not_make_the_next_tick_start_over() -> None:
    """kopf patches a new workload's annotations while its first status is written (409): the
    next tick continues from what the first decided, not from the empty status in the API."""
    w = make_world()
    w.cluster.conflict_once = True
    first = await w.tick()
    assert not first.patched and "conditions" not in w.cluster.status()
    w.metrics.lags = {"db-replica-1": 60.0}
    w.cluster.posted.clear()
    await w.tick(2)
    lag = [e.message for e in w.cluster.posted if e.message.startswith("ReplicationLagHigh")]
    assert lag and lag[0].startswith("ReplicationLagHigh False -> True"), lag
    pool = [e.message for e in w.cluster.posted if e.reason is EventReason.READ_POOL_CHANGED]
    assert pool and "left: db-replica-1" in pool[0], pool


async def test_no_scale_in_while_routing_fails_and_the_drain_clock_restarts() -> None:
    w = make_world(pooler={"kind": "EndpointSlice", "readService": "db-read", "drainTimeoutSeconds": 4})
    w.metrics.read_p99 = 0.1 * READ_OBJECTIVE  # far under the objective: one replica fewer
    await w.tick()
    w.router.problem = ClusterProblem(ReadyReason.ROUTING_FAILED, "endpointslices is forbidden")
    for _ in range(5):  # well past the drain timeout, but the leaving replica was never routed away
        await w.tick(2)
    assert w.cluster.scaled == [], "a scale-in must wait for a pool change that reached the pooler"
    assert w.cluster.condition("Ready")["reason"] == "RoutingFailed"
    assert w.cluster.status()["memory"]["drain"]["started"] == w.clock.t
    w.router.problem = None
    await w.tick(2)
    assert w.cluster.scaled == [], "the timeout counts from the first routed tick"
    for _ in range(3):
        await w.tick(2)
    assert w.cluster.scaled == [("db-replica", 1)]


async def test_a_pool_without_any_address_is_not_routed() -> None:
    w = make_world()
    for name in ("db", "db-replica"):
        w.cluster.pods[name] = [replace(p, ip=None) for p in w.cluster.pods[name]]
    await w.tick()
    assert w.router.requests == [], "an empty EndpointSlice would route reads nowhere"
    assert w.cluster.condition("Ready")["reason"] == "NoRoutableEndpoint"


# ---- roles, not ordinals (issue 11) ---------------------------------------------------------


def patroni_world(primary_ordinal: int) -> World:
    """One StatefulSet `db` of 4 pods with Spilo's role labels; its count includes the primary."""
    cluster = FakeCluster()
    cluster.statefulsets["db"] = FakeStatefulSet(4, "uid-db")
    cluster.pods["db"] = [
        PodInfo(
            f"db-{i}",
            f"uid-db-{i}",
            True,
            f"10.0.1.{i + 1}",
            {"spilo-role": "master" if i == primary_ordinal else "replica"},
        )
        for i in range(4)
    ]
    spec = spec_dict(**{**FAST, "replicas": {"statefulSet": "db", "minReplicas": 1, "maxReplicas": 5}})
    spec.pop("primary", None)
    cluster.workloads[(NS, NAME)] = _workload(spec)
    w = World(cluster, FakeMetrics(), FakeRouter(), Clock())
    w.metrics.roles = {f"db-{i}": 0.0 if i == primary_ordinal else 1.0 for i in range(4)}
    return w


async def test_one_statefulset_with_patroni_roles_reads_writes_from_the_primary_and_scales_around_it() -> (
    None
):
    w = patroni_world(primary_ordinal=2)
    await w.tick()
    query = w.metrics.queries[-1]
    assert query.primary_pods == ("db-2",) and "db-2" not in query.replica_pods
    status = w.cluster.status()
    assert status["primary"] == {"pod": "db-2", "source": "Label"}
    assert status["scaleTarget"] == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": "db",
        "replicas": 4,
    }
    assert status["replicas"]["current"] == 3, "the set's 4 pods are the primary and 3 replicas"
    assert "db-2" not in w.router.served()
    w.metrics.read_p99 = 2 * READ_OBJECTIVE
    await w.tick(2)
    assert w.cluster.scaled == [("db", 5)], "4 read replicas: the StatefulSet counts the primary too"


async def test_a_scale_in_that_would_remove_the_primary_is_refused() -> None:
    w = patroni_world(primary_ordinal=3)  # the highest ordinal: the first a scale-in removes
    w.metrics.read_p99 = 0.05 * READ_OBJECTIVE  # far under the objective: the read side would shrink
    w.metrics.read_qps = 10.0
    for _ in range(4):
        await w.tick(2)
    assert w.cluster.scaled == []
    cond = w.cluster.condition("ScalingLimited")
    assert cond["status"] == "True" and cond["reason"] == "PrimaryWouldBeRemoved"
    assert "db-3" in cond["message"]


async def test_a_promotion_is_followed_within_two_ticks_and_the_promoted_pod_leaves_the_pool() -> None:
    w = make_world()
    w.metrics.roles = {"db-0": 0.0, "db-replica-0": 1.0, "db-replica-1": 1.0}
    await w.tick()
    assert w.cluster.status()["primary"] == {"pod": "db-0", "source": "Metric"}
    assert "db-replica-1" in w.router.served()
    # db-replica-1 is promoted; the old primary is down (no series).
    w.metrics.roles = {"db-replica-0": 1.0, "db-replica-1": 0.0}
    await w.tick(2)
    status = w.cluster.status()
    assert status["primary"] == {"pod": "db-replica-1", "source": "Metric"}
    assert "db-replica-1" not in w.router.served()
    assert status["observed"]["writeQPS"].startswith("unknown"), "read from the old primary this tick"
    await w.tick(2)
    assert w.metrics.queries[-1].primary_pods == ("db-replica-1",)
    assert not w.cluster.status()["observed"]["writeQPS"].startswith("unknown")
    # The old primary comes back as a replica: it is one.
    w.metrics.roles["db-0"] = 1.0
    await w.tick(2)
    assert "db-0" in w.metrics.queries[-1].replica_pods
    assert "db-0" in w.router.served()


async def test_a_label_and_metric_that_disagree_hold_scaling_and_say_so() -> None:
    w = patroni_world(primary_ordinal=0)
    w.metrics.roles["db-1"] = 0.0  # the label says replica, the metric primary
    w.metrics.read_p99 = 2 * READ_OBJECTIVE
    await w.tick()
    await w.tick(2)
    assert w.cluster.scaled == []
    cond = w.cluster.condition("ScalingLimited")
    assert (
        cond["reason"] == "RoleUnknown"
        and "db-1" in cond["message"]
        and "spilo-role=replica" in cond["message"]
    )
    assert "db-1" not in w.router.served()


# ---- status is written on change, and refreshed ------------------------------------------------
# docs/operator.md "Status": written the tick something a reader or a restarted operator needs
# changes; the measured values alone are refreshed every 120 s.
REFRESH_S = 120.0


async def test_measured_values_alone_are_written_only_when_the_refresh_is_due() -> None:
    w = make_world()
    await w.tick()
    assert w.cluster.status_patches == 1
    written = copy.deepcopy(w.cluster.status())
    for i in range(1, 50):  # 98 s of ticks whose numbers move and nothing else does
        w.metrics.read_qps = 1000.0 + (i % 7) * 10
        await w.tick(2)
    assert w.cluster.status_patches == 1, "no write while only the measured values move"
    assert w.cluster.status() == written
    kept = w.kept[(NS, NAME)].rendered
    assert kept["memory"]["read_qps"] != written["memory"]["read_qps"], "the averages move in process"
    await w.tick(REFRESH_S - 98)
    assert w.cluster.status_patches == 2, "refreshed"
    assert w.cluster.status()["observed"]["readQPS"] == kept_qps(w)


def kept_qps(w: World) -> str:
    return str(w.kept[(NS, NAME)].rendered["observed"]["readQPS"])


async def test_a_condition_flip_is_written_and_posted_at_once() -> None:
    w = make_world()
    await w.tick()
    await w.tick(2)
    assert w.cluster.status_patches == 1
    w.metrics.lags = {"db-replica-1": 60.0}
    result = await w.tick(2)
    assert w.cluster.status_patches == 2
    assert w.cluster.condition("ReplicationLagHigh")["status"] == "True"
    assert EventReason.CONDITION_CHANGED in reasons(result.events)


async def test_status_written_by_someone_else_is_what_the_next_tick_continues_from() -> None:
    w = make_world()
    await w.tick()
    status = w.cluster.status()
    status["memory"]["last_scale_time"] = T0 - 5  # another writer (a former leader) scaled since
    await w.tick(2)
    assert w.kept[(NS, NAME)].rendered["memory"]["last_scale_time"] == T0 - 5


CAPACITY = {
    "replicas": {
        "statefulSet": "db-replica",
        "minReplicas": 1,
        "maxReplicas": 5,
        "targetReadQPSPerReplica": 500,
    },
    "behavior": {
        **FAST["behavior"],
        "scaleDown": {"stabilizationWindowSeconds": 60, "maxStep": 1},
        "trend": {"seasonsSeconds": []},
    },
}


async def _first_scale_down(restart_at: float | None) -> tuple[float, int]:
    """Reads need 3 replicas for 50 s, then 2: when the scale-down window lets it go, and how many
    status writes there were before the restart (if any)."""
    w = make_world(**CAPACITY)
    w.cluster.add_statefulset("db-replica", 3)
    writes_before = 0
    t = 0.0
    while not w.cluster.scaled:
        w.metrics.read_qps = 1500.0 if t < 50 else 1000.0
        if restart_at is not None and t == restart_at:
            writes_before = w.cluster.status_patches
            w = World(w.cluster, w.metrics, w.router, w.clock)  # a new process: nothing kept
        await w.tick(0 if t == 0 else 2)
        t += 2
        assert t < 400
    return t - 2, writes_before


async def test_a_restart_between_writes_does_not_shorten_the_scale_down_window() -> None:
    """The status a restarted operator reads is up to a refresh old; the repeats of the last
    recommendation since were not written, and `Memory.resumed` counts them until the restart:
    the scale-down never comes earlier than it would have without the restart."""
    continuous, _ = await _first_scale_down(None)
    # The restart falls on the tick the load drops: the last write was the first tick's (50 s
    # ago), and the new process's first recommendation is already the lower one.
    restarted, writes = await _first_scale_down(50)
    assert writes == 1, "the checkpoint the restart reads is the first tick's"
    assert continuous >= 50 + 60
    assert continuous <= restarted <= continuous + 2, "never earlier; at most the restart's gap later"


async def test_a_deleted_scale_target_leaves_the_read_pool_and_reads_go_to_the_primary() -> None:
    """Its pods are gone with it: routing to them would send reads nowhere (issue 13)."""
    w = make_world()
    await w.tick()
    assert w.router.served() == ["db-replica-0", "db-replica-1"]
    del w.cluster.statefulsets["db-replica"], w.cluster.pods["db-replica"]
    result = await w.tick(2)
    assert w.router.served() == ["db-0"]
    assert result.problem is ReadyReason.SCALE_TARGET_NOT_FOUND
    ready = w.cluster.condition("Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ScaleTargetNotFound")
    assert w.cluster.status()["readEndpoints"] == ["db-0"]
    assert w.cluster.scaled == [] and EventReason.SCALE_FAILED not in reasons(w.cluster.posted)
    # It comes back: its replicas serve again and Ready turns True.
    w.cluster.add_statefulset("db-replica", 2)
    await w.tick(2)
    await w.tick(2)
    assert w.router.served() == ["db-replica-0", "db-replica-1"]
    assert w.cluster.condition("Ready")["status"] == "True"
