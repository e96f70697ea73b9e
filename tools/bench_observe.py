"""`make bench-observe`: what observing N workloads costs (not a test; prints a table).

For N = 10, 100, 1000 workloads:

1. a synthetic exporter (a subprocess) serves the `postgres` preset's series of N workloads in
   10 namespaces: PgBouncer exporter counters for each workload's read and write databases
   (values computed from the clock, so rates are exact and steady) and lag gauges for two
   replicas each: about 10 series per workload;
2. the Debian Prometheus scrapes it every second;
3. a fresh measuring subprocess (so its peak RSS is its own) builds N WorkloadQuerys, reads them
   all with `PrometheusMetricsSource` for several intervals, checks the numbers, and reports the
   queries per interval, the wall time per interval and its peak RSS.

    .venv/bin/python tools/bench_observe.py [--sizes 10,100,1000] [--intervals 5]

Goals (issue 4): queries per interval constant in N; 1000 workloads under 2 s per interval;
memory under 300 MiB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_REPO = Path(__file__).resolve().parents[1]
for path in (_REPO, _REPO / "operator"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from tests.support.ports import free_port, wait_listening  # noqa: E402
from tests.support.prometheus import PrometheusServer, ScrapeTarget, prometheus_binary  # noqa: E402

from rwscaler.core.spec import ReadWriteWorkloadSpec  # noqa: E402
from rwscaler.metrics.prometheus import PrometheusMetricsSource  # noqa: E402
from rwscaler.metrics.source import WorkloadQuery  # noqa: E402

NAMESPACES = 10
WINDOW_S = 10.0


def expected(i: int) -> dict[str, float]:
    """The signals workload i's series encode (what the readings must show)."""
    return {
        "read_qps": 50.0 + i % 97,
        "write_qps": 5.0 + i % 13,
        "read_latency": 0.001 * (1 + i % 5),
        "write_latency": 0.002 * (1 + i % 3),
        "lag0": 0.0,
        "lag1": float(i % 4),
        # The key metrics (docs/diagnosis.md), served since issue 12 so that their bundle query
        # is measured over real series.
        "read_pool_waiting": float(i % 2),
        "lock_waits": 0.5 * (i % 3),
        "rows_per_write": 1.0 + i % 4,
        "read_bytes": 2 * (110.0 + i % 7) * 8192,
    }


def names(i: int) -> tuple[str, str]:
    return f"ns{i % NAMESPACES}", f"db{i}"


