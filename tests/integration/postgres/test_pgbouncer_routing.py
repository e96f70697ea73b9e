"""rwscaler's PgBouncer routing against the real thing: PostgreSQL 15 primary + 2 streaming
replicas and PgBouncer 1.18 from the shared `pgenv` fixture, driven by the real `decide`.

Each test runs the operator's loop by hand: observe (replication lag read from PostgreSQL
itself; the traffic signals are fixed numbers chosen to make `decide` hold or scale in), decide,
then `PgBouncerRouter.apply` (the act stage), with a `FileConfigStore` standing in for the
ConfigMap. PgEnv's pgbouncer.ini gets `[databases] %include <that file>`, the layout
docs/pgbouncer.md tells users to build from a ConfigMap.

Addresses: each server sits behind a TCP relay on its own loopback address and one common port,
as pods do in a cluster (routing_helpers.py, shared with test_whole_chain.py, which runs the
same loop with the lag observed through the exporters and Prometheus instead).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from routing_helpers import PRIMARY_ALIAS, Relays, read_servers, replica_alias, routed_bed
from tests.support.cluster import cluster_available, kubeconfig_path
from tests.support.pgenv import PgEnv
from tests.support.tiers import need

from rwscaler.boundary import ClusterProblem, ConnectionsRequest, Endpoint, OwnerRef, RouteRequest
from rwscaler.core.decide import decide
from rwscaler.core.memory import Memory
from rwscaler.core.observation import Observation, ReplicaObservation, Signal, UnknownReason
from rwscaler.core.plan import Plan
from rwscaler.core.pool_sizing import size_pools
from rwscaler.core.spec import PgBouncerSpec, ReadWriteWorkloadSpec
from rwscaler.core.vocabulary import ReadyReason
from rwscaler.kube.client import KubeApiError, KubeClient
from rwscaler.pooler.pgbouncer.admin import (
    AdminCredentials,
    AdminErrorKind,
    AdminFailure,
    Instance,
    LiveDatabase,
    ServerConnection,
    admin_session,
)
from rwscaler.pooler.pgbouncer.apply import LOGIN_WAIT_S, ApplyResult, FileConfigStore, PgBouncerRouter
from rwscaler.pooler.pgbouncer.configmap import HASH_ANNOTATION, ConfigMapStore
from rwscaler.pooler.pgbouncer.route import PgBouncerReadRouter

LAG_OBJECTIVE_S = 1.0
REENTRY_S = 3
INTERVAL_S = 1.0
READ_QUERY = "SELECT current_setting('cluster_name'), pg_is_in_recovery(), inet_server_port()"
# Transactions completed so far, as a server sees them: the primary's moves as they commit or
# abort, a standby's as it replays those. Replication lag is measured on these (CompletionClock),
# not on WAL positions or the last replayed commit's age: an idle primary writes WAL without
# transactions (checkpoints, page padding), and for up to half a second a caught-up replica has
# not replayed it; the usual `receive = replay ? 0 : age of the last replayed commit` then reads
# a minute's lag after an idle minute, and took both replicas out of the pool (a CI failure).
COMPLETED_XMAX = "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint"


# ---- clients -----------------------------------------------------------------------------
class Reader(threading.Thread):
    """A client reading in a loop through PgBouncer's read database, counting per server."""

    def __init__(self, env: PgEnv, database: str, pause_s: float = 0.003) -> None:
        super().__init__(name="reader", daemon=True)
        self.env = env
        self.database = database
        self.pause_s = pause_s
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.ports: dict[str, int] = {}
        self.last_start: dict[str, float] = {}  # when the last query that landed there started
        self.on_primary = 0
        self.errors: list[str] = []
        self.slowest_s = 0.0  # the longest a successful read took

    def run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        while not self.stop_event.is_set():
            try:
                started = time.monotonic()  # a new client's login waits for a server too
                if conn is None:
                    conn = self.env.connect_pgbouncer(self.database)
                row = conn.execute(READ_QUERY).fetchone()
                assert row is not None
                name, in_recovery, port = row
                with self.lock:
                    self.counts[name] += 1
                    self.ports[name] = port
                    self.last_start[name] = started
                    self.on_primary += 0 if in_recovery else 1
                    self.slowest_s = max(self.slowest_s, time.monotonic() - started)
            except psycopg.Error as e:
                with self.lock:
                    self.errors.append(" ".join(str(e).split()))
                if conn is not None:
                    with contextlib.suppress(psycopg.Error):
                        conn.close()
                conn = None
            time.sleep(self.pause_s)
        if conn is not None:
            conn.close()

    def snapshot(self) -> Counter[str]:
        with self.lock:
            return Counter(self.counts)

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=30)


