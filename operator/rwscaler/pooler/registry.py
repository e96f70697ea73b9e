"""The pooler registry: which package builds the `ReadRouter` of each `pooler.kind`.

`rwscaler.handlers.build_runtime` calls `build_routers` once when the operator starts and puts
the result in `reconcile.Deps.routers`; a tick then routes through `Deps.routers[spec.pooler.kind]`
(`None` needs no router). Registering a pooler is one entry in `FACTORIES`: its `PoolerKind` and
the package's `build_router`, which gets what the operator has (the API client and the cluster
adapter) and returns the router.

A factory whose optional dependency is missing raises ImportError (PgBouncer without psycopg): that
kind is then left out with a warning, and its workloads are reported `PoolerUnavailable` by the
reconcile loop while every other kind still runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from rwscaler.boundary import ReadRouter
from rwscaler.core.spec import PoolerKind
from rwscaler.kube.client import KubeClient
from rwscaler.kube.cluster import KubeCluster
from rwscaler.pooler import endpointslice, pgbouncer

log = logging.getLogger(__name__)

RouterFactory = Callable[[KubeClient, KubeCluster], ReadRouter]

FACTORIES: Mapping[PoolerKind, RouterFactory] = {
    PoolerKind.ENDPOINT_SLICE: endpointslice.build_router,
    PoolerKind.PGBOUNCER: pgbouncer.build_router,
}


def build_routers(
    client: KubeClient, cluster: KubeCluster, factories: Mapping[PoolerKind, RouterFactory] = FACTORIES
) -> dict[PoolerKind, ReadRouter]:
    """One router per registered kind whose dependencies are installed."""
    routers: dict[PoolerKind, ReadRouter] = {}
    for kind, factory in factories.items():
        try:
            routers[kind] = factory(client, cluster)
        except ImportError as err:
            log.warning("pooler kind %s is not available: %s", kind.value, err)
    return routers
