"""`make soak`: one operator under a churn of workloads for an hour; memory and connections stay flat.

Called by `make soak` (mk/soak.mk, default 60 minutes) and, for five minutes, by
tests/integration/cluster/test_cluster_soak.py (`make soak-check`, and CI's `make test`). docs/soak.md says what it measures, the criteria and the figures.

What it does, on the local control plane (`make cluster`):

1. a namespace `rwsoak-<hex>` (label `rwscaler.io/soak=true`); the CRD and manifests/rbac are
   applied (server-side, as they are) and the operator's ServiceAccount gets a kubeconfig
   (hack/cluster/sa-kubeconfig.sh), as tools/bench_operator.py does;
2. a synthetic postgres_exporter (a thread of this process, 127.0.0.1) serving healthy series for
   exactly the workloads that exist (a workload's series appear just before it is created and
   disappear when it is deleted) and the Debian Prometheus scraping it every 2 s;
3. ONE operator process, `rwscaler run -n <namespace>` as the ServiceAccount (started through
   `--launch`, which adds a thread that writes the number of asyncio tasks to a file every 5 s);
4. a population of `--population` workloads (default 20), each with its primary StatefulSet
   (1 pod), replica StatefulSet (2 pods, kwok) and read Service (pooler EndpointSlice, preset
   postgres, interval `--interval` s, default 5), created before the clock starts; then for
   `--minutes`, every `--every` seconds (default 3) one new workload is created (a new name:
   `s<seq>`, never reused) and the oldest one whose status the operator has written is deleted
   with its StatefulSets and Service, so each lives about population x every = 60 s (12 ticks);
5. every `--sample` seconds (default 10) a row: the operator's VmRSS, open file descriptors,
   TCP connections (its socket inodes matched against /proc/PID/net/tcp{,6}), asyncio tasks,
   threads, CPU seconds, the live workloads, created and deleted so far.

Correctness along the way: a watch on the namespace's workloads records, for each one, the first
event whose status carries the operator's conditions and observedGeneration; a workload is only
deleted after that event (or, failing it, after `--status-timeout` s, counted as a failure), and
each deletion is confirmed by the watch's DELETED event. At the end the operator's log is searched
for `Traceback` and ` ERROR ` lines.

Everything it created is removed at the end, on failure or Ctrl-C too (the namespace, the
processes); the CRD and RBAC are left as they are (the plane is shared).

    .venv/bin/python tools/soak.py [--minutes 60] [--population 20] [--every 3] [--interval 5]
        [--sample 10] [--operator-dir operator] [--out build/soak.txt] [--json build/soak.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from tools.bench_operator import (  # noqa: E402
    cpu_seconds,
    import_from,
    in_loop_thread,
    read_service,
    rss_mib,
    statefulset,
    workload,
)

GROUP, VERSION, PLURAL = "rwscaler.io", "v1alpha1", "readwriteworkloads"
SOAK_LABEL = "rwscaler.io/soak"
BENCH_LABEL = "rwscaler.io/bench"
NS_PREFIX = "rwsoak-"
SA_NAMESPACE, SA_NAME = "rwscaler-system", "rwscaler"
SCRAPE_S = 2.0
REPLICAS = 2
TASKS_EVERY_S = 5.0
OWNERS_EVERY_S = 30.0
# /proc/net/tcp states (include/net/tcp_states.h), named as `ss` names them
TCP_STATES = {
    "01": "ESTAB",
    "02": "SYN-SENT",
    "03": "SYN-RECV",
    "04": "FIN-WAIT-1",
    "05": "FIN-WAIT-2",
    "06": "TIME-WAIT",
    "07": "CLOSE",
    "08": "CLOSE-WAIT",
    "09": "LAST-ACK",
    "0A": "LISTEN",
    "0B": "CLOSING",
}
LOG_PROBLEM = re.compile(r"Traceback|\bERROR\b")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] soak: {msg}", file=sys.stderr, flush=True)


# ---- the operator's process, read from /proc ------------------------------------------------------
def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def socket_inodes(pid: int) -> set[str]:
    out: set[str] = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                out.add(target[8:-1])
    return out


def tcp_connections(pid: int) -> dict[str, int]:
    """The process's TCP sockets by state (its fds' socket inodes in /proc/PID/net/tcp and tcp6)."""
    states: dict[str, int] = {}
    for state, _port, _inode in tcp_sockets(pid):
        states[state] = states.get(state, 0) + 1
    return states


def tcp_sockets(pid: int) -> list[tuple[str, int, str]]:
    """(state, remote port, inode) of each of the process's TCP sockets."""
    inodes = socket_inodes(pid)
    out: list[tuple[str, int, str]] = []
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                parts = line.split()
                if len(parts) > 9 and parts[9] in inodes:
                    port = int(parts[2].rsplit(":", 1)[1], 16)
                    out.append((TCP_STATES.get(parts[3], parts[3]), port, parts[9]))
    return out