# ---- the synthetic exporter (subprocess) ---------------------------------------------------------
def render(n: int, t0: float) -> bytes:
    elapsed = time.time() - t0
    lines = [
        "# TYPE pgbouncer_stats_queries_total counter",
        "# TYPE pgbouncer_stats_queries_duration_microseconds_total counter",
        "# TYPE pgbouncer_stats_waiting_duration_microseconds_total counter",
        "# TYPE pg_replica_replay_lag_seconds gauge",
        "# TYPE pg_wal_receiver_streaming gauge",
        "# TYPE pgbouncer_pools_server_active_connections gauge",
        "# TYPE pgbouncer_pools_client_waiting_connections gauge",
        "# TYPE pg_stat_database_blks_hit counter",
        "# TYPE pg_stat_database_blks_read counter",
        "# TYPE pg_stat_database_deadlocks counter",
        "# TYPE pg_replica_wal_position_bytes gauge",
        "# TYPE pg_statements_calls_total counter",
        "# TYPE pg_statements_exec_seconds_total counter",
        "# TYPE pg_statements_rows_total counter",
        "# TYPE pg_lock_waits_sessions gauge",
    ]
    for i in range(n):
        ns, name = names(i)
        e = expected(i)
        for db, qps, latency in (
            (f"{name}_ro", e["read_qps"], e["read_latency"]),
            (name, e["write_qps"], e["write_latency"]),
        ):
            labels = f'namespace="{ns}",database="{db}"'
            lines.append(f"pgbouncer_stats_queries_total{{{labels}}} {qps * elapsed:.3f}")
            lines.append(
                f"pgbouncer_stats_queries_duration_microseconds_total{{{labels}}} {qps * latency * 1e6 * elapsed:.3f}"
            )
            lines.append(f"pgbouncer_stats_waiting_duration_microseconds_total{{{labels}}} 0")
            waiting = e["read_pool_waiting"] if db.endswith("_ro") else 0.0
            lines.append(f'pgbouncer_pools_server_active_connections{{{labels},user="app"}} {1 + i % 3}')
            lines.append(f'pgbouncer_pools_client_waiting_connections{{{labels},user="app"}} {waiting}')
        primary = f'namespace="{ns}",pod="{name}-0"'
        lines.append(f"pg_replica_wal_position_bytes{{{primary}}} {1e6 * (1 + i % 5) * elapsed:.0f}")
        lines.append(f"pg_lock_waits_sessions{{{primary}}} {e['lock_waits']}")
        lines.append(f'pg_stat_database_deadlocks{{{primary},datname="app"}} 0')
        calls = e["write_qps"] * elapsed
        writes = f'{primary},datname="app",kind="write"'
        lines.append(f"pg_statements_calls_total{{{writes}}} {calls:.3f}")
        lines.append(f"pg_statements_rows_total{{{writes}}} {calls * e['rows_per_write']:.3f}")
        lines.append(f"pg_statements_exec_seconds_total{{{writes}}} {0.05 * elapsed:.3f}")
        for pod in (f"{name}-0", f"{name}-replica-0", f"{name}-replica-1"):
            reads = f'namespace="{ns}",pod="{pod}",datname="app",kind="read"'
            lines.append(f"pg_statements_exec_seconds_total{{{reads}}} {0.1 * elapsed:.3f}")
        for ordinal in (0, 1):
            replica = f'namespace="{ns}",pod="{name}-replica-{ordinal}",datname="app"'
            lines.append(f"pg_stat_database_blks_hit{{{replica}}} {(100 + i % 7) * elapsed:.3f}")
            lines.append(f"pg_stat_database_blks_read{{{replica}}} {10 * elapsed:.3f}")
        for ordinal, lag in enumerate((e["lag0"], e["lag1"])):
            labels = f'namespace="{ns}",pod="{name}-replica-{ordinal}"'
            lines.append(f"pg_replica_replay_lag_seconds{{{labels}}} {lag}")
            lines.append(f"pg_wal_receiver_streaming{{{labels}}} 1")
    return ("\n".join(lines) + "\n").encode()


def serve(n: int, port: int) -> None:
    t0 = time.time()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = render(n, t0)
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


# ---- the measurement (subprocess) ----------------------------------------------------------------
def workloads(n: int, url: str) -> list[WorkloadQuery]:
    out = []
    for i in range(n):
        ns, name = names(i)
        spec = ReadWriteWorkloadSpec.model_validate(
            {
                "primary": {"statefulSet": name},
                "replicas": {"statefulSet": f"{name}-replica", "maxReplicas": 8},
                "prometheus": {"url": url, "timeout": "5s"},
                "metrics": {"preset": "postgres"},
                "behavior": {"intervalSeconds": 5},
                "pooler": {
                    "kind": "PgBouncer",
                    "pgbouncer": {
                        "deployment": f"{name}-pgbouncer",
                        "configMap": f"{name}-pgbouncer",
                        "database": name,
                        "adminSecret": {"name": "admin", "key": "auth"},
                    },
                },
            }
        )
        out.append(
            WorkloadQuery(
                f"{ns}/{name}", ns, name, spec, (f"{name}-0",), (f"{name}-replica-0", f"{name}-replica-1")
            )
        )
    return out


