"""KubePgBouncerAccess: what the PgBouncer router needs from Kubernetes, on the Kubernetes adapter.

Implements `route.PgBouncerAccess` for the operator: the admin consoles of the PgBouncer
Deployment's Ready pods (pod IP and `spec.pooler.pgbouncer.port`), the admin credentials from
`adminSecret`, and the ConfigMap key rwscaler owns (`configmap.ConfigMapStore`). This package's
`build_router` (called through `rwscaler.pooler.registry` when the operator starts) builds the
router on it; with `configmap`, it is the only module of the package that uses the Kubernetes
adapter.
"""

from __future__ import annotations

from rwscaler.boundary import ClusterProblem
from rwscaler.core.spec import PgBouncerSpec
from rwscaler.core.vocabulary import ReadyReason
from rwscaler.kube.client import KubeClient
from rwscaler.kube.cluster import KubeCluster
from rwscaler.pooler.pgbouncer.admin import AdminCredentials, Instance, parse_admin_secret
from rwscaler.pooler.pgbouncer.configmap import ConfigMapStore


class KubePgBouncerAccess:
    def __init__(self, client: KubeClient, cluster: KubeCluster) -> None:
        self._client = client
        self._cluster = cluster

    async def instances(self, namespace: str, spec: PgBouncerSpec) -> list[Instance]:
        ips = await self._cluster.deployment_pod_ips(namespace, spec.deployment)
        if ips is None:
            raise ClusterProblem(
                ReadyReason.POOLER_UNAVAILABLE,
                f"the PgBouncer Deployment {namespace}/{spec.deployment} does not exist",
            )
        return [Instance(host=ip, port=spec.port) for ip in ips]

    async def credentials(self, namespace: str, spec: PgBouncerSpec) -> AdminCredentials:
        ref = spec.adminSecret
        value = await self._cluster.read_secret(namespace, ref.name, ref.key)
        try:
            return parse_admin_secret(value)
        except ValueError as err:
            raise ClusterProblem(
                ReadyReason.SECRET_KEY_NOT_FOUND, f"the Secret {namespace}/{ref.name} key {ref.key!r}: {err}"
            ) from err

    def store(self, namespace: str, spec: PgBouncerSpec) -> ConfigMapStore:
        return ConfigMapStore(self._client, namespace, spec.configMap, spec.configKey)
