"""The `postgres` preset's lag model (docs/metrics.md, "Replication lag: seconds and bytes ...")
on real PostgreSQL 15 (tests/support/pgenv.py: a primary, two streaming replicas, the exporters,
Prometheus scraping every second; wal_receiver_timeout = 10 s, wal_receiver_status_interval = 1 s).

Every lag here is read as the operator reads it: `PrometheusMetricsSource.read` with a
`WorkloadQuery` of the `postgres` preset, objectives `maxReplicationLag` and
`maxReplicationLagBytes: 64Mi` (so the byte lag is asked too). Nothing sleeps to wait for a
scrape: `Scrapes` watches the sample timestamps of `up` of the PostgreSQL exporters' targets and a
reading is taken after every new scrape of any of them (a "tick"); scrapes are counted from those
timestamps (the 1 s period counts a scrape a slow poll missed).

1. Silent partition: pgbench writes; the primary's walsender serving one replica is SIGSTOPped
   (`PgEnv.stop_walsender`). The receiver still says `streaming`, receive = replay, the classic
   formula reads 0; the model's receipt-age term must read that replica's lag as rising within
   two scrapes of its and the primary's targets, over a 2 s objective long before
   wal_receiver_timeout, the other replica near 0; after SIGCONT it returns to near 0. (The
   model's first version read 0 throughout: its receipt-age term had the classic formula's labels
   and `or` dropped it; each piece of evidence is now labelled apart.)
2. Paused replay while pgbench writes: the lag rises over the objective, the byte lag is known and
   grows; the replica's own `pg_replica_replay_paused` and `pg_replica_receive_replay_lag_bytes`
   say replay is stalled; after resume both lags fall back under their objectives.
3. Idle: six idle stretches of 40 s (4 min), each ended by one write transaction timed so that a
   replica's scrape lands at a chosen phase right after it (alternately one row, and one
   20 000-row UPDATE whose replay takes ~0.1-0.4 s: the window in which the classic formula reads
   the whole idle time). The lag is read at every tick; a reading over a 1 s objective (or
   unknown) is a false alarm: the model claims none. For comparison, the raw classic-formula
   samples (`pg_replica_replay_lag_seconds`, one scrape each) over 1 s are counted in Prometheus.
4. A write burst (pgbench as fast as it goes, 20 s) that replay keeps up with: lag in seconds
   stays under the objective at every tick, the byte lag is known, above 0 at some tick, bounded.

Each test prints its measured figures (`-s`). The writers commit with
`synchronous_commit = on` (SET LOCAL; PostgreSQL's default, which the bed turns off for speed)
where the timing of WAL matters (1, 2): each commit's WAL is then written at once, not in the
walwriter's 200 ms batches.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import math
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

import pytest
from tests.support.pgenv import PgEnv

from rwscaler.core.spec import ReadWriteWorkloadSpec
from rwscaler.metrics.prometheus import PrometheusMetricsSource
from rwscaler.metrics.source import WorkloadQuery

pytestmark = pytest.mark.timeout(420)

OBJECTIVE_S = 2.0  # maxReplicationLag of the partition, paused-replay and burst tests
IDLE_OBJECTIVE_S = 1.0  # the idle test's (stricter) maxReplicationLag
BYTES_OBJECTIVE = "64Mi"
BYTES_OBJECTIVE_N = 64 * 2**20
WAL_RECEIVER_TIMEOUT_S = 10.0  # pgenv's postgresql.conf
# A replica reads "above 0" (lag detected) over this: the healthy replica under the same writes
# reads a few milliseconds (the lag tracker, the receipt age between two messages).
DETECT_S = 0.25
NEAR_ZERO_S = 0.5
POLL_S = 0.05
WRITE_RATE = 100.0
# One write transaction, each commit flushed at once (see the module docstring).
SYNC_WRITE = (
    "\\set aid random(1, 100000)\n"
    "\\set delta random(-5000, 5000)\n"
    "BEGIN;\n"
    "SET LOCAL synchronous_commit = on;\n"
    "UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;\n"
    "COMMIT;\n"
)
IDLE_S = 40.0
# (rows of the one write that ends each idle stretch, the replica ordinal whose scrape it aims at,
# how long before that scrape it starts): the 20 000-row UPDATE's replay window is ~0.1-0.4 s.
IDLE_CYCLES = [
    (20_000, 0, 0.03),
    (1, 1, 0.01),
    (20_000, 1, 0.09),
    (20_000, 0, 0.15),
    (1, 0, 0.02),
    (20_000, 1, 0.21),
]
AFTER_WRITE_S = 4.0  # ticks read after each write (4 scrapes of every target)


def lag_workload(env: PgEnv, max_lag: str) -> WorkloadQuery:
    spec = ReadWriteWorkloadSpec.model_validate(
        {
            "primary": {"statefulSet": env.primary_statefulset},
            "replicas": {"statefulSet": env.replica_statefulset, "minReplicas": 1, "maxReplicas": 4},
            "prometheus": {"url": env.prometheus_url, "timeout": "5s"},
            "metrics": {"preset": "postgres", "staleness": "30s"},
            "objectives": {"maxReplicationLag": max_lag, "maxReplicationLagBytes": BYTES_OBJECTIVE},
            "pooler": {
                "kind": "PgBouncer",
                "pgbouncer": {
                    "deployment": "orders-pgbouncer",
                    "configMap": "orders-pgbouncer",
                    "database": env.database,
                    "readDatabase": env.read_database,
                    "adminSecret": {"name": "pgbouncer-admin", "key": "auth"},
                },
            },
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


@pytest.fixture
async def source() -> AsyncIterator[PrometheusMetricsSource]:
    # The operator's source; reuse_s=0 so that every tick is a new read, not a shared one.
    src = PrometheusMetricsSource(reuse_s=0)
    yield src
    await src.close()


@dataclass
class Scrapes:
    """The scrapes of the PostgreSQL exporters' targets, seen as new sample timestamps of `up`."""

    env: PgEnv
    seen: dict[str, list[float]] = field(default_factory=dict)  # pod -> scrape timestamps, sorted
    handed: dict[str, float] = field(default_factory=dict)  # pod -> the last scrape `next` reported

    def _stamps(self) -> dict[str, float]:
        assert self.env.prometheus is not None
        expr = f'timestamp(up{{job="postgres-exporter", namespace="{self.env.namespace}"}})'
        return {s.labels["pod"]: s.value for s in self.env.prometheus.query(expr)}

    async def _look(self) -> dict[str, float]:
        stamps = await asyncio.to_thread(self._stamps)
        for pod, stamp in stamps.items():
            seen = self.seen.setdefault(pod, [])
            if not seen or stamp > seen[-1]:
                seen.append(stamp)
        return stamps

    async def next(self, until: float | None = None) -> set[str]:
        """Wait for a new scrape; the pods whose target was scraped since the last call (empty
        when the wall clock passes `until` first)."""
        deadline = time.monotonic() + 15
        while True:
            stamps = await self._look()
            new = {pod for pod, stamp in stamps.items() if stamp > self.handed.get(pod, 0.0)}
            self.handed.update(stamps)
            if new or (until is not None and time.time() >= until):
                return new
            if time.monotonic() > deadline:
                raise TimeoutError(f"no new scrape in 15 s: {self.seen}")
            await asyncio.sleep(POLL_S)

    async def refresh(self) -> None:
        """Take in (for counting) the scrapes that landed since the last look; `next` still
        reports them."""
        await self._look()

    def since(self, pod: str, t: float, upto: float) -> int:
        """How many scrapes of the pod's target started after wall-clock time `t` and before `upto`
        (from the first and last seen: the fixed period counts a scrape a slow poll missed)."""
        stamps = self.seen[pod]
        i = bisect.bisect_right(stamps, t)
        j = bisect.bisect_right(stamps, upto)
        if i == 0:
            raise AssertionError(f"{pod}: no scrape seen before {t}")
        if j <= i:
            return 0
        return round((stamps[j - 1] - stamps[i - 1]) / self.env.scrape_interval)

    def next_after(self, pod: str, t: float) -> float:
        """The start of the pod's first scrape after `t`, from its fixed period."""
        last = self.seen[pod][-1]
        period = self.env.scrape_interval
        return last + period * max(1, math.ceil((t - last) / period))