async def measure(n: int, url: str, intervals: int) -> dict[str, Any]:
    queries = workloads(n, url)
    # reuse_s=0: every interval is a real grouped read (the bench reads all N in one call).
    source = PrometheusMetricsSource(min_rate_window_s=WINDOW_S, reuse_s=0)
    walls: list[float] = []
    counts: list[int] = []
    wrong = 0
    try:
        for _ in range(intervals):
            started = time.perf_counter()
            readings = await source.read(queries, time.time())
            walls.append(time.perf_counter() - started)
            assert source.last_stats is not None
            counts.append(source.last_stats.queries)
            for i, q in enumerate(queries):
                e, r = expected(i), readings[q.key]
                got = {
                    "read_qps": r.read_qps.value,
                    "write_qps": r.write_qps.value,
                    "read_latency": r.read_p99.value,
                    "write_latency": r.write_p99.value,
                    "lag0": r.replica_lag[q.replica_pods[0]].value,
                    "lag1": r.replica_lag[q.replica_pods[1]].value,
                }
                d = getattr(r, "diagnostics", None)  # None: code from before the key metrics
                if d is not None:
                    got["read_pool_waiting"] = d.read_pool_waiting.value
                    got["lock_waits"] = d.lock_waits.value
                    got["rows_per_write"] = d.rows_per_write.value
                    got["read_bytes"] = d.read_bytes.value
                if any(v is None or abs(v - e[k]) > 0.05 * max(e[k], 0.01) for k, v in got.items()):
                    wrong += 1
            await asyncio.sleep(1)
    finally:
        await source.close()
    alone = await ticking_alone(queries)
    # ru_maxrss is in KiB on Linux.
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "n": n,
        "queries": counts,
        "walls": walls,
        "rss_mib": rss_mib,
        "wrong": wrong,
        "intervals": intervals,
        "alone": alone,
    }


async def ticking_alone(queries: list[WorkloadQuery]) -> int:
    """As the operator asks: each workload alone, on its own phase of a 5 s interval.

    Returns the queries sent in the second interval of such ticking."""
    source = PrometheusMetricsSource(min_rate_window_s=WINDOW_S)  # default reuse: 2.5 s
    # The operator starts every workload's loop at once: their first asks arrive together.
    await source.read(queries, time.time())
    interval = 5.0
    step = interval / len(queries)
    start = time.monotonic()
    sent_before_second = 0
    try:
        for k in range(2 * len(queries)):
            if k == len(queries):
                sent_before_second = source.queries_sent
            delay = start + k * step - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            q = queries[k % len(queries)]
            await source.read([q], time.time())
    finally:
        await source.close()
    return source.queries_sent - sent_before_second


# ---- orchestration -------------------------------------------------------------------------------
def run_size(n: int, intervals: int) -> dict[str, Any]:
    port = free_port()
    exporter = subprocess.Popen([sys.executable, __file__, "--serve", str(n), "--port", str(port)])
    try:
        if not wait_listening(port, timeout=30):
            raise RuntimeError("the synthetic exporter did not start")
        with PrometheusServer([ScrapeTarget("synthetic", f"127.0.0.1:{port}")], scrape_interval=1.0) as prom:
            prom.wait_for_targets(timeout=60)
            time.sleep(WINDOW_S + 2)  # a full rate window of samples
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--measure",
                    str(n),
                    "--url",
                    prom.url,
                    "--intervals",
                    str(intervals),
                ],
                capture_output=True,
                text=True,
                check=True,
                timeout=600,
            )
            result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
            return result
    finally:
        exporter.kill()
        exporter.wait()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--intervals", type=int, default=5)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--measure", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.port)
        return 0
    if args.measure is not None:
        print(json.dumps(asyncio.run(measure(args.measure, args.url, args.intervals))))
        return 0

    if prometheus_binary() is None:
        print("bench-observe: no prometheus binary; run `make pgenv-deps`", file=sys.stderr)
        return 2
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        print(f"bench-observe: {n} workloads ...", file=sys.stderr, flush=True)
        rows.append(run_size(n, args.intervals))
    print()
    print(
        "| workloads | queries/interval | wall p50 (s) | wall max (s) | peak RSS (MiB) | readings off "
        "| queries/interval, each workload asking alone |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    ok = True
    for row in rows:
        walls = sorted(row["walls"])
        queries = sorted(set(row["queries"]))
        print(
            f"| {row['n']} | {','.join(map(str, queries))} | {walls[len(walls) // 2]:.3f} | {walls[-1]:.3f} "
            f"| {row['rss_mib']:.0f} | {row['wrong']}/{row['n'] * row['intervals']} | {row['alone']} |"
        )
        ok = ok and row["wrong"] == 0
    constant = len({q for row in rows for q in row["queries"]}) == 1
    biggest = max(rows, key=lambda r: r["n"])
    print()
    print(
        f"queries constant in N: {'yes' if constant else 'NO'}; "
        f"{biggest['n']} workloads: max {max(biggest['walls']):.3f} s per interval (goal < 2 s), "
        f"peak RSS {biggest['rss_mib']:.0f} MiB (goal < 300 MiB); every reading right: {'yes' if ok else 'NO'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