class CompletionClock(threading.Thread):
    """When the primary's transactions completed, sampled every 20 ms, so a replica's lag is the
    age of the oldest completed transaction it has not replayed (how PostgreSQL measures its own
    replay_lag): 0 when it replayed everything, growing while its replay is paused and the
    primary commits (Heartbeat), and never the length of an idle period."""

    SAMPLE_S = 0.02

    def __init__(self, env: PgEnv) -> None:
        super().__init__(name="completion-clock", daemon=True)
        self.env = env
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.seen: list[tuple[float, int]] = []  # (first sampled at, primary xmax), increasing
        self.conn: psycopg.Connection[Any] | None = None
        self.sample()  # a baseline before anyone asks

    def sample(self) -> None:
        try:
            if self.conn is None:
                self.conn = self.env.connect(self.env.primary_name)
            row = self.conn.execute(COMPLETED_XMAX).fetchone()
        except psycopg.Error:  # a stopped primary completes nothing; connect again next time
            if self.conn is not None:
                self.conn.close()
            self.conn = None
            return
        assert row is not None
        with self.lock:
            if not self.seen or row[0] > self.seen[-1][1]:
                self.seen.append((time.monotonic(), int(row[0])))

    def run(self) -> None:
        while not self.stop_event.wait(self.SAMPLE_S):
            self.sample()
        if self.conn is not None:
            self.conn.close()

    def lag(self, replayed_xmax: int) -> float:
        """Seconds since the primary first had a completed transaction the replica has not."""
        with self.lock:
            first = next((t for t, xmax in self.seen if xmax > replayed_xmax), None)
        return 0.0 if first is None else time.monotonic() - first

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=10)


class Heartbeat(threading.Thread):
    """Writes through PgBouncer's write database every 50 ms, so replicas have WAL to replay
    (and a paused replica's lag grows). Every write must land on the primary."""

    def __init__(self, env: PgEnv, database: str) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self.env = env
        self.database = database
        self.stop_event = threading.Event()
        self.writes = 0
        self.servers: Counter[str] = Counter()
        self.errors: list[str] = []

    def run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        while not self.stop_event.is_set():
            try:
                if conn is None:
                    conn = self.env.connect_pgbouncer(self.database)
                with conn.transaction():
                    conn.execute("UPDATE pgbench_branches SET bbalance = bbalance + 1 WHERE bid = 1")
                    row = conn.execute(
                        "SELECT current_setting('cluster_name'), pg_is_in_recovery()"
                    ).fetchone()
                assert row is not None
                self.servers[f"{row[0]} in_recovery={row[1]}"] += 1
                self.writes += 1
            except psycopg.Error as e:
                self.errors.append(" ".join(str(e).split()))
                conn = None
            time.sleep(0.05)
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        self.stop_event.set()
        self.join(timeout=30)


# ---- the operator loop, by hand ----------------------------------------------------------
def make_spec(server_port: int, pgbouncer_port: int, **pooler: Any) -> ReadWriteWorkloadSpec:
    return ReadWriteWorkloadSpec.model_validate(
        {
            "primary": {"statefulSet": "orders-pg"},
            "replicas": {
                "statefulSet": "orders-pg-replica",
                "minReplicas": 1,
                "maxReplicas": 2,
                "targetReadQPSPerReplica": 100,
            },
            "prometheus": {"url": "http://127.0.0.1:9"},  # not used: the test observes for decide
            "objectives": {"maxReplicationLag": f"{LAG_OBJECTIVE_S:g}s"},
            "pooler": {
                "kind": "PgBouncer",
                "serverCores": 2,
                "drainTimeoutSeconds": 60,
                "pgbouncer": {
                    "deployment": "orders-pgbouncer",
                    "configMap": "orders-pgbouncer",
                    "database": "orders",
                    "readDatabase": "orders_ro",
                    "port": pgbouncer_port,
                    "serverPort": server_port,
                    "adminSecret": {"name": "orders-pgbouncer-admin", "key": "admin"},
                },
                **pooler,
            },
            "behavior": {
                "intervalSeconds": int(INTERVAL_S),
                "scaleDown": {"stabilizationWindowSeconds": 0, "maxStep": 1},
                "readPool": {"reentryLagRatio": 0.5, "reentrySeconds": REENTRY_S},
            },
        }
    )


@dataclass
class Tick:
    now: float
    lags: dict[str, float | None]
    plan: Plan
    result: ApplyResult