@dataclass(frozen=True)
class Tick:
    asked: float  # wall clock when the reading was asked (Prometheus evaluates "now")
    t: float  # wall clock, after the reading
    scraped: frozenset[str]
    lag: dict[str, float | None]
    lag_bytes: dict[str, float | None]


async def tick(scrapes: Scrapes, source: PrometheusMetricsSource, q: WorkloadQuery) -> Tick:
    """Wait for the next scrape, then read the workload as the operator does."""
    scraped = await scrapes.next()
    reading = await read(source, q, scraped)
    await scrapes.refresh()  # for counting: a scrape may have landed while reading
    return reading


async def read(source: PrometheusMetricsSource, q: WorkloadQuery, scraped: Iterable[str] = ()) -> Tick:
    asked = time.time()
    reading = (await source.read([q], asked))[q.key]
    return Tick(
        asked,
        time.time(),
        frozenset(scraped),
        {pod: reading.replica_lag[pod].value for pod in q.replica_pods},
        {pod: reading.replica_lag_bytes[pod].value for pod in q.replica_pods},
    )


def raw(env: PgEnv, expr: str) -> dict[str, float]:
    """An instant query straight to Prometheus, by the `pod` label (replica-side series)."""
    assert env.prometheus is not None
    return {s.labels["pod"]: s.value for s in env.prometheus.query(expr)}