def socket_breakdown(pid: int, owners_path: Path, peers: dict[int, str]) -> dict[str, int]:
    """The process's TCP sockets counted by state, peer and owning protocol (as last recorded)."""
    owners: dict[str, str] = {}
    with contextlib.suppress(OSError, ValueError):
        owners = json.loads(owners_path.read_text())
    out: dict[str, int] = {}
    for state, port, inode in tcp_sockets(pid):
        key = f"{state} {peers.get(port, port)} {owners.get(inode, '?')}"
        out[key] = out.get(key, 0) + 1
    return out


def threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return 0


def asyncio_tasks(path: Path) -> int | None:
    """The last count the operator's --launch thread wrote (None before the first)."""
    with contextlib.suppress(OSError, ValueError):
        return int(path.read_text().split()[-1])
    return None


# ---- the operator, started through --launch ------------------------------------------------------
def launch(operator_dir: str, argv: list[str]) -> None:
    """Run `rwscaler` from operator_dir, with a thread writing len(asyncio tasks) to a file."""
    cli_module = import_from(operator_dir, "rwscaler.cli")
    path = os.environ.get("RWSCALER_SOAK_TASKS")
    if path:
        threading.Thread(target=_count_tasks, args=(Path(path),), daemon=True).start()
    trace = os.environ.get(TRACE_ENV)
    if trace:
        _trace_growth(Path(trace))
    sys.exit(cli_module.main(argv))


TRACE_ENV = "RWSCALER_SOAK_TRACE"
TRACE_BASE_S = 150.0  # the snapshot grown from: after the warm-up (60 s) and a minute of churn
TRACE_EVERY_S = 60.0


def _trace_growth(path: Path) -> None:
    """What grows (`--trace-memory`): tracemalloc (8 frames) from the start, a snapshot after
    TRACE_BASE_S, and every TRACE_EVERY_S `path` rewritten with the traced memory now against
    that snapshot and the 25 allocation sites (by traceback) that grew most since. It slows the
    operator and adds tracemalloc's own memory to RSS: such a run finds a leak, it is not the
    soak's figures."""
    import linecache  # noqa: PLC0415
    import tracemalloc  # noqa: PLC0415

    tracemalloc.start(8)

    # Not the tracer's own: the source lines it reads (linecache) to print the tracebacks.
    mine = [tracemalloc.Filter(False, linecache.__file__), tracemalloc.Filter(False, tracemalloc.__file__)]

    def run() -> None:
        time.sleep(TRACE_BASE_S)
        base = tracemalloc.take_snapshot().filter_traces(mine)
        base_size = sum(s.size for s in base.statistics("filename"))
        while True:
            time.sleep(TRACE_EVERY_S)
            now = tracemalloc.take_snapshot().filter_traces(mine)
            size = sum(s.size for s in now.statistics("filename"))
            lines = [
                f"traced {size / 2**20:.2f} MiB, {(size - base_size) / 2**20:+.2f} since the base snapshot"
            ]
            grown = sorted(now.compare_to(base, "traceback"), key=lambda d: d.size_diff, reverse=True)
            for diff in grown[:25]:
                lines.append(f"{diff.size_diff / 1024:+9.1f} KiB {diff.count_diff:+7d} blocks")
                lines.extend(f"        {line}" for line in diff.traceback.format()[-16:])
            _write(path, "\n".join(lines) + "\n")

    threading.Thread(target=run, name="soak memory growth", daemon=True).start()


def _count_tasks(path: Path) -> None:
    """Every TASKS_EVERY_S: the live asyncio tasks to `path`; every OWNERS_EVERY_S, to
    `path`.owners.json, which library's protocol holds each socket (by inode)."""
    import asyncio.tasks  # noqa: PLC0415

    owners_at = 0.0
    while True:
        time.sleep(TASKS_EVERY_S)
        # asyncio.all_tasks() needs the loop's thread; the module's WeakSet of every task does
        # not (all_tasks copies it the same way, retrying while another thread changes it).
        registry = getattr(asyncio.tasks, "_all_tasks", None)
        if registry is None:
            return
        for _ in range(100):
            try:
                count = sum(1 for task in list(registry) if not task.done())
                break
            except RuntimeError:
                continue
        else:
            continue
        _write(path, f"{count}\n")
        if time.monotonic() - owners_at >= OWNERS_EVERY_S:
            owners_at = time.monotonic()
            with contextlib.suppress(Exception):
                _write(path.with_suffix(".owners.json"), json.dumps(in_loop_thread(_socket_owners)))
            with contextlib.suppress(Exception):
                _write(path.with_suffix(".pools.txt"), "\n".join(in_loop_thread(_http_pools)) + "\n")


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _http_pools() -> list[str]:
    """The repr of each httpcore connection pool (httpx's): requests and connections, active and idle."""
    import gc  # noqa: PLC0415

    out = []
    for obj in gc.get_objects():
        if type(obj).__name__ == "AsyncConnectionPool":
            origins = {str(c._origin) for c in getattr(obj, "connections", []) if hasattr(c, "_origin")}
            out.append(f"{obj!r} {','.join(sorted(origins)) or '-'}")
    return sorted(out)


