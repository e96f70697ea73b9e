"""The chart on the local control plane (`make cluster`): `helm install` into a fresh namespace,
the objects exist and the ServiceAccount gets exactly its rights, `helm upgrade` changes them,
and `helm uninstall` removes the release but not the CRD, nor a ReadWriteWorkload made meanwhile.

Each test has its own release name and namespace (never `rwscaler`/`rwscaler-system`, which the
operator's cluster tests use), so the cluster-scoped objects (named after the release) never
collide; everything it created is removed at the end, even when it fails. Nodes are kwok fakes:
the operator's image is never pulled, so the tests check objects, not a running operator.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from chart_helpers import CHART, REPO, Helm
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from tests.support.cluster import cluster_available, kubeconfig_path
from tests.support.ports import free_port
from tests.support.procs import ManagedProcess
from tests.support.tiers import need

GROUP, VERSION, PLURAL = "rwscaler.io", "v1alpha1", "readwriteworkloads"
CRD_NAME = f"{PLURAL}.{GROUP}"
RWSCALER = str(Path(sys.executable).parent / "rwscaler")
T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60.0) -> T:
    """Poll `probe` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.1
    while True:
        got = probe()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def _absent(call: Callable[[], Any]) -> bool:
    try:
        call()
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


@dataclass
class Release:
    """One test's release: its name, namespace, and what to remove afterwards."""

    helm: Helm
    api: k8s.ApiClient
    name: str
    namespace: str
    extra_namespaces: list[str] = field(default_factory=list)

    @property
    def fullname(self) -> str:
        return f"{self.name}-rwscaler"

    def helm_cmd(self, *args: str, check: bool = True) -> str:
        done = self.helm.run(
            *args, "--namespace", self.namespace, "--kubeconfig", str(kubeconfig_path()), check=check
        )
        return done.stdout + done.stderr

    def install(self, *values: str) -> str:
        sets = [a for v in values for a in ("--set", v)]
        return self.helm_cmd("install", self.name, str(CHART), "--create-namespace", *sets)

    def upgrade(self, *values: str) -> str:
        sets = [a for v in values for a in ("--set", v)]
        return self.helm_cmd("upgrade", self.name, str(CHART), "--reuse-values", *sets)

    def can(
        self, verb: str, resource: str, namespace: str, group: str = "", subresource: str = "", name: str = ""
    ) -> bool:
        """Whether the release's ServiceAccount may do this (a SubjectAccessReview by the admin)."""
        user = f"system:serviceaccount:{self.namespace}:{self.fullname}"
        review = k8s.V1SubjectAccessReview(
            spec=k8s.V1SubjectAccessReviewSpec(
                user=user,
                groups=[
                    "system:serviceaccounts",
                    f"system:serviceaccounts:{self.namespace}",
                    "system:authenticated",
                ],
                resource_attributes=k8s.V1ResourceAttributes(
                    namespace=namespace,
                    group=group,
                    resource=resource,
                    subresource=subresource or None,
                    verb=verb,
                    name=name or None,
                ),
            )
        )
        return bool(k8s.AuthorizationV1Api(self.api).create_subject_access_review(review).status.allowed)

    def cleanup(self) -> None:
        self.helm_cmd("uninstall", self.name, "--wait", "--ignore-not-found", check=False)
        rbac = k8s.RbacAuthorizationV1Api(self.api)
        core = k8s.CoreV1Api(self.api)
        for delete in (rbac.delete_cluster_role_binding, rbac.delete_cluster_role):
            _absent(lambda delete=delete: delete(self.fullname))
        for ns in (self.namespace, *self.extra_namespaces):
            _absent(lambda ns=ns: core.delete_namespace(ns))


@pytest.fixture(scope="module")
def api() -> Iterator[k8s.ApiClient]:
    ok, reason = cluster_available()
    need(ok, reason)
    client = k8s_config.new_client_from_config(config_file=str(kubeconfig_path()))
    yield client
    client.close()


@pytest.fixture
def release(helm: Helm, api: k8s.ApiClient) -> Iterator[Release]:
    suffix = uuid.uuid4().hex[:6]
    rel = Release(helm, api, name=f"rwt{suffix}", namespace=f"rwscaler-chart-{suffix}")
    try:
        yield rel
    finally:
        rel.cleanup()