def lag_evidence(env: PgEnv, pod: str, at: float) -> dict[str, float | None]:
    """The model's pieces of evidence for one replica, evaluated at `at` (docs/metrics.md)."""
    assert env.prometheus is not None
    std = f'{{application_name="{pod}"}}'
    rep = f'{{pod="{pod}"}}'
    exprs = {
        "primary_replay_lag": f"pg_standby_replay_lag_seconds{std}",
        "classic_last": f"pg_replica_replay_lag_seconds{rep}",
        "classic_confirmed": f"pg_replica_replay_lag_seconds{rep}"
        f" - clamp_min(idelta(pg_replica_replay_lag_seconds{rep}[60s]), 0)",
        "receipt_age": f"pg_wal_receiver_last_msg_receipt_age_seconds{rep}",
        "flush_lag_bytes": f"pg_standby_flush_lag_bytes{std}",
        "flush_lag_bytes_before": f"pg_standby_flush_lag_bytes{std} - idelta(pg_standby_flush_lag_bytes{std}[60s])",
    }
    out: dict[str, float | None] = {}
    for name, expr in exprs.items():
        samples = env.prometheus.query(expr, at=at)
        out[name] = round(samples[0].value, 3) if samples else None
    return out


def bytes_evidence(env: PgEnv, pod: str, at: float) -> dict[str, list[tuple[str, float]]]:
    """The byte lag's two views for one replica at `at`, each series with its target and sample age."""
    assert env.prometheus is not None
    out: dict[str, list[tuple[str, float]]] = {}
    for name, expr in (
        ("primary_view", f'pg_standby_replay_lag_bytes{{application_name="{pod}"}}'),
        ("replica_view", f'pg_replica_receive_replay_lag_bytes{{pod="{pod}"}}'),
    ):
        ages = {
            s.labels.get("instance", ""): at - s.value
            for s in env.prometheus.query(f"timestamp({expr})", at=at)
        }
        out[name] = [
            (
                f"{s.labels.get('instance', '')} age {ages.get(s.labels.get('instance', ''), float('nan')):.1f}s",
                s.value,
            )
            for s in env.prometheus.query(expr, at=at)
        ]
    return out