def _socket_owners() -> dict[str, str]:
    """{socket inode: the protocol class on its asyncio transport} (under TLS, the application's:
    aiohttp's ResponseHandler is kopf's client, anyio's StreamProtocol httpx's)."""
    import asyncio.selector_events  # noqa: PLC0415
    import gc  # noqa: PLC0415

    out: dict[str, str] = {}
    for obj in gc.get_objects():
        if not isinstance(obj, asyncio.selector_events._SelectorTransport):
            continue
        sock = getattr(obj, "_sock", None)
        try:
            fd = sock.fileno() if sock is not None else -1
            target = os.readlink(f"/proc/self/fd/{fd}") if fd >= 0 else ""
        except OSError:
            continue
        if not target.startswith("socket:["):
            continue
        protocol = getattr(obj, "_protocol", None)
        # Under TLS, the application's protocol. Not `or`: aiohttp's ResponseHandler is a DataQueue,
        # falsy while empty.
        app = getattr(protocol, "_app_protocol", None)
        app = protocol if app is None else app
        out[target[8:-1]] = f"{type(app).__module__}.{type(app).__qualname__}"
    return out


# ---- the synthetic exporter (a thread): healthy series of the workloads that exist ---------------
class Exporter:
    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.names: set[str] = set()
        self.lock = threading.Lock()
        self.t0 = time.time() - 3600  # counters well past zero
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = exporter.render()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Exporter:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add(self, name: str) -> None:
        with self.lock:
            self.names.add(name)

    def remove(self, name: str) -> None:
        with self.lock:
            self.names.discard(name)

    def render(self) -> bytes:
        """postgres_exporter-shaped series (rwscaler's extension queries), as bench-operator's."""
        with self.lock:
            current = sorted(self.names)
        elapsed = time.time() - self.t0
        lines = [
            "# TYPE pg_statements_calls_total counter",
            "# TYPE pg_statements_exec_seconds_total counter",
            "# TYPE pg_statements_rows_total counter",
            "# TYPE pg_stat_database_blks_hit counter",
            "# TYPE pg_stat_database_blks_read counter",
            "# TYPE pg_stat_database_deadlocks counter",
        ]
        for name in current:
            lines += _series(self.namespace, name, elapsed)
        return ("\n".join(lines) + "\n").encode()


def _series(ns: str, name: str, elapsed: float) -> list[str]:
    read_qps, write_qps = 200.0, 20.0
    primary = f"{name}-0"
    replicas = [f"{name}-replica-{r}" for r in range(REPLICAS)]
    p = f'namespace="{ns}",pod="{primary}"'
    w = f'{p},datname="app",kind="write"'
    lines = [
        f"pg_statements_calls_total{{{w}}} {write_qps * elapsed:.3f}",
        f"pg_statements_exec_seconds_total{{{w}}} {write_qps * 0.004 * elapsed:.4f}",
        f"pg_statements_rows_total{{{w}}} {write_qps * 2 * elapsed:.3f}",
        f"pg_replica_wal_position_bytes{{{p}}} {1e5 * elapsed:.0f}",
        f"pg_lock_waits_sessions{{{p}}} 0",
        f'pg_stat_database_deadlocks{{{p},datname="app"}} 0',
        f"pg_replication_is_replica{{{p}}} 0",
    ]
    for pod in replicas:
        application = f'namespace="{ns}",pod="{primary}",application_name="{pod}"'
        q = f'namespace="{ns}",pod="{pod}"'
        lines += [
            f"pg_standby_replay_lag_seconds{{{application}}} 0",
            f"pg_standby_replay_lag_bytes{{{application}}} 0",
            f"pg_standby_flush_lag_bytes{{{application}}} 0",
            f"pg_standby_flush_lsn_bytes{{{application}}} {1e5 * elapsed:.0f}",
            f"pg_replica_replay_lag_seconds{{{q}}} 0",
            f"pg_replica_receive_replay_lag_bytes{{{q}}} 0",
            f"pg_wal_receiver_streaming{{{q}}} 1",
            f"pg_replication_is_replica{{{q}}} 1",
            f'pg_stat_database_blks_hit{{{q},datname="app"}} {100 * elapsed:.3f}',
            f'pg_stat_database_blks_read{{{q},datname="app"}} {2 * elapsed:.3f}',
        ]
    for pod in [primary, *replicas]:
        rd = f'namespace="{ns}",pod="{pod}",datname="app",kind="read"'
        share = read_qps / (1 + REPLICAS)
        lines += [
            f"pg_statements_calls_total{{{rd}}} {share * elapsed:.3f}",
            f"pg_statements_exec_seconds_total{{{rd}}} {share * 0.002 * elapsed:.4f}",
        ]
    return lines


