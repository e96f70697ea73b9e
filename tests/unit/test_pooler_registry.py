"""The pooler registry (rwscaler.pooler.registry): every pooler kind that routes has a factory,
`build_routers` gives the operator one router per kind, a kind whose optional dependency is
missing is left out with a warning, and psycopg is imported only when the PgBouncer router is
built (in a fresh interpreter, with psycopg present and with it blocked)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from types import SimpleNamespace
from typing import cast

import pytest

from rwscaler.boundary import ConnectionCounter, ReadRouter
from rwscaler.core.spec import PoolerKind
from rwscaler.kube.client import KubeClient
from rwscaler.kube.cluster import KubeCluster
from rwscaler.pooler.endpointslice.router import EndpointSliceRouter
from rwscaler.pooler.pgbouncer.route import PgBouncerReadRouter
from rwscaler.pooler.registry import FACTORIES, RouterFactory, build_routers

# The routers only keep these until a tick uses them.
CLIENT = cast(KubeClient, object())
CLUSTER = cast(KubeCluster, SimpleNamespace(services=None, endpoint_slices=None))


def test_every_kind_that_routes_is_registered() -> None:
    assert set(FACTORIES) == set(PoolerKind) - {PoolerKind.NONE}


def test_the_operator_gets_one_router_per_kind() -> None:
    routers = build_routers(CLIENT, CLUSTER)
    assert isinstance(routers[PoolerKind.ENDPOINT_SLICE], EndpointSliceRouter)
    assert not isinstance(routers[PoolerKind.ENDPOINT_SLICE], ConnectionCounter)
    pgbouncer = routers[PoolerKind.PGBOUNCER]
    assert isinstance(pgbouncer, PgBouncerReadRouter) and isinstance(pgbouncer, ConnectionCounter)


def test_a_kind_whose_dependency_is_missing_is_left_out_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def missing(client: KubeClient, cluster: KubeCluster) -> ReadRouter:
        raise ModuleNotFoundError("No module named 'psycopg'", name="psycopg")

    factories: dict[PoolerKind, RouterFactory] = {**FACTORIES, PoolerKind.PGBOUNCER: missing}
    with caplog.at_level(logging.WARNING, logger="rwscaler.pooler.registry"):
        routers = build_routers(CLIENT, CLUSTER, factories)
    assert set(routers) == {PoolerKind.ENDPOINT_SLICE}
    assert caplog.messages == ["pooler kind PgBouncer is not available: No module named 'psycopg'"]


PROBE = """
import json, sys, types
if {block}:
    sys.modules["psycopg"] = None  # what an install without psycopg looks like to an import
from rwscaler.pooler import registry
before = "psycopg" in sys.modules and sys.modules["psycopg"] is not None
routers = registry.build_routers(object(), types.SimpleNamespace(services=None, endpoint_slices=None))
after = "psycopg" in sys.modules and sys.modules["psycopg"] is not None
print(json.dumps({{"before": before, "after": after, "kinds": sorted(routers)}}))
"""


@pytest.mark.parametrize("block", [False, True], ids=["with-psycopg", "without-psycopg"])
def test_psycopg_is_loaded_only_when_the_pgbouncer_router_is_built(block: bool) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(block=block)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["before"] is False
    if block:
        assert result == {"before": False, "after": False, "kinds": ["EndpointSlice"]}
        assert "pooler kind PgBouncer is not available" in done.stderr
    else:
        assert result == {"before": False, "after": True, "kinds": ["EndpointSlice", "PgBouncer"]}