def under(value: float | None, limit: float) -> bool:
    """Known and under the limit."""
    return value is not None and value < limit


def fmt(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.2f}"


def fmt_bytes(value: float | None) -> str:
    return "unknown" if value is None else f"{value / 1024:.0f}KiB"


async def steady(scrapes: Scrapes, source: PrometheusMetricsSource, q: WorkloadQuery, n: int) -> list[Tick]:
    """`n` ticks once three scrapes of every target were seen (a baseline, e.g. under the writes)."""
    while len(scrapes.seen) < 3 or min(len(s) for s in scrapes.seen.values()) < 3:
        await scrapes.next()
    return [await tick(scrapes, source, q) for _ in range(n)]


async def test_silent_partition_reads_as_rising_lag_within_two_scrapes(
    clean_pgenv: PgEnv, source: PrometheusMetricsSource
) -> None:
    env = clean_pgenv
    q = lag_workload(env, f"{OBJECTIVE_S:g}s")
    cut, other = (r.name for r in env.replicas)
    primary = env.primary_name
    scrapes = Scrapes(env)
    writes = env.start_pgbench(rate=WRITE_RATE, duration=90, clients=2, read_only=False, script=SYNC_WRITE)
    try:
        before = await steady(scrapes, source, q, 3)
        for t in before:
            for pod in q.replica_pods:
                assert t.lag[pod] is not None and t.lag[pod] < DETECT_S, (pod, before)
        t_stop = time.time()
        await asyncio.to_thread(env.stop_walsender, cut)
        during: list[Tick] = []
        counts: list[tuple[int, int]] = []  # (scrapes of the cut replica, of the primary) since the stop
        classic_at_over = streaming_at_over = None
        try:
            while time.time() - t_stop < 8.5:
                t = await tick(scrapes, source, q)
                during.append(t)
                counts.append((scrapes.since(cut, t_stop, t.asked), scrapes.since(primary, t_stop, t.asked)))
                over = [i for i, x in enumerate(during) if (x.lag[cut] or 0) > OBJECTIVE_S]
                if over and classic_at_over is None:
                    classic_at_over = raw(env, f'pg_replica_replay_lag_seconds{{pod="{cut}"}}').get(cut)
                    streaming_at_over = raw(env, f'pg_wal_receiver_streaming{{pod="{cut}"}}').get(cut)
                if over and counts[-1][0] >= counts[over[0]][0] + 2:
                    break  # two more scrapes of the cut replica after it went over: rising?
        finally:
            await asyncio.to_thread(env.continue_walsender, cut)
        t_cont = time.time()
        after: list[Tick] = []
        while time.time() - t_cont < 20:
            after.append(await tick(scrapes, source, q))
            if all(under(after[-1].lag[pod], NEAR_ZERO_S) for pod in q.replica_pods):
                break
    finally:
        await asyncio.to_thread(writes.stop)

    print(f"\nsilent partition of {cut} (walsender SIGSTOPped at t=0, pgbench {WRITE_RATE:g} tps):")
    print("   t(s)  scrapes(replica, primary)  lag cut / other (s)   bytes cut / other")
    for t, (n_rep, n_pri) in zip(during, counts, strict=True):
        print(
            f"  {t.t - t_stop:5.2f}  ({n_rep}, {n_pri})  {fmt(t.lag[cut]):>8} / {fmt(t.lag[other]):<6}"
            f"  {fmt_bytes(t.lag_bytes[cut])} / {fmt_bytes(t.lag_bytes[other])}"
        )
    detected = next((i for i, t in enumerate(during) if (t.lag[cut] or 0) > DETECT_S), None)
    over_i = next((i for i, t in enumerate(during) if (t.lag[cut] or 0) > OBJECTIVE_S), None)
    for name, i in (
        (f"lag > 0 (> {DETECT_S:.2f}s)", detected),
        (f"lag > {OBJECTIVE_S:g}s objective", over_i),
    ):
        if i is not None:
            print(
                f"  {name}: {during[i].t - t_stop:.2f}s after SIGSTOP, "
                f"after {counts[i][0]} scrape(s) of {cut} and {counts[i][1]} of the primary"
            )
    print(
        f"  at that moment: receiver streaming={streaming_at_over}, classic formula={classic_at_over};"
        f" after SIGCONT back under {NEAR_ZERO_S}s in {after[-1].t - t_cont:.2f}s"
        f" ({fmt(after[-1].lag[cut])}s, {len(after)} ticks)"
    )

    assert detected is not None, "the silently cut replica never read a lag above 0"
    assert max(counts[detected]) <= 2, f"lag above 0 only after {counts[detected]} scrapes"
    assert over_i is not None, f"the cut replica's lag never exceeded {OBJECTIVE_S}s in 8.5s"
    assert during[over_i].t - t_stop < WAL_RECEIVER_TIMEOUT_S
    # The receiver had not noticed, and the classic formula read nothing: only the model saw it.
    assert streaming_at_over == 1.0
    assert classic_at_over is not None and classic_at_over < OBJECTIVE_S
    rising = [t.lag[cut] for t in during[detected:]]
    assert all(b is not None and a is not None and b >= a - 0.05 for a, b in itertools.pairwise(rising)), (
        rising
    )
    assert rising[-1] is not None and rising[0] is not None and rising[-1] > rising[0] + 1.0, rising
    for t in during:
        assert t.lag[other] is not None and t.lag[other] < NEAR_ZERO_S, ("other replica", t)
    assert under(after[-1].lag[cut], NEAR_ZERO_S), ("no return to ~0 after SIGCONT", after[-3:])