# ---- the watch: when each workload got its status, and when it was gone ---------------------------
class Watcher:
    """A thread watching the namespace's workloads (the admin's client)."""

    def __init__(self, api_client: Any, namespace: str) -> None:
        from kubernetes import client as k8s  # noqa: PLC0415

        self.custom = k8s.CustomObjectsApi(api_client)
        self.namespace = namespace
        self.cond = threading.Condition()
        self.status_at: dict[str, float] = {}
        self.metrics_known: set[str] = set()
        self.gone: set[str] = set()
        self.errors: list[str] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Watcher:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()

    def _run(self) -> None:
        from kubernetes import watch  # noqa: PLC0415
        from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

        rv = ""
        while not self.stopping.is_set():
            try:
                if not rv:
                    listed = self.custom.list_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL)
                    for obj in listed.get("items", []):
                        self._seen("ADDED", obj)
                    rv = listed["metadata"]["resourceVersion"]
                w = watch.Watch()
                for event in w.stream(
                    self.custom.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self.namespace,
                    PLURAL,
                    resource_version=rv,
                    timeout_seconds=30,
                    allow_watch_bookmarks=True,
                ):
                    obj = event["object"]
                    if event["type"] == "ERROR":
                        rv = ""  # 410 Gone: list again
                        break
                    rv = obj.get("metadata", {}).get("resourceVersion", rv)
                    if event["type"] != "BOOKMARK":
                        self._seen(event["type"], obj)
                    if self.stopping.is_set():
                        w.stop()
                        break
            except ApiException as err:
                if err.status == 410:
                    rv = ""
                    continue
                self.errors.append(f"watch: {err.status} {err.reason}")
                time.sleep(1)
            except Exception as err:
                self.errors.append(f"watch: {type(err).__name__}: {err}")
                time.sleep(1)

    def _seen(self, kind: str, obj: dict[str, Any]) -> None:
        name = obj["metadata"]["name"]
        with self.cond:
            if kind == "DELETED":
                self.gone.add(name)
            else:
                status = obj.get("status") or {}
                conditions = status.get("conditions") or []
                if conditions and status.get("observedGeneration") is not None:
                    self.status_at.setdefault(name, time.monotonic())
                    if any(
                        c.get("type") == "MetricsAvailable" and c.get("status") == "True" for c in conditions
                    ):
                        self.metrics_known.add(name)
            self.cond.notify_all()

    def wait(self, what: str, predicate: Any, timeout: float) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout=timeout)


# ---- the churn ------------------------------------------------------------------------------------
@dataclass
class Sample:
    t: float
    rss_mib: float
    fds: int
    tcp: int
    tcp_states: dict[str, int]
    tasks: int | None
    threads: int
    cpu_s: float
    live: int
    created: int
    deleted: int


@dataclass
class Metric:
    name: str
    first_q: float
    last_q: float
    per_hour: float

    @property
    def delta(self) -> float:
        return self.last_q - self.first_q