@dataclass
class Loop:
    """observe -> decide -> apply, as the operator's reconcile does, against PgEnv."""

    env: PgEnv
    spec: ReadWriteWorkloadSpec
    router: PgBouncerRouter
    addresses: dict[str, str]
    instance: Instance
    creds: AdminCredentials
    relays: Relays
    clock: CompletionClock
    current: int = 2
    memory: Memory = field(default_factory=Memory)
    ticks: list[Tick] = field(default_factory=list)

    @property
    def pgb(self) -> PgBouncerSpec:
        assert self.spec.pooler.pgbouncer is not None
        return self.spec.pooler.pgbouncer

    @property
    def replica_names(self) -> list[str]:
        return [r.name for r in self.env.replicas if r.ordinal < self.current]

    def lag(self, name: str) -> float | None:
        try:
            (replayed,) = self.env.sql(name, COMPLETED_XMAX)[0]
        except psycopg.Error:
            return None  # a server that cannot be asked has an unknown lag, never 0
        return self.clock.lag(int(replayed))

    def connections(self) -> dict[str, int | None]:
        return asyncio.run(
            self.router.server_connections(self.addresses, [self.instance], self.creds, self.pgb)
        )

    def tick(self, read_qps: float = 200.0, now: float | None = None) -> Tick:
        now = time.monotonic() if now is None else now
        lags = {name: self.lag(name) for name in self.replica_names}
        conns = self.connections()
        obs = Observation(
            read_qps=Signal.of(read_qps),
            write_qps=Signal.of(20.0),
            read_p99=Signal.of(0.02),
            write_p99=Signal.of(0.01),
            current_replicas=self.current,
            primary=self.env.primary_name,
            replicas=tuple(
                ReplicaObservation(
                    name=name,
                    rank=self.env.instance(name).ordinal,
                    ready=True,
                    lag=Signal.of(lag) if lag is not None else Signal.unknown(UnknownReason.EMPTY),
                    connections=conns.get(name),
                )
                for name, lag in lags.items()
            ),
        )
        plan = decide(self.spec, obs, self.memory, now)
        self.memory = plan.memory
        result = asyncio.run(
            self.router.apply(
                plan, self.pgb, self.env.primary_name, self.addresses, [self.instance], self.creds
            )
        )
        tick = Tick(now, lags, plan, result)
        self.ticks.append(tick)
        return tick

    def unmarked(self, name: str) -> int:
        """Read-database connections to `name` that PgBouncer has not marked to close."""
        rows = self.env.pgbouncer_admin("SHOW SERVERS")
        return sum(
            1
            for r in rows
            if r["database"] == "orders_ro" and r["addr"] == self.addresses[name] and not r["close_needed"]
        )

    def wait_connections(self, name: str, want: Callable[[int | None], bool], timeout: float = 10) -> float:
        t0 = time.monotonic()
        while not want(self.connections()[name]):
            if time.monotonic() - t0 > timeout:
                raise AssertionError(f"{name}: connections still {self.connections()[name]} after {timeout}s")
            time.sleep(0.05)
        return time.monotonic() - t0


@pytest.fixture
def loop(clean_pgenv: PgEnv) -> Iterator[Loop]:
    env = clean_pgenv
    with routed_bed(env) as bed:
        spec = make_spec(bed.relays.port, env.pgbouncer_port)
        clock = CompletionClock(env)
        clock.start()
        try:
            yield Loop(
                env=env,
                spec=spec,
                router=bed.router,
                addresses=bed.addresses,
                instance=bed.instance,
                creds=bed.creds,
                relays=bed.relays,
                clock=clock,
            )
        finally:
            clock.stop()


def start_heartbeat(loop: Loop) -> Heartbeat:
    """Start writing, and return once the heartbeat commits and every replica has caught up."""
    hb = Heartbeat(loop.env, loop.pgb.writeDatabase or loop.pgb.database)
    hb.start()
    deadline = time.monotonic() + 10
    while hb.writes < 2:
        assert time.monotonic() < deadline, f"the heartbeat does not write: {hb.errors}"
        time.sleep(0.02)
    loop.env.wait_caught_up(timeout=10)
    return hb


# ---- tests -------------------------------------------------------------------------------
def test_reads_on_replicas_writes_on_primary(loop: Loop) -> None:
    tick = loop.tick()
    assert tick.result.errors == ()
    assert tick.result.changed and tick.result.converged
    assert tick.result.instances[0].reloaded
    assert tick.plan.read_pool == ("orders-pg-replica-0", "orders-pg-replica-1")
    live = {r["name"]: r for r in loop.env.pgbouncer_admin("SHOW DATABASES")}
    assert live["orders_ro"]["host"] == "127.0.0.21,127.0.0.22"
    assert live["orders"]["host"] == PRIMARY_ALIAS
    # seed section 5 with 2 cores: write max 4 / min 2; read max 2x2x2 = 8 / min 4.
    assert (live["orders"]["pool_size"], live["orders"]["min_pool_size"]) == (4, 2)
    assert (live["orders_ro"]["pool_size"], live["orders_ro"]["min_pool_size"]) == (8, 4)

    seen = read_servers(loop.env, "orders_ro", clients=6)
    print(f"\nreads through orders_ro by server: {dict(seen)}")
    assert set(seen) == {"orders-pg-replica-0", "orders-pg-replica-1"}  # both, and only replicas
    assert sum(seen.values()) == 6

    with loop.env.connect_pgbouncer("orders") as conn, conn.transaction():
        conn.execute("UPDATE pgbench_branches SET bbalance = bbalance + 1 WHERE bid = 1")
        row = conn.execute("SELECT current_setting('cluster_name'), pg_is_in_recovery()").fetchone()
    assert row == ("orders-pg-0", False)

    counts = loop.connections()
    assert counts["orders-pg-replica-0"] and counts["orders-pg-replica-1"]  # > 0 and known
    # A second tick with nothing new writes nothing and reloads nothing.
    again = loop.tick()
    assert not again.result.changed and not again.result.instances[0].reloaded
    assert again.result.converged


