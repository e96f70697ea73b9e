"""CloudNativePG-shaped objects for rwscaler's tests on the local control plane, and a small
stand-in for CloudNativePG's controller that the test drives.

Used by ``tests/integration/cluster/test_cnpg_end_to_end.py``. It provides:

- ``CRD_FILE`` (``cluster-crd.yaml``): a minimal CRD with CloudNativePG's group, version, kind
  and exact ``scale`` subresource (the file's header says what was checked, and where);
- ``QUERIES_FILE`` (``queries.yaml``): CloudNativePG's default monitoring queries that the
  ``cnpg`` preset reads, for postgres_exporter's ``--extend.query-path``;
- builders of a ``Cluster`` and of its instance pods, and ``find_deletable_instance``;
- ``FakeCnpgController``: a thread that follows ``Cluster.spec.instances`` (read through the
  API) by creating and deleting pods the way CloudNativePG does, and keeps the Cluster's
  status (instances, readyInstances, selector, currentPrimary, ...) up to date. Hooks let the
  test create and remove a real PostgreSQL replica for each instance.

Everything is checked against cloudnative-pg/cloudnative-pg **v1.30.0** (commit
4b5e244a7d031f67e025c83c1555e7726ecbbfa1); where v1.28.4/v1.29.2 differ it says so:

- Pod name ``<cluster>-<serial>``: ``specs.GetInstanceName`` in ``pkg/specs/pods.go``. Serials
  start at 1. Up to v1.29.x a new instance takes ``status.latestGeneratedNode + 1`` (never
  reused); since v1.30.0 (commit 2400f0f92, #10548) it takes the lowest serial not in
  ``status.instanceNames`` (``generateNodeSerial`` in ``internal/controller/cluster_create.go``),
  so a removed serial IS reused. ``FakeCnpgController(serials=...)`` does either.
- Labels set by ``buildInstance`` (``pkg/specs/pods.go``): ``cnpg.io/cluster=<cluster>``,
  ``cnpg.io/instanceName=<pod>``, ``cnpg.io/podRole=instance``, and the ``app.kubernetes.io/``
  name/instance/version/component/managed-by labels; the constants are in
  ``pkg/utils/labels_annotations.go`` (``ClusterLabelName``, ``InstanceNameLabelName``,
  ``PodRoleLabelName``, ``PodRoleInstance``).
- Role labels: ``cnpg.io/instanceRole`` and the deprecated ``role``, both ``primary`` or
  ``replica`` (``ClusterInstanceRoleLabelName``, ``ClusterRoleLabelName``;
  ``ClusterRoleLabelPrimary``/``Replica`` in ``pkg/specs/pods.go``), set together by
  ``utils.SetInstanceRole``. They are NOT on a new pod: ``updateRoleLabels`` in
  ``pkg/reconciler/instance/metadata.go`` adds them to active pods once ``status.currentPrimary``
  is set (the primary gets ``primary``, every other pod ``replica``). So does the fake.
  (During a failover CloudNativePG labels the old primary ``unhealthy``; not modelled.)
- Annotation ``cnpg.io/nodeSerial=<serial>`` (``ClusterSerialAnnotationName``).
- Owner reference: ``ctrl.SetControllerReference(cluster, pod)`` in
  ``internal/controller/cluster_create.go``: apiVersion postgresql.cnpg.io/v1, kind Cluster,
  controller and blockOwnerDeletion true.
- The ``postgres`` container's ports ``postgresql`` 5432, ``metrics`` 9187, ``status`` 8000
  (``createPostgresContainers``, ``pkg/management/url/url.go``); the pod's hostname is its name.
- ``status.selector`` = ``cnpg.io/cluster=<name>,cnpg.io/podRole=instance``
  (``Cluster.GetInstancesSelector`` in ``api/v1/cluster_funcs.go``, set in
  ``internal/controller/cluster_status.go``; v1.30.0, v1.29.2 and v1.28.4).
- Scale-down: when ``status.instances > spec.instances`` (``internal/controller/cluster_controller.go``),
  ``scaleDownCluster`` (``internal/controller/cluster_scale.go``) deletes ONE instance, chosen by
  ``findDeletableInstance`` (``internal/controller/replicas.go``; it was called
  ``getSacrificialInstance`` before commit 9224ff37c, #1340): a name in ``status.instanceNames``
  that has no pod, if any (the last such); otherwise, among pods that are Ready, active (not
  Pending/Succeeded/Failed, not being deleted) and not primary (the ``role`` label, else
  ``cnpg.io/instanceRole``, is not ``primary``), the one with the highest ``cnpg.io/nodeSerial``.
  ``find_deletable_instance`` below is that function.
- Scale-up: one instance at a time, and only while every instance is ready
  (``reconcileResources`` waits "for Pods to be ready" before ``reconcileMissingInstance``).

Not modelled: PVCs and jobs (CloudNativePG creates a join job and PVCs before the pod; here the
``on_create`` hook stands for them), the instance manager, failover and switchover, fencing,
hibernation, the ``status.instancesStatus`` health probes (a pod is "healthy" when Ready).
kwok plays the kubelet: the pods never run anything, and nothing connects to their IPs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

CNPG_RELEASE = "1.30.0"
CNPG_COMMIT = "4b5e244a7d031f67e025c83c1555e7726ecbbfa1"

GROUP, VERSION, KIND, PLURAL = "postgresql.cnpg.io", "v1", "Cluster", "clusters"
API_VERSION = f"{GROUP}/{VERSION}"
CRD_NAME = f"{PLURAL}.{GROUP}"
HERE = Path(__file__).resolve().parent
CRD_FILE = HERE / "cluster-crd.yaml"
QUERIES_FILE = HERE / "queries.yaml"

# pkg/utils/labels_annotations.go (v1.30.0)
CLUSTER_LABEL = "cnpg.io/cluster"  # ClusterLabelName
INSTANCE_NAME_LABEL = "cnpg.io/instanceName"  # InstanceNameLabelName
POD_ROLE_LABEL = "cnpg.io/podRole"  # PodRoleLabelName
POD_ROLE_INSTANCE = "instance"  # PodRoleInstance
INSTANCE_ROLE_LABEL = "cnpg.io/instanceRole"  # ClusterInstanceRoleLabelName
LEGACY_ROLE_LABEL = "role"  # ClusterRoleLabelName (deprecated, still set)
NODE_SERIAL_ANNOTATION = "cnpg.io/nodeSerial"  # ClusterSerialAnnotationName
# pkg/specs/pods.go
ROLE_PRIMARY, ROLE_REPLICA = "primary", "replica"
POSTGRES_CONTAINER = "postgres"
POSTGRES_PORT, METRICS_PORT, STATUS_PORT = 5432, 9187, 8000
# pkg/versions/versions.go: DefaultImageName (never pulled: kwok runs nothing)
DEFAULT_IMAGE = "ghcr.io/cloudnative-pg/postgresql:18.4-system-trixie"

SerialPolicy = Literal["lowest-free", "increment"]
"""How a new instance's serial is chosen: v1.30.0's lowest free serial, or v1.28/v1.29's
``latestGeneratedNode + 1``."""


# ---- names, selectors, roles --------------------------------------------------------------
def instance_name(cluster: str, serial: int) -> str:
    """``specs.GetInstanceName``: ``<cluster>-<serial>``."""
    return f"{cluster}-{serial}"


def instances_selector(cluster: str) -> str:
    """``Cluster.GetInstancesSelector``: what CloudNativePG writes to ``status.selector``
    (``labels.SelectorFromSet`` sorts the keys)."""
    return f"{CLUSTER_LABEL}={cluster},{POD_ROLE_LABEL}={POD_ROLE_INSTANCE}"


def _labels(pod: k8s.V1Pod) -> Mapping[str, str]:
    return pod.metadata.labels or {}


def pod_serial(pod: k8s.V1Pod) -> int | None:
    """``specs.GetNodeSerial``: the ``cnpg.io/nodeSerial`` annotation, None when absent or bad."""
    raw = (pod.metadata.annotations or {}).get(NODE_SERIAL_ANNOTATION)
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def pod_role(pod: k8s.V1Pod) -> str | None:
    """``utils.GetInstanceRole``: the legacy ``role`` label first, then ``cnpg.io/instanceRole``."""
    labels = _labels(pod)
    return labels.get(LEGACY_ROLE_LABEL) or labels.get(INSTANCE_ROLE_LABEL) or None


def is_primary(pod: k8s.V1Pod) -> bool:
    """``specs.IsPodPrimary``."""
    return pod_role(pod) == ROLE_PRIMARY


def is_ready(pod: k8s.V1Pod) -> bool:
    """``utils.IsPodReady``: the Ready condition is True."""
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def is_active(pod: k8s.V1Pod) -> bool:
    """``utils.IsPodActive``: not Pending, Succeeded or Failed, and not being deleted."""
    return (
        pod.status.phase not in ("Pending", "Succeeded", "Failed") and pod.metadata.deletion_timestamp is None
    )


def find_deletable_instance(instance_names: Sequence[str], pods: Sequence[k8s.V1Pod]) -> str | None:
    """``findDeletableInstance`` (internal/controller/replicas.go, v1.30.0): the instance a
    scale-down removes, None when there is none to remove now."""
    not_running = list(instance_names)
    chosen: k8s.V1Pod | None = None
    chosen_serial = 0
    for pod in pods:
        if pod.metadata.name in not_running:
            not_running.remove(pod.metadata.name)
        if not is_ready(pod) or not is_active(pod) or is_primary(pod):
            continue
        serial = pod_serial(pod)
        if serial is None:
            continue
        if chosen_serial == 0 or chosen_serial < serial:
            chosen, chosen_serial = pod, serial
    if not_running:
        return not_running[-1]
    return chosen.metadata.name if chosen is not None else None


# ---- builders -----------------------------------------------------------------------------
def cluster_manifest(name: str, instances: int, **spec: Any) -> dict[str, Any]:
    """A ``Cluster`` as a user writes it (only ``instances`` matters to the stand-in CRD)."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {"name": name},
        "spec": {"instances": instances, "storage": {"size": "1Gi"}, **spec},
    }


