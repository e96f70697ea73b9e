"""KubeCluster: `rwscaler.boundary.Cluster` on the Kubernetes API.

Reads the workload and the Secrets its Prometheus settings name; hands out the scale target
port of each kind (`kube/targets`: reading a target, its pods and scaling it); patches the workload's status with a merge patch of exactly what
changed in the keys rwscaler owns; posts Events. Known problems (a missing Secret, a forbidden
read, a refused scale) become `ClusterProblem`s with a specific reason; anything else is a
`KubeApiError` for the loop to log and retry.
"""

from __future__ import annotations

import base64
import binascii
import logging
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rwscaler.boundary import ClusterProblem, OwnerRef, ScaleTarget
from rwscaler.core.durations import rfc3339
from rwscaler.core.spec import GROUP, PLURAL, VERSION, ScaleTargetRef
from rwscaler.core.status import OWNED_KEYS
from rwscaler.core.vocabulary import Event, ReadyReason
from rwscaler.kube import objects
from rwscaler.kube.client import KubeApiError, KubeClient
from rwscaler.kube.pod_cache import PodSource
from rwscaler.kube.targets.registry import target_for
from rwscaler.kube.watch_cache import Watched

log = logging.getLogger(__name__)

# An Event repeated within this window is counted on the Event already posted (count and
# lastTimestamp patched, as client-go's EventCorrelator does), not posted again as a copy.
EVENT_DEDUP_S = 600.0


@dataclass
class _Posted:
    name: str
    count: int
    last: float


def workload_path(namespace: str, name: str) -> str:
    return f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}"


def _forbidden(err: KubeApiError, what: str) -> ClusterProblem:
    return ClusterProblem(ReadyReason.KUBERNETES_ERROR, f"not allowed to {what}: {err.message}")