@dataclass
class SoakResult:
    minutes: float
    population: int
    every: float
    interval: int
    samples: list[Sample] = field(default_factory=list)
    created: int = 0
    deleted: int = 0
    statused: int = 0
    metrics_known: int = 0
    no_status: list[str] = field(default_factory=list)
    not_gone: list[str] = field(default_factory=list)
    status_latency: list[float] = field(default_factory=list)
    log_problems: list[str] = field(default_factory=list)
    watch_errors: list[str] = field(default_factory=list)
    operator_exit: int | None = None
    log_path: str = ""
    # TCP sockets by "state peer owner" at the first measured sample and at the last
    sockets_first: dict[str, int] = field(default_factory=dict)
    sockets_last: dict[str, int] = field(default_factory=dict)
    # the operator's httpx pools at the end (httpcore's repr)
    http_pools: list[str] = field(default_factory=list)
    warmup: float = 0.0

    def measured(self) -> list[Sample]:
        """The samples after the warm-up."""
        return [s for s in self.samples if s.t >= 0]

    def metrics(self) -> dict[str, Metric]:
        samples = self.measured()
        return {
            "rss_mib": _metric("rss_mib", [(s.t, s.rss_mib) for s in samples]),
            "fds": _metric("fds", [(s.t, float(s.fds)) for s in samples]),
            "tcp": _metric("tcp", [(s.t, float(s.tcp)) for s in samples]),
            "tasks": _metric("tasks", [(s.t, float(s.tasks)) for s in samples if s.tasks is not None]),
            "threads": _metric("threads", [(s.t, float(s.threads)) for s in samples]),
        }

    def table(self) -> str:
        header = [
            "t s",
            "RSS MiB",
            "fds",
            "TCP",
            "TCP states",
            "tasks",
            "threads",
            "live",
            "created",
            "deleted",
        ]
        rows = [
            [
                f"{s.t:.0f}",
                f"{s.rss_mib:.1f}",
                str(s.fds),
                str(s.tcp),
                " ".join(f"{k}:{v}" for k, v in sorted(s.tcp_states.items())) or "-",
                "-" if s.tasks is None else str(s.tasks),
                str(s.threads),
                str(s.live),
                str(s.created),
                str(s.deleted),
            ]
            for s in self.samples
        ]
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
        fmt = "  ".join(f"{{:{'<' if i == 4 else '>'}{w}}}" for i, w in enumerate(widths))
        return "\n".join(
            [fmt.format(*header), fmt.format(*("-" * w for w in widths)), *(fmt.format(*r) for r in rows)]
        )

    def summary(self) -> str:
        lat = sorted(self.status_latency)
        lines = [
            f"soak: {self.minutes:g} min, population {self.population}, one create + one delete every "
            f"{self.every:g} s, interval {self.interval} s, {len(self.measured())} samples "
            f"after a {self.warmup:g} s warm-up",
            f"workloads: created {self.created}, deleted {self.deleted}, got a status {self.statused}, "
            f"metrics known {self.metrics_known}; without a status: {len(self.no_status)}, "
            f"not gone after delete: {len(self.not_gone)}",
        ]
        if lat:
            lines.append(
                f"first status after create: p50 {statistics.median(lat):.2f} s, "
                f"p95 {lat[min(len(lat) - 1, int(0.95 * len(lat)))]:.2f} s, max {lat[-1]:.2f} s"
            )
        measured = self.measured()
        if len(measured) >= 2:
            cores = (measured[-1].cpu_s - measured[0].cpu_s) / max(1e-9, measured[-1].t - measured[0].t)
            lines.append(f"operator CPU: {cores:.2f} cores on average after the warm-up")
        lines.append("metric     first-quarter median  last-quarter median     delta  growth per hour (fit)")
        for m in self.metrics().values():
            lines.append(
                f"{m.name:<10} {m.first_q:>21.1f} {m.last_q:>20.1f} {m.delta:>+9.1f} {m.per_hour:>+22.1f}"
            )
        for label, sockets in (("first", self.sockets_first), ("last", self.sockets_last)):
            lines.append(
                f"TCP sockets at the {label} sample (state, peer, owner): "
                + ", ".join(f"{k} x{v}" for k, v in sorted(sockets.items()))
            )
        if self.http_pools:
            lines.append("the operator's httpx pools at the end: " + "; ".join(self.http_pools))
        lines.append(
            f"operator log: {len(self.log_problems)} Traceback/ERROR lines"
            + (f", e.g. {self.log_problems[0][:200]}" if self.log_problems else "")
            + f" ({self.log_path})"
        )
        if self.watch_errors:
            lines.append(f"watch errors (resumed): {len(self.watch_errors)}: {self.watch_errors[:3]}")
        if self.operator_exit is not None:
            lines.append(f"the operator EXITED with {self.operator_exit}")
        return "\n".join(lines)


