"""kube/targets: each kind of scale target, against an in-memory API (`FakeApi`).

What each kind promises (docs/topologies.md): its count and selector from the `scale`
subresource, its pods, each pod's rank in the order the kind removes pods, and a scale that
patches the subresource. `FakeApi` answers GET/merge-patch by path and filters pods by an
equality selector; it does not check RBAC, admission, or a controller acting on the count (the
cluster tier and the CloudNativePG end-to-end test do).
"""

from __future__ import annotations

from typing import Any

import pytest

from rwscaler.boundary import ClusterProblem
from rwscaler.core.spec import ScaleTargetRef
from rwscaler.core.vocabulary import ReadyReason
from rwscaler.kube.cluster import KubeCluster
from rwscaler.kube.targets.registry import target_for

NS = "shop"


class FakeApi:
    def __init__(self) -> None:
        self.objects: dict[str, dict[str, Any]] = {}
        self.pods: list[dict[str, Any]] = []
        self.patches: list[tuple[str, dict[str, Any]]] = []

    async def get(self, path: str, params: Any = None) -> dict[str, Any] | None:
        return self.objects.get(path)

    async def request(self, method: str, path: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        assert method == "GET" and path == f"/api/v1/namespaces/{NS}/pods"
        wanted = dict(part.split("=", 1) for part in (params or {})["labelSelector"].split(","))
        return {
            "items": [
                p for p in self.pods if all(p["metadata"]["labels"].get(k) == v for k, v in wanted.items())
            ]
        }

    async def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        self.patches.append((path, patch))
        return {}


def pod(name: str, labels: dict[str, str], owner: str, *, ready: bool = True) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "uid": f"uid-{name}",
            "labels": labels,
            "ownerReferences": [{"uid": owner, "controller": True}],
        },
        "status": {
            "podIP": "10.0.0.1",
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def scale(count: int, selector: str | None, uid: str) -> dict[str, Any]:
    return {"metadata": {"uid": uid}, "spec": {"replicas": count}, "status": {"selector": selector}}


STS = ScaleTargetRef(apiVersion="apps/v1", kind="StatefulSet", name="db")
CNPG = ScaleTargetRef(apiVersion="postgresql.cnpg.io/v1", kind="Cluster", name="orders")


def statefulset_api(primary_ordinal: int) -> FakeApi:
    """One StatefulSet of 4 pods with Spilo's role labels (the primary where the test says)."""
    api = FakeApi()
    api.objects[f"/apis/apps/v1/namespaces/{NS}/statefulsets/db/scale"] = scale(4, "app=db", "sts")
    for i in range(4):
        role = "master" if i == primary_ordinal else "replica"
        api.pods.append(pod(f"db-{i}", {"app": "db", "spilo-role": role}, "sts"))
    # Selected by the labels but controlled by something else: not the StatefulSet's pod.
    api.pods.append(pod("db-backup-0", {"app": "db"}, "other"))
    return api


async def test_a_statefulset_counts_and_ranks_its_pods_by_ordinal() -> None:
    api = statefulset_api(primary_ordinal=0)
    target = await target_for(api, STS)  # type: ignore[arg-type]
    state = await target.read(NS, STS)
    assert state is not None and (state.count, state.selector) == (4, "app=db")
    pods = await target.pods(NS, state, counts_primary=False)
    assert [(p.name, p.rank) for p in pods] == [("db-0", 0), ("db-1", 1), ("db-2", 2), ("db-3", 3)]
    # When the set also runs the primary its count includes it: ordinal o goes at o - 1 replicas.
    pods = await target.pods(NS, state, counts_primary=True)
    assert [p.rank for p in pods] == [-1, 0, 1, 2]
    assert target.removal_order_known


async def test_a_statefulset_scales_through_its_scale_subresource() -> None:
    api = statefulset_api(primary_ordinal=0)
    target = await target_for(api, STS)  # type: ignore[arg-type]
    state = await target.read(NS, STS)
    assert state is not None
    await target.scale(NS, state, 3)
    assert api.patches == [
        (f"/apis/apps/v1/namespaces/{NS}/statefulsets/db/scale", {"spec": {"replicas": 3}})
    ]


async def test_a_missing_target_reads_as_none() -> None:
    target = await target_for(FakeApi(), STS)  # type: ignore[arg-type]
    assert await target.read(NS, STS) is None


def cnpg_api(*, selector: str | None) -> FakeApi:
    """A Cluster of 4 instances: orders-2 primary, orders-4 not Ready, orders-1 and -3 replicas."""
    api = FakeApi()
    api.objects[f"/apis/postgresql.cnpg.io/v1/namespaces/{NS}/clusters/orders/scale"] = scale(
        4, selector, "cl"
    )
    roles = {1: "replica", 2: "primary", 3: "replica", 4: "replica"}
    for serial, role in roles.items():
        labels = {"cnpg.io/cluster": "orders", "cnpg.io/podRole": "instance", "cnpg.io/instanceRole": role}
        instance = pod(f"orders-{serial}", labels, "cl", ready=serial != 4)
        instance["metadata"]["annotations"] = {"cnpg.io/nodeSerial": str(serial)}  # what CloudNativePG reads
        api.pods.append(instance)
    # A CloudNativePG Pooler's pod carries the cluster label too, but is no instance of it.
    api.pods.append(
        pod("orders-pooler-rw-7d9f", {"cnpg.io/cluster": "orders", "cnpg.io/podRole": "pooler"}, "rs")
    )
    return api


@pytest.mark.parametrize("selector", ["cnpg.io/cluster=orders", None], ids=["published", "fallback"])
async def test_a_cnpg_cluster_ranks_pods_in_the_order_cloudnativepg_removes_them(
    selector: str | None,
) -> None:
    api = cnpg_api(selector=selector)
    target = await target_for(api, CNPG)  # type: ignore[arg-type]
    state = await target.read(NS, CNPG)
    assert state is not None and state.count == 4
    assert state.selector == (selector or "cnpg.io/cluster=orders,cnpg.io/podRole=instance")
    ranks = {p.name: p.rank for p in await target.pods(NS, state, counts_primary=True)}
    # CloudNativePG removes the Ready non-primary pod of the highest serial first, never the
    # primary, never a pod that is not Ready: keep orders-4 (not Ready), then orders-1, then 3.
    assert ranks == {"orders-2": None, "orders-4": 0, "orders-1": 1, "orders-3": 2}
    await target.scale(NS, state, 3)
    assert api.patches[-1] == (
        f"/apis/postgresql.cnpg.io/v1/namespaces/{NS}/clusters/orders/scale",
        {"spec": {"replicas": 3}},
    )


async def test_any_other_kind_needs_a_scale_subresource_and_is_never_scaled_in() -> None:
    ref = ScaleTargetRef(apiVersion="example.com/v1", kind="Db", name="x")
    api = FakeApi()
    api.objects["/apis/example.com/v1"] = {"resources": [{"name": "dbs", "kind": "Db"}]}
    with pytest.raises(ClusterProblem) as err:
        await target_for(api, ref)  # type: ignore[arg-type]
    assert (
        err.value.reason is ReadyReason.SCALE_TARGET_NOT_SCALABLE
        and "no scale subresource" in err.value.message
    )
    api.objects["/apis/example.com/v1"]["resources"].append({"name": "dbs/scale", "kind": "Scale"})
    target = await target_for(api, ref)  # type: ignore[arg-type]
    assert not target.removal_order_known
    api.objects[f"/apis/example.com/v1/namespaces/{NS}/dbs/x/scale"] = scale(2, None, "u")
    with pytest.raises(ClusterProblem, match=r"publishes no status\.selector"):
        await target.read(NS, ref)


async def test_an_unknown_kind_is_refused_by_name() -> None:
    ref = ScaleTargetRef(apiVersion="example.com/v1", kind="Nope", name="x")
    api = FakeApi()
    api.objects["/apis/example.com/v1"] = {"resources": []}
    with pytest.raises(ClusterProblem, match="serves no kind Nope"):
        await target_for(api, ref)  # type: ignore[arg-type]


async def test_the_cluster_discovers_a_kind_once_and_not_a_refusal() -> None:
    class CountingApi(FakeApi):
        discoveries = 0

        async def get(self, path: str, params: Any = None) -> dict[str, Any] | None:
            if path == "/apis/example.com/v1":
                CountingApi.discoveries += 1
            return await super().get(path, params)

    api = CountingApi()
    api.objects["/apis/example.com/v1"] = {"resources": [{"name": "dbs", "kind": "Db"}]}
    cluster = KubeCluster(api, instance="test")  # type: ignore[arg-type]
    ref = ScaleTargetRef(apiVersion="example.com/v1", kind="Db", name="x")
    with pytest.raises(ClusterProblem):
        await cluster.target(ref)  # no scale subresource yet
    api.objects["/apis/example.com/v1"]["resources"].append({"name": "dbs/scale", "kind": "Scale"})
    first = await cluster.target(ref)
    assert await cluster.target(ref) is first
    assert CountingApi.discoveries == 2, "asked again after the refusal, then kept"
