"""What the two failover tests share (test_failover_postgres.py, test_failover_mysql.py).

The control plane set up as tests/integration/cluster/conftest.py sets it up (the CRD, the
operator's RBAC and a ServiceAccount kubeconfig, per module), a namespace per test, the operator
as `rwscaler run`, and what the tests read from status and the EndpointSlice. The fixtures
(`plane`, `ns`, `operator`) reach the tests through this folder's conftest.py; the rest is
imported by the two modules.
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

NAME = "orders"
READ_SERVICE = "orders-read"
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

    What this module creates it deletes at the end and waits until it is gone; what was there
    (the cluster tests' session, a user's install) it leaves as it found it."""
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
    # What this module created it deletes, and waits until it is gone, so that the other
    # failover module (or the README test) never meets objects still being deleted.
    created = set(_plane_objects(kube, files)) - existed
    if created:
        kube.kubectl("delete", "--ignore-not-found", "--timeout=90s", *sorted(created))


@pytest.fixture
def ns(plane: Plane) -> Iterator[str]:
    name = f"rwt-failover-{uuid.uuid4().hex[:5]}"
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
    """Samples a StatefulSet's spec.replicas every half second: its lowest value."""

    def __init__(self, kube: Kube, ns: str, statefulset: str) -> None:
        self.kube, self.ns, self.statefulset = kube, ns, statefulset
        self.lowest: int | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            n = self.kube.replicas(self.ns, self.statefulset)
            self.lowest = n if self.lowest is None else min(self.lowest, n)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def timed(what: str, probe: Callable[[], Any], kube: Kube, ns: str, since: float) -> float:
    """Wait (at most WITHIN_S after ``since``) for ``probe``; seconds it took since ``since``."""
    wait_for(
        what, probe, timeout=max(0.5, since + WITHIN_S - time.monotonic()), last=lambda: summary(kube, ns)
    )
    took = time.monotonic() - since
    print(f"{what}: {took:.1f}s")
    return took


def limited_by(kube: Kube, ns: str, reason: str) -> Callable[[], bool]:
    """A probe: the workload's ScalingLimited is True with `reason`."""

    def probe() -> bool:
        cond = kube.condition(ns, NAME, "ScalingLimited")
        return cond.get("status") == "True" and cond.get("reason") == reason

    return probe


def assert_scale_in_refused(kube: Kube, ns: str, statefulset: str, count: int) -> None:
    """Ask for one read replica, a scale-in that would remove the primary: ScalingLimited
    PrimaryWouldBeRemoved within two intervals, and the StatefulSet stays at `count` for two more."""
    kube.patch_workload(ns, NAME, {"spec": {"replicas": {"minReplicas": 1, "maxReplicas": 1}}})
    timed(
        "ScalingLimited PrimaryWouldBeRemoved",
        limited_by(kube, ns, "PrimaryWouldBeRemoved"),
        kube,
        ns,
        time.monotonic(),
    )
    print(f"ScalingLimited: {kube.condition(ns, NAME, 'ScalingLimited').get('message')}")
    print(f"status.observed: {kube.status(ns, NAME).get('observed')}")
    deadline = time.monotonic() + 2 * INTERVAL_S
    while time.monotonic() < deadline:  # a state that must hold, sampled: no event to wait for
        assert kube.replicas(ns, statefulset) == count, summary(kube, ns)
        assert kube.condition(ns, NAME, "ScalingLimited").get("reason") == "PrimaryWouldBeRemoved"
        time.sleep(0.5)