def _metric(name: str, points: list[tuple[float, float]]) -> Metric:
    if not points:
        return Metric(name, float("nan"), float("nan"), float("nan"))
    q = max(1, len(points) // 4)
    first = statistics.median(v for _, v in points[:q])
    last = statistics.median(v for _, v in points[-q:])
    return Metric(name, first, last, 3600 * _slope(points))


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope, per second."""
    if len(points) < 2:
        return 0.0
    mt = statistics.fmean(t for t, _ in points)
    mv = statistics.fmean(v for _, v in points)
    den = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (v - mv) for t, v in points) / den if den else 0.0


def _relabel(obj: dict[str, Any], ns: str) -> dict[str, Any]:
    """bench-operator's object, labelled as the soak's (and not as the bench's)."""
    obj["metadata"]["namespace"] = ns
    labels = obj["metadata"].setdefault("labels", {})
    labels.pop(BENCH_LABEL, None)
    labels[SOAK_LABEL] = "true"
    template = obj.get("spec", {}).get("template", {}).get("metadata", {}).get("labels")
    if template is not None:
        template.pop(BENCH_LABEL, None)
        template[SOAK_LABEL] = "true"
    return obj


class Churn:
    def __init__(
        self, api_client: Any, ns: str, prom_url: str, interval: int, exporter: Exporter, watcher: Watcher
    ):
        from kubernetes import client as k8s  # noqa: PLC0415

        self.apps = k8s.AppsV1Api(api_client)
        self.core = k8s.CoreV1Api(api_client)
        self.custom = k8s.CustomObjectsApi(api_client)
        self.ns, self.prom_url, self.interval = ns, prom_url, interval
        self.exporter, self.watcher = exporter, watcher
        self.seq = 0
        self.live: dict[str, float] = {}  # name -> created at (monotonic), oldest first
        self.created = 0
        self.deleted = 0
        self.no_status: list[str] = []
        self.deleting: dict[str, float] = {}
        self.not_gone: list[str] = []
        self.latency: list[float] = []

    def create(self) -> str:
        name = f"s{self.seq}"
        self.seq += 1
        self.exporter.add(name)
        self.apps.create_namespaced_stateful_set(self.ns, _relabel(statefulset(name, 1), self.ns))
        self.apps.create_namespaced_stateful_set(
            self.ns, _relabel(statefulset(f"{name}-replica", REPLICAS), self.ns)
        )
        self.core.create_namespaced_service(self.ns, _relabel(read_service(name), self.ns))
        self.live[name] = time.monotonic()
        self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.ns, PLURAL, _relabel(workload(name, self.prom_url, self.interval), self.ns)
        )
        self.created += 1
        return name

    def oldest_statused(self, status_timeout: float) -> str | None:
        """The oldest live workload the operator has written a status for (or one past the timeout)."""
        now = time.monotonic()
        with self.watcher.cond:
            for name, born in self.live.items():
                if name in self.watcher.status_at:
                    return name
                if now - born > status_timeout:
                    self.no_status.append(name)
                    return name
        return None

    def delete(self, name: str) -> None:
        from kubernetes.client.exceptions import ApiException  # noqa: PLC0415

        born = self.live.pop(name)
        got = self.watcher.status_at.get(name)
        if got is not None:
            self.latency.append(got - born)
        for call in (
            lambda: self.custom.delete_namespaced_custom_object(GROUP, VERSION, self.ns, PLURAL, name),
            lambda: self.apps.delete_namespaced_stateful_set(name, self.ns),
            lambda: self.apps.delete_namespaced_stateful_set(f"{name}-replica", self.ns),
            lambda: self.core.delete_namespaced_service(f"{name}-read", self.ns),
        ):
            try:
                call()
            except ApiException as err:
                if err.status != 404:
                    raise
        self.exporter.remove(name)
        self.deleting[name] = time.monotonic()
        self.deleted += 1

    def check_gone(self, timeout: float) -> None:
        now = time.monotonic()
        for name, at in list(self.deleting.items()):
            if name in self.watcher.gone:
                del self.deleting[name]
            elif now - at > timeout:
                self.not_gone.append(name)
                del self.deleting[name]


def _kube(kubeconfig: Path) -> Any:
    from kubernetes import config as k8s_config  # noqa: PLC0415

    return k8s_config.new_client_from_config(config_file=str(kubeconfig))


def _kubectl(kubeconfig: Path, *args: str, check: bool = True, timeout: float = 120) -> str:
    from tests.support.cluster import cache_dir  # noqa: PLC0415

    found = sorted((cache_dir() / "bin").glob("kubectl-*/kubectl"))
    if not found:
        raise RuntimeError("no kubectl: run `make cluster`")
    result = subprocess.run(
        [str(found[-1]), "--kubeconfig", str(kubeconfig), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"kubectl {' '.join(args)[:200]} failed: {result.stderr.strip()[:2000]}")
    return result.stdout


def prepare_rbac(admin: Path, workdir: Path) -> Path:
    """The CRD and manifests/rbac (server-side apply), and a kubeconfig of the operator's ServiceAccount."""
    _kubectl(admin, "apply", "--server-side", "--force-conflicts", "-f", str(_REPO / "crds"))
    _kubectl(
        admin, "wait", "--for=condition=Established", "--timeout=60s", "crd/readwriteworkloads.rwscaler.io"
    )
    rbac = _REPO / "manifests/rbac"
    _kubectl(admin, "apply", "--server-side", "--force-conflicts", "-f", str(rbac / "namespace.yaml"))
    _kubectl(admin, "apply", "--server-side", "--force-conflicts", "-f", str(rbac))
    out = workdir / "sa.kubeconfig"
    subprocess.run(
        [str(_REPO / "hack/cluster/sa-kubeconfig.sh"), SA_NAMESPACE, SA_NAME, str(out), "4h"],
        check=True,
        capture_output=True,
    )
    return out


@contextlib.contextmanager
def _namespace(admin: Path, api_client: Any) -> Iterator[str]:
    from kubernetes import client as k8s  # noqa: PLC0415

    core = k8s.CoreV1Api(api_client)
    ns = f"{NS_PREFIX}{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": ns, "labels": {SOAK_LABEL: "true"}}})
    try:
        deadline = time.monotonic() + 60
        while not any(sa.metadata.name == "default" for sa in core.list_namespaced_service_account(ns).items):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no default ServiceAccount in {ns}")
            time.sleep(0.5)
        yield ns
    finally:
        started = time.monotonic()
        # This run's namespace, and those an interrupted run left behind.
        _kubectl(admin, "delete", "namespace", "-l", f"{SOAK_LABEL}=true", "--wait=false", check=False)
        with contextlib.suppress(Exception):
            _kubectl(admin, "wait", "--for=delete", f"namespace/{ns}", "--timeout=180s", timeout=200)
        log(f"namespace {ns} removed in {time.monotonic() - started:.0f} s")


