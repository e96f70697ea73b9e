"""CloudNativePG end to end on the local control plane (issue 11, item 5).

A ``Cluster`` ``orders`` (``postgresql.cnpg.io/v1``) with ``spec.instances: 3`` on the plane,
served by a minimal CRD of the project's own (``tests/support/cnpg/cluster-crd.yaml``) whose
group, version, kind, ``scale`` subresource (``.spec.instances``, ``.status.instances``,
``.status.selector``) and the spec/status fields rwscaler reads were checked against
CloudNativePG v1.30.0 (commit 4b5e244a7d03), ``config/crd/bases/postgresql.cnpg.io_clusters.yaml``
(the selector path exists from v1.28.4, v1.29.2 and v1.30.0 on). ``FakeCnpgController``
(``tests/support/cnpg``) plays CloudNativePG's controller: instance pods ``orders-<serial>``
with CloudNativePG's labels, ``cnpg.io/nodeSerial`` and the Cluster as controller owner, run
by kwok; role labels after ``status.currentPrimary``; one instance created at a time; a
scale-down deletes what ``findDeletableInstance`` (``internal/controller/replicas.go``) picks.

Behind each pod is a real PostgreSQL 15 server (tests/support/pgenv.py: ``orders-1`` the
primary, ``orders-2``, ``orders-3`` streaming replicas; a scale-up adds a real replica) with a
postgres_exporter running CloudNativePG's default monitoring queries
(``tests/support/cnpg/queries.yaml``: cnpg_pg_replication_*, cnpg_pg_stat_replication_*,
cnpg_pg_stat_database_* from ``config/manager/default-monitoring.yaml``) and nothing else, and
a real Prometheus that scrapes them with target labels ``namespace`` and ``pod`` (as a
PodMonitor would). The operator runs as ``rwscaler run`` with the ServiceAccount's RBAC, on a
ReadWriteWorkload with ``replicas.scaleTargetRef`` = the Cluster, ``metrics.preset: cnpg`` and
an EndpointSlice pooler. Reads are ``SELECT 1`` transactions on the replicas; a trickle of
UPDATEs runs on the primary (replay lag only grows while the primary writes).

Checked, each by waiting for it: the workload observes (status.observed: read QPS and every
replica's lag known; status.primary names ``orders-1``); read load over the capacity scales
``spec.instances`` 3 -> 4 through ``/scale`` and the fake controller follows (``orders-4``, a
real replica); the EndpointSlice lists exactly the lag-qualified replicas and never the
primary; ``pg_wal_replay_pause()`` on ``orders-3`` takes it out of the slice, resuming brings it
back; with the load gone rwscaler scales in and the pod CloudNativePG removes first
(``orders-4``) is out of the slice before it is deleted.

NOT checked here: CloudNativePG's own controller and instance manager (its reconciliation,
PVCs and join jobs, its real pods and their exporter on :9187, its switchover and failover and
the ``unhealthy`` label), the rest of its CRD schema and its CEL validations and webhooks.
``make kind-e2e`` (hack/kind/e2e.sh) runs the same checks against the real CloudNativePG.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from cluster_helpers import (
    READ_SERVICE,
    Kube,
    OperatorProcess,
    Plane,
    wait_for,
    workload_spec,
)
from kubernetes import client as k8s
from tests.support import cnpg
from tests.support.pgenv import PgEnv, Role, pgenv_available
from tests.support.tiers import need

NAME = "orders"  # the Cluster and the workload
PRIMARY = cnpg.instance_name(NAME, 1)
READ_QPS_PER_REPLICA = 60.0  # the load on each of orders-2 and orders-3
CAPACITY = 45.0  # targetReadQPSPerReplica: 120 reads/s ask for 3 read replicas
LAG_OBJECTIVE = "5s"


def cnpg_names(role: Role, ordinal: int) -> str:
    """pgenv's primary is orders-1, its replica ordinal n is orders-(n+2): serials from 1."""
    return PRIMARY if role == "primary" else cnpg.instance_name(NAME, ordinal + 2)


# ---- fixtures ------------------------------------------------------------------------------
@pytest.fixture
def cluster_crd(plane: Plane) -> Iterator[None]:
    """The stand-in CRD, established; deleted at the end when this test created it."""
    kube = plane.kube
    existed = bool(kube.kubectl("get", "--ignore-not-found", "-o", "name", "-f", str(cnpg.CRD_FILE)).strip())
    kube.apply(cnpg.CRD_FILE)
    kube.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(cnpg.CRD_FILE))
    yield
    if not existed:
        kube.kubectl("delete", "--wait=false", "--ignore-not-found", "-f", str(cnpg.CRD_FILE))


