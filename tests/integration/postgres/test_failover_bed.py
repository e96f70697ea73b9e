"""The failover operations of the test beds and the role metrics rwscaler reads, exporter level.

Issue 11 confirms each pod's role by a metric: postgres ``pg_replication_is_replica`` and mysql
``mysql_global_variables_read_only`` (1 replica, 0 primary). These tests check, with real
servers, exporters and Prometheus, that the series exist under those names for every pod and
flip when the test bed fails over (tests/support/pgenv.py ``PgEnv.failover``,
tests/support/mariadb.py ``MariaDbEnv.failover``): after a promotion Prometheus shows 0 for the
new primary and 1 for the others within a few scrape intervals, the pod names stay where they
were, the new primary takes writes that reach every replica, and ``reset`` restores the original
layout for the next test.

Exporters: Debian's postgres_exporter 0.11.1 has no replication collector (0.13.0 added it,
enabled by default); PgEnv runs that collector's query as an extension query, so the series has
the name a current exporter gives it. Debian's mysqld_exporter 0.14 collects global variables by
default; MariaDbEnv passes ``--collect.global_variables`` explicitly.

Run by pytest with the other tests of this folder (the `postgres` marker; the session ``pgenv``
fixture from conftest.py, a MariaDbEnv of this module's own).
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from typing import TypeVar

import psycopg
import pytest
from tests.support.mariadb import MariaDbEnv, mariadb_available
from tests.support.pgenv import PgEnv
from tests.support.prometheus import PrometheusServer
from tests.support.tiers import need

pytestmark = pytest.mark.timeout(300)

T = TypeVar("T")
#: How many scrape intervals a flip may take to show in Prometheus: one scrape to see it, one
#: for the exporter's own query cycle, and slack for a loaded 2-core machine.
SCRAPES = 5


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, last: Callable[[], object]) -> T:
    """Poll ``probe`` until it returns something other than None; fail with what was seen."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}; last seen: {last()}")
        time.sleep(0.1)


def by_pod(prometheus: PrometheusServer, expr: str) -> dict[str, float]:
    return {s.labels["pod"]: s.value for s in prometheus.query(expr)}


def wait_roles(
    prometheus: PrometheusServer, expr: str, want: dict[str, float], timeout: float
) -> tuple[dict[str, float], float]:
    """Wait until ``expr`` answers exactly ``want`` per pod; that answer and how long it took."""
    t0 = time.monotonic()
    seen = wait_for(
        f"{expr} == {want}",
        lambda: got if (got := by_pod(prometheus, expr)) == want else None,
        timeout,
        lambda: by_pod(prometheus, expr),
    )
    return seen, time.monotonic() - t0


# ---- PostgreSQL --------------------------------------------------------------------------------
def pg_roles_expr(env: PgEnv) -> str:
    return f'pg_replication_is_replica{{namespace="{env.namespace}"}}'


@pytest.fixture
def env(clean_pgenv: PgEnv) -> PgEnv:
    """The shared PostgreSQL setup, in its original layout (reset before and after)."""
    return clean_pgenv


def test_postgres_role_metric_flips_when_a_replica_is_promoted(env: PgEnv) -> None:
    assert env.prometheus is not None
    prom = env.prometheus
    expr = pg_roles_expr(env)
    deadline = SCRAPES * env.scrape_interval
    names_before = sorted(i.name for i in env.instances)
    wait_roles(prom, expr, {"orders-pg-0": 0, "orders-pg-replica-0": 1, "orders-pg-replica-1": 1}, deadline)

    # The primary stops and stays out (no rejoin yet): its series goes away, the promoted
    # replica's turns 0 and the other replica's stays 1.
    steps = env.failover("orders-pg-replica-1", rejoin_old=False)
    print(f"postgres failover steps (cumulative s): {steps}")
    _, took = wait_roles(prom, expr, {"orders-pg-replica-1": 0, "orders-pg-replica-0": 1}, deadline)
    print(f"pg_replication_is_replica showed the promotion {took:.2f}s after the failover returned")
    assert env.primary is not None and env.primary.name == "orders-pg-replica-1"
    assert not env.is_in_recovery("orders-pg-replica-1")
    assert env.is_in_recovery("orders-pg-replica-0")

    # The old primary comes back as a replica of the new one: 1.
    env.rejoin("orders-pg-0")
    _, took = wait_roles(
        prom, expr, {"orders-pg-replica-1": 0, "orders-pg-replica-0": 1, "orders-pg-0": 1}, deadline
    )
    print(f"the old primary showed as a replica {took:.2f}s after it rejoined")
    assert sorted(i.name for i in env.instances) == names_before, "pod names must not move"
    assert env.timeline("orders-pg-replica-1") >= 2

    # Writes go to the new primary (PgBouncer's write database was re-pointed) and reach both
    # replicas; a replica, the old primary among them, refuses writes.
    token = uuid.uuid4().hex
    with env.connect_pgbouncer(env.database) as conn:
        row = conn.execute("SELECT current_setting('cluster_name'), pg_is_in_recovery()").fetchone()
        assert row == ("orders-pg-replica-1", False)
        conn.execute("CREATE TABLE IF NOT EXISTS failover_bed (token text PRIMARY KEY)")
        conn.execute("INSERT INTO failover_bed VALUES (%s)", (token,))
    env.wait_caught_up(timeout=30)
    standbys = env.sql(None, "SELECT application_name, state FROM pg_stat_replication ORDER BY 1")
    assert standbys == [("orders-pg-0", "streaming"), ("orders-pg-replica-0", "streaming")]
    for name in ("orders-pg-0", "orders-pg-replica-0"):
        assert env.sql(name, "SELECT count(*) FROM failover_bed WHERE token = %s", (token,)) == [(1,)]
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        env.sql("orders-pg-0", "INSERT INTO failover_bed VALUES ('nope')")

    # reset fails back: the original roles, in the database and in Prometheus.
    t0 = time.monotonic()
    env.reset()
    print(f"reset (fail back) took {time.monotonic() - t0:.2f}s")
    assert env.primary is not None and env.primary.name == "orders-pg-0"
    wait_roles(prom, expr, {"orders-pg-0": 0, "orders-pg-replica-0": 1, "orders-pg-replica-1": 1}, deadline)
    slots = env.sql(None, "SELECT slot_name, active FROM pg_replication_slots ORDER BY 1")
    assert slots == [("orders_pg_replica_0", True), ("orders_pg_replica_1", True)]
    env.sql(None, "DROP TABLE failover_bed")