@contextlib.contextmanager
def _operator(
    operator_dir: Path, ns: str, sa_kubeconfig: Path, workdir: Path
) -> Iterator[tuple[subprocess.Popen[bytes], Path, Path]]:
    log_path = workdir / "operator.log"
    tasks_path = workdir / "tasks.txt"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "RWSCALER_SOAK_TASKS": str(tasks_path)}
    env.pop("PYTHONPATH", None)
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--launch",
        str(operator_dir),
        "--",
        "run",
        "-n",
        ns,
        "--kubeconfig",
        str(sa_kubeconfig),
        "--log-level",
        "info",
    ]
    with open(log_path, "w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        yield proc, log_path, tasks_path
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _port(url: str) -> int:
    return int(url.rstrip("/").rsplit(":", 1)[1])


def log_problems(text: str) -> list[str]:
    return [line for line in text.splitlines() if LOG_PROBLEM.search(line)]


def run_soak(
    minutes: float,
    *,
    population: int = 20,
    every: float = 3.0,
    interval: int = 5,
    sample_every: float = 10.0,
    status_timeout: float = 60.0,
    warmup: float = 60.0,
    operator_dir: Path | None = None,
    sa_kubeconfig: Path | None = None,
    workdir: Path | None = None,
    progress: bool = True,
) -> SoakResult:
    """The soak (see the module docstring); raises on a set-up failure, reports everything else."""
    from tests.support.cluster import APISERVER_URL, cluster_available, kubeconfig_path  # noqa: PLC0415
    from tests.support.prometheus import PrometheusServer, ScrapeTarget, prometheus_binary  # noqa: PLC0415

    ok, reason = cluster_available()
    if not ok:
        raise RuntimeError(reason)
    if prometheus_binary() is None:
        raise RuntimeError("no prometheus binary: run `make pgenv-deps`")
    operator_dir = operator_dir or Path(os.environ.get("RWSCALER_SOAK_OPERATOR_DIR") or _REPO / "operator")
    workdir = workdir or Path(tempfile.mkdtemp(prefix="rws-soak-"))
    admin = kubeconfig_path()
    sa_kubeconfig = sa_kubeconfig or prepare_rbac(admin, workdir)
    result = SoakResult(minutes, population, every, interval, warmup=warmup)
    api_client = _kube(admin)
    watch_client = _kube(admin)
    with contextlib.ExitStack() as stack:
        ns = stack.enter_context(_namespace(admin, api_client))
        exporter = stack.enter_context(Exporter(ns))
        prom = stack.enter_context(
            PrometheusServer(
                [ScrapeTarget("postgres", f"127.0.0.1:{exporter.port}")],
                scrape_interval=SCRAPE_S,
                evaluation_interval=SCRAPE_S,
            )
        )
        prom.wait_for_targets(timeout=60)
        watcher = stack.enter_context(Watcher(watch_client, ns))
        proc, log_path, tasks_path = stack.enter_context(_operator(operator_dir, ns, sa_kubeconfig, workdir))
        result.log_path = str(log_path)
        churn = Churn(api_client, ns, prom.url, interval, exporter, watcher)
        owners_path = tasks_path.with_suffix(".owners.json")
        peers = {_port(APISERVER_URL): "apiserver", _port(prom.url): "prometheus"}
        log(f"namespace {ns}, operator pid {proc.pid} ({operator_dir}), log {log_path}")

        def alive() -> None:
            if proc.poll() is not None:
                result.operator_exit = proc.returncode
                raise RuntimeError(
                    f"the operator exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}"
                )

        # The population, before the clock starts; each must get its status.
        for _ in range(population):
            churn.create()
        if not watcher.wait(
            "the first population's statuses",
            lambda: all(n in watcher.status_at for n in churn.live) or proc.poll() is not None,
            timeout=120,
        ):
            missing = [n for n in churn.live if n not in watcher.status_at]
            raise RuntimeError(f"no status within 120 s for {missing}:\n{log_path.read_text()[-3000:]}")
        alive()
        log(f"{population} workloads have a status; churning for {minutes:g} min")
        if progress:
            print(result.table().splitlines()[0], file=sys.stderr, flush=True)

        # A warm-up of churn (its samples are shown with t < 0, outside the summary), then the clock.
        start = time.monotonic()
        t0 = start + warmup
        cpu0 = cpu_seconds(proc.pid)
        end = t0 + 60 * minutes
        next_churn, next_sample = start, start
        while True:
            now = time.monotonic()
            if now >= next_sample:
                alive()
                states = tcp_connections(proc.pid)
                sample = Sample(
                    t=now - t0,
                    rss_mib=rss_mib(proc.pid),
                    fds=fd_count(proc.pid),
                    tcp=sum(states.values()),
                    tcp_states=states,
                    tasks=asyncio_tasks(tasks_path),
                    threads=threads(proc.pid),
                    cpu_s=cpu_seconds(proc.pid) - cpu0,
                    live=len(churn.live),
                    created=churn.created,
                    deleted=churn.deleted,
                )
                result.samples.append(sample)
                if sample.t >= 0 and not result.sockets_first:
                    result.sockets_first = socket_breakdown(proc.pid, owners_path, peers)
                result.sockets_last = socket_breakdown(proc.pid, owners_path, peers)
                if progress:
                    print(result.table().splitlines()[-1], file=sys.stderr, flush=True)
                next_sample += sample_every
                if now >= end:
                    break
            if now >= next_churn and now < end:
                churn.create()
                while len(churn.live) > population:
                    victim = churn.oldest_statused(status_timeout)
                    if victim is None:
                        break  # the oldest still waits for its status: delete it next time
                    churn.delete(victim)
                churn.check_gone(status_timeout)
                next_churn += every
            # the next event, without a sleep past it
            wake = min(next_sample, next_churn if now < end else next_sample)
            time.sleep(max(0.0, min(wake - time.monotonic(), 1.0)))

        with contextlib.suppress(OSError):
            result.http_pools = tasks_path.with_suffix(".pools.txt").read_text().split("\n")[:-1]
        # The rest: each gets its status, then goes.
        watcher.wait(
            "the last statuses",
            lambda: all(n in watcher.status_at for n in churn.live) or proc.poll() is not None,
            timeout=status_timeout,
        )
        for name in list(churn.live):
            if name not in watcher.status_at:
                churn.no_status.append(name)
            churn.delete(name)
        watcher.wait(
            "the last deletions", lambda: set(churn.deleting) <= watcher.gone, timeout=status_timeout
        )
        churn.check_gone(0)
        alive()
        result.created, result.deleted = churn.created, churn.deleted
        result.statused = sum(1 for n in watcher.status_at if n.startswith("s"))
        result.metrics_known = len(watcher.metrics_known)
        result.no_status, result.not_gone = churn.no_status, churn.not_gone
        result.status_latency = churn.latency
        result.watch_errors = list(watcher.errors)
    result.log_problems = log_problems(log_path.read_text(errors="replace"))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=60, help="how long the churn runs (default 60)")
    parser.add_argument("--population", type=int, default=20, help="workloads alive at once (default 20)")
    parser.add_argument(
        "--every", type=float, default=3.0, help="seconds between a create+delete (default 3)"
    )
    parser.add_argument("--interval", type=int, default=5, help="the workloads' intervalSeconds (default 5)")
    parser.add_argument(
        "--warmup", type=float, default=60, help="seconds of churn before the clock (default 60)"
    )
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between samples (default 10)")
    parser.add_argument("--operator-dir", type=Path, help="the operator's source tree (default operator/)")
    parser.add_argument("--out", default=str(_REPO / "build" / "soak.txt"), help="the table and summary")
    parser.add_argument("--json", default=str(_REPO / "build" / "soak.json"), help="every sample, as JSON")
    parser.add_argument(
        "--trace-memory",
        metavar="FILE",
        help="run the operator under tracemalloc and write what grew to FILE every minute (slows it)",
    )
    parser.add_argument("--launch", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    if args.launch is not None:
        launch(args.launch, [a for a in rest if a != "--"])
        return 0
    if args.trace_memory:
        os.environ[TRACE_ENV] = str(Path(args.trace_memory).resolve())  # the operator inherits it
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up on SIGTERM as on Ctrl-C
    try:
        result = run_soak(
            args.minutes,
            population=args.population,
            every=args.every,
            interval=args.interval,
            sample_every=args.sample,
            warmup=args.warmup,
            operator_dir=args.operator_dir,
        )
    except RuntimeError as err:
        log(f"stopped: {err}")
        return 2
    text = f"{result.table()}\n\n{result.summary()}\n"
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    Path(args.json).write_text(json.dumps(asdict(result), indent=1) + "\n")
    failed = result.no_status or result.not_gone or result.log_problems or result.operator_exit is not None
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