@pytest.fixture
def pg(ns: str) -> Iterator[PgEnv]:
    """PostgreSQL: orders-1 primary, orders-2 and orders-3 replicas, CloudNativePG's queries."""
    need(*pgenv_available())
    with PgEnv(
        2,
        namespace=ns,
        instance_names=cnpg_names,
        exporter_queries=cnpg.QUERIES_FILE,
        exporter_database="postgres",  # CloudNativePG's default queries run there
        exporter_args=("--disable-default-metrics", "--no-collector.database", "--no-collector.bgwriter"),
        scrape_interval=0.5,
    ) as env:
        yield env


class Load:
    """Rate-limited transactions on real servers, one thread per target, until ``stop``.

    Each thread opens a new connection every ``RECONNECT_S``: PostgreSQL 15.18 here flushes a
    busy session's pg_stat_database counters at its first idle points and then only when it
    disconnects (measured: a session running SELECT 1 at 60/s showed 61 commits after 1 s and
    still 61 after 5 s, all 300 after closing; the same with the simple query protocol, on the
    primary and on a replica). xact_commit is where the cnpg preset reads QPS from."""

    RECONNECT_S = 0.5

    def __init__(self) -> None:
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.rates: dict[str, float] = {}
        self.errors: list[BaseException] = []

    def run(self, env: PgEnv, server: str, sql: str, rate: float) -> None:
        self.rates[server] = rate
        thread = threading.Thread(target=self._loop, args=(env, server, sql), daemon=True)
        self._threads.append(thread)
        thread.start()

    def _loop(self, env: PgEnv, server: str, sql: str) -> None:
        next_at = time.monotonic()
        try:
            while not self._stop.is_set():
                with env.connect(server) as conn:
                    until = time.monotonic() + self.RECONNECT_S
                    while not self._stop.is_set() and time.monotonic() < until:
                        rate = self.rates.get(server, 0.0)
                        if rate <= 0:
                            self._stop.wait(0.2)
                            next_at = time.monotonic()
                            continue
                        conn.execute(sql.encode())
                        next_at = max(next_at + 1.0 / rate, time.monotonic() - 1.0)
                        self._stop.wait(max(0.0, next_at - time.monotonic()))
        except psycopg.Error as err:
            if not self._stop.is_set():
                self.errors.append(err)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)


# ---- helpers -------------------------------------------------------------------------------
def scale(kube: Kube, ns: str) -> dict[str, Any]:
    """The Cluster's /scale subresource, as rwscaler and HPA read it."""
    result: dict[str, Any] = kube.custom.get_namespaced_custom_object_scale(
        cnpg.GROUP, cnpg.VERSION, ns, cnpg.PLURAL, NAME
    )
    return result


def spec_instances(kube: Kube, ns: str) -> int:
    obj = kube.custom.get_namespaced_custom_object(cnpg.GROUP, cnpg.VERSION, ns, cnpg.PLURAL, NAME)
    return int(obj["spec"]["instances"])


def ready_instances(kube: Kube, ns: str) -> list[str]:
    pods = kube.core.list_namespaced_pod(ns, label_selector=cnpg.instances_selector(NAME)).items
    return sorted(
        p.metadata.name
        for p in pods
        if cnpg.is_ready(p) and cnpg.is_active(p) and cnpg.pod_role(p) is not None
    )


def replica_lags(status: dict[str, Any]) -> dict[str, str]:
    return {r["name"]: r.get("lag", "unknown") for r in (status.get("observed") or {}).get("replicas") or []}


# ---- the test ------------------------------------------------------------------------------
@pytest.mark.timeout(420)
def test_a_cloudnativepg_cluster_is_observed_scaled_through_scale_and_its_read_pool_published(
    kube: Kube,
    ns: str,
    cluster_crd: None,
    pg: PgEnv,
    operator: Callable[..., OperatorProcess],
) -> None:
    assert pg.prometheus is not None
    slices_seen: list[list[str]] = []
    drained_at_delete: dict[str, list[str] | None] = {}

    def slice_now() -> list[str] | None:
        pods = kube.slice_pods(ns)
        if pods is not None and (not slices_seen or slices_seen[-1] != pods):
            slices_seen.append(pods)
        return pods

    def on_create(serial: int, name: str) -> None:
        if name in {i.name for i in pg.instances}:
            return  # orders-1..3 run from the start: the pod follows its server
        added = pg.add_replica()
        assert added.name == name, f"pgenv made {added.name}, CloudNativePG names serial {serial} {name}"

    def before_delete(serial: int, name: str) -> None:
        drained_at_delete[name] = kube.slice_pods(ns)

    def on_delete(serial: int, name: str) -> None:
        pg.remove_replica(name)

    kube.custom.create_namespaced_custom_object(
        cnpg.GROUP, cnpg.VERSION, ns, cnpg.PLURAL, cnpg.cluster_manifest(NAME, 3)
    )
    controller = cnpg.FakeCnpgController(
        kube.api, ns, NAME, on_create=on_create, before_delete=before_delete, on_delete=on_delete
    )
    load = Load()
    with controller:
        try:
            _run(kube, ns, pg, controller, load, operator, slice_now, drained_at_delete)
        finally:
            load.stop()
    assert not controller.errors, controller.errors
    assert not load.errors, load.errors
    assert all(PRIMARY not in s for s in slices_seen), f"the primary was published: {slices_seen}"


