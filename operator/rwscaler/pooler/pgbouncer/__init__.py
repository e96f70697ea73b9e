"""The `PgBouncer` pooler: rwscaler renders PgBouncer's `[databases]` section into a ConfigMap key,
reloads every PgBouncer through its admin console and counts server connections for drains.

Modules, from the pure end to the Kubernetes end:

- `render`: Plan -> the `[databases]` text and its hash (pure);
- `admin`: one admin console session (psycopg): SHOW DATABASES / SERVERS, RELOAD, RECONNECT;
- `apply`: `PgBouncerRouter`, write-if-changed, reload and reconnect each instance, count servers;
- `route`: `PgBouncerReadRouter`, the `ReadRouter` and `ConnectionCounter` of `rwscaler.boundary`,
  on a `PgBouncerAccess` (what only Kubernetes knows);
- `configmap`, `access`: that access on the Kubernetes adapter (the Deployment's pods, the admin
  Secret, the ConfigMap key rwscaler owns).

`render`, `admin`, `apply` and `route` import nothing from `rwscaler.kube`, so the PgBouncer side
runs (and is tested) against a PgBouncer on this machine with `apply.FileConfigStore`.
`build_router` is this pooler's entry in `rwscaler.pooler.registry`; it imports the modules that
need psycopg only when called, so the operator without psycopg still starts (PgBouncer workloads
are then `PoolerUnavailable`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rwscaler.boundary import ReadRouter
    from rwscaler.kube.client import KubeClient
    from rwscaler.kube.cluster import KubeCluster


def build_router(client: KubeClient, cluster: KubeCluster) -> ReadRouter:
    """The PgBouncer router on the operator's client and cluster; ImportError without psycopg."""
    # Imported here: psycopg is loaded only when the operator builds this router.
    from rwscaler.pooler.pgbouncer.access import KubePgBouncerAccess  # noqa: PLC0415
    from rwscaler.pooler.pgbouncer.route import PgBouncerReadRouter  # noqa: PLC0415

    return PgBouncerReadRouter(KubePgBouncerAccess(client, cluster))