class KubeCluster:
    def __init__(
        self,
        client: KubeClient,
        instance: str | None = None,
        pods: PodSource | None = None,
        workloads: Watched | None = None,
        scales: Mapping[tuple[str, str], Watched] | None = None,
        services: Watched | None = None,
        endpoint_slices: Watched | None = None,
    ) -> None:
        self._client = client
        # What kopf's watches delivered (handlers.py): the pods, the workloads, the scale of the
        # kinds watched by (API group, kind); None or a kind not there: a LIST or GET per tick.
        self._pods = pods
        self._workloads = workloads
        self._scales = scales
        # For the routers (pooler/): the watched Services and rwscaler's own EndpointSlices.
        self.services = services
        self.endpoint_slices = endpoint_slices
        self._instance = instance or socket.gethostname()
        self._posted: dict[tuple[str, str, str, str, str], _Posted] = {}
        # One port per (apiVersion, kind), found once: for a kind without a module of its own
        # that is an API discovery request, which every tick of every workload would repeat.
        self._targets: dict[tuple[str, str], ScaleTarget] = {}

    async def get_workload(self, namespace: str, name: str) -> dict[str, Any] | None:
        if self._workloads is not None:
            # kopf's last event, with this operator's own status write laid over until the watch
            # delivers it (kube/watch_cache.py): a tick never continues from a status it replaced.
            body = self._workloads.get(namespace, name)
            if body is not None:
                return dict(body)
        # Not delivered (yet): ask.
        return await self._client.get(workload_path(namespace, name))

    async def target(self, ref: ScaleTargetRef) -> ScaleTarget:
        key = (ref.apiVersion, ref.kind)
        port = self._targets.get(key)
        if port is None:  # a refusal (ClusterProblem) is not kept: the kind may be installed later
            port = self._targets[key] = await target_for(self._client, ref, self._pods, self._scales)
        return port

    async def deployment_pod_ips(self, namespace: str, deployment: str) -> list[str] | None:
        """IPs of the Ready, not terminating pods of a Deployment (None: no such Deployment).

        Used for the admin consoles of a PgBouncer Deployment; the IPs are returned, never dialled
        here."""
        try:
            obj = await self._client.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/{deployment}")
            if obj is None:
                return None
            selector = objects.label_selector((obj.get("spec") or {}).get("selector") or {})
            data = await self._client.request(
                "GET", f"/api/v1/namespaces/{namespace}/pods", params={"labelSelector": selector}
            )
        except KubeApiError as err:
            if err.forbidden:
                raise _forbidden(err, f"read Deployment {namespace}/{deployment} and its pods") from err
            raise
        return sorted(ip for item in data.get("items") or [] if (ip := objects.ready_pod_ip(item)))

    async def read_secret(self, namespace: str, name: str, key: str) -> str:
        try:
            obj = await self._client.get(f"/api/v1/namespaces/{namespace}/secrets/{name}")
        except KubeApiError as err:
            if err.forbidden:
                raise _forbidden(err, f"read Secret {namespace}/{name}") from err
            raise
        if obj is None:
            raise ClusterProblem(
                ReadyReason.SECRET_NOT_FOUND, f"the Secret {namespace}/{name} does not exist"
            )
        data = obj.get("data") or {}
        if key not in data:
            raise ClusterProblem(
                ReadyReason.SECRET_KEY_NOT_FOUND, f"the Secret {namespace}/{name} has no key {key!r}"
            )
        try:
            return base64.b64decode(data[key]).decode()
        except (binascii.Error, UnicodeDecodeError) as err:
            raise ClusterProblem(
                ReadyReason.SECRET_KEY_NOT_FOUND,
                f"the Secret {namespace}/{name} key {key!r} is not text: {err}",
            ) from err

    async def patch_status(
        self,
        namespace: str,
        name: str,
        previous: Mapping[str, Any],
        status: Mapping[str, Any],
        resource_version: str | None,
    ) -> bool:
        owned = {k: previous[k] for k in OWNED_KEYS if k in previous}
        patch: dict[str, Any] = {"status": objects.merge_patch(owned, status)}
        if not patch["status"]:
            return True
        if resource_version:
            # Optimistic lock: the patch is a diff against what this tick read; if anyone wrote
            # the workload since (a spec edit, another writer), the diff is stale: write nothing.
            patch["metadata"] = {"resourceVersion": resource_version}
        try:
            answer = await self._client.merge_patch(f"{workload_path(namespace, name)}/status", patch)
        except KubeApiError as err:
            if err.conflict or err.not_found:  # changed or deleted meanwhile: the next tick decides
                log.debug("status of %s/%s not written: %s", namespace, name, err)
                return False
            raise
        if self._workloads is not None:
            self._workloads.wrote(namespace, name, resource_version, answer)
        return True

    async def post_events(self, owner: OwnerRef, events: Sequence[Event]) -> None:
        now = time.time()
        self._posted = {k: p for k, p in self._posted.items() if now - p.last < EVENT_DEDUP_S}
        for ev in events:
            body = objects.event(owner, ev, now, self._instance)
            key = (owner.namespace, owner.uid, body["type"], body["reason"], body["message"])
            try:
                if await self._count_again(owner.namespace, key, now):
                    continue
                created = await self._client.create(f"/api/v1/namespaces/{owner.namespace}/events", body)
                name = str(((created or {}).get("metadata") or {}).get("name", ""))
                if name:
                    self._posted[key] = _Posted(name, 1, now)
            except KubeApiError as err:
                # An event is a courtesy: the status already says the same; never fail the tick.
                log.warning(
                    "could not post event %s on %s/%s: %s", ev.reason, owner.namespace, owner.name, err
                )

    async def _count_again(self, namespace: str, key: tuple[str, str, str, str, str], now: float) -> bool:
        """Count a repeat on the Event posted before; False when there is none to count on."""
        posted = self._posted.get(key)
        if posted is None:
            return False
        try:
            await self._client.merge_patch(
                f"/api/v1/namespaces/{namespace}/events/{posted.name}",
                {"count": posted.count + 1, "lastTimestamp": rfc3339(now)},
            )
        except KubeApiError as err:
            # Expired meanwhile (the API server's event TTL), or not allowed: post it anew, so
            # nothing is lost.
            log.debug("could not count event %s again: %s", posted.name, err)
            del self._posted[key]
            return False
        posted.count, posted.last = posted.count + 1, now
        return True
