"""The whole chain, once, for real (issue 12 item 5): PostgreSQL 15 -> postgres_exporter and the
PgBouncer exporter -> Prometheus -> the `postgres` preset (`PrometheusMetricsSource`) -> the
Observation (`core.assemble`, as the operator builds it) -> `decide` -> `PgBouncerRouter.apply`
-> where PgBouncer's read database really sends queries.

Each tick is the operator's tick by hand, started by an event, not by a clock: a new Prometheus
sample of a replica's exporter (`pg_replica_replay_lag_seconds`). It observes through the real
source (preset `postgres`, `spec.pooler` PgBouncer: QPS and latency from the PgBouncer exporter,
lag from the extension queries of tests/support/postgres_exporter_queries.yaml) and the pods as
the operator sees them (names, readiness, the primary in its own StatefulSet, roles confirmed by
the role metric), assembled by `core.assemble` exactly as `reconcile._observe` does; decides;
applies the plan to the real PgBouncer (routing_helpers: TCP relays per server, a FileConfigStore
for the ConfigMap); then asks PgBouncer's read database `SELECT current_setting('cluster_name')`
from several clients at once to see which servers really answer.

- A replica whose replay is paused (pgbench writing through PgBouncer) leaves the pool within a
  bounded number of its own samples and reads stop going to it; once replay resumes it comes
  back only after it has replayed everything written before the resume and after the re-entry
  hysteresis (`reentrySeconds: 5`), and reads go to it again.
- Through a long idle period (the primary idle for 3 minutes, then rounds of a few small writes
  after shorter idle stretches, the first write of each round timed to land just before a
  replica's scrape) no replica ever leaves the pool. That moment is the known false alarm of the
  classic lag formula (docs/metrics.md, "A known false alarm of (1), measured"). Measured on
  this setup by polling a replica every 0.1 ms: after an idle stretch, a single-row UPDATE of a
  random pgbench_accounts row made the classic formula read the whole idle time for 200 ms from
  the write on, every time, while updating one and the same row (pgbench_branches bid 1) did
  not. Likely why: 200 ms is wal_writer_delay, PgEnv runs synchronous_commit = off, and a record
  that crosses a WAL page, such as the full-page image of a page's first change since a
  checkpoint, reaches the replicas in two flushes. So the idle period starts with a CHECKPOINT.
  The test prints the ticks observed, how many exporter samples were taken inside that window
  (from Prometheus' raw samples: the evidence that the false alarm was provoked at all), what
  the preset made of them, and how many times a replica left (the false-alarm count). It also
  fails when no round provoked the window (it would then prove nothing).

Not checked here: scaling (minReplicas = maxReplicas = 2, nothing to scale), draining, failover,
a broken stream, the byte-lag objective (not set), the ConfigMap write path, the Kubernetes side
(pods are read from PgEnv, not from an API server), or the exact QPS and latency values
(test_observe_postgres.py checks those); only that the traffic signals are known while pgbench
runs.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from routing_helpers import RoutedBed, read_servers, routed_bed
from tests.support.pgenv import PgEnv

from rwscaler.core.assemble import PodSeen, assemble, roles_of
from rwscaler.core.decide import decide
from rwscaler.core.memory import Memory
from rwscaler.core.observation import Observation, Signal
from rwscaler.core.plan import Plan
from rwscaler.core.spec import PgBouncerSpec, ReadWriteWorkloadSpec
from rwscaler.metrics.prometheus import PrometheusMetricsSource
from rwscaler.metrics.source import MetricsReading, WorkloadQuery
from rwscaler.pooler.pgbouncer.apply import ApplyResult

pytestmark = pytest.mark.timeout(360)

LAG_OBJECTIVE_S = 2.0
REENTRY_RATIO = 0.5
REENTRY_S = 5
# The rate window's floor: `${window}` = max(2 x intervalSeconds, this); a few 1 s scrapes.
WINDOW_S = 6.0
# A paused replica's lag grows by one second per second: it must leave within this many of its
# own samples after the pause (the objective, plus a scrape to notice, plus slack for a model
# that confirms a value over two samples and for the pause landing mid-interval).
LEAVE_WITHIN_SAMPLES = int(LAG_OBJECTIVE_S) + 4
LONG_IDLE_S = 180.0
ROUNDS = 6
ROUND_IDLE_S = 8.0  # > the objective: a sample in the window reads about this much
ROUND_WRITES = 3
ROUND_WRITE_GAP_S = 0.4
# The first write of a round lands this long before the predicted scrape of the round's replica:
# the window opens at the write and lasts about 200 ms, the exporter runs its queries a few ms
# after the scrape starts.
WRITE_LEAD_S = 0.1
SMALL_WRITE = "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE aid = %s"
OWN_LAG = "pg_replica_replay_lag_seconds"  # the replica's own view (the classic formula)


def make_spec(env: PgEnv, relay_port: int) -> ReadWriteWorkloadSpec:
    return ReadWriteWorkloadSpec.model_validate(
        {
            "primary": {"statefulSet": env.primary_statefulset},
            "replicas": {
                "statefulSet": env.replica_statefulset,
                "minReplicas": 2,
                "maxReplicas": 2,
                "targetReadQPSPerReplica": 1000,
            },
            "prometheus": {"url": env.prometheus_url, "timeout": "5s"},
            "metrics": {"preset": "postgres", "staleness": "10s"},
            "objectives": {"maxReplicationLag": f"{LAG_OBJECTIVE_S:g}s"},
            "pooler": {
                "kind": "PgBouncer",
                "serverCores": 2,
                "drainTimeoutSeconds": 60,
                "pgbouncer": {
                    "deployment": "orders-pgbouncer",
                    "configMap": "orders-pgbouncer",
                    "database": env.database,
                    "readDatabase": env.read_database,
                    "port": env.pgbouncer_port,
                    "serverPort": relay_port,
                    "adminSecret": {"name": "orders-pgbouncer-admin", "key": "admin"},
                },
            },
            "behavior": {
                "intervalSeconds": 1,
                "readPool": {"reentryLagRatio": REENTRY_RATIO, "reentrySeconds": REENTRY_S},
            },
        }
    )


@dataclass
class Tick:
    n: int
    at: float  # wall clock, the `now` handed to the source and to decide
    fresh: dict[str, float]  # replica -> timestamp of its new sample that started this tick
    obs: Observation
    reading: MetricsReading
    plan: Plan
    result: ApplyResult
    servers: frozenset[str]  # who answered reads through the read database after the apply
    note: Any = None  # what the caller's probe saw at the start of the tick

    @property
    def pool(self) -> tuple[str, ...]:
        return self.plan.read_pool

    def lag(self, name: str) -> float | None:
        return next(r.lag.value for r in self.obs.replicas if r.name == name)


@dataclass
class Chain:
    """The operator's tick against the real setup: observe -> assemble -> decide -> apply -> check."""

    env: PgEnv
    bed: RoutedBed
    spec: ReadWriteWorkloadSpec
    source: PrometheusMetricsSource
    memory: Memory = field(default_factory=Memory)
    ticks: list[Tick] = field(default_factory=list)
    last_sample: dict[str, float] = field(default_factory=dict)  # replica -> newest sample seen
    missed_samples: Counter[str] = field(default_factory=Counter)
    last_primary: str | None = None

    @property
    def pgb(self) -> PgBouncerSpec:
        assert self.spec.pooler.pgbouncer is not None
        return self.spec.pooler.pgbouncer

    @property
    def replica_names(self) -> list[str]:
        return [r.name for r in sorted(self.env.replicas, key=lambda r: r.ordinal)]

    def _sample_times(self) -> dict[str, float]:
        assert self.env.prometheus is not None
        pods = "|".join(self.replica_names)
        expr = f'timestamp({OWN_LAG}{{namespace="{self.env.namespace}", pod=~"{pods}"}})'
        return {s.labels["pod"]: s.value for s in self.env.prometheus.query(expr)}

    async def wait_sample(self, timeout: float = 15.0) -> dict[str, float]:
        """Wait for a new sample of any replica's exporter in Prometheus; the new timestamps."""
        deadline = time.monotonic() + timeout
        while True:
            seen = await asyncio.to_thread(self._sample_times)
            new = {pod: ts for pod, ts in seen.items() if ts > self.last_sample.get(pod, 0.0)}
            if new:
                for pod, ts in new.items():
                    before = self.last_sample.get(pod)
                    if before is not None:
                        self.missed_samples[pod] += max(
                            0, round((ts - before) / self.env.scrape_interval) - 1
                        )
                self.last_sample.update(new)
                return new
            assert time.monotonic() < deadline, f"no new scrape of the replicas' exporters in {timeout}s"
            await asyncio.sleep(0.05)

    async def observe(self, now: float) -> tuple[Observation, MetricsReading]:
        """What `reconcile._observe` does, with PgEnv's servers as the pods."""
        env, spec = self.env, self.spec
        # The scale target's pods (the replica StatefulSet), then the primary's own StatefulSet.
        seen = [
            PodSeen(r.name, r.process is not None and r.process.running(), r.ordinal) for r in env.replicas
        ]
        primary = env.instance()
        seen.append(
            PodSeen(
                primary.name,
                primary.process is not None and primary.process.running(),
                None,
                in_primary_set=True,
            )
        )
        hinted = [replace(p, is_replica=Signal.of(0.0)) if p.name == self.last_primary else p for p in seen]
        planned = roles_of(spec, hinted)
        query = WorkloadQuery(
            key=f"{env.namespace}/orders",
            namespace=env.namespace,
            name="orders",
            spec=spec,
            primary_pods=planned.primaries,
            replica_pods=tuple(sorted(p.name for p in seen if p.name not in planned.primaries)),
        )
        reading = (await self.source.read([query], now))[query.key]
        replica_addresses = {n: a for n, a in self.bed.addresses.items() if n in query.replica_pods}
        connections = await self.bed.router.server_connections(
            replica_addresses, [self.bed.instance], self.bed.creds, self.pgb
        )
        sides, measured = reading.sides(planned.primaries), reading.onto(seen, connections)
        obs, roles = assemble(spec, sides, measured, len(env.replicas), reading.history, True)
        self.last_primary = roles.primary
        return obs, reading

    async def tick(self, probe: Callable[[], Any] | None = None) -> Tick:
        fresh = await self.wait_sample()
        note = await asyncio.to_thread(probe) if probe is not None else None
        now = time.time()
        obs, reading = await self.observe(now)
        plan = decide(self.spec, obs, self.memory, now)
        self.memory = plan.memory
        result = await self.bed.router.apply(
            plan, self.pgb, obs.primary, self.bed.addresses, [self.bed.instance], self.bed.creds
        )
        answered = await asyncio.to_thread(read_servers, self.env, self.pgb.readDatabase or "")
        servers = frozenset(name.removesuffix(" (primary)") for name in answered)
        tick = Tick(len(self.ticks), now, fresh, obs, reading, plan, result, servers, note)
        self.ticks.append(tick)
        return tick