async def test_paused_replay_rises_over_the_objective_in_seconds_and_bytes(
    clean_pgenv: PgEnv, source: PrometheusMetricsSource
) -> None:
    env = clean_pgenv
    q = lag_workload(env, f"{OBJECTIVE_S:g}s")
    paused, other = (r.name for r in env.replicas)
    scrapes = Scrapes(env)
    writes = env.start_pgbench(rate=WRITE_RATE, duration=90, clients=2, read_only=False, script=SYNC_WRITE)
    stalled: list[tuple[float, float | None, float | None]] = []  # (t, replay_paused, receive_replay bytes)
    try:
        before = await steady(scrapes, source, q, 3)
        for t in before:
            assert t.lag[paused] is not None and t.lag[paused] < DETECT_S, before
        t_pause = time.time()
        await asyncio.to_thread(env.pause_replay, paused)
        during: list[Tick] = []
        counts: list[tuple[int, int]] = []
        while time.time() - t_pause < 12:
            t = await tick(scrapes, source, q)
            during.append(t)
            counts.append(
                (scrapes.since(paused, t_pause, t.asked), scrapes.since(env.primary_name, t_pause, t.asked))
            )
            flags = raw(env, f'pg_replica_replay_paused{{pod="{paused}"}}')
            recv = raw(env, f'pg_replica_receive_replay_lag_bytes{{pod="{paused}"}}')
            stalled.append((t.t - t_pause, flags.get(paused), recv.get(paused)))
            over = [i for i, x in enumerate(during) if (x.lag[paused] or 0) > OBJECTIVE_S]
            if over and counts[-1][0] >= counts[over[0]][0] + 2:
                break
        t_resume = time.time()
        await asyncio.to_thread(env.resume_replay, paused)
        after: list[Tick] = []
        while time.time() - t_resume < 20:
            after.append(await tick(scrapes, source, q))
            last = after[-1]
            if under(last.lag[paused], OBJECTIVE_S) and under(last.lag_bytes[paused], 1 << 20):
                break
    finally:
        await asyncio.to_thread(writes.stop)

    print(f"\npaused replay on {paused} (t=0, pgbench {WRITE_RATE:g} tps):")
    print(
        "   t(s)  scrapes(replica, primary)  lag paused / other (s)  bytes paused / other  | replay_paused, receive_replay_lag_bytes"
    )
    for t, (n_rep, n_pri), (_, flag, recv) in zip(during, counts, stalled, strict=True):
        print(
            f"  {t.t - t_pause:5.2f}  ({n_rep}, {n_pri})  {fmt(t.lag[paused]):>8} / {fmt(t.lag[other]):<6}"
            f"  {fmt_bytes(t.lag_bytes[paused])} / {fmt_bytes(t.lag_bytes[other])}  | {flag}, {fmt_bytes(recv)}"
        )
    detected = next((i for i, t in enumerate(during) if (t.lag[paused] or 0) > DETECT_S), None)
    over_i = next((i for i, t in enumerate(during) if (t.lag[paused] or 0) > OBJECTIVE_S), None)
    for name, i in (
        (f"lag > 0 (> {DETECT_S:.2f}s)", detected),
        (f"lag > {OBJECTIVE_S:g}s objective", over_i),
    ):
        if i is not None:
            print(
                f"  {name}: {during[i].t - t_pause:.2f}s after the pause, "
                f"after {counts[i][0]} scrape(s) of {paused} and {counts[i][1]} of the primary"
            )
    under_s = next((t.t - t_resume for t in after if under(t.lag[paused], OBJECTIVE_S)), None)
    under_b = next((t.t - t_resume for t in after if under(t.lag_bytes[paused], 1 << 20)), None)
    print(
        f"  after resume: lag under {OBJECTIVE_S:g}s after {fmt(under_s)}s, bytes under 1MiB after"
        f" {fmt(under_b)}s; last: {fmt(after[-1].lag[paused])}s, {fmt_bytes(after[-1].lag_bytes[paused])}"
        f" ({len(after)} ticks): "
        + ", ".join(
            f"+{t.asked - t_resume:.1f}s {fmt(t.lag[paused])}s/{fmt_bytes(t.lag_bytes[paused])}"
            for t in after
        )
    )
    for t in [t for t in after if (t.lag_bytes[paused] or 0) >= 1 << 20][:6]:
        print(f"    byte lag at +{t.asked - t_resume:.2f}s: {bytes_evidence(env, paused, t.asked)}")

    assert detected is not None and max(counts[detected]) <= 2, (detected, counts)
    assert over_i is not None, f"the paused replica's lag never exceeded {OBJECTIVE_S}s"
    # The byte lag is known at every tick, and grows while replay is paused.
    for t in during:
        assert t.lag_bytes[paused] is not None and t.lag_bytes[other] is not None, t
        assert t.lag[other] is not None and t.lag[other] < NEAR_ZERO_S, ("other replica", t)
    paused_bytes = [b for t in during if (b := t.lag_bytes[paused] or 0.0) > 0]
    assert len(paused_bytes) >= 2 and paused_bytes[-1] > paused_bytes[0], paused_bytes
    # The stalled-replay reading: the replica itself says replay is paused, with WAL received and
    # not replayed, growing.
    last_flags = [flag for _, flag, _ in stalled[-3:]]
    assert last_flags == [1.0, 1.0, 1.0], stalled
    recv_bytes = [b for _, _, recv in stalled if (b := recv or 0.0) > 0]
    assert len(recv_bytes) >= 2 and recv_bytes[-1] > recv_bytes[0], stalled
    # Resumed: both lags back under their objectives (bytes: under 1 MiB).
    assert under(after[-1].lag[paused], OBJECTIVE_S), after[-3:]
    assert under(after[-1].lag_bytes[paused], 1 << 20), after[-3:]


