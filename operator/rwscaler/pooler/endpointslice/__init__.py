"""The `EndpointSlice` pooler: reads go through a selector-less Service whose EndpointSlice rwscaler
writes (`router.EndpointSliceRouter`). `build_router` is its entry in `rwscaler.pooler.registry`."""

from __future__ import annotations

from rwscaler.boundary import ReadRouter
from rwscaler.kube.client import KubeClient
from rwscaler.kube.cluster import KubeCluster
from rwscaler.pooler.endpointslice.router import EndpointSliceRouter


def build_router(client: KubeClient, cluster: KubeCluster) -> ReadRouter:
    """The router on the operator's API client (it needs nothing from the cluster adapter)."""
    return EndpointSliceRouter(client)
