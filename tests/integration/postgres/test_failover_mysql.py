"""Failover with real MariaDB while the operator runs (issue 11, item 4; the `mysql` preset).

Percona's MySQL layout: one StatefulSet ``orders-db`` (3 pods on the local control plane's kwok
nodes) holds every member, and the primary pod carries ``mysql.percona.com/primary=true``
(Percona Server for MySQL operator: its orchestrator hook sets the label on the new primary and
deletes it from the others; this test moves it the same way). The role metric
``mysql_global_variables_read_only`` (1 replica, 0 primary) confirms the label. Behind each pod
is the real MariaDB server of the same name (tests/support/mariadb.py, ``replicas=2`` with the
one-StatefulSet naming: ``orders-db-0`` the primary, ``orders-db-1`` and ``orders-db-2`` GTID
replicas with read_only=1), Debian's mysqld_exporter 0.14 on each (``--collect.global_variables``)
and a real Prometheus scraping them every second, labelled with this test's namespace. The
operator runs as ``rwscaler run -n <namespace>`` with the ServiceAccount's RBAC, on a
ReadWriteWorkload with ``replicas.statefulSet: orders-db`` (its count includes the primary),
``primary.roleLabels: PerconaMySQL``, the ``mysql`` preset and an EndpointSlice pooler. A
``mariadb`` client writes on the primary and another reads on a replica at fixed rates.

The failover (``MariaDbEnv.failover``): the primary turns read-only, ``orders-db-2`` (the highest
ordinal) is promoted (``STOP SLAVE; RESET SLAVE ALL; read_only=0``), ``orders-db-1`` and the old
primary ``orders-db-0`` replicate from it (read_only=1). Checked:

- between the promotion and the label's move, label and metric disagree: ScalingLimited reason
  RoleUnknown (the operator holds rather than guess);
- within two intervals of the label's move (plus two scrapes): status.primary.pod names
  ``orders-db-2`` and status.observed.writeQPS is known and non-zero while the writer runs on
  it; ``orders-db-2`` leaves the read pool (status.readEndpoints and the EndpointSlice); the old
  primary ``orders-db-0``, a caught-up replica at once, is in the pool;
- a scale-in to one read replica (the StatefulSet 3 -> 2 would remove ordinal 2, the primary) is
  refused: ScalingLimited reason PrimaryWouldBeRemoved, the StatefulSet stays at 3; throughout
  the test it never goes below 3.

The module's MariaDbEnv is reset (failed back, namespace label restored) after the test. Needs
the local control plane (`make cluster`) and MariaDB (`make pgenv-deps-mysql`); both fail
instead of skipping under RWSCALER_REQUIRE_ALL_TIERS=1. Run by pytest with this
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
from tests.support.mariadb import LoadRun, MariaDbEnv, mariadb_available
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
STATEFULSET, READ_SERVICE = "orders-db", "orders-db-read"
PRIMARY_LABEL = "mysql.percona.com/primary"
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
    name = f"rwt-failover-my-{uuid.uuid4().hex[:5]}"
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


@pytest.fixture(scope="module")
def mariadb_bed() -> Iterator[MariaDbEnv]:
    need(*mariadb_available())
    with MariaDbEnv(replicas=2, replica_statefulset=STATEFULSET) as env:
        yield env


@pytest.fixture
def db(mariadb_bed: MariaDbEnv, ns: str) -> Iterator[MariaDbEnv]:
    """The bed in its original layout, its series labelled with the test's namespace."""
    mariadb_bed.reset()
    mariadb_bed.set_namespace(ns)
    yield mariadb_bed
    mariadb_bed.reset()


# ---- what the test reads and does ---------------------------------------------------------------
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


def label_primary(kube: Kube, ns: str, pod: str, primary: bool) -> None:
    """Set or delete the Percona primary label on a pod (a merge patch; None deletes)."""
    kube.core.patch_namespaced_pod(
        pod, ns, {"metadata": {"labels": {PRIMARY_LABEL: "true" if primary else None}}}
    )


