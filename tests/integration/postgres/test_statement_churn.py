"""Read QPS without a pooler stays right while pg_stat_statements evicts and resets entries
(issue 12, item 3).

The `postgres` preset without PgBouncer reads QPS from the extension query `pg_statements`
(tests/support/postgres_exporter_queries.yaml). A sum of pg_stat_statements per (database, kind)
drops when an entry is evicted (pg_stat_statements.max) or reset, and rate() reads any drop as a
counter reset of the whole sum: a spike of the sum's entire history. The query exports one series
per entry instead, so an evicted entry is a series that ends and a reset one a small counter reset.

The bed: its own PgEnv, one replica, pg_stat_statements.max = 100 on every server (the minimum).
On the replica, under pgbench's read-only load (through PgBouncer's `orders_ro`, which is the
only read load the replica gets):

1. a warm-up runs 100 distinct SELECTs (one table each) 25 times each: read entries whose
   counts are large and whose use is over (about 77 fit beside pgbench's and the exporter's);
2. a side load then runs 300 more distinct statements, 40 times each, 100 a second:
   `WITH w AS (SELECT count(*) FROM churn_<i>) SELECT * FROM w`, kind `other` (pg_statements
   classifies by the first keyword, and WITH is not a read one; were it counted as a read, every
   reading here would be well over pgbench's rate). Every ten new entries pg_stat_statements
   evicts the ten least used, which are mostly the warm-up's read entries, about 200 calls at a
   time, more than pgbench adds between two scrapes (a summed counter drops). (Not SET or other utility
   statements: PostgreSQL 15 evicts their entries before SELECTs with fewer calls.)
3. once at most 10 of the warm-up's entries are left, pg_stat_statements_reset() on the replica (right
   after a scrape: what any counter loses at a reset, the calls since the scrape before it, is
   not what this test is about).

readQPS is read through PrometheusMetricsSource with the postgres preset and no pooler every
2 s from the first whole rate window after the warm-up until a whole window after the reset.
Every reading is known and within 15% of pgbench's own rate (so never a spike), and the run is
checked to have evicted read entries and reset inside the observed windows. With the old summed
query the readings after each eviction are several times pgbench's rate (docs/metrics.md).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest
from tests.support.pgenv import PgEnv, pgenv_available
from tests.support.tiers import need

from rwscaler.core.observation import Signal
from rwscaler.core.spec import ReadWriteWorkloadSpec
from rwscaler.metrics.prometheus import PrometheusMetricsSource
from rwscaler.metrics.source import WorkloadQuery

pytestmark = pytest.mark.timeout(420)

STATEMENTS_MAX = 100  # pg_stat_statements.max (the lowest it accepts)
WINDOW_S = 12.0  # the rate window: max(2 x the 5 s interval, this)
PGBENCH_RATE = 100.0
TABLES = 300  # churn_0 .. churn_299
WARM_STATEMENTS = 100  # distinct SELECTs of the warm-up, on churn_0 .. churn_99
WARM_CALLS = 25  # each, in a row: 10 evicted at once are 250 calls, 2.5 s of pgbench
SIDE_STATEMENTS = TABLES  # distinct WITH queries of the side load, one per table
SIDE_CALLS = 40  # each, in a row (their entries outrank the warm-up's, so those go first)
SIDE_RATE = 100.0  # statements per second: a new entry every 0.4 s, an eviction every 3-4 s
OBSERVE_EVERY_S = 2.0
TOLERANCE = 0.15

# The warm-up's read entries still on the replica (as superuser: the exporter leaves that role out).
WARM_LEFT = "SELECT count(*) FROM pg_stat_statements WHERE query LIKE 'SELECT count(*) FROM churn\\_%'"
INFO = "SELECT dealloc, stats_reset FROM pg_stat_statements_info"


@pytest.fixture(scope="module")
def churn_env() -> Iterator[PgEnv]:
    need(*pgenv_available())
    with PgEnv(replicas=1, settings={"pg_stat_statements.max": str(STATEMENTS_MAX)}) as env:
        with psycopg.connect(env.dsn(None, user=env.app_user), autocommit=True) as conn:
            # One DO block, one entry: the primary's pg_stat_statements stays quiet.
            conn.execute(
                f"DO $$ BEGIN FOR i IN 0..{TABLES - 1} LOOP "
                "EXECUTE format('CREATE TABLE churn_%s (id int)', i); END LOOP; END $$"
            )
            # readQPS sums every server's reads and is unknown while one has no read series:
            # give the primary one (it stays at rate 0).
            conn.execute("SELECT count(*) FROM pgbench_branches")
        # Replayed on the replica (wait_caught_up reads pg_current_wal_lsn(), which with
        # synchronous_commit=off can be short of the last commit).
        replica = env.replicas[0]
        last = f"churn_{TABLES - 1}"
        deadline = time.monotonic() + 30
        while env.sql(replica, "SELECT to_regclass(%s)", (last,))[0][0] is None:
            assert time.monotonic() < deadline, f"{last} not on {replica.name} after 30 s"
            time.sleep(0.05)
        yield env


def direct_workload(env: PgEnv) -> WorkloadQuery:
    spec = ReadWriteWorkloadSpec.model_validate(
        {
            "primary": {"statefulSet": env.primary_statefulset},
            "replicas": {"statefulSet": env.replica_statefulset, "minReplicas": 1, "maxReplicas": 4},
            "prometheus": {"url": env.prometheus_url, "timeout": "5s"},
            "metrics": {"preset": "postgres", "staleness": "30s"},
            "behavior": {"intervalSeconds": 5},
        }
    )
    return WorkloadQuery(
        key=f"{env.namespace}/orders",
        namespace=env.namespace,
        name="orders",
        spec=spec,
        primary_pods=(env.primary_name,),
        replica_pods=tuple(r.name for r in env.replicas),
    )


class SideLoad(threading.Thread):
    """SIDE_STATEMENTS distinct statements of kind `other`, SIDE_CALLS each in a row, at SIDE_RATE
    statements per second, on one server as the application's role."""

    def __init__(self, dsn: str) -> None:
        super().__init__(daemon=True)
        self._dsn = dsn
        self._halt = threading.Event()
        self.executed = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with psycopg.connect(self._dsn, autocommit=True) as conn:
                t0 = time.monotonic()
                for i in itertools.cycle(range(SIDE_STATEMENTS)):
                    for _ in range(SIDE_CALLS):
                        if self._halt.is_set():
                            return
                        conn.execute(f"WITH w AS (SELECT count(*) FROM churn_{i}) SELECT * FROM w".encode())
                        self.executed += 1
                        ahead = t0 + self.executed / SIDE_RATE - time.monotonic()
                        if ahead > 0:
                            time.sleep(ahead)
        except BaseException as exc:  # reported by stop()
            self.error = exc

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)
        if self.error is not None:
            raise RuntimeError(f"the side load failed: {self.error!r}") from self.error


