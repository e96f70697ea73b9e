"""The EndpointSlice router against the real API server when its watches lag behind it.

The router reads the read Service and its EndpointSlice from the watches (kube/watch_cache.py); an
object created a moment ago by someone else (a second replica during a takeover, or rwscaler's
own write before a restart) is on the server but not yet in the watch. The router then creates it,
gets 409 AlreadyExists, and must go on with the object the server holds: leave a Service it does
not own alone, and patch the slice to the read pool. Watches that never deliver anything stand in
for the lag here.
"""

from __future__ import annotations

import asyncio
import uuid

from cluster_helpers import Kube
from tests.support.cluster import kubeconfig_path
from tests.unit.builders import make_obs, make_spec

from rwscaler.boundary import Endpoint, OwnerRef, Port, RouteRequest
from rwscaler.core.decide import decide
from rwscaler.core.memory import Memory
from rwscaler.kube.client import KubeClient
from rwscaler.kube.watch_cache import Watched
from rwscaler.pooler.endpointslice import objects as slice_objects
from rwscaler.pooler.endpointslice.router import EndpointSliceRouter

SERVICE = "db-read"
PORTS = (Port("postgres", 5432),)


def _owner(kube: Kube, namespace: str) -> OwnerRef:
    """A ConfigMap stands in for the workload as the owner: the garbage collector would delete
    what an owner that does not exist owns, in the middle of the test."""
    made = kube.core.create_namespaced_config_map(
        namespace, {"metadata": {"name": f"owner-{uuid.uuid4().hex[:6]}"}}
    )
    return OwnerRef(namespace, made.metadata.name, made.metadata.uid, api_version="v1", kind="ConfigMap")


def _request(owner: OwnerRef, ips: tuple[str, ...]) -> RouteRequest:
    spec = make_spec(pooler={"kind": "EndpointSlice", "readService": SERVICE})
    plan = decide(spec, make_obs(current=2), Memory(), 0.0)
    endpoints = tuple(Endpoint(f"db-replica-{i}", f"uid-{i}", ip) for i, ip in enumerate(ips))
    return RouteRequest(owner, spec, plan, endpoints, None, PORTS)


async def _route(request: RouteRequest) -> tuple[bool, Watched, Watched]:
    never = lambda namespace, name: None  # noqa: E731 (a watch that has delivered nothing)
    services, slices = Watched(never), Watched(never)
    client = KubeClient.from_kubeconfig(str(kubeconfig_path()))
    try:
        changed = await EndpointSliceRouter(client, services, slices).apply(request)
    finally:
        await client.close()
    return changed, services, slices


def _slice_ips(kube: Kube, namespace: str, name: str) -> list[str]:
    found = kube.discovery.read_namespaced_endpoint_slice(name, namespace)
    return sorted(a for e in found.endpoints or [] for a in e.addresses)


def test_objects_created_meanwhile_are_taken_over_not_failed_on(kube: Kube, ns: str) -> None:
    first = _request(_owner(kube, ns), ("10.0.0.1", "10.0.0.2"))
    # Someone else created both a moment ago: the Service (not rwscaler's: no owner) and the
    # slice, routing a pool that is no longer right.
    kube.core.create_namespaced_service(
        ns, {"metadata": {"name": SERVICE}, "spec": {"ports": [{"name": "postgres", "port": 5432}]}}
    )
    stale = slice_objects.endpoint_slice(first.owner, SERVICE, PORTS, first.endpoints[:1])
    kube.discovery.create_namespaced_endpoint_slice(ns, stale)
    name = stale["metadata"]["name"]
    assert _slice_ips(kube, ns, name) == ["10.0.0.1"]

    changed, services, slices = asyncio.run(_route(first))

    assert changed  # the slice was patched to the pool
    assert _slice_ips(kube, ns, name) == ["10.0.0.1", "10.0.0.2"]
    service = kube.core.read_namespaced_service(SERVICE, ns)
    assert not service.metadata.owner_references  # somebody else's Service is left as it was
    # The patch is laid over the (lagging) watch; the Service was only read, nothing to lay over.
    assert len(slices) == 1 and len(services) == 0


def test_objects_absent_are_created_and_laid_over_the_watch(kube: Kube, ns: str) -> None:
    request = _request(_owner(kube, ns), ("10.0.0.3",))
    changed, services, slices = asyncio.run(_route(request))
    assert changed
    name = slice_objects.endpoint_slice(request.owner, SERVICE, PORTS, request.endpoints)["metadata"]["name"]
    assert _slice_ips(kube, ns, name) == ["10.0.0.3"]
    assert services.get(ns, SERVICE) is not None and slices.get(ns, name) is not None
