"""A CloudNativePG `Cluster` as the scale target: `spec.instances` through its scale subresource.

Registered in `registry.KINDS` for postgresql.cnpg.io Cluster. The count (`spec.instances`)
includes the primary. Pods are `<cluster>-<serial>`, controlled by the Cluster. On a scale-in
CloudNativePG removes, one at a time, first an instance that has no pod, then the Ready, active,
non-primary pod with the highest serial (`findDeletableInstance` in
internal/controller/replicas.go, v1.30.0; `getSacrificialInstance` before), so the ranks follow
that order: the primary has none (never removed), pods that are not Ready or are terminating
come first (never picked), then the Ready replicas by serial. rwscaler drains exactly the pods
CloudNativePG will remove. The serial is the `cnpg.io/nodeSerial` annotation CloudNativePG reads
(the name's suffix when it is missing). Before CloudNativePG published `status.selector` (the
scale subresource's labelSelectorPath, v1.28.4 / v1.29.2 / v1.30.0), the selector falls back to
the one it publishes, `cnpg.io/cluster=<name>,cnpg.io/podRole=instance`. Serials are reused from
v1.30.0 (the lowest free one), so nothing here is keyed by a pod name beyond one scale-in.
"""

from __future__ import annotations

from typing import Any

from rwscaler.boundary import PodInfo, TargetState
from rwscaler.core.roles import Role, label_role
from rwscaler.core.spec import RoleLabels, ScaleTargetRef
from rwscaler.kube import objects
from rwscaler.kube.client import KubeClient
from rwscaler.kube.pod_cache import PodSource
from rwscaler.kube.targets.scalable import ScalableTarget
from rwscaler.kube.watch_cache import Watched

CLUSTER_LABEL = "cnpg.io/cluster"
INSTANCE_SELECTOR = "cnpg.io/podRole=instance"
SERIAL_ANNOTATION = "cnpg.io/nodeSerial"


def _serial(item: dict[str, Any], cluster: str) -> int | None:
    meta = item.get("metadata") or {}
    annotated = str((meta.get("annotations") or {}).get(SERIAL_ANNOTATION, ""))
    return int(annotated) if annotated.isdigit() else objects.ordinal_suffix(meta.get("name", ""), cluster)


class CnpgClusterTarget(ScalableTarget):
    removal_order_known = True

    def __init__(
        self,
        client: KubeClient,
        api_version: str = "postgresql.cnpg.io/v1",
        pods: PodSource | None = None,
        scales: Watched | None = None,
    ) -> None:
        super().__init__(client, api_version, "clusters", pods, scales)

    def selector(self, ref: ScaleTargetRef, scale: dict[str, Any]) -> str:
        published = (scale.get("status") or {}).get("selector")
        return str(published) if published else f"{CLUSTER_LABEL}={ref.name},{INSTANCE_SELECTOR}"

    async def pods(self, namespace: str, target: TargetState, counts_primary: bool) -> list[PodInfo]:
        primary: list[dict[str, Any]] = []
        never_picked: list[tuple[int, dict[str, Any]]] = []
        candidates: list[tuple[int, dict[str, Any]]] = []
        for item in await self.pod_objects(namespace, target):
            serial = _serial(item, target.ref.name)
            if serial is None or objects.controller_uid(item) != target.uid:
                continue
            # CloudNativePG knows its primary by its own role label, so this order uses it too.
            said = label_role(item["metadata"].get("labels") or {}, RoleLabels.CLOUDNATIVEPG, None)
            if said is not None and said[0] is Role.PRIMARY:
                primary.append(item)
            elif objects.ready_pod_ip(item) is None or objects.terminating(item):
                never_picked.append((serial, item))
            else:
                candidates.append((serial, item))
        ordered = [item for _, item in sorted(never_picked, key=lambda t: t[0])]
        ordered += [item for _, item in sorted(candidates, key=lambda t: t[0])]
        return [objects.pod_info(item) for item in primary] + [
            objects.pod_info(item, rank) for rank, item in enumerate(ordered)
        ]