def test_lagging_replica_leaves_within_one_interval_and_returns_after_hysteresis(loop: Loop) -> None:
    lagging = "orders-pg-replica-1"
    # The first tick moves PgBouncer from PgEnv's config to rwscaler's; writers start after it.
    first = loop.tick()
    assert lagging in first.plan.read_pool
    hb = start_heartbeat(loop)
    try:
        # PgBouncer creates a pool at its first client; min_pool_size then keeps it filled.
        assert set(read_servers(loop.env, "orders_ro")) == {"orders-pg-replica-0", lagging}
        loop.wait_connections(lagging, bool)
        loop.env.pause_replay(lagging)
        paused_at = time.monotonic()
        # Tick every interval until the lag observed from PostgreSQL crosses the objective.
        while True:
            time.sleep(INTERVAL_S)
            tick = loop.tick()
            lag = tick.lags[lagging]
            assert lag is not None
            if lag > LAG_OBJECTIVE_S:
                break
            assert lagging in tick.plan.read_pool  # still within the objective: stays
            assert time.monotonic() - paused_at < 30, "lag never grew: is the heartbeat writing?"
        prev = loop.ticks[-2]
        # Within one interval: in the pool at the previous tick (lag within the objective),
        # out at the first tick that saw it over.
        assert lagging in prev.plan.read_pool and (prev.lags[lagging] or 0) <= LAG_OBJECTIVE_S
        assert tick.plan.read_pool == ("orders-pg-replica-0",)
        assert tick.result.converged
        # Every pooled connection to it is marked to close (by the RELOAD itself in PgBouncer
        # 1.18; rwscaler would RECONNECT otherwise), and closes as it is released.
        assert loop.unmarked(lagging) == 0
        gone_after = loop.wait_connections(lagging, lambda c: c == 0)
        print(f"\n{lagging}: lag {lag:.2f}s > {LAG_OBJECTIVE_S}s -> out of the pool; its server "
              f"connections gone {gone_after:.2f}s after the reload")  # fmt: skip
        seen = read_servers(loop.env, "orders_ro")
        assert set(seen) == {"orders-pg-replica-0"}

        loop.env.resume_replay(lagging)
        healthy_from: float | None = None
        while True:
            time.sleep(INTERVAL_S / 2)
            tick = loop.tick()
            lag = tick.lags[lagging]
            if healthy_from is None and lag is not None and lag < LAG_OBJECTIVE_S * 0.5:
                healthy_from = tick.now
            if lagging in tick.plan.read_pool:
                break
            assert time.monotonic() - paused_at < 60, "the replica never came back"
        assert healthy_from is not None
        # Hysteresis: back only after reentrySeconds under objective x reentryLagRatio.
        assert tick.now - healthy_from >= REENTRY_S
        assert tick.now - healthy_from < REENTRY_S + INTERVAL_S
        held_out = [t for t in loop.ticks if t.now >= healthy_from and t.now - healthy_from < REENTRY_S]
        assert held_out and all(lagging not in t.plan.read_pool for t in held_out)
        # Back in the list; the connections opened by the old list (all to replica-0) are marked
        # to close, so the next ones open round-robin over both.
        assert tick.result.converged and loop.unmarked("orders-pg-replica-0") == 0
        assert set(read_servers(loop.env, "orders_ro")) == {"orders-pg-replica-0", lagging}
        assert loop.connections()[lagging]
    finally:
        hb.stop()
    assert hb.errors == []
    assert set(hb.servers) == {"orders-pg-0 in_recovery=False"}


def test_all_replicas_lagging_reads_go_to_primary(loop: Loop) -> None:
    assert len(loop.tick().plan.read_pool) == 2
    hb = start_heartbeat(loop)
    try:
        for r in loop.replica_names:
            loop.env.pause_replay(r)
        deadline = time.monotonic() + 30
        while True:
            time.sleep(INTERVAL_S)
            tick = loop.tick()
            if all(lag is not None and lag > LAG_OBJECTIVE_S for lag in tick.lags.values()):
                break
            assert time.monotonic() < deadline
    finally:
        hb.stop()
    assert tick.plan.pool_fallback and tick.plan.read_pool == ("orders-pg-0",)
    assert tick.result.converged
    live = {r["name"]: r for r in loop.env.pgbouncer_admin("SHOW DATABASES")}
    assert live["orders_ro"]["host"] == PRIMARY_ALIAS
    for r in loop.replica_names:
        loop.wait_connections(r, lambda c: c == 0)
    seen = read_servers(loop.env, "orders_ro")
    assert seen == Counter({"orders-pg-0 (primary)": 4})


