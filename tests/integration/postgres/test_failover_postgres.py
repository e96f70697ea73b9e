"""Failover with real PostgreSQL while the operator runs (issue 11, item 4; the `postgres` preset).

The pair layout: StatefulSets ``orders-pg`` (1 pod, the primary at the start) and
``orders-pg-replica`` (2 pods, the scale target) on the local control plane's kwok nodes, with no
role labels: the role metric ``pg_replication_is_replica`` decides. Behind each pod is the real
server of the shared PgEnv with the same name (tests/support/pgenv.py: ``orders-pg-0`` the
primary, ``orders-pg-replica-0/1`` streaming replicas), its postgres_exporter and a real
Prometheus scraping them every second, labelled with this test's namespace
(``PgEnv.set_namespace``). The operator runs as ``rwscaler run -n <namespace>`` with the
ServiceAccount's RBAC (as in tests/integration/cluster/), on a ReadWriteWorkload with the
``postgres`` preset and an EndpointSlice pooler. A pgbench writer updates rows through
PgBouncer's write database; pgbench readers read through its read database.

The failover (``PgEnv.failover``): the primary stops, ``orders-pg-replica-1`` (the scale
target's HIGHEST ordinal) is promoted with ``pg_ctl promote``, ``orders-pg-replica-0`` is
re-pointed to it; the old primary stays down until the test rejoins it as a replica
(``PgEnv.rejoin``: a fresh base backup). Checked, each within two intervals of the event
becoming visible to Prometheus (two scrapes):

- status.primary.pod names ``orders-pg-replica-1``, and status.observed.writeQPS is known and
  non-zero while the writer runs on it (write QPS follows the new primary);
- ``orders-pg-replica-1`` leaves the read pool (status.readEndpoints and the EndpointSlice);
- ``orders-pg-0``, back as a replica, joins the pool once caught up, and once reads reach it
  status.observed.readQPS is known;
- a scale-in of ``orders-pg-replica`` (min and max lowered to 1), which would remove ordinal 1,
  the primary, is refused: ScalingLimited reason PrimaryWouldBeRemoved, the StatefulSet stays
  at 2; and throughout the test the StatefulSet never goes below 2 (no scale action removes
  the primary).

The shared PgEnv is reset (failed back to ``orders-pg-0``, namespace label restored) after the
test. Needs the local control plane (`make cluster`) and the PostgreSQL setup
(`make pgenv-deps`); both fail instead of skipping under RWSCALER_REQUIRE_ALL_TIERS=1. Run by pytest with this
folder's tests (markers `postgres` and `cluster`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.cluster import cluster_available, kubeconfig_path
from tests.support.pgenv import PgbenchRun, PgEnv
from tests.support.tiers import need

_CLUSTER_DIR = Path(__file__).resolve().parents[1] / "cluster"
if str(_CLUSTER_DIR) not in sys.path:  # the control-plane helpers the cluster tests use
    sys.path.insert(0, str(_CLUSTER_DIR))

from cluster_helpers import (  # noqa: E402
    CRD_FILE,
    RBAC_DIR,
    REPO,
    SA_NAME,
    SA_NAMESPACE,
    Kube,
    OperatorProcess,
    Plane,
    forget_operators,
    register_operator,
    wait_for,
)
from kubernetes.client.exceptions import ApiException  # noqa: E402

pytestmark = [pytest.mark.timeout(300), pytest.mark.cluster]

NAME = "orders"
PRIMARY_SET, REPLICA_SET, READ_SERVICE = "orders-pg", "orders-pg-replica", "orders-pg-read"
INTERVAL_S = 3
#: "Within two intervals" of the event showing in Prometheus, which scrapes every second.
WITHIN_S = 2 * INTERVAL_S + 2 * 1.0 + 1.0


# ---- the control plane (as tests/integration/cluster/conftest.py sets it up) -----------------
def _plane_objects(kube: Kube, files: list[Path]) -> dict[str, bool]:
    """The objects of these manifests that exist now (``kind/name``), each with True while it
    is being deleted."""
    args = ["get", "--ignore-not-found", "-o", "json"]
    for f in files:
        args += ["-f", str(f)]
    out = kube.kubectl(*args).strip()
    if not out:
        return {}
    doc = json.loads(out)
    items = doc.get("items", [doc]) if doc.get("kind") == "List" else [doc]
    return {
        f"{i['kind'].lower()}/{i['metadata']['name']}": bool(i["metadata"].get("deletionTimestamp"))
        for i in items
    }


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    """The CRD and manifests/rbac applied, and a kubeconfig of the operator's ServiceAccount.

    What this module creates it deletes at the end (unless another run's workloads use them)
    and waits until it is gone, so a module after it (the other failover test) never applies
    onto objects still being deleted."""
    need(*cluster_available())
    kube = Kube(kubeconfig_path())
    rbac = [
        RBAC_DIR / "namespace.yaml",
        *sorted(p for p in RBAC_DIR.glob("*.yaml") if p.name != "namespace.yaml"),
    ]
    files = [CRD_FILE, *rbac]
    wait_for(
        "no CRD or RBAC object of rwscaler being deleted",
        lambda: not any(_plane_objects(kube, files).values()),
        timeout=90,
        last=lambda: _plane_objects(kube, files),
    )
    existed = set(_plane_objects(kube, files))
    kube.apply(CRD_FILE)
    kube.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(CRD_FILE))
    kube.apply(rbac[0])
    kube.apply(*rbac[1:])
    out = tmp_path_factory.mktemp("sa") / "rwscaler-sa.kubeconfig"
    subprocess.run(
        [str(REPO / "hack/cluster/sa-kubeconfig.sh"), SA_NAMESPACE, SA_NAME, str(out), "2h"],
        check=True,
        capture_output=True,
        text=True,
    )
    yield Plane(kube, out)
    created = set(_plane_objects(kube, files)) - existed
    # Workloads of another test run on the same plane (not ours, which go with their
    # namespaces) still need the CRD and the operator's RBAC: then leave them.
    try:
        listed = kube.kubectl(
            "get", "readwriteworkloads", "-A", "--no-headers", "-o", "custom-columns=NS:.metadata.namespace"
        )
    except RuntimeError:  # no CRD any more: nothing uses it
        listed = ""
    others = [ns for ns in listed.split() if not ns.startswith("rwt-failover-")]
    if created and not others:
        kube.kubectl("delete", "--ignore-not-found", "--timeout=90s", *sorted(created))


@pytest.fixture
def ns(plane: Plane) -> Iterator[str]:
    name = f"rwt-failover-pg-{uuid.uuid4().hex[:5]}"
    plane.kube.create_namespace(name)
    wait_for(
        f"the default ServiceAccount of {name}",
        lambda: any(
            sa.metadata is not None and sa.metadata.name == "default"
            for sa in plane.kube.core.list_namespaced_service_account(name).items
        ),
    )
    yield name
    plane.kube.delete_namespace(name)


@pytest.fixture
def operator(plane: Plane, ns: str, tmp_path: Path) -> Iterator[Callable[[], OperatorProcess]]:
    started: list[OperatorProcess] = []

    def start() -> OperatorProcess:
        op = OperatorProcess(ns, plane.sa_kubeconfig, tmp_path / f"operator-{len(started)}.log").start()
        started.append(op)
        register_operator(op)
        return op

    yield start
    for op in started:
        op.stop()
    forget_operators()


@pytest.fixture
def pg(clean_pgenv: PgEnv, ns: str) -> Iterator[PgEnv]:
    """The shared PgEnv, its series labelled with the test's namespace (reset restores both)."""
    clean_pgenv.set_namespace(ns)
    yield clean_pgenv


# ---- what the test reads -------------------------------------------------------------------------
def slice_pods(kube: Kube, ns: str) -> list[str] | None:
    try:
        es = kube.discovery.read_namespaced_endpoint_slice(f"{READ_SERVICE}-rwscaler", ns)
    except ApiException as err:
        if err.status == 404:
            return None
        raise
    return sorted(str(e.target_ref.name) for e in es.endpoints or [] if e.target_ref is not None)


def primary_pod(status: dict[str, Any]) -> str | None:
    return (status.get("primary") or {}).get("pod")


def write_qps(status: dict[str, Any]) -> float | None:
    value = (status.get("observed") or {}).get("writeQPS", "unknown")
    return None if value in (None, "unknown") else float(value)


def read_pool(status: dict[str, Any]) -> list[str]:
    return sorted(status.get("readEndpoints") or [])


def summary(kube: Kube, ns: str) -> dict[str, Any]:
    s = kube.status(ns, NAME)
    return {
        "primary": s.get("primary"),
        "writeQPS": (s.get("observed") or {}).get("writeQPS"),
        "readEndpoints": s.get("readEndpoints"),
        "slice": slice_pods(kube, ns),
        "replicas": (s.get("observed") or {}).get("replicas"),
        "conditions": [
            (c.get("type"), c.get("status"), c.get("reason"), c.get("message"))
            for c in s.get("conditions") or []
            if c.get("status") == "True" or c.get("type") == "Ready"
        ],
    }


class SizeWatch:
    """Samples the scale target's spec.replicas every half second: its lowest value."""

    def __init__(self, kube: Kube, ns: str) -> None:
        self.kube, self.ns = kube, ns
        self.lowest: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            n = self.kube.replicas(self.ns, REPLICA_SET)
            self.lowest = n if self.lowest is None else min(self.lowest, n)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def spec(prometheus_url: str) -> dict[str, Any]:
    return {
        # The pair layout; no roleLabels: the pods carry none, the role metric decides.
        "primary": {"statefulSet": PRIMARY_SET},
        "replicas": {"statefulSet": REPLICA_SET, "minReplicas": 2, "maxReplicas": 2},
        "prometheus": {"url": prometheus_url, "timeout": "2s"},
        "metrics": {"preset": "postgres", "staleness": "30s"},
        "objectives": {"readLatencyP99": "500ms", "writeLatencyP99": "500ms", "maxReplicationLag": "5s"},
        "pooler": {"kind": "EndpointSlice", "readService": READ_SERVICE},
        "behavior": {
            "intervalSeconds": INTERVAL_S,
            "tolerance": 0.1,
            "scaleUp": {"stabilizationWindowSeconds": 0, "maxStep": 1},
            "scaleDown": {"stabilizationWindowSeconds": 0, "maxStep": 1},
            "readPool": {"reentrySeconds": 1, "reentryLagRatio": 0.5},
        },
        "mode": "Enforce",
    }


def timed(what: str, probe: Callable[[], Any], kube: Kube, ns: str, since: float) -> float:
    """Wait (at most WITHIN_S after ``since``) for ``probe``; seconds it took since ``since``."""
    wait_for(
        what, probe, timeout=max(0.5, since + WITHIN_S - time.monotonic()), last=lambda: summary(kube, ns)
    )
    took = time.monotonic() - since
    print(f"{what}: {took:.1f}s")
    return took


# ---- the test ------------------------------------------------------------------------------------
def test_failover_postgres_write_qps_read_pool_and_scale_in_follow_the_new_primary(
    plane: Plane, ns: str, pg: PgEnv, operator: Callable[[], OperatorProcess]
) -> None:
    kube = plane.kube
    kube.create_statefulset(ns, PRIMARY_SET, 1)
    kube.create_statefulset(ns, REPLICA_SET, 2)
    kube.wait_pods(ns, PRIMARY_SET, 1)
    kube.wait_pods(ns, REPLICA_SET, 2)
    assert sorted(i.name for i in pg.instances) == [
        "orders-pg-0",
        "orders-pg-replica-0",
        "orders-pg-replica-1",
    ]

    runs: list[PgbenchRun] = []

    def writer() -> PgbenchRun:
        run = pg.start_pgbench(read_only=False, rate=20, duration=280, clients=1)
        runs.append(run)
        return run

    runs.append(pg.start_pgbench(read_only=True, rate=30, duration=280, clients=1))
    first_writer = writer()
    watch = SizeWatch(kube, ns)
    try:
        kube.create_workload(ns, NAME, spec(pg.prometheus_url))
        operator()

        # Before: orders-pg-0 writes, both replicas serve reads.
        wait_for(
            "orders-pg-0 the primary with write QPS, both replicas in the pool",
            lambda: (
                primary_pod(s := kube.status(ns, NAME)) == "orders-pg-0"
                and (write_qps(s) or 0) > 0
                and read_pool(s) == ["orders-pg-replica-0", "orders-pg-replica-1"]
                and slice_pods(kube, ns) == ["orders-pg-replica-0", "orders-pg-replica-1"]
            ),
            timeout=90,
            last=lambda: summary(kube, ns),
        )

        # The failover: the primary stops, orders-pg-replica-1 is promoted, -0 follows it.
        first_writer.stop()  # its server is about to stop; pgbench does not reconnect
        steps = pg.failover("orders-pg-replica-1", rejoin_old=False)
        print(f"failover steps (cumulative s): {steps}")
        writer()  # through PgBouncer's write database, now the new primary
        done = time.monotonic()
        timed(
            "status.primary.pod orders-pg-replica-1 with write QPS known and non-zero",
            lambda: (
                primary_pod(s := kube.status(ns, NAME)) == "orders-pg-replica-1" and (write_qps(s) or 0) > 0
            ),
            kube,
            ns,
            done,
        )
        timed(
            "orders-pg-replica-1 out of the read pool (status and EndpointSlice)",
            lambda: (
                "orders-pg-replica-1" not in read_pool(kube.status(ns, NAME))
                and "orders-pg-replica-1" not in (slice_pods(kube, ns) or [])
            ),
            kube,
            ns,
            done,
        )
        assert read_pool(kube.status(ns, NAME)) == ["orders-pg-replica-0"], summary(kube, ns)

        # The old primary comes back as a replica of the new one: in the pool once caught up.
        pg.rejoin("orders-pg-0")
        back = time.monotonic()
        timed(
            "orders-pg-0 back in the read pool as a replica",
            lambda: (
                read_pool(kube.status(ns, NAME)) == ["orders-pg-0", "orders-pg-replica-0"]
                and slice_pods(kube, ns) == ["orders-pg-0", "orders-pg-replica-0"]
            ),
            kube,
            ns,
            back,
        )
        assert primary_pod(kube.status(ns, NAME)) == "orders-pg-replica-1"
        # Readers follow the pool, as clients of the read Service would: PgBouncer's read
        # database -> both replicas. Until its first read the rejoined server has no read
        # series (pg_stat_statements starts empty) and read QPS is unknown; after it, known.
        pg.write_pgbouncer_databases(pg.initial_databases())
        routed = time.monotonic()
        timed(
            "status.observed.readQPS known with reads on the rejoined replica",
            lambda: (kube.status(ns, NAME).get("observed") or {}).get("readQPS", "unknown") != "unknown",
            kube,
            ns,
            routed,
        )

        # A scale-in of orders-pg-replica would remove ordinal 1, the primary: refused.
        kube.patch_workload(ns, NAME, {"spec": {"replicas": {"minReplicas": 1, "maxReplicas": 1}}})
        asked = time.monotonic()
        timed(
            "ScalingLimited PrimaryWouldBeRemoved",
            lambda: (
                (c := kube.condition(ns, NAME, "ScalingLimited")).get("status") == "True"
                and c.get("reason") == "PrimaryWouldBeRemoved"
            ),
            kube,
            ns,
            asked,
        )
        print(f"ScalingLimited: {kube.condition(ns, NAME, 'ScalingLimited').get('message')}")
        print(f"status.observed: {kube.status(ns, NAME).get('observed')}")
        # Two more intervals: still refused, the StatefulSet still at 2.
        deadline = time.monotonic() + 2 * INTERVAL_S
        while time.monotonic() < deadline:
            assert kube.replicas(ns, REPLICA_SET) == 2, summary(kube, ns)
            assert kube.condition(ns, NAME, "ScalingLimited").get("reason") == "PrimaryWouldBeRemoved"
            time.sleep(0.5)
    finally:
        watch.stop()
        for run in runs:
            run.stop()
    assert watch.lowest == 2, f"the scale target went down to {watch.lowest}: a scale action removed a pod"
    assert sorted(kube.running_pods(ns, REPLICA_SET)) == ["orders-pg-replica-0", "orders-pg-replica-1"]