@pytest.fixture
async def chain(clean_pgenv: PgEnv) -> AsyncIterator[Chain]:
    env = clean_pgenv
    # reuse_s=0: every tick reads Prometheus afresh (a kept reading would hide the new sample).
    source = PrometheusMetricsSource(min_rate_window_s=WINDOW_S, reuse_s=0)
    try:
        with routed_bed(env) as bed:
            yield Chain(env, bed, make_spec(env, bed.relays.port), source)
    finally:
        await source.close()


def _replay_lsn_reached(env: PgEnv, name: str, target: str) -> bool:
    (done,) = env.sql(name, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,))[0]
    return bool(done)


def _describe(t: Tick) -> str:
    lags = ", ".join(
        f"{r.name}={'?' if r.lag.value is None else f'{r.lag.value:.2f}'}" for r in t.obs.replicas
    )
    return f"tick {t.n}: lag {lags}; pool {list(t.pool)}; reads answered by {sorted(t.servers)}"


# ---- (1) a paused replica -----------------------------------------------------------------------
async def test_paused_replica_leaves_the_pool_and_returns_after_catching_up(chain: Chain) -> None:
    env = chain.env
    steady, lagging = chain.replica_names
    both = frozenset(chain.replica_names)
    writes = env.start_pgbench(rate=50, duration=120, clients=2, read_only=False)
    reads = env.start_pgbench(rate=100, duration=120, clients=2, read_only=True)
    try:
        # Warm up: the rate window fills, both replicas serve, the traffic signals are known.
        for _ in range(60):
            t = await chain.tick()
            traffic = (t.obs.read_qps, t.obs.write_qps, t.obs.read_p99, t.obs.write_p99)
            if all(s.known for s in traffic) and set(t.pool) == both and t.servers == both:
                break
        else:
            pytest.fail(f"never steady: {_describe(t)}; signals {t.obs.read_qps}, {t.obs.write_qps}")
        assert t.result.converged and t.obs.write_qps.value and t.obs.read_qps.value

        await asyncio.to_thread(env.pause_replay, lagging)
        paused_at = time.time()
        start = len(chain.ticks)
        own = 0  # samples of the paused replica's exporter since the pause
        while True:
            t = await chain.tick()
            own += lagging in t.fresh
            assert steady in t.pool, _describe(t)
            if lagging not in t.pool:
                break
            assert own <= LEAVE_WITHIN_SAMPLES, f"still in the pool after {own} samples: {_describe(t)}"
        left = t
        leave_ticks, leave_s = len(chain.ticks) - start, left.at - paused_at
        lag = left.lag(lagging)
        assert lag is not None and lag > LAG_OBJECTIVE_S, _describe(left)  # out for its lag
        assert left.result.converged and not left.plan.pool_fallback
        assert left.servers == {steady}, _describe(left)  # reads stop going to it at once
        # It stays out while paused, and no read reaches it.
        for _ in range(4):
            t = await chain.tick()
            assert t.pool == (steady,) and t.servers == {steady}, _describe(t)

        rows = await asyncio.to_thread(env.sql, env.primary_name, "SELECT pg_current_wal_lsn()::text")
        (target,) = rows[0]
        await asyncio.to_thread(env.resume_replay, lagging)
        resumed_at = time.time()
        start = len(chain.ticks)
        while True:
            t = await chain.tick(lambda: _replay_lsn_reached(env, lagging, target))
            if lagging in t.pool:
                break
            assert t.servers == {steady}, _describe(t)
            assert len(chain.ticks) - start < 80, f"never came back: {_describe(t)}"
        back = t
        return_ticks, return_s = len(chain.ticks) - start, back.at - resumed_at
        # Only after catching up: everything written before the resume was replayed before this
        # tick read Prometheus, and the lag it observed is under objective x reentryLagRatio...
        assert back.note is True, f"back in the pool before replaying {target}: {_describe(back)}"
        lag = back.lag(lagging)
        assert lag is not None and lag < LAG_OBJECTIVE_S * REENTRY_RATIO, _describe(back)
        # ...and only after the hysteresis: under that threshold for reentrySeconds, out all along.
        healthy_since = back.plan.memory.pool[lagging].healthy_since
        assert healthy_since is not None
        assert back.at - healthy_since >= REENTRY_S, _describe(back)
        assert back.at - healthy_since < REENTRY_S + 2 * env.scrape_interval, _describe(back)
        held = [x for x in chain.ticks[start:-1] if x.at >= healthy_since]
        assert held and all(lagging not in x.pool for x in held)
        assert back.result.converged
        # Reads reach it again (the connections of the old list are marked; new ones round-robin).
        seen_back = [back]
        while lagging not in seen_back[-1].servers and len(seen_back) < 4:
            seen_back.append(await chain.tick())
        assert seen_back[-1].servers == both, _describe(seen_back[-1])
        assert all(set(x.pool) == both for x in seen_back)
    finally:
        writes.stop()
        reads.stop()
    print(
        f"\nwhole chain, paused replay: {lagging} left the pool {leave_ticks} ticks "
        f"({own} of its own samples, {leave_s:.1f}s) after the pause at observed lag "
        f"{left.lag(lagging):.2f}s; came back {return_ticks} ticks ({return_s:.1f}s) after the "
        f"resume, {back.at - healthy_since:.1f}s after its lag went under "
        f"{LAG_OBJECTIVE_S * REENTRY_RATIO:g}s; samples missed by the ticks: {dict(chain.missed_samples)}"
    )