async def test_idle_primary_raises_no_false_alarm(
    clean_pgenv: PgEnv, source: PrometheusMetricsSource
) -> None:
    env = clean_pgenv
    q = lag_workload(env, f"{IDLE_OBJECTIVE_S:g}s")
    replicas = list(q.replica_pods)
    scrapes = Scrapes(env)
    await asyncio.to_thread(env.sql, None, "UPDATE pgbench_branches SET bbalance = bbalance WHERE bid = 1")
    await asyncio.to_thread(env.wait_caught_up)
    await steady(scrapes, source, q, 1)
    ticks: list[Tick] = []
    writes: list[tuple[float, float, int]] = []  # (start, end, rows)
    t_begin = last_write = time.time()
    idle_total = 0.0

    async def ticks_until(until: float) -> None:
        while time.time() < until:
            scraped = await scrapes.next(until=until)
            if scraped:
                ticks.append(await read(source, q, scraped))

    for rows, aim, lead in IDLE_CYCLES:
        write_at = scrapes.next_after(replicas[aim], last_write + IDLE_S) - lead
        await ticks_until(write_at - 0.3)
        await asyncio.sleep(max(0.0, write_at - time.time()))  # the last fraction of the idle stretch
        started = time.time()
        idle_total += started - last_write
        await asyncio.to_thread(
            env.sql, None, f"UPDATE pgbench_accounts SET abalance = abalance WHERE aid <= {rows}"
        )
        last_write = time.time()
        writes.append((started, last_write, rows))
        await ticks_until(last_write + AFTER_WRITE_S)
    t_end = time.time()

    # The classic formula, one scrape each, straight from Prometheus over the same run.
    assert env.prometheus is not None
    span = math.ceil(t_end - t_begin)
    data = env.prometheus.api(
        "query",
        {
            "query": f'pg_replica_replay_lag_seconds{{namespace="{env.namespace}", pod=~"{"|".join(replicas)}"}}[{span}s]',
            "time": repr(t_end),
        },
    )
    classic = [
        (series["metric"]["pod"], float(ts), float(value))
        for series in data["result"]
        for ts, value in series["values"]
    ]
    classic_alarms = [c for c in classic if c[2] > IDLE_OBJECTIVE_S]

    false_alarms = [
        (t, pod, t.lag[pod])
        for t in ticks
        for pod in replicas
        if t.lag[pod] is None or t.lag[pod] > IDLE_OBJECTIVE_S
    ]
    byte_unknown = [(t, pod) for t in ticks for pod in replicas if t.lag_bytes[pod] is None]
    max_lag = {pod: max((t.lag[pod] or 0.0) for t in ticks) for pod in replicas}
    max_bytes = {pod: max((t.lag_bytes[pod] or 0.0) for t in ticks) for pod in replicas}
    scraped_in_run = sum(1 for stamps in scrapes.seen.values() for stamp in stamps if t_begin < stamp < t_end)
    followed = sum(len(t.scraped) for t in ticks)
    print(
        f"\nidle primary: {len(IDLE_CYCLES)} idle stretches, {idle_total:.0f}s idle in {t_end - t_begin:.0f}s"
    )
    for (started, ended, rows), (_, aim, lead) in zip(writes, IDLE_CYCLES, strict=True):
        phases = ", ".join(
            f"{pod[-1]}:{stamp - started:+.3f}"
            for pod in replicas
            for stamp in scrapes.seen[pod]
            if started - 0.05 <= stamp <= started + 1.0
        )
        print(
            f"  write of {rows} row(s) at {started - t_begin:6.1f}s took {ended - started:.3f}s,"
            f" aimed {lead:.2f}s before {replicas[aim]}'s scrape; replica scrapes after it (s): {phases}"
        )
    print(
        f"  model: {len(ticks)} ticks, {len(ticks) * len(replicas)} replica readings,"
        f" false alarms (> {IDLE_OBJECTIVE_S:g}s or unknown): {len(false_alarms)};"
        f" byte lag unknown: {len(byte_unknown)}; max lag {max_lag}; max bytes {max_bytes};"
        f" {scraped_in_run} scrapes of the PostgreSQL targets, {followed} followed by a reading"
    )
    print(
        f"  classic formula pg_replica_replay_lag_seconds: {len(classic)} samples,"
        f" over {IDLE_OBJECTIVE_S:g}s: {len(classic_alarms)}"
    )
    for pod, ts, value in classic_alarms:
        phase = min((ts - w[0] for w in writes if w[0] - 0.05 <= ts), default=float("nan"))
        print(f"    {pod} at {ts - t_begin:6.1f}s: {value:.1f}s ({phase:+.3f}s after the last write started)")
    # The readings over half the objective (the first 20), with the evidence Prometheus held then.
    high = [
        (t, pod) for t in ticks for pod in replicas if t.lag[pod] is None or t.lag[pod] > IDLE_OBJECTIVE_S / 2
    ]
    print(f"  readings over {IDLE_OBJECTIVE_S / 2:g}s: {len(high)}")
    for t, pod in high[:20]:
        value = t.lag[pod]
        last = max((w[0] for w in writes if w[0] <= t.asked), default=t_begin)
        kind = "FALSE ALARM" if value is None or value > IDLE_OBJECTIVE_S else "near miss"
        print(
            f"    model {kind}: {pod} at {t.asked - t_begin:6.1f}s ({t.asked - last:+.2f}s after the"
            f" last write): {fmt(value)}; evidence: {lag_evidence(env, pod, t.asked)}"
        )

    assert idle_total >= 4 * 60 - 5, idle_total
    # A reading after every scrape of every PostgreSQL target (a poll that saw two scrapes of one
    # target at once would have missed a state).
    assert followed >= 0.97 * scraped_in_run, (followed, scraped_in_run)
    assert not false_alarms, [(round(t.t - t_begin, 1), pod, value) for t, pod, value in false_alarms]
    assert not byte_unknown
    assert all(v < BYTES_OBJECTIVE_N for v in max_bytes.values()), max_bytes


