"""PgBouncerReadRouter (the reconcile loop's ReadRouter/ConnectionCounter for PgBouncer) without
a PgBouncer: what becomes a ClusterProblem, and connections that stay unknown.

tests/integration/postgres/test_pgbouncer_routing.py runs it against the real PgBouncer,
including the grace for a config that has not reached the pod yet.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence

import pytest
from test_pgbouncer_render import ADDRESSES, PRIMARY, make_spec, pgb, plan_with
from test_pgbouncer_router import MemoryStore

from rwscaler.boundary import (
    ClusterProblem,
    ConnectionCounter,
    ConnectionsRequest,
    Endpoint,
    OwnerRef,
    ReadRouter,
    RouteRequest,
)
from rwscaler.core.spec import PgBouncerSpec, ReadWriteWorkloadSpec
from rwscaler.core.vocabulary import ReadyReason
from rwscaler.pooler.pgbouncer.admin import AdminCredentials, Instance, parse_admin_secret
from rwscaler.pooler.pgbouncer.route import PgBouncerReadRouter

OWNER = OwnerRef("shop", "orders", "uid-1")


class Access:
    def __init__(
        self, instances: Sequence[Instance], secret_problem: bool = False, bad_secret: bool = False
    ) -> None:
        self._instances = list(instances)
        self._secret_problem = secret_problem
        self._bad_secret = bad_secret
        self.stores: dict[str, MemoryStore] = {}

    async def instances(self, namespace: str, spec: PgBouncerSpec) -> Sequence[Instance]:
        return self._instances

    async def credentials(self, namespace: str, spec: PgBouncerSpec) -> AdminCredentials:
        if self._secret_problem:
            raise ClusterProblem(ReadyReason.SECRET_NOT_FOUND, f"Secret {spec.adminSecret.name} not found")
        if self._bad_secret:
            return parse_admin_secret("no-colon-here")
        return AdminCredentials("admin", "pw")

    def store(self, namespace: str, spec: PgBouncerSpec) -> MemoryStore:
        return self.stores.setdefault(f"{namespace}/{spec.configMap}", MemoryStore())


def spec() -> ReadWriteWorkloadSpec:
    return make_spec(pooler={"kind": "PgBouncer", "pgbouncer": pgb().model_dump()})


def endpoint(name: str) -> Endpoint:
    return Endpoint(name, f"uid-{name}", ADDRESSES[name])


def request(primary: bool = True) -> RouteRequest:
    return RouteRequest(
        owner=OWNER,
        spec=spec(),
        plan=plan_with(("db-replica-0", "db-replica-1")),
        endpoints=(endpoint("db-replica-0"), endpoint("db-replica-1")),
        primary=endpoint(PRIMARY) if primary else None,
        ports=(),
    )


@pytest.fixture
def refused() -> Instance:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return Instance("127.0.0.1", s.getsockname()[1])


def test_it_fits_the_reconcile_protocols() -> None:
    router = PgBouncerReadRouter(Access([]))
    assert isinstance(router, ConnectionCounter)
    _: ReadRouter = router  # checked by mypy


async def test_no_pgbouncer_pod_is_a_routing_problem_but_the_config_is_written() -> None:
    access = Access([])
    with pytest.raises(ClusterProblem) as e:
        await PgBouncerReadRouter(access).apply(request())
    assert e.value.reason is ReadyReason.ROUTING_FAILED
    assert "no running PgBouncer pod of Deployment pgbouncer" in e.value.message
    (store,) = access.stores.values()
    assert store.text is not None and "host=10.0.0.6,10.0.0.7 " in store.text


async def test_unreachable_admin_console_is_a_routing_problem(refused: Instance) -> None:
    router = PgBouncerReadRouter(Access([refused]), timeout_s=2)
    with pytest.raises(ClusterProblem) as e:
        await router.apply(request())
    assert e.value.reason is ReadyReason.ROUTING_FAILED
    assert f"{refused}: AdminUnreachable" in e.value.message
    assert router.last[("shop", "orders")].instances[0].error is not None


async def test_primary_without_ip_is_refused_before_anything_is_written() -> None:
    access = Access([])
    with pytest.raises(ClusterProblem, match="primary pod has no IP"):
        await PgBouncerReadRouter(access).apply(request(primary=False))
    assert access.stores == {}


async def test_secret_problem_passes_through() -> None:
    with pytest.raises(ClusterProblem) as e:
        await PgBouncerReadRouter(Access([], secret_problem=True)).apply(request())
    assert e.value.reason is ReadyReason.SECRET_NOT_FOUND


async def test_connections_unknown_when_pgbouncer_cannot_be_asked(refused: Instance) -> None:
    counts = await PgBouncerReadRouter(Access([refused]), timeout_s=2).connections(
        ConnectionsRequest(OWNER, spec(), (endpoint("db-replica-0"), endpoint("db-replica-1")))
    )
    assert counts == {"db-replica-0": None, "db-replica-1": None}


async def test_malformed_secret_is_a_routing_problem_and_unknown_connections() -> None:
    router = PgBouncerReadRouter(Access([], bad_secret=True))
    with pytest.raises(ClusterProblem) as e:
        await router.apply(request())
    assert e.value.reason is ReadyReason.ROUTING_FAILED and "user:password" in e.value.message
    counts = await router.connections(ConnectionsRequest(OWNER, spec(), (endpoint("db-replica-1"),)))
    assert counts == {"db-replica-1": None}
