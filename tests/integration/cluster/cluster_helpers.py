"""Helpers of the operator's tests on the local control plane (fixtures are in conftest.py).

- `Kube`: the admin's view of the cluster (the `kubernetes` client on the admin kubeconfig) with
  the few reads and writes the tests need, and `kubectl apply` for manifests as a user would;
- `OperatorProcess`: `rwscaler run -n <namespace>` as a subprocess with the ServiceAccount
  kubeconfig, so the operator has exactly the RBAC of manifests/rbac;
- `Signals`: the series the ControlledExporter serves for one test namespace (QPS, p99s and
  per-pod lag as gauges), which Prometheus scrapes and the `custom` queries below select;
- `wait_for`: a bounded poll that fails with what it last saw and the operator's log.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

REPO = Path(__file__).resolve().parents[3]
if str(REPO) not in sys.path:  # plain `pytest` does not put the checkout on sys.path
    sys.path.insert(0, str(REPO))

from tests.support.cluster import cache_dir  # noqa: E402
from tests.support.exporter import ControlledExporter  # noqa: E402
from tests.support.procs import ManagedProcess  # noqa: E402
from tests.support.prometheus import PrometheusServer  # noqa: E402

GROUP, VERSION, PLURAL = "rwscaler.io", "v1alpha1", "readwriteworkloads"
CRD_FILE = REPO / "crds" / "readwriteworkloads.rwscaler.io.yaml"
RBAC_DIR = REPO / "manifests" / "rbac"
SA_NAMESPACE, SA_NAME = "rwscaler-system", "rwscaler"
PRIMARY_SET, REPLICA_SET, READ_SERVICE = "db", "db-replica", "db-read"
PRIMARY_POD = f"{PRIMARY_SET}-0"
SLICE_NAME = f"{READ_SERVICE}-rwscaler"
RWSCALER = str(Path(sys.executable).parent / "rwscaler")

# Objectives used by every test workload (spec below): read 50 ms, write 20 ms, lag 5 s.
READ_OBJECTIVE, WRITE_OBJECTIVE, LAG_OBJECTIVE = 0.050, 0.020, 5.0

T = TypeVar("T")


def kubectl_binary() -> str:
    found = sorted(glob.glob(str(cache_dir() / "bin" / "kubectl-*" / "kubectl")))
    if found:
        return found[-1]
    on_path = shutil.which("kubectl")
    if on_path is None:
        raise RuntimeError("no kubectl: run `make cluster` (it builds one)")
    return on_path


def replica_pod(ordinal: int) -> str:
    return f"{REPLICA_SET}-{ordinal}"


# ---- the workload's metrics, as the exporter serves them ------------------------------------


@dataclass
class Metrics:
    """The session's exporter and the Prometheus scraping it."""

    exporter: ControlledExporter
    prometheus: PrometheusServer


CUSTOM_QUERIES = {
    "readQPS": 'max(rww_qps{namespace=~"${namespace}", side="read"})',
    "writeQPS": 'max(rww_qps{namespace=~"${namespace}", side="write"})',
    "readLatencyP99": 'max(rww_latency_p99_seconds{namespace=~"${namespace}", side="read"})',
    "writeLatencyP99": 'max(rww_latency_p99_seconds{namespace=~"${namespace}", side="write"})',
    "replicationLag": 'max by (pod) (rww_lag_seconds{namespace=~"${namespace}", pod=~"${replica_pods}"})',
}


