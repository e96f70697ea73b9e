"""The EndpointSlice pooler: a selector-less read Service whose one EndpointSlice lists the read pool.

`rwscaler.reconcile` calls `EndpointSliceRouter.apply` on every acting tick with the pods of the
read pool (the primary when the pool fell back). The Service has no selector, so no Kubernetes
controller writes its endpoints: the slice, labelled `endpointslice.kubernetes.io/managed-by:
rwscaler.io` and `kubernetes.io/service-name: <readService>`, is the only source, and
kube-proxy (or any EndpointSlice consumer) sends reads exactly where rwscaler says. The pod IPs
are data here; nothing in rwscaler connects to them. Writes happen only when the slice differs.
The Service and the slice are built by `rwscaler.kube.objects` (shared with `kube.cluster`); this
package's `build_router` makes the router when the operator starts (`rwscaler.pooler.registry`).
"""

from __future__ import annotations

from typing import Any

from rwscaler.boundary import ClusterProblem, OwnerRef, Port, RouteRequest
from rwscaler.core.vocabulary import ReadyReason
from rwscaler.kube import objects
from rwscaler.kube.client import KubeApiError, KubeClient
from rwscaler.kube.watch_cache import Watched, resource_version
from rwscaler.pooler.endpointslice import objects as slice_objects


def _service_path(namespace: str, name: str = "") -> str:
    return f"/api/v1/namespaces/{namespace}/services" + (f"/{name}" if name else "")


def _slice_path(namespace: str, name: str = "") -> str:
    return f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices" + (f"/{name}" if name else "")


class EndpointSliceRouter:
    def __init__(
        self, client: KubeClient, services: Watched | None = None, slices: Watched | None = None
    ) -> None:
        self._client = client
        # The watched Services and rwscaler's EndpointSlices (kube/watch_cache.py): a tick reads
        # them there, and records its writes; None: a GET per tick.
        self._services = services
        self._slices = slices

    async def _read(
        self, watched: Watched | None, namespace: str, name: str, path: str
    ) -> dict[str, Any] | None:
        if watched is None:
            return await self._client.get(path)
        obj = watched.get(namespace, name)
        return None if obj is None else dict(obj)

    @staticmethod
    def _wrote(
        watched: Watched | None, namespace: str, name: str, before: Any, answer: dict[str, Any]
    ) -> None:
        if watched is not None:
            watched.wrote(namespace, name, resource_version(before), answer)

    async def _create_or_get(
        self, watched: Watched | None, namespace: str, name: str, collection: str, body: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Create the object; None when created, or the object that already existed (a 409
        AlreadyExists: created meanwhile, not yet delivered by the watch)."""
        try:
            answer = await self._client.create(collection, body)
        except KubeApiError as err:
            if not err.conflict:
                raise
            existing = await self._client.get(f"{collection}/{name}")
            if existing is None:
                raise
            return existing
        self._wrote(watched, namespace, name, None, answer)
        return None

    async def apply(self, request: RouteRequest) -> bool:
        service = request.spec.pooler.readService
        if service is None:  # the CRD and the model both refuse this; keep the type checker honest
            raise ClusterProblem(ReadyReason.SPEC_INVALID, "pooler kind EndpointSlice needs readService")
        try:
            changed = await self._ensure_service(request.owner, service, request.ports)
            return await self._ensure_slice(request, service) or changed
        except KubeApiError as err:
            raise ClusterProblem(
                ReadyReason.ROUTING_FAILED, f"updating the read Service {service}: {err}"
            ) from err

    async def _ensure_service(self, owner: OwnerRef, name: str, ports: tuple[Port, ...]) -> bool:
        path = _service_path(owner.namespace, name)
        existing = await self._read(self._services, owner.namespace, name, path)
        if existing is None:
            body = slice_objects.read_service(owner, name, ports)
            existing = await self._create_or_get(
                self._services, owner.namespace, name, _service_path(owner.namespace), body
            )
            if existing is None:
                return True
        spec: dict[str, Any] = existing.get("spec") or {}
        if spec.get("selector") or spec.get("type") == "ExternalName":
            raise ClusterProblem(
                ReadyReason.READ_SERVICE_CONFLICT,
                f"the Service {owner.namespace}/{name} has a selector (or is ExternalName); the read "
                "Service must be selector-less so that only rwscaler's EndpointSlice routes it",
            )
        if objects.owned_by(existing, owner) and slice_objects.service_ports_differ(existing, ports):
            answer = await self._client.merge_patch(
                path, {"spec": {"ports": slice_objects.service_ports(ports)}}
            )
            self._wrote(self._services, owner.namespace, name, existing, answer)
            return True
        return False

    async def _ensure_slice(self, request: RouteRequest, service: str) -> bool:
        owner = request.owner
        desired = slice_objects.endpoint_slice(owner, service, request.ports, request.endpoints)
        name = desired["metadata"]["name"]
        path = _slice_path(owner.namespace, name)
        existing = await self._read(self._slices, owner.namespace, name, path)
        if existing is None:
            existing = await self._create_or_get(
                self._slices, owner.namespace, name, _slice_path(owner.namespace), desired
            )
            if existing is None:
                return True
        if not slice_objects.slice_differs(existing, desired):
            return False
        answer = await self._client.merge_patch(
            path,
            {
                "metadata": {
                    "labels": desired["metadata"]["labels"],
                    "ownerReferences": desired["metadata"]["ownerReferences"],
                },
                "ports": desired["ports"],
                "endpoints": desired["endpoints"],
            },
        )
        self._wrote(self._slices, owner.namespace, name, existing, answer)
        return True