def _workload(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ReadWriteWorkload",
        "metadata": {"name": "orders-db", "namespace": namespace},
        "spec": {
            "primary": {"statefulSet": "orders-pg"},
            "replicas": {"statefulSet": "orders-pg-replica", "minReplicas": 1, "maxReplicas": 3},
            "prometheus": {"url": "http://127.0.0.1:9"},
            "metrics": {"preset": "postgres"},
            "objectives": {"readLatencyP99": "50ms", "writeLatencyP99": "20ms", "maxReplicationLag": "5s"},
            "pooler": {"kind": "None"},
            "mode": "Recommend",
        },
    }


def test_install_upgrade_uninstall(release: Release, api: k8s.ApiClient) -> None:
    apps, core, rbac = k8s.AppsV1Api(api), k8s.CoreV1Api(api), k8s.RbacAuthorizationV1Api(api)
    policy, ext = k8s.PolicyV1Api(api), k8s.ApiextensionsV1Api(api)
    custom = k8s.CustomObjectsApi(api)
    ns, name = release.namespace, release.fullname

    out = release.install("replicas=0")
    assert "STATUS: deployed" in out, out
    assert "kubectl get rww -A" in out  # NOTES.txt

    # the objects exist, named after the release
    deployment = apps.read_namespaced_deployment(name, ns)
    assert deployment.spec.replicas == 0
    assert core.read_namespaced_service_account(name, ns)
    assert rbac.read_cluster_role(name)
    assert rbac.read_cluster_role_binding(name).subjects[0].namespace == ns
    assert rbac.read_namespaced_role(f"{name}-leader-election", ns)
    assert rbac.read_namespaced_role_binding(f"{name}-leader-election", ns)
    assert _absent(lambda: policy.read_namespaced_pod_disruption_budget(name, ns))
    assert ext.read_custom_resource_definition(CRD_NAME)
    args = deployment.spec.template.spec.containers[0].args
    assert args[args.index("--lease-namespace") + 1] == ns
    assert args[args.index("--log-level") + 1] == "info"

    # the ServiceAccount may do what the operator does, anywhere, and its Lease; nothing more
    other = "default"
    assert release.can("patch", "statefulsets", other, group="apps", subresource="scale")
    assert release.can("watch", "readwriteworkloads", other, group=GROUP)
    assert release.can("create", "leases", ns, group="coordination.k8s.io")
    assert not release.can("create", "leases", other, group="coordination.k8s.io")
    assert not release.can("list", "leases", ns, group="coordination.k8s.io")
    assert not release.can("patch", "statefulsets", other, group="apps")
    assert not release.can("delete", "pods", other)

    # a workload created while the chart is installed
    crd_version = ext.read_custom_resource_definition(CRD_NAME).metadata.resource_version
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, _workload(ns))

    # upgrade: two replicas bring a disruption budget and a rolling update; the log level changes
    out = release.upgrade("replicas=2", "logLevel=debug")
    assert "STATUS: deployed" in out, out
    deployment = apps.read_namespaced_deployment(name, ns)
    assert deployment.spec.replicas == 2
    assert deployment.spec.strategy.type == "RollingUpdate"
    args = deployment.spec.template.spec.containers[0].args
    assert args[args.index("--log-level") + 1] == "debug"
    assert policy.read_namespaced_pod_disruption_budget(name, ns).spec.max_unavailable == 1

    # back to one replica: the budget goes
    release.upgrade("replicas=1")
    wait_for(
        "the PodDisruptionBudget to go",
        lambda: _absent(lambda: policy.read_namespaced_pod_disruption_budget(name, ns)),
    )

    # uninstall: the release's objects go; the CRD and the workload stay
    release.helm_cmd("uninstall", release.name, "--wait")
    wait_for("the ClusterRole to go", lambda: _absent(lambda: rbac.read_cluster_role(name)))
    assert _absent(lambda: rbac.read_cluster_role_binding(name))
    assert _absent(lambda: apps.read_namespaced_deployment(name, ns))
    assert _absent(lambda: core.read_namespaced_service_account(name, ns))
    assert _absent(lambda: rbac.read_namespaced_role(f"{name}-leader-election", ns))
    crd = ext.read_custom_resource_definition(CRD_NAME)
    assert crd.metadata.deletion_timestamp is None
    assert crd.metadata.resource_version == crd_version
    workload = custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "orders-db")
    assert workload["metadata"].get("deletionTimestamp") is None