def owner_reference(cluster: Mapping[str, Any]) -> dict[str, Any]:
    """``ctrl.SetControllerReference(cluster, pod)``."""
    meta = cluster["metadata"]
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def instance_pod(
    cluster: Mapping[str, Any],
    serial: int,
    *,
    role: str | None = None,
    image: str = DEFAULT_IMAGE,
    postgres_major: int = 18,
) -> dict[str, Any]:
    """The instance pod CloudNativePG's ``buildInstance`` makes for ``serial``, with the
    controller owner reference. ``role`` adds both role labels (CloudNativePG adds them after
    creation; ``FakeCnpgController`` does too, and passes None)."""
    name = instance_name(cluster["metadata"]["name"], serial)
    cluster_name = cluster["metadata"]["name"]
    labels = {
        CLUSTER_LABEL: cluster_name,
        INSTANCE_NAME_LABEL: name,
        POD_ROLE_LABEL: POD_ROLE_INSTANCE,
        "app.kubernetes.io/name": "postgresql",
        "app.kubernetes.io/instance": cluster_name,
        "app.kubernetes.io/version": str(postgres_major),
        "app.kubernetes.io/component": "database",
        "app.kubernetes.io/managed-by": "cloudnative-pg",
    }
    if role is not None:
        labels[INSTANCE_ROLE_LABEL] = role
        labels[LEGACY_ROLE_LABEL] = role
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {NODE_SERIAL_ANNOTATION: str(serial)},
            "ownerReferences": [owner_reference(cluster)],
        },
        "spec": {
            "hostname": name,
            "containers": [
                {
                    "name": POSTGRES_CONTAINER,
                    "image": image,
                    "command": ["/controller/manager", "instance", "run"],
                    "ports": [
                        {"name": "postgresql", "containerPort": POSTGRES_PORT, "protocol": "TCP"},
                        {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
                        {"name": "status", "containerPort": STATUS_PORT, "protocol": "TCP"},
                    ],
                }
            ],
        },
    }


