"""Fixtures of the end-to-end tier: the chart installed with helm, the operator's image running
under the chart's ServiceAccount, and a workload it must reconcile.

One set of checks (test_operator_image.py), two targets:

- `local` (the default): the local control plane (`make cluster`). kwok's nodes run no
  containers, so the chart is installed with `replicas=0` (everything but a running pod) and the
  image runs with podman exactly as a kubelet would start the chart's pod:
  hack/image/run-in-cluster.sh mounts the ServiceAccount's token, the cluster CA and the
  namespace at /var/run/secrets/kubernetes.io/serviceaccount/, sets KUBERNETES_SERVICE_HOST and
  _PORT, and applies the chart's security context (read-only root, UID 65532, no capabilities).
  The container's arguments are the chart Deployment's own, except the liveness address, which
  moves from 0.0.0.0:8080 to a free port on 127.0.0.1 (the container shares the host network).
- `kind` (`RWSCALER_E2E_TARGET=kind`, run by `make kind-e2e` on a machine with Docker): the
  chart's Deployment runs the image in a kind cluster. The test's Prometheus and exporter must
  then be reachable from the pods: hack/kind/e2e.sh sets RWSCALER_E2E_LISTEN_HOST to the host's
  address on kind's Docker network. Untested here (no Docker engine).

Prometheus (Debian's) scrapes a ControlledExporter whose gauges the test sets; the workload
reads them through the `custom` preset and omits `spec.prometheus`, so the chart's
`prometheus.url` value (the operator's `--prometheus-url`) is what it uses.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from e2e_helpers import NAMESPACE, RELEASE, REPO, TARGET, Deployed, MetricsEnv
from tests.integration.chart.chart_helpers import CHART, Helm, helm_path
from tests.integration.cluster.cluster_helpers import Kube, wait_for
from tests.support.cluster import cluster_available, kubeconfig_path
from tests.support.exporter import ControlledExporter
from tests.support.image import PODMAN, image_ref, podman_available
from tests.support.ports import free_port
from tests.support.procs import ManagedProcess
from tests.support.prometheus import PrometheusServer, prometheus_binary
from tests.support.tiers import need

SCRAPE_S = 0.5
_HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.timeout(300))


def _kubeconfig() -> Path:
    if TARGET == "kind":
        return Path(os.environ["KUBECONFIG"])
    return kubeconfig_path()


@pytest.fixture(scope="session")
def admin() -> Kube:
    if TARGET == "local":
        ok, reason = cluster_available()
        need(ok, reason)
    return Kube(_kubeconfig())


@pytest.fixture(scope="session")
def helm() -> Helm:
    path = Path(os.environ["RWSCALER_E2E_HELM"]) if TARGET == "kind" else helm_path()
    need(path.is_file(), f"no helm binary at {path}: run `make helm` (builds it from Go modules)")
    return Helm(path)


@pytest.fixture(scope="module")
def metrics() -> Iterator[MetricsEnv]:
    need(prometheus_binary() is not None, "no prometheus binary: run `make pgenv-deps`")
    host = os.environ.get("RWSCALER_E2E_LISTEN_HOST", "127.0.0.1")
    with (
        ControlledExporter(host=host) as exporter,
        PrometheusServer([exporter.target("rww")], scrape_interval=SCRAPE_S, host=host) as prom,
    ):
        prom.wait_for_targets()
        yield MetricsEnv(exporter, prom, prom.url)


def _deployment(kube: Kube) -> dict[str, Any]:
    out = kube.kubectl("-n", NAMESPACE, "get", "deployment", RELEASE, "-o", "yaml")
    return dict(yaml.safe_load(out))


@pytest.fixture(scope="module")
def release(admin: Kube, helm: Helm, metrics: MetricsEnv) -> Iterator[dict[str, Any]]:
    """The chart, installed by helm with the image and the test's Prometheus as the default."""
    values = [f"prometheus.url={metrics.url}", "logLevel=debug"]
    if TARGET == "local":
        ref = image_ref()
        need(ref is not None, "no operator image: run `make image`")
        repo, tag = str(ref).rsplit(":", 1)
        values += ["replicas=0", f"image.repository={repo}", f"image.tag={tag}"]
    else:
        values += [
            "replicas=1",
            f"image.repository={os.environ['RWSCALER_E2E_IMAGE_REPOSITORY']}",
            f"image.tag={os.environ['RWSCALER_E2E_IMAGE_TAG']}",
        ]
    kubeconfig = str(_kubeconfig())
    args = ["upgrade", "--install", RELEASE, str(CHART), "-n", NAMESPACE, "--create-namespace"]
    args += ["--kubeconfig", kubeconfig, "--wait", "--timeout", "120s"]
    for value in values:
        args += ["--set", value]
    helm.run(*args)
    yield _deployment(admin)
    helm.run("uninstall", RELEASE, "-n", NAMESPACE, "--kubeconfig", kubeconfig, "--wait", check=False)
    admin.delete_namespace(NAMESPACE)


@pytest.fixture(scope="module")
def operator(
    admin: Kube, release: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployed]:
    pod = release["spec"]["template"]["spec"]
    sa = pod["serviceAccountName"]
    if TARGET == "kind":
        admin.kubectl("-n", NAMESPACE, "rollout", "status", f"deploy/{RELEASE}", "--timeout=120s")
        yield Deployed(admin, sa, None, None, None)
        return
    need(*podman_available())
    port = free_port()
    name = f"rwscaler-e2e-{uuid.uuid4().hex[:6]}"
    # The pod the chart's Deployment describes: its ServiceAccount, image and args (the liveness
    # and metrics endpoints moved to 127.0.0.1), started as a kubelet would (hack/image/run-in-cluster.sh).
    argv = [str(REPO / "hack/image/run-in-cluster.sh"), "-n", NAMESPACE, "--from-deployment", RELEASE]
    metrics_port = free_port()
    argv += ["--name", name, "--liveness-port", str(port), "--metrics-port", str(metrics_port)]
    url = f"http://127.0.0.1:{port}/healthz"
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    process = ManagedProcess("rwscaler-image", argv, log_path=log)
    process.start()
    deployed = Deployed(admin, sa, name, process, url, f"http://127.0.0.1:{metrics_port}/metrics")

    def answering() -> bool:
        assert process.running(), f"the operator container exited:\n{process.log_tail()}"
        with contextlib.suppress(OSError):
            return deployed.liveness() == 200
        return False

    wait_for("the operator's liveness endpoint", answering, timeout=90, interval=0.5)
    yield deployed
    process.stop(timeout=20)
    # The script removes its container; make sure of it after a hard stop too.
    subprocess.run([*PODMAN, "rm", "--force", name], capture_output=True, check=False)