def _run(
    kube: Kube,
    ns: str,
    pg: PgEnv,
    controller: cnpg.FakeCnpgController,
    load: Load,
    operator: Callable[..., OperatorProcess],
    slice_now: Callable[[], list[str] | None],
    drained_at_delete: dict[str, list[str] | None],
) -> None:
    first = [cnpg.instance_name(NAME, s) for s in (1, 2, 3)]
    errors = lambda: controller.errors  # noqa: E731
    wait_for("3 CloudNativePG-shaped pods Ready with role labels", lambda: ready_instances(kube, ns) == first,
             last=lambda: (ready_instances(kube, ns), errors()))  # fmt: skip
    wait_for("the Cluster's /scale with its selector", lambda: scale(kube, ns)["status"].get("selector"),
             last=lambda: scale(kube, ns))  # fmt: skip
    sc = scale(kube, ns)
    assert sc["spec"]["replicas"] == 3 and sc["status"]["replicas"] == 3, sc
    assert sc["status"]["selector"] == "cnpg.io/cluster=orders,cnpg.io/podRole=instance", sc
    primary_pod = kube.core.read_namespaced_pod(PRIMARY, ns)
    assert primary_pod.metadata.labels["cnpg.io/instanceRole"] == "primary"
    assert primary_pod.metadata.labels["role"] == "primary"
    assert primary_pod.metadata.annotations["cnpg.io/nodeSerial"] == "1"
    (owner,) = primary_pod.metadata.owner_references
    assert (owner.kind, owner.name, owner.controller) == ("Cluster", NAME, True)
    assert kube.core.read_namespaced_pod("orders-3", ns).metadata.labels["cnpg.io/instanceRole"] == "replica"

    # Load: reads on both replicas, a trickle of writes on the primary.
    for server in ("orders-2", "orders-3"):
        load.run(pg, server, "SELECT 1", READ_QPS_PER_REPLICA)
    load.run(pg, PRIMARY, "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = 1", 10.0)

    spec = workload_spec(
        pg.prometheus_url,
        replicas={
            "scaleTargetRef": {"apiVersion": cnpg.API_VERSION, "kind": cnpg.KIND, "name": NAME},
            "minReplicas": 1,
            "maxReplicas": 3,
            "targetReadQPSPerReplica": CAPACITY,
        },
        metrics={"preset": "cnpg", "staleness": "30s"},
        objectives={"readLatencyP99": "50ms", "writeLatencyP99": "20ms", "maxReplicationLag": LAG_OBJECTIVE},
        pooler={"kind": "EndpointSlice", "readService": READ_SERVICE, "drainTimeoutSeconds": 10},
    )
    del spec["primary"]  # the primary is one of the Cluster's pods, found by its role label
    kube.create_workload(ns, NAME, spec)
    op = operator()

    # 1. It observes: read QPS known, every replica's lag known, the primary by its label.
    status = wait_for(
        "status.observed with read QPS and the lag of orders-2 and orders-3",
        lambda: (
            s
            if (s := kube.status(ns, NAME)).get("observed", {}).get("readQPS", "unknown") != "unknown"
            and all(replica_lags(s).get(r, "unknown") != "unknown" for r in ("orders-2", "orders-3"))
            else None
        ),
        timeout=60,
        last=lambda: kube.status(ns, NAME),
    )
    assert PRIMARY not in replica_lags(status), status["observed"]
    assert (status.get("primary") or {}).get("pod") == PRIMARY, status.get("primary")

    # 2. 120 reads/s at 45 per replica: 3 read replicas, 4 instances, through /scale.
    wait_for("spec.instances 4 (through /scale)", lambda: spec_instances(kube, ns) == 4, timeout=60,
             last=lambda: (spec_instances(kube, ns), kube.status(ns, NAME).get("decision")))  # fmt: skip
    four = [*first, "orders-4"]
    wait_for("orders-4 created by the controller and Ready", lambda: ready_instances(kube, ns) == four,
             timeout=60, last=lambda: (ready_instances(kube, ns), controller.errors))  # fmt: skip
    assert controller.created == four, controller.created
    assert scale(kube, ns)["status"]["replicas"] == 4

    # 3. The slice: exactly the lag-qualified replicas, never the primary.
    replicas = ["orders-2", "orders-3", "orders-4"]
    wait_for("orders-2, orders-3 and orders-4 in the EndpointSlice", lambda: slice_now() == replicas,
             timeout=60, last=lambda: (slice_now(), replica_lags(kube.status(ns, NAME))))  # fmt: skip

    # 4. Replay paused on orders-3 while the primary writes: its lag grows, it leaves.
    pg.pause_replay("orders-3")
    wait_for("orders-3 out of the EndpointSlice", lambda: slice_now() == ["orders-2", "orders-4"],
             timeout=60, last=lambda: (slice_now(), replica_lags(kube.status(ns, NAME))))  # fmt: skip
    lag = replica_lags(kube.status(ns, NAME)).get("orders-3", "unknown")
    assert lag != "unknown", "orders-3 left the pool for its measured lag, not for want of a lag"
    pg.resume_replay("orders-3")
    wait_for("orders-3 back after replay resumed", lambda: slice_now() == replicas,
             timeout=60, last=lambda: (slice_now(), replica_lags(kube.status(ns, NAME))))  # fmt: skip

    # 5. The load gone: scale-in, and CloudNativePG's pick (orders-4) is drained before it goes.
    # (Scale-down was held so far by workload_spec's hour-long window: while Prometheus' rate
    # window fills at the start, the load reads low.)
    kube.patch_workload(ns, NAME, {"spec": {"behavior": {"scaleDown": {"stabilizationWindowSeconds": 5}}}})
    for server in ("orders-2", "orders-3"):
        load.rates[server] = 10.0
    wait_for("spec.instances below 4", lambda: spec_instances(kube, ns) < 4, timeout=90,
             last=lambda: (spec_instances(kube, ns), kube.status(ns, NAME).get("decision")))  # fmt: skip
    wait_for("the controller deleting an instance", lambda: controller.deleted or None, timeout=60,
             last=lambda: (ready_instances(kube, ns), controller.errors))  # fmt: skip
    assert controller.deleted[0] == "orders-4", controller.deleted
    assert "orders-4" not in (drained_at_delete["orders-4"] or []), drained_at_delete
    assert PRIMARY in ready_instances(kube, ns)
    assert op.process.running(), op.log_tail()


