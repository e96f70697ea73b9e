"""Which `ScaleTarget` module serves a `scaleTargetRef`: the registration of every kind.

Called by `KubeCluster.target`. Kinds with a module of their own are in `KINDS`; any other kind
is looked up in the API server's discovery and served by `ScalableTarget` when it has a `scale`
subresource (as HPA accepts any such kind), else refused with `ScaleTargetNotScalable`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from rwscaler.boundary import ClusterProblem, ScaleTarget
from rwscaler.core.spec import ScaleTargetRef
from rwscaler.core.vocabulary import ReadyReason
from rwscaler.kube.client import KubeApiError, KubeClient
from rwscaler.kube.pod_cache import PodSource
from rwscaler.kube.targets.cnpg_cluster import CnpgClusterTarget
from rwscaler.kube.targets.scalable import ScalableTarget
from rwscaler.kube.targets.statefulset import StatefulSetTarget
from rwscaler.kube.watch_cache import Watched

# (API group, kind) -> the module's target, built on the operator's client, its pod source and
# the kind's watch-fed scale (if the operator watches that kind).
KINDS: dict[tuple[str, str], Callable[[KubeClient, str, PodSource | None, Watched | None], ScaleTarget]] = {
    ("apps", "StatefulSet"): StatefulSetTarget,
    ("postgresql.cnpg.io", "Cluster"): CnpgClusterTarget,
}


async def _discover_plural(client: KubeClient, ref: ScaleTargetRef) -> str:
    base = "/api" if "/" not in ref.apiVersion else "/apis"
    try:
        found = await client.get(f"{base}/{ref.apiVersion}")
    except KubeApiError as err:
        raise ClusterProblem(
            ReadyReason.SCALE_TARGET_NOT_SCALABLE, f"cannot discover {ref.apiVersion}: {err.message}"
        ) from err
    resources = (found or {}).get("resources") or []
    names = {r.get("name") for r in resources if isinstance(r, dict)}
    for r in resources:
        name = r.get("name", "") if isinstance(r, dict) else ""
        if r.get("kind") == ref.kind and "/" not in name:
            if f"{name}/scale" not in names:
                raise ClusterProblem(
                    ReadyReason.SCALE_TARGET_NOT_SCALABLE,
                    f"{ref.describe()}: the kind serves no scale subresource, so rwscaler cannot scale it",
                )
            return str(name)
    raise ClusterProblem(
        ReadyReason.SCALE_TARGET_NOT_SCALABLE,
        f"{ref.describe()}: the API server serves no kind {ref.kind} in {ref.apiVersion}",
    )


async def target_for(
    client: KubeClient,
    ref: ScaleTargetRef,
    pods: PodSource | None = None,
    scales: Mapping[tuple[str, str], Watched] | None = None,
) -> ScaleTarget:
    """The port of the ref's kind; `pods`: the watch-fed pods (None: each read LISTs them);
    `scales`: the watch-fed scale of the kinds the operator watches, by (API group, kind) (a kind
    not there: each read GETs its scale subresource)."""
    watched = (scales or {}).get((ref.group, ref.kind))
    build = KINDS.get((ref.group, ref.kind))
    if build is not None:
        return build(client, ref.apiVersion, pods, watched)
    return ScalableTarget(client, ref.apiVersion, await _discover_plural(client, ref), pods, watched)