class SizeWatch:
    """Samples the StatefulSet's spec.replicas every half second: its lowest value."""

    def __init__(self, kube: Kube, ns: str) -> None:
        self.kube, self.ns = kube, ns
        self.lowest: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            n = self.kube.replicas(self.ns, STATEFULSET)
            self.lowest = n if self.lowest is None else min(self.lowest, n)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def spec(prometheus_url: str) -> dict[str, Any]:
    return {
        "primary": {"roleLabels": "PerconaMySQL"},
        # The StatefulSet's count includes the primary: 2 read replicas are 3 pods.
        "replicas": {"statefulSet": STATEFULSET, "minReplicas": 2, "maxReplicas": 2},
        "prometheus": {"url": prometheus_url, "timeout": "2s"},
        "metrics": {"preset": "mysql", "staleness": "30s"},
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
def test_failover_mysql_write_qps_read_pool_and_scale_in_follow_the_new_primary(
    plane: Plane, ns: str, db: MariaDbEnv, operator: Callable[[], OperatorProcess]
) -> None:
    kube = plane.kube
    kube.create_statefulset(ns, STATEFULSET, 3, image="percona/percona-server:8.0")
    pods = kube.wait_pods(ns, STATEFULSET, 3)
    assert pods == db.pod_names == ["orders-db-0", "orders-db-1", "orders-db-2"]
    label_primary(kube, ns, "orders-db-0", True)

    loads: list[LoadRun] = [db.start_load(read_rate=30, write_rate=20, duration=280)]
    watch = SizeWatch(kube, ns)
    try:
        kube.create_workload(ns, NAME, spec(db.prometheus_url))
        operator()

        # Before: orders-db-0 writes (by its label, confirmed by read_only=0), the others read.
        wait_for(
            "orders-db-0 the primary with write QPS, orders-db-1 and -2 in the pool",
            lambda: (
                primary_pod(s := kube.status(ns, NAME)) == "orders-db-0"
                and (write_qps(s) or 0) > 0
                and read_pool(s) == ["orders-db-1", "orders-db-2"]
                and slice_pods(kube, ns) == ["orders-db-1", "orders-db-2"]
            ),
            timeout=90,
            last=lambda: summary(kube, ns),
        )

        # The failover in the databases; the label still names orders-db-0: they disagree.
        loads[-1].stop()  # its writer would hit the read-only old primary
        steps = db.failover("orders-db-2")
        print(f"failover steps (cumulative s): {steps}")
        loads.append(db.start_load(read_rate=30, write_rate=20, duration=250))  # writes on orders-db-2
        promoted = time.monotonic()
        timed(
            "ScalingLimited RoleUnknown while label and read_only disagree",
            lambda: (
                (c := kube.condition(ns, NAME, "ScalingLimited")).get("status") == "True"
                and c.get("reason") == "RoleUnknown"
            ),
            kube,
            ns,
            promoted,
        )

        # The label moves, as Percona's operator moves it.
        label_primary(kube, ns, "orders-db-0", False)
        label_primary(kube, ns, "orders-db-2", True)
        moved = time.monotonic()
        timed(
            "status.primary.pod orders-db-2 with write QPS known and non-zero",
            lambda: primary_pod(s := kube.status(ns, NAME)) == "orders-db-2" and (write_qps(s) or 0) > 0,
            kube,
            ns,
            moved,
        )
        timed(
            "orders-db-2 out of the read pool, orders-db-0 in it as a replica",
            lambda: (
                read_pool(kube.status(ns, NAME)) == ["orders-db-0", "orders-db-1"]
                and slice_pods(kube, ns) == ["orders-db-0", "orders-db-1"]
            ),
            kube,
            ns,
            moved,
        )

        # One read replica: the StatefulSet 3 -> 2 would remove ordinal 2, the primary: refused.
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
        deadline = time.monotonic() + 2 * INTERVAL_S
        while time.monotonic() < deadline:
            assert kube.replicas(ns, STATEFULSET) == 3, summary(kube, ns)
            assert kube.condition(ns, NAME, "ScalingLimited").get("reason") == "PrimaryWouldBeRemoved"
            time.sleep(0.5)
    finally:
        watch.stop()
        for load in loads:
            load.stop()
    assert watch.lowest == 3, f"the StatefulSet went down to {watch.lowest}: a scale action removed a pod"
    assert kube.running_pods(ns, STATEFULSET) == ["orders-db-0", "orders-db-1", "orders-db-2"]