# ---- (2) a long idle period ---------------------------------------------------------------------
@dataclass
class Provocation:
    replica: str  # whose scrape the first write was aimed at
    idle_s: float  # how long the primary had been idle before it
    wrote_at: float
    scrape_at: float  # the predicted scrape


async def provoke(chain: Chain, log: list[Provocation], idle_start: float) -> None:
    """Stay idle for LONG_IDLE_S, then ROUNDS times: a few small writes, the first timed just
    before a replica's predicted scrape, then ROUND_IDLE_S idle again."""
    conn = await asyncio.to_thread(chain.env.connect_pgbouncer, chain.pgb.writeDatabase or chain.pgb.database)
    accounts = 100_000 * chain.env.pgbench_scale

    def write(at: float = 0.0) -> float:
        # The wait is in this thread, not on the event loop: a tick busy there cannot delay it.
        time.sleep(max(0.0, at - time.time()))
        conn.execute(SMALL_WRITE, (random.randint(1, accounts),))
        return time.time()

    try:
        last_write = idle_start
        await asyncio.sleep(max(0.0, idle_start + LONG_IDLE_S - time.time()))
        for n in range(ROUNDS):
            replica = chain.replica_names[n % len(chain.replica_names)]
            scrape_at = chain.last_sample[replica]  # Prometheus scrapes a target at a fixed phase
            while scrape_at - WRITE_LEAD_S < time.time() + 0.5:
                scrape_at += chain.env.scrape_interval
            first = await asyncio.to_thread(write, scrape_at - WRITE_LEAD_S)
            log.append(Provocation(replica, first - last_write, first, scrape_at))
            for _ in range(ROUND_WRITES - 1):
                last_write = await asyncio.to_thread(write, time.time() + ROUND_WRITE_GAP_S)
            await asyncio.sleep(ROUND_IDLE_S)
    finally:
        await asyncio.to_thread(conn.close)