def test_scale_in_drains_the_leaving_replica_before_it_stops(loop: Loop) -> None:
    leaving = "orders-pg-replica-1"
    readers = [Reader(loop.env, "orders_ro") for _ in range(3)]
    steady = loop.tick(read_qps=200)  # 200/s at 100/s per replica: 2 replicas, hold
    assert steady.plan.desired_replicas == 2 and steady.plan.scale_to is None
    for r in readers:
        r.start()
    try:
        began = time.monotonic()
        deadline = began + 15
        # A steady phase first: both replicas serve the readers for at least 2 s.
        while time.monotonic() - began < 2 or not all(
            sum(r.counts[n] for r in readers) > 20 for n in loop.replica_names
        ):
            assert time.monotonic() < deadline, "the readers do not reach both replicas"
            time.sleep(0.1)
        before = sum((r.snapshot() for r in readers), Counter())

        # Reads drop to 50/s: one replica is enough. decide drains the highest ordinal first.
        start = loop.tick(read_qps=50)
        assert start.plan.desired_replicas == 1
        assert start.plan.scale_to is None and start.plan.draining == (leaving,)
        assert start.plan.read_pool == ("orders-pg-replica-0",)
        assert start.result.converged and loop.unmarked(leaving) == 0
        drain_started = start.now
        while True:
            time.sleep(0.2)
            tick = loop.tick(read_qps=50)
            if tick.plan.scale_to is not None:
                break
            assert tick.now - drain_started < 30, "the drain never finished"
        drained = tick.now
        assert tick.plan.scale_to == 1
        # decide scaled on a count PgBouncer itself reported: no server connection to it left.
        assert loop.connections()[leaving] == 0

        # The "scale down": the leaving replica's PostgreSQL stops; the readers go on.
        loop.env.stop_instance(leaving)
        loop.current = 1
        time.sleep(2)
        after_stop = loop.tick(read_qps=50)
        assert after_stop.plan.read_pool == ("orders-pg-replica-0",) and after_stop.plan.scale_to is None
        assert not after_stop.result.changed and after_stop.result.converged
        time.sleep(1)
    finally:
        for r in readers:
            r.stop()
    total = sum((r.snapshot() for r in readers), Counter())
    errors = [e for r in readers for e in r.errors]
    last_on_leaving = max(r.last_start.get(leaving, 0.0) for r in readers)
    reads = sum(total.values())
    print(
        f"\nscale-in 2 -> 1: reads made {reads}, failed {len(errors)}, by server {dict(total)}; "
        f"drain took {drained - drain_started:.2f}s "
        f"({sum(1 for t in loop.ticks if drain_started < t.now <= drained)} ticks after it started); "
        f"before the drain {dict(before)}; on {leaving} after the drain began "
        f"{total[leaving] - before[leaving]} (while the drain tick ran), after it completed 0"
    )
    assert sum(r.on_primary for r in readers) == 0
    assert before[leaving] > 0  # it served reads before the drain
    assert last_on_leaving < drained  # and none once the drain was complete
    assert total["orders-pg-replica-0"] > before["orders-pg-replica-0"]  # reads went on
    assert errors == [], f"the looping readers saw errors: {errors}"
    # The drain tick relied on the RELOAD's own marking: a RECONNECT on top of it drops the
    # connections then logging in, and PgBouncer 1.18 then refuses reads (reconnect_reason).
    assert [i.reconnected for i in start.result.instances] == [()]


def server_states(loop: Loop, database: str) -> Counter[str]:
    """`SHOW SERVERS` states of `database`'s connections ("new": logging in)."""
    return Counter(r["state"] for r in loop.env.pgbouncer_admin("SHOW SERVERS") if r["database"] == database)


