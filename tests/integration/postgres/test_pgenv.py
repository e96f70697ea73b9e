"""Self-tests of the PostgreSQL test setup (tests/support/pgenv.py): each asserts a real
property the metrics and pooler tests rely on."""

from __future__ import annotations

import math
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter

import psycopg
import pytest
from psycopg.rows import TupleRow
from tests.support.exporter import ControlledExporter
from tests.support.pgenv import PgEnv
from tests.support.prometheus import PrometheusServer, Sample, prometheus_binary
from tests.support.tiers import need

pytestmark = pytest.mark.timeout(300)

# The PromQL the lag test uses (also written down in docs/testing-postgres.md).
REPLICA_TIME_LAG = 'pg_replica_replay_lag_seconds{namespace="shop", pod=~"orders-pg-replica-.*"}'
STANDBY_BYTE_LAG = 'pg_standby_replay_lag_bytes{namespace="shop", pod="orders-pg-0"}'


@pytest.fixture
def env(clean_pgenv: PgEnv) -> PgEnv:
    """The shared setup, in its initial state (reset before and after each test)."""
    return clean_pgenv


def by_label(samples: list[Sample], label: str) -> dict[str, float]:
    return {s.labels[label]: s.value for s in samples}


def served_by(conn: psycopg.Connection[TupleRow]) -> tuple[str, bool]:
    row = conn.execute("SELECT current_setting('cluster_name'), pg_is_in_recovery()").fetchone()
    assert row is not None
    return str(row[0]), bool(row[1])


def test_starts_fast_and_names_pods_like_kubernetes(env: PgEnv) -> None:
    print(f"pgenv start timings (cumulative s): {env.timings}")
    assert env.timings["total"] < 60
    assert [i.name for i in env.instances] == ["orders-pg-0", "orders-pg-replica-0", "orders-pg-replica-1"]


def test_replicas_are_streaming_standbys(env: PgEnv) -> None:
    rows = env.sql(
        None,
        "SELECT application_name, state, sync_state FROM pg_stat_replication ORDER BY 1",
        dbname="postgres",
    )
    assert rows == [
        ("orders-pg-replica-0", "streaming", "async"),
        ("orders-pg-replica-1", "streaming", "async"),
    ]
    slots = env.sql(None, "SELECT slot_name, active FROM pg_replication_slots ORDER BY 1")
    assert slots == [("orders_pg_replica_0", True), ("orders_pg_replica_1", True)]
    assert env.sql(None, "SELECT pg_is_in_recovery()") == [(False,)]
    for replica in env.replicas:
        assert env.sql(replica, "SELECT pg_is_in_recovery(), current_setting('hot_standby_feedback')") == [
            (True, "on")
        ]
        (status,) = env.sql(replica, "SELECT status FROM pg_stat_wal_receiver")
        assert status == ("streaming",)


def test_a_write_on_the_primary_appears_on_every_replica(env: PgEnv) -> None:
    token = uuid.uuid4().hex
    env.sql(None, "CREATE TABLE IF NOT EXISTS pgenv_selftest (token text PRIMARY KEY)")
    env.sql(None, "INSERT INTO pgenv_selftest VALUES (%s)", (token,))
    env.wait_caught_up(timeout=30)
    for replica in env.replicas:
        assert env.sql(replica, "SELECT count(*) FROM pgenv_selftest WHERE token = %s", (token,)) == [(1,)]
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        env.sql(env.replicas[0], "INSERT INTO pgenv_selftest VALUES ('nope')")


def test_pgbouncer_sends_reads_to_replicas_and_writes_to_the_primary(env: PgEnv) -> None:
    # Hold several transactions open at once so PgBouncer must open several server
    # connections: its host list is used round robin, so every replica gets some.
    conns = [env.connect_pgbouncer("orders_ro") for _ in range(6)]
    try:
        seen: Counter[str] = Counter()
        for conn in conns:
            conn.execute("BEGIN")
            name, in_recovery = served_by(conn)
            assert in_recovery, f"a read through orders_ro landed on {name}, which is not a replica"
            seen[name] += 1
        for conn in conns:
            conn.execute("COMMIT")
    finally:
        for conn in conns:
            conn.close()
    assert set(seen) == {"orders-pg-replica-0", "orders-pg-replica-1"}, seen

    with env.connect_pgbouncer("orders") as conn:
        assert served_by(conn) == ("orders-pg-0", False)
        conn.execute("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, 1, 0, now())")

    # Wrong password: refused by PgBouncer itself.
    bad = env.pgbouncer_dsn("orders_ro", password="wrong")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(bad, connect_timeout=5).close()