def raw_samples(env: PgEnv, start: float, end: float) -> dict[str, list[tuple[float, float]]]:
    """Every sample Prometheus stored of the replicas' own lag view (the classic formula)."""
    assert env.prometheus is not None
    pods = "|".join(r.name for r in env.replicas)
    span = max(1, int(end - start) + 2)
    data = env.prometheus.api(
        "query",
        {"query": f'{OWN_LAG}{{namespace="{env.namespace}", pod=~"{pods}"}}[{span}s]', "time": repr(end)},
    )
    return {
        s["metric"]["pod"]: [(float(ts), float(v)) for ts, v in s["values"] if start <= float(ts) <= end]
        for s in data["result"]
    }


async def test_no_replica_leaves_during_a_long_idle_period(chain: Chain) -> None:
    env = chain.env
    both = frozenset(chain.replica_names)
    first = await chain.tick()
    assert set(first.pool) == both and first.servers == both, _describe(first)
    # One commit to replay, so each replica has a "last replayed commit" that ages while idle.
    await asyncio.to_thread(env.sql, env.primary_name, SMALL_WRITE, (1,))
    # A checkpoint, as the checkpointer makes after a busy period (scenario 1's pgbench may have
    # run just before): each round's first write is then a page's first change since it (a
    # full-page image), which is what opens the 200 ms window; a page changed again opens none.
    await asyncio.to_thread(env.sql, env.primary_name, "CHECKPOINT")
    await asyncio.to_thread(env.wait_caught_up)
    idle_start = time.time()
    start = len(chain.ticks)
    log: list[Provocation] = []
    writer = asyncio.create_task(provoke(chain, log, idle_start))
    try:
        while not writer.done():
            await chain.tick()
        for _ in range(4):  # the samples that follow the last round
            await chain.tick()
        await writer  # its errors, if any
    finally:
        writer.cancel()
    ticks = chain.ticks[start:]
    end = ticks[-1].at

    leaves: list[tuple[int, str, str]] = []
    prev = first
    for t in ticks:
        for name in chain.replica_names:
            if name in prev.pool and name not in t.pool:
                lag = t.lag(name)
                leaves.append((t.n, name, "lag unknown" if lag is None else f"lag {lag:.2f}s"))
        prev = t
    ticks_short = [t for t in ticks if set(t.pool) != both]
    reads_elsewhere = [t for t in ticks if t.servers != both]
    over = [
        (t.n, r.name, r.lag.value)
        for t in ticks
        for r in t.obs.replicas
        if (r.lag.value or 0) > LAG_OBJECTIVE_S
    ]
    unknown = [(t.n, r.name, r.lag.reason) for t in ticks for r in t.obs.replicas if r.lag.value is None]
    raw = await asyncio.to_thread(raw_samples, env, idle_start, end)
    raw_over = sorted((ts, pod, v) for pod, values in raw.items() for ts, v in values if v > LAG_OBJECTIVE_S)
    raw_count = sum(len(v) for v in raw.values())
    hits = [p for p in log if any(p.wrote_at - 0.05 <= ts <= p.wrote_at + 0.5 for ts, _pod, _v in raw_over)]
    rounds = []
    for p in log:
        aimed = next((x for x in raw.get(p.replica, []) if x[0] >= p.scrape_at - 0.05), None)
        where = (
            "no sample"
            if aimed is None
            else f"sample {1000 * (aimed[0] - p.wrote_at):+.0f} ms read {aimed[1]:.2f}s"
        )
        rounds.append(f"{p.replica} after {p.idle_s:.1f}s idle: {where}")
    print(
        f"\nwhole chain, idle: {len(ticks)} ticks over {end - idle_start:.0f}s "
        f"({LONG_IDLE_S:.0f}s idle, then {len(log)} rounds of {ROUND_WRITES} small writes after "
        f"{ROUND_IDLE_S:g}s idle stretches; samples missed by the ticks: {dict(chain.missed_samples)})"
    )
    print(
        f"  exporter samples of the classic formula inside the false-alarm window: {len(raw_over)} of "
        f"{raw_count} ({len(hits)} of {len(log)} rounds provoked one): "
        + ", ".join(f"{pod} {v:.1f}s at +{ts - idle_start:.1f}s" for ts, pod, v in raw_over)
    )
    print("  rounds (the aimed replica's next sample, from the first write):\n    " + "\n    ".join(rounds))
    print(
        f"  replica lags over the objective in the ticks' observations: {len(over)}; unknown: {len(unknown)}; "
        f"FALSE ALARMS (a replica left the pool): {len(leaves)} {leaves}; ticks with a replica out: "
        f"{len(ticks_short)}; ticks whose reads did not reach both replicas: {len(reads_elsewhere)}"
    )
    assert leaves == [], f"{len(leaves)} false alarms in {len(ticks)} ticks: {leaves}"
    assert hits, (
        "no round provoked the false-alarm window: no exporter sample over the objective after a write"
    )
    assert not ticks_short and not unknown, unknown[:5]
    assert all(t.result.converged and t.servers <= set(t.pool) for t in ticks)