def test_find_deletable_instance_is_cloudnativepgs_rule() -> None:
    """The fake controller's scale-down pick, on pods as CloudNativePG leaves them."""

    def pod(serial: int, role: str, ready: bool = True, phase: str = "Running") -> k8s.V1Pod:
        body = cnpg.instance_pod({"metadata": {"name": NAME, "uid": "u"}}, serial, role=role)
        return k8s.V1Pod(
            metadata=k8s.V1ObjectMeta(name=body["metadata"]["name"], labels=body["metadata"]["labels"],
                                      annotations=body["metadata"]["annotations"]),
            status=k8s.V1PodStatus(phase=phase, conditions=[k8s.V1PodCondition(type="Ready", status=str(ready))]),
        )  # fmt: skip

    names = [cnpg.instance_name(NAME, s) for s in (1, 2, 3, 4)]
    pods = [pod(1, "replica"), pod(2, "replica"), pod(3, "replica"), pod(4, "primary")]
    assert cnpg.find_deletable_instance(names, pods) == "orders-3", "never the primary, even the highest"
    pods[2] = pod(3, "replica", ready=False)
    assert cnpg.find_deletable_instance(names, pods) == "orders-2", "never a pod that is not Ready"
    assert cnpg.find_deletable_instance([*names, "orders-5"], pods) == "orders-5", (
        "a name without a pod first"
    )
    assert cnpg.find_deletable_instance(names[3:], [pods[3]]) is None


def test_serials_follow_the_release() -> None:
    """v1.30.0 takes the lowest serial not in status.instanceNames; v1.28/v1.29 count on."""
    names = ["orders-1", "orders-2", "orders-4"]
    lowest = cnpg.FakeCnpgController(k8s.ApiClient(), "ns", NAME)
    assert lowest._next_serial(names) == 3
    assert lowest._next_serial([*names, "orders-3"]) == 5
    counting = cnpg.FakeCnpgController(k8s.ApiClient(), "ns", NAME, serials="increment")
    counting._latest_serial = 4
    assert counting._next_serial(names) == 5