def warm_up(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for i in range(WARM_STATEMENTS):
            for _ in range(WARM_CALLS):
                conn.execute(f"SELECT count(*) FROM churn_{i}".encode())


@dataclass
class Observation:
    at: float  # seconds since the side load started
    phase: str  # "evicting" or "reset"
    read_qps: Signal
    evictions: int  # pg_stat_statements_info.dealloc on the replica, since the side load started
    warm_left: int  # the warm-up's read entries still there


async def test_read_qps_stays_within_15_percent_through_evictions_and_reset(churn_env: PgEnv) -> None:
    env = churn_env
    assert env.prometheus is not None
    prom = env.prometheus
    replica = env.replicas[0]
    app_dsn = env.dsn(replica, user=env.app_user)
    q = direct_workload(env)

    def on_replica(query: str) -> tuple[int, object]:
        row = env.sql(replica, query)[0]
        return int(row[0]), row[1] if len(row) > 1 else None

    # The exporter's own entries gain one use per scrape. They must outrank the warm-up's
    # entries (WARM_CALLS + 1 uses) before anything is evicted, or they would be the victims.
    await asyncio.to_thread(
        prom.wait_for,
        f'count_over_time(up{{pod="{replica.name}"}}[5m])',
        lambda s: bool(s) and s[0].value >= WARM_CALLS + 15,
        60.0,
    )
    pgbench = env.start_pgbench(rate=PGBENCH_RATE, duration=100, clients=2, read_only=True)
    side = SideLoad(app_dsn)
    source = PrometheusMetricsSource(min_rate_window_s=WINDOW_S, reuse_s=0)
    observations: list[Observation] = []
    series_per_server: dict[str, int] = {}
    t0 = time.time()

    async def observe(phase: str, baseline: int) -> None:
        reading = (await source.read([q], time.time()))[q.key]
        dealloc, _ = await asyncio.to_thread(on_replica, INFO)
        warm, _ = await asyncio.to_thread(on_replica, WARM_LEFT)
        observations.append(Observation(time.time() - t0, phase, reading.read_qps, dealloc - baseline, warm))
        for s in await asyncio.to_thread(prom.query, "count by (pod) (pg_statements_calls_total)"):
            pod = s.labels.get("pod", "?")
            series_per_server[pod] = max(series_per_server.get(pod, 0), int(s.value))

    try:
        # pgbench's own entry first (so it is never the least used), then the warm-up.
        await asyncio.to_thread(
            prom.wait_for,
            f'pg_statements_calls_total{{pod="{replica.name}", kind="read"}}',
            lambda s: any(x.value > 50 for x in s),
            20.0,
        )
        await asyncio.to_thread(warm_up, app_dsn)
        warm_before, _ = await asyncio.to_thread(on_replica, WARM_LEFT)
        # The warm-up's burst of reads out of the rate window before anything is evicted.
        await asyncio.sleep(WINDOW_S + 1)
        baseline, _ = await asyncio.to_thread(on_replica, INFO)
        side.start()
        t0 = time.time()
        # Phase 1: the side load evicts the warm-up's read entries, ten at a time.
        deadline = time.monotonic() + 60
        while True:
            await observe("evicting", baseline)
            if observations[-1].warm_left <= WARM_STATEMENTS // 10 or time.monotonic() > deadline:
                break
            await asyncio.sleep(OBSERVE_EVERY_S)
        # Phase 2: pg_stat_statements_reset() on the replica, mid-run.
        pgbench_calls = f'max(pg_statements_calls_total{{pod="{replica.name}", kind="read"}})'
        before = (await asyncio.to_thread(prom.query, pgbench_calls))[0].value
        _, reset_before = await asyncio.to_thread(on_replica, INFO)
        # Right after a scrape: the calls between the last scrape before a reset and the reset
        # are lost to any counter (up to a scrape interval's worth, for one window:
        # docs/metrics.md); that is not what this test measures.
        scraped = f'timestamp(up{{pod="{replica.name}"}})'
        last = (await asyncio.to_thread(prom.query, scraped))[0].value
        await asyncio.to_thread(prom.wait_for, scraped, lambda s: bool(s) and s[0].value > last, 5.0, 0.02)
        await asyncio.to_thread(env.sql, replica, "SELECT pg_stat_statements_reset()")
        reset_at = time.time() - t0
        # Prometheus has scraped the replica since the reset.
        await asyncio.to_thread(
            prom.wait_for, pgbench_calls, lambda s: bool(s) and s[0].value < before / 2, 15.0
        )
        _, reset_after = await asyncio.to_thread(on_replica, INFO)
        end = time.monotonic() + WINDOW_S + 4
        while time.monotonic() < end:
            await observe("reset", 0)  # the reset zeroes pg_stat_statements_info.dealloc too
            await asyncio.sleep(OBSERVE_EVERY_S)
    finally:
        await source.close()
        side.stop()
        result = await asyncio.to_thread(pgbench.wait)

    print(
        f"\npgbench {result.tps:.1f}/s; warm-up read entries {warm_before}; side load {side.executed} "
        f"statements; reset at {reset_at:.1f}s; pg_statements_calls_total series per server {series_per_server}"
    )
    print("| t (s) | phase | evictions | warm-up entries left | readQPS | / pgbench |")
    for o in observations:
        value = o.read_qps.value
        ratio = f"{value / result.tps:.2f}" if value is not None else o.read_qps.message
        shown = f"{value:.1f}" if value is not None else "unknown"
        print(f"| {o.at:5.1f} | {o.phase} | {o.evictions} | {o.warm_left} | {shown} | {ratio} |")

    # The run did what it is for: read entries evicted inside the observed windows, and a reset.
    evicting = [o for o in observations if o.phase == "evicting"]
    assert len(evicting) >= 5 and len(observations) - len(evicting) >= 5, observations
    assert evicting[0].warm_left >= warm_before - 10, (warm_before, evicting[0])
    assert evicting[-1].evictions >= 4, evicting[-1]
    assert warm_before - evicting[-1].warm_left >= 40, (warm_before, evicting[-1])
    assert reset_after != reset_before, (reset_before, reset_after)

    off = [
        o
        for o in observations
        if o.read_qps.value is None or abs(o.read_qps.value - result.tps) > TOLERANCE * result.tps
    ]
    assert not off, f"readQPS more than {TOLERANCE:.0%} off pgbench's {result.tps:.1f}/s at " + ", ".join(
        f"{o.at:.0f}s ({o.phase}): {o.read_qps.value or o.read_qps.message}" for o in off
    )
