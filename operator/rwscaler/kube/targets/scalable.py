"""Any kind that serves the `scale` subresource, read and scaled as HPA does; the base of the others.

Used by `registry.target_for` for kinds rwscaler has no module of their own for, and subclassed
by `statefulset` and `cnpg_cluster`. The count is the subresource's `spec.replicas`, the pods
are those its `status.selector` selects (the same rule as HPA), and a scale is a merge patch of
the subresource. Which pod such a kind removes on a scale-in cannot be foreseen, so
`removal_order_known` is False: rwscaler scales it up and never in (target_guard.py).
"""

from __future__ import annotations

from typing import Any

from rwscaler.boundary import ClusterProblem, PodInfo, TargetState
from rwscaler.core.spec import ScaleTargetRef
from rwscaler.core.vocabulary import ReadyReason
from rwscaler.kube import objects
from rwscaler.kube.client import KubeApiError, KubeClient
from rwscaler.kube.pod_cache import PodSource
from rwscaler.kube.watch_cache import Watched, resource_version


def forbidden(err: KubeApiError, what: str) -> ClusterProblem:
    return ClusterProblem(ReadyReason.KUBERNETES_ERROR, f"not allowed to {what}: {err.message}")


class ScalableTarget:
    """A namespaced resource `plural` of `api_version` with a scale subresource."""

    removal_order_known = False

    def __init__(
        self,
        client: KubeClient,
        api_version: str,
        plural: str,
        pods: PodSource | None = None,
        scales: Watched | None = None,
    ) -> None:
        self._client = client
        self.api_version = api_version
        self.plural = plural
        self._pods = pods  # the watch-fed pods (kube/pod_cache.py); None: a LIST per call
        # The watch-fed scale of this kind's objects (kube/watch_cache.py); None: a GET per read.
        self._scales = scales

    def path(self, namespace: str, name: str) -> str:
        base = "/api" if "/" not in self.api_version else "/apis"
        return f"{base}/{self.api_version}/namespaces/{namespace}/{self.plural}/{name}"

    async def _get(self, path: str, what: str) -> dict[str, Any] | None:
        try:
            return await self._client.get(path)
        except KubeApiError as err:
            if err.forbidden:
                raise forbidden(err, f"read {what}") from err
            raise

    def selector(self, ref: ScaleTargetRef, scale: dict[str, Any]) -> str:
        """The subresource's status.selector; a kind may know a fallback where it is not published."""
        selector = (scale.get("status") or {}).get("selector")
        if not selector:
            raise ClusterProblem(
                ReadyReason.SCALE_TARGET_NOT_SCALABLE,
                f"the scale subresource of {ref.describe()} publishes no status.selector, so its pods "
                "cannot be found (HPA needs it too)",
            )
        return str(selector)

    async def read(self, namespace: str, ref: ScaleTargetRef) -> TargetState | None:
        if self._scales is not None:
            watched = self._scales.get(namespace, ref.name)
            scale = None if watched is None else dict(watched)
        else:
            scale = await self._get(f"{self.path(namespace, ref.name)}/scale", f"{ref.describe()}'s scale")
        if scale is None:
            return None
        replicas = (scale.get("spec") or {}).get("replicas")
        uid = str((scale.get("metadata") or {}).get("uid", ""))
        count = replicas if isinstance(replicas, int) else 0
        return TargetState(ref=ref, uid=uid, count=count, selector=self.selector(ref, scale))

    async def pod_objects(self, namespace: str, target: TargetState) -> list[dict[str, Any]]:
        """The pods the target's selector selects, not terminating ones' order aside."""
        if self._pods is not None:
            return self._pods(namespace, target.selector)
        try:
            data = await self._client.request(
                "GET", f"/api/v1/namespaces/{namespace}/pods", params={"labelSelector": target.selector}
            )
        except KubeApiError as err:
            if err.forbidden:
                raise forbidden(err, f"list pods in {namespace}") from err
            raise
        return [item for item in data.get("items") or [] if isinstance(item, dict)]

    async def pods(self, namespace: str, target: TargetState, counts_primary: bool) -> list[PodInfo]:
        # No known removal order: the ranks are only a stable order (by name), none ever leaves.
        items = sorted(await self.pod_objects(namespace, target), key=lambda o: o["metadata"]["name"])
        return [objects.pod_info(item, rank) for rank, item in enumerate(items)]

    async def scale(self, namespace: str, target: TargetState, count: int) -> None:
        name = target.ref.name
        before = resource_version(self._scales.get(namespace, name)) if self._scales is not None else None
        try:
            answer = await self._client.merge_patch(
                f"{self.path(namespace, name)}/scale", {"spec": {"replicas": count}}
            )
        except KubeApiError as err:
            raise ClusterProblem(
                ReadyReason.SCALE_FAILED, f"scaling {target.ref.describe()} in {namespace} failed: {err}"
            ) from err
        if self._scales is not None:
            # Read as scaled until the watch delivers the new count (no second scale meanwhile).
            self._scales.wrote(namespace, name, before, answer)
