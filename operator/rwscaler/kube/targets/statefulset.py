"""A StatefulSet as the scale target: a scale-in removes the highest ordinals first.

Registered in `registry.KINDS` for apps/v1 StatefulSet (also what `replicas.statefulSet`
stands for). Its pods are those the selector selects and the StatefulSet controls, named
`<name>-<ordinal>`. When the set also runs the primary (Patroni/Spilo, or a promotion in the
pair layout), the count includes it, and a pod of ordinal o is removed once the read replicas
number o - 1 or fewer: its rank is o - 1 (a primary at a high ordinal is what
`target_guard` refuses to remove).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rwscaler.boundary import PodInfo, TargetState
from rwscaler.kube import objects
from rwscaler.kube.client import KubeClient
from rwscaler.kube.pod_cache import PodSource
from rwscaler.kube.targets.scalable import ScalableTarget
from rwscaler.kube.watch_cache import Watched


def scale_view(body: Mapping[str, Any]) -> dict[str, Any]:
    """A StatefulSet as its `scale` subresource shows it (what `read` reads), from the watched
    object: the handlers' kopf index keeps only this of each StatefulSet."""
    meta, spec = body.get("metadata") or {}, body.get("spec") or {}
    replicas = spec.get("replicas")
    return {
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        # The API server defaults spec.replicas to 1; the subresource shows that default too.
        "spec": {"replicas": replicas if isinstance(replicas, int) else 1},
        "status": {"selector": objects.label_selector(spec.get("selector") or {})},
    }


class StatefulSetTarget(ScalableTarget):
    removal_order_known = True

    def __init__(
        self,
        client: KubeClient,
        api_version: str = "apps/v1",
        pods: PodSource | None = None,
        scales: Watched | None = None,
    ) -> None:
        super().__init__(client, api_version, "statefulsets", pods, scales)

    async def pods(self, namespace: str, target: TargetState, counts_primary: bool) -> list[PodInfo]:
        offset = 1 if counts_primary else 0
        out: list[PodInfo] = []
        for item in await self.pod_objects(namespace, target):
            ordinal = objects.ordinal_suffix(item["metadata"].get("name", ""), target.ref.name)
            if ordinal is None or objects.controller_uid(item) != target.uid:
                continue  # selected by the labels, but not this StatefulSet's pod
            out.append(objects.pod_info(item, ordinal - offset))
        return sorted(out, key=lambda p: p.rank if p.rank is not None else -1)