def test_namespaced_install(release: Release, api: k8s.ApiClient) -> None:
    core, rbac = k8s.CoreV1Api(api), k8s.RbacAuthorizationV1Api(api)
    watched = f"{release.namespace}-w"
    release.extra_namespaces.append(watched)
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=watched)))
    release.install("replicas=0", f"watchNamespaces={{{watched}}}")
    name = release.fullname

    assert _absent(lambda: rbac.read_cluster_role(name))
    assert _absent(lambda: rbac.read_cluster_role_binding(name))
    assert rbac.read_namespaced_role(name, watched)
    assert rbac.read_namespaced_role_binding(name, watched)
    args = (
        k8s.AppsV1Api(api)
        .read_namespaced_deployment(name, release.namespace)
        .spec.template.spec.containers[0]
        .args
    )
    assert args[args.index("-n") + 1] == watched

    assert release.can("patch", "statefulsets", watched, group="apps", subresource="scale")
    assert release.can("create", "events", watched)
    assert not release.can("patch", "statefulsets", "default", group="apps", subresource="scale")
    assert not release.can("list", "pods", "default")
    leases = {"group": "coordination.k8s.io"}
    assert release.can("update", "leases", release.namespace, name=name, **leases)
    assert not release.can("update", "leases", release.namespace, name="another-lease", **leases)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_the_operator_runs_with_the_chart_rbac(release: Release, api: k8s.ApiClient, tmp_path: Path) -> None:
    """`rwscaler run` with the Deployment's own arguments, as the release's ServiceAccount (a bound
    token, as a kubelet gives a pod), in namespaced mode (so it never touches other tests'
    workloads): it takes the Lease and reports on a workload, with no request refused."""
    core, custom = k8s.CoreV1Api(api), k8s.CustomObjectsApi(api)
    coordination = k8s.CoordinationV1Api(api)
    watched = f"{release.namespace}-w"
    release.extra_namespaces.append(watched)
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=watched)))
    release.install("replicas=0", f"watchNamespaces={{{watched}}}")
    name, ns = release.fullname, release.namespace

    sa_kubeconfig = tmp_path / "sa.kubeconfig"
    subprocess.run(
        [str(REPO / "hack/cluster/sa-kubeconfig.sh"), ns, name, str(sa_kubeconfig), "1h"],
        check=True,
        capture_output=True,
        text=True,
    )
    container = k8s.AppsV1Api(api).read_namespaced_deployment(name, ns).spec.template.spec.containers[0]
    args = list(container.args)
    port = free_port()
    health = f"http://127.0.0.1:{port}/healthz"
    args[args.index("--liveness") + 1] = health
    assert args[0] == "run"
    operator = ManagedProcess(
        "rwscaler",
        [RWSCALER, *args, "--kubeconfig", str(sa_kubeconfig)],
        log_path=tmp_path / "operator.log",
        env={"POD_NAME": f"{name}-test", "POD_NAMESPACE": ns},
    )
    operator.start()
    try:

        def lease() -> k8s.V1Lease | None:
            try:
                return coordination.read_namespaced_lease(name, ns)
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise

        try:

            def held() -> k8s.V1Lease | None:
                current = lease()
                return current if current is not None and current.spec.holder_identity else None

            taken = wait_for("the operator to take its Lease", held)
            assert taken.spec.holder_identity.startswith(f"{name}-test"), taken.spec
            # renewed (update), not just created
            first = taken.spec.renew_time
            wait_for("the operator to renew its Lease", lambda: lease().spec.renew_time != first, timeout=30)
            wait_for("the liveness endpoint", lambda: _healthy(health))
            custom.create_namespaced_custom_object(GROUP, VERSION, watched, PLURAL, _workload(watched))

            def ready() -> dict[str, Any] | None:
                status = (
                    custom.get_namespaced_custom_object(GROUP, VERSION, watched, PLURAL, "orders-db").get(
                        "status"
                    )
                    or {}
                )
                return next((c for c in status.get("conditions", []) if c.get("type") == "Ready"), None)

            condition = wait_for("the operator to report on the workload", ready)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\noperator log:\n{operator.log_tail(40)}") from None
        # no StatefulSet exists: the operator says so, which needs get on statefulsets
        assert condition["status"] == "False", condition
        assert condition["reason"] == "PrimaryStatefulSetNotFound", condition
        assert operator.running(), operator.log_tail(40)
    finally:
        operator.stop()
    # a clean stop hands the Lease back (update)
    released = lease()
    assert released is not None and not released.spec.holder_identity, released
    log = (tmp_path / "operator.log").read_text(errors="replace")
    assert "forbidden" not in log.lower(), log[-4000:]