def test_pgbouncer_config_can_be_rewritten_and_reloaded(env: PgEnv) -> None:
    only_replica_1 = {
        "orders": env.database_line([env.primary_name]),
        "orders_ro": env.database_line(["orders-pg-replica-1"]),
    }
    env.write_pgbouncer_databases(only_replica_1)  # writes the ini and RELOADs
    env.pgbouncer_admin("RECONNECT orders_ro")
    assert "orders-pg-replica-0" not in env.pgbouncer_ini_path.read_text().split("[pgbouncer]")[0]
    databases = {row["name"]: row for row in env.pgbouncer_admin("SHOW DATABASES")}
    assert databases["orders_ro"]["host"] == env.pooler_host("orders-pg-replica-1")
    assert databases["orders_ro"]["port"] == 5432
    for _ in range(5):
        with env.connect_pgbouncer("orders_ro") as conn:
            assert served_by(conn) == ("orders-pg-replica-1", True)
    # RECONNECT closed the pooled connections to replica-0 (SHOW SERVERS, by backend PID).
    deadline = time.monotonic() + 10
    while set(env.pgbouncer_server_connections("orders_ro")) != {"orders-pg-replica-1"}:
        assert time.monotonic() < deadline, env.pgbouncer_server_connections("orders_ro")
        time.sleep(0.2)
    # The admin console answers as rows of dicts.
    pools = {row["database"] for row in env.pgbouncer_admin("SHOW POOLS")}
    assert {"orders", "orders_ro", "pgbouncer"} <= pools
    servers = env.pgbouncer_admin("SHOW SERVERS")
    assert all(s["database"] in {"orders", "orders_ro"} for s in servers)


def test_pgbench_runs_at_the_requested_rate_through_pgbouncer(env: PgEnv) -> None:
    def query_count(db: str) -> int:
        stats = {row["database"]: row for row in env.pgbouncer_admin("SHOW STATS")}
        return int(stats[db]["total_query_count"]) if db in stats else 0

    before_ro, before_rw = query_count("orders_ro"), query_count("orders")
    reads = env.start_pgbench("orders_ro", rate=80, duration=4, clients=2)
    writes = env.start_pgbench("orders", rate=20, duration=4, clients=1, read_only=False)
    read, write = reads.wait(), writes.wait()
    assert read.failed == 0 and write.failed == 0
    assert 80 * 0.6 <= read.tps <= 80 * 1.4, read
    assert 20 * 0.5 <= write.tps <= 20 * 1.5, write
    # One query per transaction on both sides, so PgBouncer counted (at least) as many.
    assert query_count("orders_ro") - before_ro >= read.transactions
    assert query_count("orders") - before_rw >= write.transactions


def test_prometheus_scrapes_every_exporter_with_pod_labels(env: PgEnv) -> None:
    prom = env.prometheus
    assert prom is not None
    pods = {i.name for i in env.instances}
    up = prom.wait_for('pg_up{namespace="shop"} == 1', lambda s: {x.labels["pod"] for x in s} == pods)
    assert {s.labels["job"] for s in up} == {"postgres-exporter"}
    replica_flag = by_label(prom.query('pg_replica_is_replica{namespace="shop"}'), "pod")
    assert replica_flag == {"orders-pg-0": 0, "orders-pg-replica-0": 1, "orders-pg-replica-1": 1}
    assert prom.query_value('pgbouncer_up{namespace="shop", pod="orders-pgbouncer-0"}') == 1
    with env.connect_pgbouncer("orders_ro") as conn:
        conn.execute("SELECT 1")
    queries = prom.wait_for(
        'pgbouncer_stats_queries_total{pod="orders-pgbouncer-0"}',
        lambda s: {"orders", "orders_ro"} <= {x.labels["database"] for x in s},
    )
    assert all(s.labels["namespace"] == "shop" for s in queries)
    streaming = by_label(prom.query('pg_standby_streaming{pod="orders-pg-0"}'), "application_name")
    assert streaming == {"orders-pg-replica-0": 1, "orders-pg-replica-1": 1}
    commits = prom.query('pg_stat_database_xact_commit{datname="orders"}')
    assert {s.labels["pod"] for s in commits} == pods


