"""The PgBouncer [databases] rendering (pure): routing, pool sizes, determinism, refusals.

The accepted per-database keys and the refusal of quoted keys were checked against PgBouncer
1.18.0 (Debian 12); tests/integration/postgres/test_pgbouncer_routing.py loads this output into
the real binary.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest

from rwscaler.core.decide import decide
from rwscaler.core.memory import Memory
from rwscaler.core.observation import Observation, ReplicaObservation, Signal
from rwscaler.core.plan import Plan
from rwscaler.core.pool_sizing import size_pools
from rwscaler.core.spec import PgBouncerSpec, ReadWriteWorkloadSpec
from rwscaler.pooler.pgbouncer.render import (
    HEADER,
    RenderError,
    config_hash,
    read_database_name,
    render_databases,
    write_database_name,
)

PRIMARY = "db-0"
ADDRESSES = {
    PRIMARY: "10.0.0.5",
    "db-replica-0": "10.0.0.6",
    "db-replica-1": "10.0.0.7",
    "db-replica-2": "10.0.0.8",
}
# Per-database keys PgBouncer 1.18 accepts (man 5 pgbouncer, [databases]); anything else fails the load.
ACCEPTED_KEYS = {
    "dbname", "host", "port", "user", "password", "auth_user", "pool_size", "min_pool_size",
    "reserve_pool", "connect_query", "pool_mode", "max_db_connections", "client_encoding",
    "datestyle", "timezone",
}  # fmt: skip


# Local builders (not tests/unit/conftest.py's: `from tests.unit.builders import` resolves to whichever
# conftest pytest loaded last, which breaks when these files run next to tests/integration).
def make_spec(**overrides: Any) -> ReadWriteWorkloadSpec:
    base: dict[str, Any] = {
        "primary": {"statefulSet": "db"},
        "replicas": {"statefulSet": "db-replica", "minReplicas": 1, "maxReplicas": 8},
        "prometheus": {"url": "http://prometheus.monitoring:9090"},
    }
    return ReadWriteWorkloadSpec.model_validate({**base, **overrides})


def replica(ordinal: int, lag: float = 0.1) -> ReplicaObservation:
    return ReplicaObservation(name=f"db-replica-{ordinal}", rank=ordinal, ready=True, lag=Signal.of(lag))


def make_obs(current: int = 2, replicas: list[ReplicaObservation] | None = None) -> Observation:
    return Observation(
        read_qps=Signal.of(1000.0),
        write_qps=Signal.of(100.0),
        read_p99=Signal.of(0.03),
        write_p99=Signal.of(0.01),
        current_replicas=current,
        primary=PRIMARY,
        replicas=tuple(replicas if replicas is not None else [replica(i) for i in range(current)]),
    )


def pgb(**overrides: object) -> PgBouncerSpec:
    base: dict[str, object] = {
        "deployment": "pgbouncer",
        "configMap": "pgbouncer",
        "database": "orders",
        "adminSecret": {"name": "pgbouncer-admin", "key": "admin"},
    }
    return PgBouncerSpec.model_validate({**base, **overrides})


def plan_with(read_pool: tuple[str, ...], fallback: bool = False, cores: int = 4) -> Plan:
    """A real plan from decide, with its read pool replaced (sizing recomputed as decide does)."""
    plan = decide(make_spec(pooler={"serverCores": cores}), make_obs(current=2), Memory(), 0.0)
    servers = len(read_pool) if not fallback else 1
    return dataclasses.replace(
        plan, read_pool=read_pool, pool_fallback=fallback, pool_sizing=size_pools(cores, servers)
    )


def parse(text: str) -> dict[str, dict[str, str]]:
    """The [databases] lines back into {name: {key: value}} (values here are never quoted)."""
    out: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        if not line or line.startswith(";"):
            continue
        name, _, rest = line.partition(" = ")
        out[name] = dict(pair.split("=", 1) for pair in rest.split())
    return out


def test_write_on_primary_read_on_exactly_the_pool_with_seed_sizes() -> None:
    r = render_databases(pgb(), plan_with(("db-replica-0", "db-replica-1")), PRIMARY, ADDRESSES)
    dbs = parse(r.text)
    assert set(dbs) == {"orders", "orders_ro"}
    assert dbs["orders"]["host"] == "10.0.0.5"
    assert dbs["orders_ro"]["host"] == "10.0.0.6,10.0.0.7"  # replica-2 is not in the pool
    for d in dbs.values():
        assert d["port"] == "5432"
        assert d["dbname"] == "orders"
    # seed section 5 with 4 cores: write max 8 / min idle 4; read max 4x2x2 = 16 / min idle 8.
    assert dbs["orders"]["pool_size"] == dbs["orders"]["max_db_connections"] == "8"
    assert dbs["orders"]["min_pool_size"] == "4"
    assert dbs["orders_ro"]["pool_size"] == dbs["orders_ro"]["max_db_connections"] == "16"
    assert dbs["orders_ro"]["min_pool_size"] == "8"
    assert dbs["orders"]["reserve_pool"] == dbs["orders_ro"]["reserve_pool"] == "0"
    assert r.text.startswith(HEADER)
    assert r.hash == config_hash(r.text)
    assert r.unrouted == ()


def test_only_keys_pgbouncer_118_accepts() -> None:
    r = render_databases(pgb(), plan_with(("db-replica-0",)), PRIMARY, ADDRESSES)
    for d in parse(r.text).values():
        assert set(d) <= ACCEPTED_KEYS
    assert "timeout" not in r.text.replace("; ", "")  # timeouts are global in 1.18: not rendered


def test_pool_size_follows_the_read_pool() -> None:
    three = parse(render_databases(pgb(), plan_with(tuple(ADDRESSES)[1:]), PRIMARY, ADDRESSES).text)
    one = parse(render_databases(pgb(), plan_with(("db-replica-1",)), PRIMARY, ADDRESSES).text)
    assert three["orders_ro"]["pool_size"] == "24"
    assert one["orders_ro"]["pool_size"] == "8"
    assert three["orders"]["pool_size"] == one["orders"]["pool_size"] == "8"


def test_fallback_routes_reads_to_the_primary() -> None:
    r = render_databases(pgb(), plan_with((PRIMARY,), fallback=True), PRIMARY, ADDRESSES)
    dbs = parse(r.text)
    assert dbs["orders_ro"]["host"] == dbs["orders"]["host"] == "10.0.0.5"
    assert "fallback" in r.text


def test_strong_consistency_pool_with_primary_and_sync_replica() -> None:
    r = render_databases(pgb(), plan_with((PRIMARY, "db-replica-0")), PRIMARY, ADDRESSES)
    assert parse(r.text)["orders_ro"]["host"] == "10.0.0.5,10.0.0.6"


def test_a_real_decide_plan_renders() -> None:
    spec = make_spec(pooler={"kind": "PgBouncer", "pgbouncer": pgb().model_dump()})
    obs = make_obs(current=3, replicas=[replica(0), replica(1, lag=60.0), replica(2)])
    plan = decide(spec, obs, Memory(), 0.0)
    assert plan.read_pool == ("db-replica-0", "db-replica-2")  # the lagging one left
    assert parse(render_databases(pgb(), plan, PRIMARY, ADDRESSES).text)["orders_ro"]["host"] == (
        "10.0.0.6,10.0.0.8"
    )


def test_deterministic_and_hash_moves_with_the_pool() -> None:
    a = render_databases(pgb(), plan_with(("db-replica-0", "db-replica-1")), PRIMARY, ADDRESSES)
    b = render_databases(pgb(), plan_with(("db-replica-0", "db-replica-1")), PRIMARY, dict(ADDRESSES))
    c = render_databases(pgb(), plan_with(("db-replica-0",)), PRIMARY, ADDRESSES)
    assert a.text == b.text and a.hash == b.hash
    assert c.hash != a.hash
    assert re.fullmatch(r"[0-9a-f]{64}", a.hash)


def test_names_and_ports_from_the_spec() -> None:
    spec = pgb(writeDatabase="rw", readDatabase="shop-ro", serverPort=6543, database="shop")
    assert (write_database_name(spec), read_database_name(spec)) == ("rw", "shop-ro")
    dbs = parse(render_databases(spec, plan_with(("db-replica-0",)), PRIMARY, ADDRESSES).text)
    assert set(dbs) == {"rw", "shop-ro"}
    assert dbs["rw"]["port"] == dbs["shop-ro"]["port"] == "6543"
    assert dbs["rw"]["dbname"] == "shop"


def test_unusual_database_name_is_quoted() -> None:
    # The PgBouncer-side names default to the database name, so such a name needs explicit ones.
    with pytest.raises(RenderError, match="only letters"):
        render_databases(pgb(database="my db's"), plan_with(("db-replica-0",)), PRIMARY, ADDRESSES)
    spec = pgb(database="my db's", writeDatabase="orders", readDatabase="orders_ro")
    r = render_databases(spec, plan_with(("db-replica-0",)), PRIMARY, ADDRESSES)
    assert "dbname='my db''s' " in r.text
    assert r.write.dbname == "my db's"


def test_replica_without_address_is_unrouted_never_an_empty_pool() -> None:
    addresses = {PRIMARY: "10.0.0.5", "db-replica-0": "10.0.0.6"}
    r = render_databases(pgb(), plan_with(("db-replica-0", "db-replica-1")), PRIMARY, addresses)
    assert r.read.hosts == ("10.0.0.6",)
    assert r.unrouted == ("db-replica-1",)
    only_missing = render_databases(pgb(), plan_with(("db-replica-1",)), PRIMARY, {PRIMARY: "10.0.0.5"})
    assert only_missing.read.hosts == ("10.0.0.5",)
    assert "fallback" in only_missing.text


def test_ipv6_addresses_are_canonical() -> None:
    addresses = {PRIMARY: "fd00:0:0:0::5", "db-replica-0": "FD00::6"}
    r = render_databases(pgb(), plan_with(("db-replica-0",)), PRIMARY, addresses)
    assert r.write.hosts == ("fd00::5",)
    assert r.read.hosts == ("fd00::6",)


@pytest.mark.parametrize(
    ("spec", "addresses", "message"),
    [
        (pgb(), {"db-replica-0": "10.0.0.6"}, "no address for the primary"),
        (pgb(), {PRIMARY: "db-0.db.svc"}, "not an IP address"),
        (pgb(readDatabase="orders"), ADDRESSES, "both 'orders'"),
        (pgb(readDatabase="pgbouncer"), ADDRESSES, "admin console"),
        (pgb(writeDatabase='"quoted"'), ADDRESSES, "only letters"),
        (pgb(readDatabase="read ro"), ADDRESSES, "only letters"),
        (
            pgb(database="a\nb = host=evil", writeDatabase="w", readDatabase="r"),
            ADDRESSES,
            "control character",
        ),
    ],
)
def test_refusals(spec: PgBouncerSpec, addresses: dict[str, str], message: str) -> None:
    with pytest.raises(RenderError, match=message):
        render_databases(spec, plan_with(("db-replica-0",)), PRIMARY, addresses)