async def test_write_burst_that_replay_keeps_up_with(
    clean_pgenv: PgEnv, source: PrometheusMetricsSource
) -> None:
    env = clean_pgenv
    q = lag_workload(env, f"{OBJECTIVE_S:g}s")
    replicas = list(q.replica_pods)
    scrapes = Scrapes(env)
    await steady(scrapes, source, q, 1)
    (lsn0,) = env.sql(None, "SELECT pg_current_wal_lsn()::text", dbname="postgres")[0]
    burst = env.start_pgbench(rate=1e6, duration=20, clients=2, jobs=2, read_only=False)
    ticks: list[Tick] = []
    try:
        while burst.running:
            ticks.append(await tick(scrapes, source, q))
    finally:
        result = await asyncio.to_thread(burst.wait, False)
    (wal,) = env.sql(
        None, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)", (lsn0,), dbname="postgres"
    )[0]
    max_lag = {pod: max((t.lag[pod] or 0.0) for t in ticks) for pod in replicas}
    max_bytes = {pod: max((t.lag_bytes[pod] or 0.0) for t in ticks) for pod in replicas}
    print(
        f"\nwrite burst: pgbench {result.tps:.0f} tps for {result.duration}s, WAL {float(wal) / 2**20:.0f}MiB,"
        f" {len(ticks)} ticks; max lag (s) {max_lag}; max byte lag {max_bytes}"
    )
    assert result.transactions > 0
    assert len(ticks) >= 15
    for t in ticks:
        for pod in replicas:
            assert t.lag[pod] is not None and t.lag[pod] < OBJECTIVE_S, (pod, t)
            assert t.lag_bytes[pod] is not None and t.lag_bytes[pod] < BYTES_OBJECTIVE_N, (pod, t)
    assert all(v > 0 for v in max_bytes.values()), max_bytes