@pytest.mark.parametrize("login_wait_s", [LOGIN_WAIT_S, 0.0], ids=["waits", "no-wait"])
def test_reload_waits_for_a_login_in_progress(loop: Loop, login_wait_s: float) -> None:
    """A RELOAD that retargets a database drops its connections still logging in, and PgBouncer
    1.18 then refuses clients that find no other connection. The router waits for the login to
    finish before it reloads; without the wait ("no-wait", the control) the same sequence gets
    reads refused or held for server_login_retry, which shows the test sees the problem."""
    loop.router = PgBouncerRouter(loop.router.store, login_wait_s=login_wait_s)
    first = loop.tick(read_qps=200)
    # Both replicas listed: pool_size 8, min_pool_size 4 (one replica would leave no room for the
    # extra client's login below).
    assert first.result.converged and set(first.plan.read_pool) == set(loop.replica_names), first.lags
    read_servers(loop.env, "orders_ro")  # the pool exists and has its 4 connections
    deadline = time.monotonic() + 10
    while (states := server_states(loop, "orders_ro"))["new"] or states.total() < 4:
        assert time.monotonic() < deadline, f"the pool does not settle: {states}"
        time.sleep(0.05)
    # From now on a login takes 0.3 s. Hold every connection in a transaction, then one more
    # client: PgBouncer opens a connection for it, and that one login is in progress (nothing
    # else opens one: the pool is above min_pool_size and no other client waits).
    for r in loop.env.replicas:
        loop.relays.connect_delay_s[replica_alias(r.ordinal)] = 0.3
    holders = [loop.env.connect_pgbouncer("orders_ro") for _ in range(states.total() + 1)]
    errors: list[str] = []

    def hold(conn: psycopg.Connection[Any]) -> None:
        try:
            conn.execute("BEGIN; SELECT 1")
        except psycopg.Error as e:
            errors.append(" ".join(str(e).split()))

    threads = [threading.Thread(target=hold, args=(h,)) for h in holders]
    try:
        for t in threads:
            t.start()
        # One more client at a time until PgBouncer logs in for one (a connection may have
        # opened meanwhile, idle, that the extra client took instead).
        deadline = time.monotonic() + 10
        while not server_states(loop, "orders_ro")["new"]:
            assert time.monotonic() < deadline, "PgBouncer opens no connection for another client"
            if all(not t.is_alive() for t in threads) and len(holders) < 8:
                holders.append(loop.env.connect_pgbouncer("orders_ro"))
                threads.append(threading.Thread(target=hold, args=(holders[-1],)))
                threads[-1].start()
            time.sleep(0.005)
        t0 = time.monotonic()
        drain = loop.tick(read_qps=50)  # replica-1 leaves: the read database is retargeted
        took = time.monotonic() - t0
        assert drain.result.converged and drain.plan.read_pool == ("orders-pg-replica-0",)
        # The held transactions end: their connections were marked by the RELOAD and close.
        for h, t in zip(holders, threads, strict=True):
            if not t.is_alive():
                h.execute("COMMIT")
        readers = [Reader(loop.env, "orders_ro", pause_s=0.02) for _ in range(3)]
        for r in readers:
            r.start()
        time.sleep(2.5)  # longer than server_login_retry (1 s) plus a slow login
        for r in readers:
            r.stop()
        for t in threads:
            t.join(timeout=15)
    finally:
        for h in holders:
            h.close()
    errors += [e for r in readers for e in r.errors]
    reads = sum(sum(r.snapshot().values()) for r in readers)
    slowest = max(r.slowest_s for r in readers)
    print(
        f"\nlogin_wait_s={login_wait_s}: apply took {took:.2f}s; afterwards reads {reads}, "
        f"refused {len(errors)}, slowest {slowest:.2f}s"
    )
    assert reads > 0
    assert all("server login has been failing" in e for e in errors), errors
    # A dropped login costs server_login_retry (1 s here): PgBouncer opens no connection for that
    # long, so reads either are refused or wait for it. A slow login costs 0.3 s.
    if login_wait_s:
        assert took >= 0.1 and errors == [] and slowest < 1.0
    else:
        assert errors or slowest >= 1.0


def test_drain_waits_for_a_transaction_on_the_leaving_replica(loop: Loop) -> None:
    leaving = "orders-pg-replica-1"
    assert loop.tick(read_qps=200).plan.scale_to is None
    # A client inside a transaction on the leaving replica keeps its server connection. Open
    # transactions side by side until one lands there: PgBouncer reuses idle connections first
    # and opens new ones round-robin, so at most the pool size (8) are needed.
    holder: psycopg.Connection[Any] | None = None
    others: list[psycopg.Connection[Any]] = []
    for _ in range(8):
        conn = loop.env.connect_pgbouncer("orders_ro")
        conn.execute("BEGIN")
        row = conn.execute("SELECT current_setting('cluster_name')").fetchone()
        if row is not None and row[0] == leaving:
            holder = conn
            break
        others.append(conn)
    for conn in others:
        conn.execute("ROLLBACK")
        conn.close()
    assert holder is not None, f"no transaction landed on {leaving}"
    try:
        start = loop.tick(read_qps=50)
        assert start.plan.draining == (leaving,) and start.plan.scale_to is None
        held = []
        for _ in range(4):
            time.sleep(0.5)
            tick = loop.tick(read_qps=50)
            held.append(tick)
        assert all(t.plan.scale_to is None for t in held)
        assert loop.connections()[leaving] == 1
        # The transaction finishes normally on the replica that is leaving.
        row = holder.execute("SELECT count(*) FROM pgbench_branches").fetchone()
        holder.execute("COMMIT")
        assert row is not None and row[0] >= 1
    finally:
        holder.close()
    loop.wait_connections(leaving, lambda c: c == 0, timeout=5)
    done = loop.tick(read_qps=50)
    assert done.plan.scale_to == 1


def test_admin_console_failures_are_values_and_counts_unknown(loop: Loop) -> None:
    assert loop.tick().result.converged
    wrong = AdminCredentials(loop.creds.user, "not-the-password")
    bad = asyncio.run(
        loop.router.apply(
            loop.ticks[-1].plan, loop.pgb, loop.env.primary_name, loop.addresses, [loop.instance], wrong
        )
    )
    assert bad.instances[0].error is not None
    assert bad.instances[0].error.kind is AdminErrorKind.AUTH_FAILED
    assert not bad.converged
    counts = asyncio.run(
        loop.router.count_server_connections(loop.addresses, [loop.instance], wrong, loop.pgb)
    )
    assert set(counts.counts.values()) == {None}
    assert counts.errors[0].kind is AdminErrorKind.AUTH_FAILED

    loop.env.stop_pgbouncer()
    # Replicas caught up, so their lag is known and small: this test is about the admin console,
    # and a replica lagging at that instant would keep decide from starting the drain.
    loop.env.wait_caught_up(timeout=10)
    down = loop.tick(read_qps=50)  # would start a drain: it must not finish blind
    assert down.result.instances[0].error is not None
    assert down.result.instances[0].error.kind is AdminErrorKind.UNREACHABLE
    assert down.plan.draining == ("orders-pg-replica-1",)
    time.sleep(0.3)
    blind = loop.tick(read_qps=50)
    assert blind.plan.scale_to is None  # connections unknown (None), never taken as 0
    assert all(r is None for r in loop.connections().values())

    loop.env.start_pgbouncer()  # it reads the file rwscaler wrote while it was down
    back = loop.tick(read_qps=50)
    assert back.result.converged and back.result.errors == ()