# ---- the stand-in controller ----------------------------------------------------------------
InstanceHook = Callable[[int, str], None]
"""Called with (serial, pod name)."""


class FakeCnpgController:
    """Follows one ``Cluster``'s ``spec.instances`` like CloudNativePG's controller (see the
    module docstring for what is and is not modelled). Runs in a thread (``start``/``stop``, or
    ``with``), one reconcile every ``interval`` seconds, each doing at most one topology change:

    1. no instance yet: create the primary (serial 1 or the policy's next), set
       ``status.currentPrimary``/``targetPrimary``;
    2. label every active pod ``primary`` or ``replica`` after ``currentPrimary``;
    3. write status: instances, readyInstances, instanceNames, instancesStatus, selector, phase
       (and latestGeneratedNode with ``serials="increment"``);
    4. more instances wanted and every instance Ready: ``on_create(serial, name)`` (the test
       starts a real PostgreSQL replica there), then create the pod (no role label yet);
    5. fewer wanted: pick with ``find_deletable_instance``, call ``before_delete(serial, name)``
       (the test looks at the read pool there), delete that pod, then ``on_delete(serial, name)``.

    ``created`` and ``deleted`` list the pod names in order; ``errors`` holds every exception a
    reconcile raised (the thread keeps going; the test asserts it stays empty)."""

    def __init__(
        self,
        api: k8s.ApiClient,
        namespace: str,
        name: str,
        *,
        serials: SerialPolicy = "lowest-free",
        on_create: InstanceHook | None = None,
        on_delete: InstanceHook | None = None,
        before_delete: InstanceHook | None = None,
        interval: float = 0.2,
    ) -> None:
        self.core = k8s.CoreV1Api(api)
        self.custom = k8s.CustomObjectsApi(api)
        self.namespace = namespace
        self.name = name
        self.serials = serials
        self.on_create = on_create
        self.on_delete = on_delete
        self.before_delete = before_delete
        self.interval = interval
        self.created: list[str] = []
        self.deleted: list[str] = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._latest_serial = 0

    # ---- lifecycle ----
    def start(self) -> FakeCnpgController:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"fake-cnpg-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            if self._thread.is_alive():
                raise RuntimeError("the fake CloudNativePG controller did not stop within 60 s")
            self._thread = None

    def __enter__(self) -> FakeCnpgController:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.reconcile()
            except Exception as err:  # keep following; the test reads self.errors
                self.errors.append(err)
            self._stop.wait(self.interval)

    # ---- reads ----
    def cluster(self) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, self.name
            )
            return found
        except ApiException as err:
            if err.status == 404:
                return None
            raise

    def pods(self) -> list[k8s.V1Pod]:
        items: list[k8s.V1Pod] = self.core.list_namespaced_pod(
            self.namespace, label_selector=instances_selector(self.name)
        ).items
        return sorted(items, key=lambda p: pod_serial(p) or 0)

    # ---- one reconcile ----
    def reconcile(self) -> str | None:
        """One pass; returns what it changed in the topology (None: nothing)."""
        cluster = self.cluster()
        if cluster is None:
            return None
        status: dict[str, Any] = cluster.get("status") or {}
        self._latest_serial = max(self._latest_serial, int(status.get("latestGeneratedNode") or 0))
        pods = self.pods()
        if not pods and not status.get("currentPrimary"):
            serial = self._next_serial([])
            name = instance_name(self.name, serial)
            self._create(cluster, serial, name)
            self._patch_status({"currentPrimary": name, "targetPrimary": name})
            return f"created primary {name}"
        primary = status.get("currentPrimary")
        for pod in pods:
            self._label_role(pod, primary)
        live = [p for p in pods if p.metadata.deletion_timestamp is None]
        ready = [p for p in live if is_ready(p)]
        names = sorted((p.metadata.name for p in live), key=lambda n: int(n.rsplit("-", 1)[1]))
        wanted = int(cluster["spec"]["instances"])
        self._write_status(status, names, ready, wanted)
        if len(live) < wanted and len(ready) == len(live):
            serial = self._next_serial(names)
            name = instance_name(self.name, serial)
            self._create(cluster, serial, name)
            return f"created {name}"
        if len(live) > wanted:
            victim = find_deletable_instance(names, live)
            if victim is None:
                return None
            pod = next(p for p in live if p.metadata.name == victim)
            self._delete(pod)
            return f"deleted {victim}"
        return None

    def _next_serial(self, names: Sequence[str]) -> int:
        if self.serials == "increment":
            return self._latest_serial + 1
        for serial in range(1, len(names) + 1):
            if instance_name(self.name, serial) not in names:
                return serial
        return len(names) + 1

    def _create(self, cluster: Mapping[str, Any], serial: int, name: str) -> None:
        if self.on_create is not None:
            self.on_create(serial, name)
        self.core.create_namespaced_pod(self.namespace, instance_pod(cluster, serial))
        self.created.append(name)
        self._latest_serial = max(self._latest_serial, serial)
        if self.serials == "increment":
            self._patch_status({"latestGeneratedNode": self._latest_serial})

    def _delete(self, pod: k8s.V1Pod) -> None:
        name = pod.metadata.name
        if self.before_delete is not None:
            self.before_delete(pod_serial(pod) or 0, name)
        try:
            self.core.delete_namespaced_pod(name, self.namespace)
        except ApiException as err:
            if err.status != 404:
                raise
        self.deleted.append(name)
        if self.on_delete is not None:
            self.on_delete(pod_serial(pod) or 0, name)

    def _label_role(self, pod: k8s.V1Pod, primary: str | None) -> None:
        """``updateRoleLabels``: only with a current primary, only on active pods."""
        if not primary or not is_active(pod):
            return
        role = ROLE_PRIMARY if pod.metadata.name == primary else ROLE_REPLICA
        labels = _labels(pod)
        if labels.get(LEGACY_ROLE_LABEL) == role and labels.get(INSTANCE_ROLE_LABEL) == role:
            return
        self.core.patch_namespaced_pod(
            pod.metadata.name,
            self.namespace,
            {"metadata": {"labels": {LEGACY_ROLE_LABEL: role, INSTANCE_ROLE_LABEL: role}}},
        )

    def _write_status(
        self, status: Mapping[str, Any], names: list[str], ready: list[k8s.V1Pod], wanted: int
    ) -> None:
        ready_names = sorted(p.metadata.name for p in ready)
        healthy = len(ready) == len(names) == wanted
        phase = (
            "Cluster in healthy state"
            if healthy
            else "Creating a new replica"
            if len(names) < wanted
            else "Scaling down"
            if len(names) > wanted
            else "Waiting for the instances to become active"
        )
        fields = {
            "instances": len(names),
            "readyInstances": len(ready),
            "instanceNames": names,
            "instancesStatus": {"healthy": ready_names} if ready_names else None,
            "selector": instances_selector(self.name),
            "phase": phase,
        }
        changed = {k: v for k, v in fields.items() if status.get(k) != v}
        if changed:
            self._patch_status(changed)

    def _patch_status(self, fields: Mapping[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, self.namespace, PLURAL, self.name, {"status": dict(fields)}
        )