class Signals:
    """What one test's database "reports": gauges keyed by the test namespace and fake pod names."""

    def __init__(self, exporter: ControlledExporter, namespace: str) -> None:
        self.exporter = exporter
        self.namespace = namespace

    def set(
        self,
        *,
        read_qps: float = 1000.0,
        write_qps: float = 100.0,
        read_p99: float = 0.6 * READ_OBJECTIVE,
        write_p99: float = 0.5 * WRITE_OBJECTIVE,
    ) -> None:
        ns = self.namespace
        self.exporter.set("rww_qps", {"namespace": ns, "side": "read"}, read_qps)
        self.exporter.set("rww_qps", {"namespace": ns, "side": "write"}, write_qps)
        self.exporter.set("rww_latency_p99_seconds", {"namespace": ns, "side": "read"}, read_p99)
        self.exporter.set("rww_latency_p99_seconds", {"namespace": ns, "side": "write"}, write_p99)

    def lag(self, ordinals: Iterable[int], seconds: float) -> None:
        for i in ordinals:
            self.exporter.set(
                "rww_lag_seconds", {"namespace": self.namespace, "pod": replica_pod(i)}, seconds
            )

    def clear(self) -> None:
        for name in ("rww_qps", "rww_latency_p99_seconds", "rww_lag_seconds"):
            for labels in self._series(name):
                self.exporter.remove(name, labels)

    def _series(self, name: str) -> list[dict[str, str]]:
        text = self.exporter.render()
        out = []
        for line in text.splitlines():
            if line.startswith(name + "{") and f'namespace="{self.namespace}"' in line:
                body = line[len(name) + 1 : line.index("}")]
                out.append(dict(kv.split("=", 1) for kv in body.split(",")))
        return [{k: v.strip('"') for k, v in labels.items()} for labels in out]


def workload_spec(prometheus_url: str, **overrides: Any) -> dict[str, Any]:
    """A fast-ticking spec over the test's series; `overrides` replace top-level keys or merge behavior."""
    behavior = {
        "intervalSeconds": 1,
        "tolerance": 0.1,
        "scaleUp": {"stabilizationWindowSeconds": 0, "maxStep": 1},
        "scaleDown": {"stabilizationWindowSeconds": 3600, "maxStep": 1},
        "readPool": {"reentrySeconds": 2, "reentryLagRatio": 0.5},
    }
    behavior.update(overrides.pop("behavior", {}))
    spec: dict[str, Any] = {
        "primary": {"statefulSet": PRIMARY_SET},
        "replicas": {"statefulSet": REPLICA_SET, "minReplicas": 1, "maxReplicas": 4},
        "prometheus": {"url": prometheus_url, "timeout": "2s"},
        "metrics": {"preset": "custom", "queries": dict(CUSTOM_QUERIES), "staleness": "30s"},
        "objectives": {"readLatencyP99": "50ms", "writeLatencyP99": "20ms", "maxReplicationLag": "5s"},
        "pooler": {"kind": "EndpointSlice", "readService": READ_SERVICE},
        "behavior": behavior,
        "mode": "Enforce",
    }
    spec.update(overrides)
    return spec


# ---- the cluster, as the admin sees it ------------------------------------------------------


def statefulset_body(name: str, replicas: int, image: str = "postgres:15") -> dict[str, Any]:
    """A StatefulSet of `replicas` database pods labelled app=<name> (kwok plays the kubelet)."""
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                # Nothing runs: the image is never pulled.
                "spec": {
                    "containers": [
                        {"name": "db", "image": image, "ports": [{"name": "postgres", "containerPort": 5432}]}
                    ]
                },
            },
        },
    }