class LaggingStore(FileConfigStore):
    """The ConfigMap as kubelet delivers it: writes land in the API object at once and in the
    pod's mounted file only when `sync()` runs."""

    def __init__(self, mounted: Path) -> None:
        super().__init__(mounted.with_name(mounted.name + ".api"))
        self.mounted = mounted

    def sync(self) -> None:
        self.mounted.write_text(self.path.read_text())


def test_config_not_yet_delivered_is_reported_and_reloaded_again(loop: Loop) -> None:
    store = loop.router.store
    assert isinstance(store, FileConfigStore)
    lagging = LaggingStore(store.path)
    assert loop.tick().result.converged  # both replicas, from the mounted file
    assert set(read_servers(loop.env, "orders_ro")) == {"orders-pg-replica-0", "orders-pg-replica-1"}
    lagging.path.write_text(store.path.read_text())
    loop.router = PgBouncerRouter(lagging)
    tick = loop.tick(read_qps=50)  # drain starts: replica-1 leaves the rendered config
    inst = tick.result.instances[0]
    assert tick.result.changed and inst.reloaded and not inst.converged
    assert "orders_ro" in inst.mismatch and inst.reconnected == ()
    assert any("config not loaded yet" in e for e in tick.result.errors)
    again = loop.tick(read_qps=50)
    assert not again.result.changed and again.result.instances[0].reloaded  # retried
    assert again.plan.scale_to is None  # its connections are still there: no scale-in
    lagging.sync()
    delivered = loop.tick(read_qps=50)
    assert delivered.result.converged
    assert loop.unmarked("orders-pg-replica-1") == 0
    loop.wait_connections("orders-pg-replica-1", lambda c: c == 0)


@dataclass
class LoopAccess:
    """PgBouncerAccess for the operator-facing router, on this module's setup."""

    loop: Loop
    store_: FileConfigStore

    async def instances(self, namespace: str, spec: PgBouncerSpec) -> list[Instance]:
        return [self.loop.instance]

    async def credentials(self, namespace: str, spec: PgBouncerSpec) -> AdminCredentials:
        return self.loop.creds

    def store(self, namespace: str, spec: PgBouncerSpec) -> FileConfigStore:
        return self.store_


def test_operator_router_tolerates_delivery_lag_then_reports_it(loop: Loop) -> None:
    store = loop.router.store
    assert isinstance(store, FileConfigStore)
    assert loop.tick().result.converged
    lagging = LaggingStore(store.path)
    lagging.path.write_text(store.path.read_text())
    clock = [1000.0]
    router = PgBouncerReadRouter(LoopAccess(loop, lagging), delivery_grace_s=60, clock=lambda: clock[0])
    owner = OwnerRef("shop", "orders", "uid-1")
    primary = Endpoint(loop.env.primary_name, "uid-0", PRIMARY_ALIAS)

    def route(read_pool: tuple[str, ...]) -> RouteRequest:
        plan = loop.ticks[-1].plan
        plan = replace(plan, read_pool=read_pool, pool_sizing=size_pools(2, len(read_pool)))
        eps = tuple(Endpoint(n, f"uid-{n}", loop.addresses[n]) for n in read_pool)
        return RouteRequest(owner, loop.spec, plan, eps, primary, ())

    one = route(("orders-pg-replica-0",))
    assert asyncio.run(router.apply(one)) is True  # written; not loaded yet, within the grace
    clock[0] += 59
    assert asyncio.run(router.apply(one)) is False
    clock[0] += 2
    with pytest.raises(ClusterProblem) as e:
        asyncio.run(router.apply(one))
    assert e.value.reason is ReadyReason.ROUTING_FAILED
    assert "has not loaded the [databases] rwscaler wrote 61s ago" in e.value.message
    assert "orders_ro: host '127.0.0.21,127.0.0.22' != '127.0.0.21'" in e.value.message
    lagging.sync()
    assert asyncio.run(router.apply(one)) is False  # nothing written; loaded now
    last = router.last[("shop", "orders")]
    assert last.converged and loop.unmarked("orders-pg-replica-1") == 0
    counts = asyncio.run(
        router.connections(
            ConnectionsRequest(
                owner,
                loop.spec,
                tuple(Endpoint(n, f"uid-{n}", loop.addresses[n]) for n in loop.replica_names),
            )
        )
    )
    assert set(counts) == {"orders-pg-replica-0", "orders-pg-replica-1"}
    assert all(isinstance(c, int) for c in counts.values())


