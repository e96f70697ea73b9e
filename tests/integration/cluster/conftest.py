"""Fixtures of the operator's tests on the local control plane (`make cluster`).

- `plane` (session): skips, naming `make cluster`, when the plane is not up; applies the CRD and
  manifests/rbac with kubectl (and at the end deletes those of them it created); writes a kubeconfig for the operator's ServiceAccount from a
  `kubectl create token` (hack/cluster/sa-kubeconfig.sh), so every operator these tests start
  runs with exactly the RBAC of manifests/rbac and nothing more.
- `prometheus` (session): a ControlledExporter and the Debian Prometheus scraping it every 0.5 s
  (skips, naming `make pgenv-deps`, without the binary).
- `ns` (function): a namespace of its own for each test, deleted afterwards.
- `signals` (function): the test namespace's series on the exporter.
- `db` (function): the primary StatefulSet `db` (1 pod) and the replica StatefulSet `db-replica`
  (2 pods), Running under kwok.
- `operator` (function): a factory starting `rwscaler run -n <ns>` as the ServiceAccount.

Every test here is marked `cluster` (`pytest -m cluster`).
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cluster_helpers import (
    CRD_FILE,
    RBAC_DIR,
    REPLICA_SET,
    REPO,
    SA_NAME,
    SA_NAMESPACE,
    Kube,
    Metrics,
    OperatorProcess,
    Plane,
    Signals,
    forget_operators,
    register_operator,
    wait_for,
)
from tests.support.cluster import cluster_available, kubeconfig_path
from tests.support.exporter import ControlledExporter
from tests.support.prometheus import PrometheusServer, prometheus_binary
from tests.support.tiers import need

_HERE = Path(__file__).resolve().parent
SCRAPE_S = 0.5


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.cluster)
            if item.get_closest_marker("timeout") is None:  # a test at 1,000 workloads sets its own
                item.add_marker(pytest.mark.timeout(240))


def _existing(kube: Kube, files: list[Path]) -> set[str]:
    """The objects of these manifests that exist now, as `kind/name` (kubectl's -o name)."""
    args = ["get", "--ignore-not-found", "-o", "name"]
    for f in files:
        args += ["-f", str(f)]
    return set(kube.kubectl(*args).split())


@pytest.fixture(scope="session")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Plane]:
    need(*cluster_available())
    kube = Kube(kubeconfig_path())
    rbac = [
        RBAC_DIR / "namespace.yaml",
        *sorted(p for p in RBAC_DIR.glob("*.yaml") if p.name != "namespace.yaml"),
    ]
    # What this session creates it removes at the end; what was there (a user's install, the
    # CRD with someone's workloads) it leaves as it found it.
    # A session that ended just before deleted its namespace without waiting: while it is still
    # terminating, nothing can be created in it.
    phase = kube.kubectl("get", "--ignore-not-found", "-o", "jsonpath={.status.phase}", "-f", str(rbac[0]))
    if phase.strip() == "Terminating":
        kube.kubectl("wait", "--for=delete", "--timeout=120s", "-f", str(rbac[0]))
    existed = _existing(kube, [CRD_FILE, *rbac])
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
    created = _existing(kube, [CRD_FILE, *rbac]) - existed
    if created:
        kube.kubectl("delete", "--wait=false", "--ignore-not-found", *sorted(created))


@pytest.fixture(scope="session")
def prometheus(plane: Plane) -> Iterator[Metrics]:
    need(
        prometheus_binary() is not None,
        "no prometheus binary: run `make pgenv-deps` (Debian's prometheus package)",
    )
    with (
        ControlledExporter() as exporter,
        PrometheusServer([exporter.target("rww")], scrape_interval=SCRAPE_S) as prom,
    ):
        prom.wait_for_targets()
        yield Metrics(exporter, prom)


@pytest.fixture
def kube(plane: Plane) -> Kube:
    return plane.kube


@pytest.fixture
def ns(plane: Plane, request: pytest.FixtureRequest) -> Iterator[str]:
    short = request.node.name.removeprefix("test_").replace("_", "-").lower()[:30].strip("-")
    name = f"rwt-{short}-{uuid.uuid4().hex[:5]}"
    plane.kube.create_namespace(name)
    # The ServiceAccount admission plugin refuses pods until the namespace's default SA exists.
    wait_for(
        f"the default ServiceAccount of {name}",
        lambda: any(
            sa.metadata.name == "default"
            for sa in plane.kube.core.list_namespaced_service_account(name).items
        ),
    )
    yield name
    plane.kube.delete_namespace(name)


@pytest.fixture
def signals(prometheus: Metrics, ns: str) -> Iterator[Signals]:
    s = Signals(prometheus.exporter, ns)
    yield s
    s.clear()


@pytest.fixture
def db(kube: Kube, ns: str) -> None:
    kube.create_statefulset(ns, "db", 1)
    kube.create_statefulset(ns, REPLICA_SET, 2)
    kube.wait_pods(ns, "db", 1)
    kube.wait_pods(ns, REPLICA_SET, 2)


@pytest.fixture
def operator(plane: Plane, ns: str, tmp_path: Path) -> Iterator[Callable[..., OperatorProcess]]:
    started: list[OperatorProcess] = []

    def start(*extra_args: str) -> OperatorProcess:
        log = tmp_path / f"operator-{len(started)}.log"
        op = OperatorProcess(ns, plane.sa_kubeconfig, log, extra_args).start()
        started.append(op)
        register_operator(op)
        return op

    yield start
    for op in started:
        op.stop()
    forget_operators()
