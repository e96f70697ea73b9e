"""The Kubernetes side of the PgBouncer pooler, as the operator's ServiceAccount sees it.

`KubePgBouncerAccess` finds the PgBouncer Deployment's Ready pods, reads the admin Secret and
owns one key of the user's ConfigMap. The pods are kwok fakes: their IPs are only read, never
dialled (the PgBouncer conversation itself is tested against a real PgBouncer in
tests/integration/postgres).
"""

from __future__ import annotations

import asyncio
import base64

import pytest
from cluster_helpers import Kube, Plane, wait_for

from rwscaler.boundary import ClusterProblem
from rwscaler.core.spec import PgBouncerSpec
from rwscaler.core.vocabulary import ReadyReason
from rwscaler.kube.client import KubeClient
from rwscaler.kube.cluster import KubeCluster
from rwscaler.pooler.pgbouncer.access import KubePgBouncerAccess


def _deployment(name: str, replicas: int) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "pgbouncer", "image": "pgbouncer:1.18"}]},
            },
        },
    }


SPEC = PgBouncerSpec(
    deployment="pgb",
    configMap="pgb",
    configKey="databases.ini",
    database="app",
    port=6432,
    adminSecret={"name": "pgb-admin", "key": "admin"},  # type: ignore[arg-type]
)


def test_instances_credentials_and_the_config_key(plane: Plane, kube: Kube, ns: str) -> None:
    kube.apps.create_namespaced_deployment(ns, _deployment("pgb", 2))
    wait_for("2 Ready PgBouncer pods", lambda: len(kube.running_pods(ns, "pgb")) == 2)
    ips = sorted(ip for name, ip in kube.pod_ips(ns).items() if name.startswith("pgb-"))
    kube.core.create_namespaced_secret(
        ns,
        {"metadata": {"name": "pgb-admin"}, "data": {"admin": base64.b64encode(b"admin:s3:cret").decode()}},
    )
    kube.core.create_namespaced_config_map(
        ns,
        {"metadata": {"name": "pgb"}, "data": {"pgbouncer.ini": "%include /etc/pgbouncer/databases.ini\n"}},
    )

    async def run() -> None:
        client = KubeClient.from_kubeconfig(str(plane.sa_kubeconfig))
        try:
            access = KubePgBouncerAccess(client, KubeCluster(client))
            instances = await access.instances(ns, SPEC)
            assert sorted(i.host for i in instances) == ips and {i.port for i in instances} == {6432}
            creds = await access.credentials(ns, SPEC)
            assert (creds.user, creds.password) == ("admin", "s3:cret")
            store = access.store(ns, SPEC)
            assert await store.read() is None
            await store.write("[databases]\napp = host=10.0.0.1\n", "h1")
            assert await store.read() == "[databases]\napp = host=10.0.0.1\n"

            with pytest.raises(ClusterProblem) as missing:
                await access.instances(ns, SPEC.model_copy(update={"deployment": "nope"}))
            assert missing.value.reason is ReadyReason.POOLER_UNAVAILABLE
        finally:
            await client.close()

    asyncio.run(run())
    cm = kube.core.read_namespaced_config_map("pgb", ns)
    assert cm.data["pgbouncer.ini"] == "%include /etc/pgbouncer/databases.ini\n", "other keys are the user's"
    assert cm.metadata.annotations["rwscaler.io/pgbouncer-databases-hash"] == "h1"