def test_admin_console_commands(loop: Loop) -> None:
    """The admin session on the real console: simple protocol, RECONNECT marks, errors as values."""
    assert loop.tick().result.converged
    read_servers(loop.env, "orders_ro")
    # A transaction holds one server connection, so it is still there (marked) after RECONNECT.
    holder = loop.env.connect_pgbouncer("orders_ro")
    holder.execute("BEGIN")
    holder.execute("SELECT 1")

    async def run() -> tuple[dict[str, LiveDatabase], list[ServerConnection], list[ServerConnection]]:
        async with admin_session(loop.instance, loop.creds) as admin:
            dbs = await admin.show_databases()
            before = await admin.show_servers()
            await admin.reconnect("orders_ro")
            after = await admin.show_servers()
            with pytest.raises(AdminFailure) as e:
                await admin.reconnect("no_such_db")
            assert e.value.error.kind is AdminErrorKind.COMMAND_FAILED
            assert "no such database" in e.value.error.message
            await admin.reload()  # the session survives a failed command
            return dbs, before, after

    try:
        dbs, before, after = asyncio.run(run())
    finally:
        holder.execute("COMMIT")
        holder.close()
    assert dbs["orders_ro"].host == "127.0.0.21,127.0.0.22" and dbs["orders"].pool_size == 4
    ro_before = [s for s in before if s.database == "orders_ro"]
    assert ro_before and not any(s.close_needed for s in ro_before)
    assert {s.addr for s in ro_before} <= {"127.0.0.21", "127.0.0.22"}
    assert all(s.port == loop.pgb.serverPort and s.ptr for s in ro_before)
    # RECONNECT marked every connection that existed (the held one is still there); PgBouncer
    # may already be opening new ones for min_pool_size, which are not marked.
    old = {s.identity for s in ro_before}
    ro_after = [s for s in after if s.database == "orders_ro" and s.identity in old]
    assert ro_after and all(s.close_needed for s in ro_after)


def test_configmap_store_on_the_local_control_plane(loop: Loop) -> None:
    """The operator's write path: ConfigMapStore on the API server, PgBouncer loading it once
    "kubelet" (here: a copy into the %included file) has delivered it."""
    need(*cluster_available())
    assert loop.tick().result.converged  # both replicas, from the file
    store = loop.router.store
    assert isinstance(store, FileConfigStore)
    plan = loop.ticks[-1].plan
    one = replace(plan, read_pool=("orders-pg-replica-0",), pool_sizing=size_pools(2, 1))

    async def run() -> None:
        client = KubeClient.from_kubeconfig(str(kubeconfig_path()))
        ns = f"rwscaler-pgb-{uuid.uuid4().hex[:8]}"
        cms = f"/api/v1/namespaces/{ns}/configmaps"
        user_ini = "[databases]\n%include /etc/pgbouncer/databases.ini\n"
        await client.create(
            "/api/v1/namespaces", {"metadata": {"name": ns, "labels": {"rwscaler.io/test": "true"}}}
        )
        try:
            await client.create(
                cms, {"metadata": {"name": "orders-pgbouncer"}, "data": {"pgbouncer.ini": user_ini}}
            )
            cm_store = ConfigMapStore(client, ns, "orders-pgbouncer", "databases.ini")
            assert await cm_store.read() is None  # the key does not exist yet
            router = PgBouncerRouter(cm_store)
            args = (loop.pgb, loop.env.primary_name, loop.addresses, [loop.instance], loop.creds)
            first = await router.apply(one, *args)
            assert first.changed and first.rendered is not None
            assert not first.converged and first.instances[0].reloaded  # not delivered yet
            cm = await client.get(f"{cms}/orders-pgbouncer")
            assert cm is not None
            assert cm["data"]["pgbouncer.ini"] == user_ini  # the user's key is untouched
            assert cm["data"]["databases.ini"] == first.rendered.text
            assert cm["metadata"]["annotations"][HASH_ANNOTATION] == first.rendered.hash
            version = cm["metadata"]["resourceVersion"]

            store.path.write_text(cm["data"]["databases.ini"])  # kubelet delivers the key
            delivered = await router.apply(one, *args)
            assert delivered.converged and not delivered.changed
            again = await client.get(f"{cms}/orders-pgbouncer")
            assert again is not None and again["metadata"]["resourceVersion"] == version  # no write

            missing = await PgBouncerRouter(ConfigMapStore(client, ns, "nope", "databases.ini")).apply(
                one, *args
            )
            assert missing.write_error is not None and "not found" in missing.write_error
        finally:
            with contextlib.suppress(KubeApiError):
                await client.request("DELETE", f"/api/v1/namespaces/{ns}")
            await client.close()

    asyncio.run(run())
    loop.wait_connections("orders-pg-replica-1", lambda c: c == 0)