def workload_body(
    name: str, spec: Mapping[str, Any], annotations: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """A ReadWriteWorkload named `name` with this spec."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "ReadWriteWorkload",
        "metadata": {"name": name, "annotations": dict(annotations or {})},
        "spec": dict(spec),
    }


class Kube:
    def __init__(self, kubeconfig: Path) -> None:
        self.kubeconfig = kubeconfig
        self.api = k8s_config.new_client_from_config(config_file=str(kubeconfig))
        self.core = k8s.CoreV1Api(self.api)
        self.apps = k8s.AppsV1Api(self.api)
        self.custom = k8s.CustomObjectsApi(self.api)
        self.discovery = k8s.DiscoveryV1Api(self.api)
        self.apiext = k8s.ApiextensionsV1Api(self.api)
        self.authz = k8s.AuthorizationV1Api(self.api)

    def kubectl(self, *args: str, input: str | None = None, kubeconfig: Path | None = None) -> str:
        result = subprocess.run(
            [kubectl_binary(), "--kubeconfig", str(kubeconfig or self.kubeconfig), *args],
            input=input,
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def apply(self, *paths: Path) -> None:
        for path in paths:
            self.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))

    # ---- namespaces and workloads ----
    def create_namespace(self, name: str) -> None:
        self.core.create_namespace({"metadata": {"name": name, "labels": {"rwscaler.io/test": "true"}}})

    def delete_namespace(self, name: str) -> None:
        try:
            self.core.delete_namespace(name)
        except ApiException as err:
            if err.status != 404:
                raise

    def create_statefulset(self, ns: str, name: str, replicas: int, image: str = "postgres:15") -> None:
        self.apps.create_namespaced_stateful_set(ns, statefulset_body(name, replicas, image))

    def create_workload(
        self, ns: str, name: str, spec: Mapping[str, Any], annotations: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        result: dict[str, Any] = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, ns, PLURAL, workload_body(name, spec, annotations), field_validation="Strict"
        )
        return result

    def patch_workload(self, ns: str, name: str, patch: Mapping[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, name, dict(patch))

    def workload(self, ns: str, name: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, ns, PLURAL, name
            )
            return result
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def status(self, ns: str, name: str) -> dict[str, Any]:
        obj = self.workload(ns, name) or {}
        status: dict[str, Any] = obj.get("status") or {}
        return status

    def condition(self, ns: str, name: str, kind: str) -> dict[str, Any]:
        for c in self.status(ns, name).get("conditions") or []:
            if c.get("type") == kind:
                result: dict[str, Any] = c
                return result
        return {}

    def wait_condition(
        self,
        ns: str,
        name: str,
        kind: str,
        status: str | None = None,
        reason: str | None = None,
        timeout: float = 30,
    ) -> dict[str, Any]:
        """The condition once it has this status and/or reason (a tick acts before it reports)."""
        return wait_for(
            f"{kind} status={status} reason={reason}",
            lambda: (
                c
                if (c := self.condition(ns, name, kind))
                and (status is None or c.get("status") == status)
                and (reason is None or c.get("reason") == reason)
                else None
            ),
            timeout=timeout,
            last=lambda: self.condition(ns, name, kind),
        )

    def replicas(self, ns: str, statefulset: str) -> int:
        sts = self.apps.read_namespaced_stateful_set(statefulset, ns)
        return int(sts.spec.replicas)

    def running_pods(self, ns: str, statefulset: str) -> list[str]:
        pods = self.core.list_namespaced_pod(ns, label_selector=f"app={statefulset}").items
        return sorted(
            p.metadata.name
            for p in pods
            if p.status.phase == "Running"
            and not p.metadata.deletion_timestamp
            and any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
        )

    def pod_ips(self, ns: str) -> dict[str, str]:
        return {
            p.metadata.name: p.status.pod_ip
            for p in self.core.list_namespaced_pod(ns).items
            if p.status.pod_ip
        }

    def slice_pods(self, ns: str) -> list[str] | None:
        """The pods the read Service's EndpointSlice lists (None: no slice)."""
        try:
            es = self.discovery.read_namespaced_endpoint_slice(SLICE_NAME, ns)
        except ApiException as err:
            if err.status == 404:
                return None
            raise
        return sorted(e.target_ref.name for e in es.endpoints or [])

    def service(self, ns: str, name: str = READ_SERVICE) -> Any:
        try:
            return self.core.read_namespaced_service(name, ns)
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def events(self, ns: str, name: str) -> list[Any]:
        items = self.core.list_namespaced_event(ns, field_selector=f"involvedObject.name={name}").items
        return [e for e in items if e.involved_object.kind == "ReadWriteWorkload"]

    def event_reasons(self, ns: str, name: str) -> list[str]:
        return [e.reason for e in self.events(ns, name)]

    def wait_pods(self, ns: str, statefulset: str, count: int, timeout: float = 60) -> list[str]:
        return wait_for(
            f"{count} Running pods of {statefulset}",
            lambda: pods if len(pods := self.running_pods(ns, statefulset)) == count else None,
            timeout=timeout,
            last=lambda: self.running_pods(ns, statefulset),
        )


@dataclass
class Plane:
    """The admin's view, and the kubeconfig of the operator's ServiceAccount."""

    kube: Kube
    sa_kubeconfig: Path


# ---- the operator, as a process with the ServiceAccount's identity -------------------------


class OperatorProcess:
    def __init__(
        self, namespace: str, kubeconfig: Path, log_path: Path, extra_args: Iterable[str] = ()
    ) -> None:
        argv = [RWSCALER, "run", "-n", namespace, "--kubeconfig", str(kubeconfig), *extra_args]
        self.log_path = log_path
        self.process = ManagedProcess(
            f"rwscaler-{namespace}", argv, log_path=log_path, env={"PYTHONUNBUFFERED": "1"}
        )

    def start(self) -> OperatorProcess:
        self.process.start()
        return self

    def stop(self) -> None:
        self.process.stop(timeout=15)

    def kill(self) -> None:
        """SIGKILL: no chance to finish anything (the harshest restart)."""
        self.process.signal(signal.SIGKILL)
        self.process.stop(timeout=5)

    def log_tail(self, lines: int = 40) -> str:
        return self.process.log_tail(lines)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


_CURRENT_OPERATORS: list[OperatorProcess] = []


def register_operator(op: OperatorProcess) -> None:
    _CURRENT_OPERATORS.append(op)


def forget_operators() -> None:
    _CURRENT_OPERATORS.clear()


def _diagnostics() -> str:
    parts = []
    for op in _CURRENT_OPERATORS:
        alive = "running" if op.process.running() else f"exited {op.process.returncode()}"
        parts.append(f"--- operator log ({alive}) {op.log_path} ---\n{op.log_tail()}")
    return "\n".join(parts)


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float = 30.0,
    interval: float = 0.25,
    last: Callable[[], object] | None = None,
) -> T:
    """Poll `probe` until it returns something other than None/False; fail saying what was seen."""
    deadline = time.monotonic() + timeout
    seen: object = None
    while True:
        value = probe()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            seen = last() if last is not None else value
            raise AssertionError(
                f"timed out after {timeout:.0f}s waiting for {what}; last seen: {seen}\n{_diagnostics()}"
            )
        time.sleep(interval)


def hold_for(what: str, check: Callable[[], bool], seconds: float, interval: float = 0.25) -> None:
    """Assert `check` stays true for `seconds` (what must NOT happen does not happen)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert check(), f"{what} stopped holding\n{_diagnostics()}"
        time.sleep(interval)


def env_flag(name: str) -> bool:
    return os.environ.get(name) == "1"


def serving_from_both_replicas(
    kube: Kube,
    ns: str,
    signals: Signals,
    prometheus_url: str,
    start_operator: Callable[[], OperatorProcess],
    name: str = "orders",
    **spec: Any,
) -> OperatorProcess:
    """The usual start: healthy signals and lag, the workload over `db`/`db-replica` (`spec`
    overrides as `workload_spec`'s), the operator, and both replicas in the read Service's slice."""
    signals.set()
    signals.lag(range(2), 0.1)
    kube.create_workload(ns, name, workload_spec(prometheus_url, **spec))
    op = start_operator()
    both = [replica_pod(0), replica_pod(1)]
    wait_for(
        "both replicas in the read pool",
        lambda: kube.slice_pods(ns) == both,
        last=lambda: kube.slice_pods(ns),
    )
    return op