def test_paused_replay_makes_only_that_replicas_lag_grow(env: PgEnv) -> None:
    prom = env.prometheus
    assert prom is not None
    env.sql(
        None,
        "CREATE TABLE IF NOT EXISTS pgenv_ticks (id bigserial PRIMARY KEY, at timestamptz DEFAULT now())",
    )
    env.wait_caught_up()
    # Idle and caught up: no lag anywhere (the formula reads 0 when received == replayed).
    idle = prom.wait_for(REPLICA_TIME_LAG, lambda s: len(s) == 2 and all(x.value < 1 for x in s), timeout=15)
    assert len(idle) == 2

    stop = threading.Event()

    def tick() -> None:  # a steady trickle of commits on the primary
        with env.connect() as conn:
            while not stop.is_set():
                conn.execute("INSERT INTO pgenv_ticks DEFAULT VALUES")
                time.sleep(0.1)

    writer = threading.Thread(target=tick, daemon=True)
    writer.start()
    try:
        env.pause_replay("orders-pg-replica-0")
        paused_at = time.monotonic()
        first = prom.wait_for(
            REPLICA_TIME_LAG, lambda s: by_label(s, "pod").get("orders-pg-replica-0", 0) > 1, timeout=15
        )
        seen_after = time.monotonic() - paused_at
        time.sleep(3)
        later = by_label(prom.query(REPLICA_TIME_LAG), "pod")
        assert later["orders-pg-replica-0"] > by_label(first, "pod")["orders-pg-replica-0"] + 1.5, later
        assert later["orders-pg-replica-1"] < 1, later
        byte_lag = by_label(prom.query(STANDBY_BYTE_LAG), "application_name")
        assert byte_lag["orders-pg-replica-0"] > 0
        assert byte_lag["orders-pg-replica-1"] < byte_lag["orders-pg-replica-0"]
        assert prom.query_value('pg_replica_replay_paused{pod="orders-pg-replica-0"}') == 1
        print(f"lag > 1s visible {seen_after:.1f}s after the pause; 3s later: {later}; bytes: {byte_lag}")
    finally:
        stop.set()
        writer.join(timeout=5)
        env.resume_replay("orders-pg-replica-0")
    env.wait_caught_up()
    prom.wait_for(REPLICA_TIME_LAG, lambda s: len(s) == 2 and all(x.value < 1 for x in s), timeout=15)


def test_a_replica_can_be_added_and_removed(env: PgEnv) -> None:
    prom = env.prometheus
    assert prom is not None
    added = env.add_replica()
    assert added.name == "orders-pg-replica-2"
    names = [r[0] for r in env.sql(None, "SELECT application_name FROM pg_stat_replication ORDER BY 1")]
    assert names == ["orders-pg-replica-0", "orders-pg-replica-1", "orders-pg-replica-2"]
    prom.wait_for('pg_up{pod="orders-pg-replica-2"} == 1', timeout=30)

    removed = env.remove_replica()  # the highest ordinal, as a scale-in does
    assert removed.name == "orders-pg-replica-2"
    assert removed.process is None or not removed.process.running()
    names = [r[0] for r in env.sql(None, "SELECT application_name FROM pg_stat_replication ORDER BY 1")]
    assert names == ["orders-pg-replica-0", "orders-pg-replica-1"]
    assert env.sql(
        None, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'orders_pg_replica_2'"
    ) == [(0,)]
    assert not removed.datadir.exists()


def test_prometheus_outage_and_recovery(env: PgEnv) -> None:
    prom = env.prometheus
    assert prom is not None
    before = time.time()
    env.stop_prometheus()
    with pytest.raises(OSError):
        urllib.request.urlopen(prom.url + "/-/ready", timeout=2)
    env.start_prometheus()
    # Same port, same storage: data from before the outage is still there.
    old = prom.query('pg_up{pod="orders-pg-0"}', at=before - 2)
    assert [s.value for s in old] == [1]


@pytest.mark.prometheus
def test_controlled_exporter_is_what_prometheus_sees() -> None:
    need(prometheus_binary() is not None, "no prometheus binary: run `make pgenv-deps`")
    with (
        ControlledExporter() as exp,
        PrometheusServer([exp.target("sim", namespace="shop", pod="a-0")]) as prom,
    ):
        exp.set("sim_read_qps", {"workload": "orders"}, 120.5)
        exp.inc("sim_queries_total", {"side": "read"}, 10)
        exp.set("sim_lag_seconds", {"pod": "r-0"}, math.nan)
        prom.wait_for_targets()
        assert prom.wait_for('sim_read_qps{workload="orders"}')[0].value == 120.5
        sample = prom.wait_for('sim_queries_total{side="read"}')[0]
        assert sample.value == 10 and sample.labels["namespace"] == "shop"
        # A label the target sets and the sample repeats: Prometheus keeps it as exported_pod.
        lag = prom.wait_for("sim_lag_seconds")[0]
        assert math.isnan(lag.value) and lag.labels["exported_pod"] == "r-0"

        exp.remove("sim_read_qps", {"workload": "orders"})
        prom.wait_for("sim_read_qps", lambda s: s == [], timeout=10)
        exp.fail_with(503)
        prom.wait_for('up{job="sim"}', lambda s: [x.value for x in s] == [0], timeout=10)
        exp.fail_with(None)
        prom.wait_for('up{job="sim"}', lambda s: [x.value for x in s] == [1], timeout=10)
        assert exp.scrape_count >= 3
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(exp.url, timeout=2)