def test_postgres_failover_with_rejoin_in_one_step(env: PgEnv) -> None:
    assert env.prometheus is not None
    expr = pg_roles_expr(env)
    steps = env.failover("orders-pg-replica-0")
    print(f"postgres failover with rejoin (cumulative s): {steps}")
    assert steps["promoted"] < 10, steps
    assert steps["old primary rejoined"] < 30, steps
    wait_roles(
        env.prometheus,
        expr,
        {"orders-pg-replica-0": 0, "orders-pg-replica-1": 1, "orders-pg-0": 1},
        SCRAPES * env.scrape_interval,
    )
    assert [i.name for i in env.replicas if env.is_in_recovery(i)] == [r.name for r in env.replicas]


# ---- MariaDB -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def mariadb() -> Iterator[MariaDbEnv]:
    """Three members of one StatefulSet ``orders-db`` (Percona's layout): orders-db-0 the primary."""
    need(*mariadb_available())
    with MariaDbEnv(replicas=2, replica_statefulset="orders-db") as env:
        yield env


@pytest.fixture
def db(mariadb: MariaDbEnv) -> Iterator[MariaDbEnv]:
    mariadb.reset()
    yield mariadb
    mariadb.reset()


def test_mysql_read_only_flips_when_a_replica_is_promoted(db: MariaDbEnv) -> None:
    assert db.prometheus is not None
    prom = db.prometheus
    expr = f'mysql_global_variables_read_only{{namespace="{db.namespace}"}}'
    deadline = SCRAPES * db.scrape_interval
    wait_roles(prom, expr, {"orders-db-0": 0, "orders-db-1": 1, "orders-db-2": 1}, deadline)

    steps = db.failover("orders-db-2")
    print(f"mysql failover steps (cumulative s): {steps}")
    assert steps["replicating from the new primary"] < 10, steps
    _, took = wait_roles(prom, expr, {"orders-db-2": 0, "orders-db-0": 1, "orders-db-1": 1}, deadline)
    print(f"mysql_global_variables_read_only showed the promotion {took:.2f}s after the failover returned")
    assert [i.name for i in db.instances] == ["orders-db-2", "orders-db-0", "orders-db-1"]

    # The new primary takes the app's writes, they reach the old primary and the other
    # replica, and the old primary now refuses them (read_only, the app has no SUPER).
    load = db.start_load(read_rate=20, write_rate=20, duration=1)
    result = load.wait()
    assert result.writes.statements == 20
    db.wait_caught_up()
    counts = {i.name: db.sql(i, f"SELECT COUNT(*) FROM {db.database}.items")[0][0] for i in db.instances}
    assert len(set(counts.values())) == 1, counts
    old = db.instance("orders-db-0")
    for replica in db.replicas:
        status = db.slave_status(replica)
        assert (status["Slave_IO_Running"], status["Slave_SQL_Running"]) == ("Yes", "Yes"), status
        assert int(status["Master_Port"]) == db.instance("orders-db-2").port
    refused = subprocess.run(
        db.client_argv(old, admin=False),
        input="INSERT INTO items (v) VALUES (0);",
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert refused.returncode != 0 and "read-only" in refused.stderr, refused.stderr

    db.reset()
    wait_roles(prom, expr, {"orders-db-0": 0, "orders-db-1": 1, "orders-db-2": 1}, deadline)
    assert db.primary is not None and db.primary.name == "orders-db-0"
