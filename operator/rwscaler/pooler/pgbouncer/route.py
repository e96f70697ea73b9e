"""PgBouncerReadRouter: `pooler.kind: PgBouncer` behind the reconcile loop's router protocols.

Implements `rwscaler.boundary.ReadRouter` (`apply(RouteRequest)`) and `ConnectionCounter`
(`connections(ConnectionsRequest)`) on top of `PgBouncerRouter`, so the operator registers it in
`Deps.routers[PoolerKind.PGBOUNCER]` (built by this package's `build_router`, through
`rwscaler.pooler.registry`). What only Kubernetes knows (the PgBouncer pods, the admin Secret, the
ConfigMap) comes through `PgBouncerAccess`, which `access.KubePgBouncerAccess` implements; this
module stays free of Kubernetes clients (an import-linter contract says so).

Status mapping: a render, ConfigMap or admin console error raises `ClusterProblem(RoutingFailed)`
(Ready=False with every problem listed). An instance that answers but has not loaded the new
config yet is normal for up to a minute after a ConfigMap write (kubelet's sync period), so it is
reported only when it lasts longer than `delivery_grace_s`; meanwhile the drain simply waits,
because the leaving replica's connections are still counted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from rwscaler.boundary import ClusterProblem, ConnectionsRequest, RouteRequest
from rwscaler.core.spec import PgBouncerSpec
from rwscaler.core.vocabulary import ReadyReason
from rwscaler.pooler.pgbouncer.admin import DEFAULT_TIMEOUT_S, AdminCredentials, Instance
from rwscaler.pooler.pgbouncer.apply import ApplyResult, ConfigStore, PgBouncerRouter

log = logging.getLogger(__name__)

# kubelet refreshes a mounted ConfigMap within its sync period (1 min by default) plus its cache
# TTL; past this, a PgBouncer still running the old config is a problem worth a condition.
DELIVERY_GRACE_S = 180.0


class PgBouncerAccess(Protocol):
    """What the PgBouncer router needs from Kubernetes (implemented by `access.KubePgBouncerAccess`)."""

    async def instances(self, namespace: str, spec: PgBouncerSpec) -> Sequence[Instance]:
        """The admin consoles of the running PgBouncer pods: (pod IP, spec.port) each."""
        ...

    async def credentials(self, namespace: str, spec: PgBouncerSpec) -> AdminCredentials:
        """spec.adminSecret, parsed with `parse_admin_secret`; raise ClusterProblem when unusable."""
        ...

    def store(self, namespace: str, spec: PgBouncerSpec) -> ConfigStore:
        """The ConfigMap key rwscaler owns (`rwscaler.pooler.pgbouncer.configmap.ConfigMapStore`)."""
        ...


class PgBouncerReadRouter:
    def __init__(
        self,
        access: PgBouncerAccess,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        delivery_grace_s: float = DELIVERY_GRACE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._access = access
        self._timeout_s = timeout_s
        self._grace_s = delivery_grace_s
        self._clock = clock
        # (namespace, name) -> (config hash, since when some instance has not loaded it)
        self._pending: dict[tuple[str, str], tuple[str, float]] = {}
        #: The last ApplyResult per workload, for logs and tests.
        self.last: dict[tuple[str, str], ApplyResult] = {}

    @staticmethod
    def _spec(spec: PgBouncerSpec | None) -> PgBouncerSpec:
        if spec is None:  # the CRD and the model both refuse this; keep the type checker honest
            raise ClusterProblem(ReadyReason.SPEC_INVALID, "pooler kind PgBouncer needs pgbouncer")
        return spec

    async def _reach(self, namespace: str, pgb: PgBouncerSpec) -> tuple[AdminCredentials, Sequence[Instance]]:
        """The admin credentials and the instances; any failure becomes a ClusterProblem."""
        try:
            return (
                await self._access.credentials(namespace, pgb),
                await self._access.instances(namespace, pgb),
            )
        except ClusterProblem:
            raise
        except Exception as err:  # e.g. a Secret that is not 'user:password'
            raise ClusterProblem(
                ReadyReason.ROUTING_FAILED, f"PgBouncer {pgb.deployment}: {type(err).__name__}: {err}"
            ) from err

    async def apply(self, request: RouteRequest) -> bool:
        owner = request.owner
        key = (owner.namespace, owner.name)
        pgb = self._spec(request.spec.pooler.pgbouncer)
        if request.primary is None:
            raise ClusterProblem(
                ReadyReason.ROUTING_FAILED,
                "the primary pod has no IP: PgBouncer's write database cannot be set",
            )
        addresses = {e.pod: e.ip for e in request.endpoints}
        addresses[request.primary.pod] = request.primary.ip
        credentials, instances = await self._reach(owner.namespace, pgb)
        router = PgBouncerRouter(self._access.store(owner.namespace, pgb), self._timeout_s)
        result = await router.apply(request.plan, pgb, request.primary.pod, addresses, instances, credentials)
        self.last[key] = result
        hard = [
            *([f"render: {result.render_error}"] if result.render_error else []),
            *([f"write: {result.write_error}"] if result.write_error else []),
            *(str(i.error) for i in result.instances if i.error is not None),
        ]
        if not instances:
            hard.append(f"no running PgBouncer pod of Deployment {pgb.deployment} has an IP")
        if hard:
            raise ClusterProblem(ReadyReason.ROUTING_FAILED, "PgBouncer: " + "; ".join(hard))
        pending = [i for i in result.instances if not i.converged]
        if not pending or result.rendered is None:
            self._pending.pop(key, None)
            return result.changed
        text_hash = result.rendered.hash
        since = self._pending.get(key)
        if since is None or since[0] != text_hash:
            since = (text_hash, self._clock())
            self._pending[key] = since
        waited = self._clock() - since[1]
        detail = "; ".join(f"{i.instance}: {i.mismatch}" for i in pending)
        if waited > self._grace_s:
            raise ClusterProblem(
                ReadyReason.ROUTING_FAILED,
                f"PgBouncer has not loaded the [databases] rwscaler wrote {waited:.0f}s ago (is "
                f"{pgb.configKey} of ConfigMap {pgb.configMap} %included and mounted?): {detail}",
            )
        log.info("%s/%s: PgBouncer config not loaded yet (%.0fs): %s", *key, waited, detail)
        return result.changed

    async def connections(self, request: ConnectionsRequest) -> Mapping[str, int | None]:
        pgb = self._spec(request.spec.pooler.pgbouncer)
        endpoints = {e.pod: e.ip for e in request.replicas}
        namespace = request.owner.namespace
        try:
            credentials, instances = await self._reach(namespace, pgb)
        except ClusterProblem as err:
            log.warning("%s/%s: server connections unknown: %s", namespace, request.owner.name, err.message)
            return dict.fromkeys(endpoints)
        router = PgBouncerRouter(self._access.store(namespace, pgb), self._timeout_s)
        counts = await router.count_server_connections(endpoints, instances, credentials, pgb)
        for error in counts.errors:
            log.warning("%s/%s: server connections unknown: %s", namespace, request.owner.name, error)
        return counts.counts
