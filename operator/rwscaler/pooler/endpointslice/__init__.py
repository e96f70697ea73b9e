"""The `EndpointSlice` pooler: reads go through a selector-less Service whose EndpointSlice rwscaler
writes (`router.EndpointSliceRouter`). `build_router` is its entry in `rwscaler.pooler.registry`."""

from __future__ import annotations

from rwscaler.boundary import ReadRouter
from rwscaler.kube.client import KubeClient
from rwscaler.kube.cluster import KubeCluster
from rwscaler.pooler.endpointslice.router import EndpointSliceRouter


def build_router(client: KubeClient, cluster: KubeCluster) -> ReadRouter:
    """The router on the operator's API client, reading the watched Services and EndpointSlices
    the cluster adapter has (where it has none: a GET per tick)."""
    return EndpointSliceRouter(client, cluster.services, cluster.endpoint_slices)
