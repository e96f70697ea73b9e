"""`make bench-operator`: the operator under N workloads on the local control plane (prints a table).

For each N (default 100 and 1000), once:

1. bench nodes for kwok (110 pods each) so every pod fits, and N/100 namespaces `rwsbench-<k>`
   (at least 1) holding the workloads `db<i>` round-robin: for each, a primary StatefulSet
   `db<i>` (1 pod), a replica StatefulSet `db<i>-replica` (2 pods), a read Service `db<i>-read`
   without selector, all created with `kubectl create` (one process per namespace, in parallel),
   then the ReadWriteWorkloads (preset `postgres`, pooler EndpointSlice, interval 15 s);
2. a synthetic exporter (a subprocess of this script) serving postgres_exporter-shaped series for
   every workload's pods (pg_statements per kind, the replicas' lag evidence and role, the key
   metrics), counters computed from the clock so rates are steady; the Debian Prometheus scrapes
   it every 5 s. Every workload is healthy: its signals are known, under its objectives, no lag,
   and minReplicas is the replica StatefulSet's 2 pods, so nothing scales (not even in after the
   scale-down window) and the read pool does not change;

then for each revision (default `25730ec HEAD`, each checked out in a git worktree), side by side
on the same objects: `python -m rwscaler run -A` of that revision as the operator's ServiceAccount
(manifests/rbac), a warm-up (until every workload has a status, then two intervals), and a
steady window (default 8 intervals = 120 s, which covers the 120 s status refresh of later
revisions) over which it measures

- CPU: utime+stime (+ children) of the operator's process from /proc, per tick (ticks = N x
  window / interval) and as a share of one core; RSS: the largest VmRSS sampled every second;
  peak: VmHWM at the window's end (the highest RSS since the start: the first listing's burst);
- API requests: kube-apiserver's own `apiserver_request_total` (scraped with the admin
  certificate), the diff over the window minus the same diff over an idle window of the same
  length measured before any operator ran for this N (the controllers, scheduler and kwok's
  leases); leases and nodes are left out (the operator touches neither without --leader-elect);
- Prometheus queries: Prometheus' own `prometheus_http_requests_total` for /api/v1/query and
  /api/v1/query_range, per interval;
- tick lateness: how late each tick started against its schedule (the end of the tick before plus
  the delay it asked for), p50/p95/max over the ticks in the window: from loops.py's
  RWSCALER_TICK_STATS file where the revision has it; a revision without it is started through
  `--launch`, which wraps the same tick callable the loops call and records the same quantity.

Everything is removed at the end (namespaces, bench nodes, processes, worktrees), on failure too.

    .venv/bin/python tools/bench_operator.py [--sizes "100 1000"] [--interval 15] [--window 120]
        [--revisions "25730ec HEAD"] [--out build/bench-operator.txt]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import importlib
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

PER_NAMESPACE = 100
PODS_PER_NODE = 110
NODE_PREFIX = "rwsbench-node-"
NS_PREFIX = "rwsbench-"
BENCH_LABEL = "rwscaler.io/bench"
SA_NAMESPACE, SA_NAME = "rwscaler-system", "rwscaler"
SCRAPE_S = 5.0
REPLICAS = 2
EXCLUDED_RESOURCES = {"leases", "nodes"}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] bench-operator: {msg}", file=sys.stderr, flush=True)


def names(i: int, namespaces: int) -> tuple[str, str]:
    return f"{NS_PREFIX}{i % namespaces}", f"db{i}"


def namespace_count(n: int) -> int:
    return max(1, math.ceil(n / PER_NAMESPACE))


# ---- the synthetic exporter (subprocess: --serve N --port P) --------------------------------------
def render(n: int, t0: float) -> bytes:
    """postgres_exporter-shaped series of n healthy workloads (rwscaler's extension queries)."""
    elapsed = time.time() - t0
    k = namespace_count(n)
    lines = [
        "# TYPE pg_statements_calls_total counter",
        "# TYPE pg_statements_exec_seconds_total counter",
        "# TYPE pg_statements_rows_total counter",
        "# TYPE pg_stat_database_blks_hit counter",
        "# TYPE pg_stat_database_blks_read counter",
        "# TYPE pg_stat_database_deadlocks counter",
    ]
    for i in range(n):
        ns, name = names(i, k)
        read_qps, write_qps = 200.0 + i % 50, 20.0 + i % 7
        primary = f"{name}-0"
        replicas = [f"{name}-replica-{r}" for r in range(REPLICAS)]
        pods = [primary, *replicas]
        p = f'namespace="{ns}",pod="{primary}"'
        # writes on the primary: 4 ms a call on average
        w = f'{p},datname="app",kind="write"'
        lines.append(f"pg_statements_calls_total{{{w}}} {write_qps * elapsed:.3f}")
        lines.append(f"pg_statements_exec_seconds_total{{{w}}} {write_qps * 0.004 * elapsed:.4f}")
        lines.append(f"pg_statements_rows_total{{{w}}} {write_qps * 2 * elapsed:.3f}")
        lines.append(f"pg_replica_wal_position_bytes{{{p}}} {1e5 * elapsed:.0f}")
        lines.append(f"pg_lock_waits_sessions{{{p}}} 0")
        lines.append(f'pg_stat_database_deadlocks{{{p},datname="app"}} 0')
        lines.append(f"pg_replication_is_replica{{{p}}} 0")
        for r, pod in enumerate(replicas):
            application = f'namespace="{ns}",pod="{primary}",application_name="{pod}"'
            lines.append(f"pg_standby_replay_lag_seconds{{{application}}} 0")
            lines.append(f"pg_standby_replay_lag_bytes{{{application}}} 0")
            lines.append(f"pg_standby_flush_lag_bytes{{{application}}} 0")
            lines.append(f"pg_standby_flush_lsn_bytes{{{application}}} {1e5 * elapsed:.0f}")
            q = f'namespace="{ns}",pod="{pod}"'
            lines.append(f"pg_replica_replay_lag_seconds{{{q}}} 0")
            lines.append(f"pg_replica_receive_replay_lag_bytes{{{q}}} 0")
            lines.append(f"pg_wal_receiver_streaming{{{q}}} 1")
            lines.append(f"pg_replication_is_replica{{{q}}} 1")
            lines.append(f'pg_stat_database_blks_hit{{{q},datname="app"}} {(100 + r) * elapsed:.3f}')
            lines.append(f'pg_stat_database_blks_read{{{q},datname="app"}} {2 * elapsed:.3f}')
        # reads spread over every server: 2 ms a call on average
        for pod in pods:
            rd = f'namespace="{ns}",pod="{pod}",datname="app",kind="read"'
            share = read_qps / len(pods)
            lines.append(f"pg_statements_calls_total{{{rd}}} {share * elapsed:.3f}")
            lines.append(f"pg_statements_exec_seconds_total{{{rd}}} {share * 0.002 * elapsed:.4f}")
    return ("\n".join(lines) + "\n").encode()


def serve(n: int, port: int) -> None:
    t0 = time.time() - 3600  # counters well past zero

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


# ---- the operator of one revision (subprocess: --launch OPERATOR_DIR -- run ...) ------------------
def import_from(operator_dir: str, module: str) -> Any:
    """Import `module` (rwscaler.*) from operator_dir's tree, not the installed one (soak.py too)."""
    sys.path.insert(0, operator_dir)
    imported = importlib.import_module(module)
    where = Path(imported.__file__ or "").resolve()
    if Path(operator_dir).resolve() not in where.parents:
        raise SystemExit(f"rwscaler imported from {where}, not from {operator_dir}")
    return imported


def launch(operator_dir: str, argv: list[str]) -> None:
    """Run `rwscaler` from operator_dir; record tick lateness where that revision's loops cannot."""
    loops_module = import_from(operator_dir, "rwscaler.loops")
    stats_path = os.environ.get("RWSCALER_TICK_STATS")
    if stats_path and not hasattr(loops_module, "TICK_STATS_ENV"):
        _wrap_ticks(loops_module, stats_path)
    profile = os.environ.get(PROFILE_ENV)
    if profile:
        _sample_stacks(Path(profile))
    memory = os.environ.get(MEMORY_ENV)
    if memory:
        _trace_memory(Path(memory))
    census = os.environ.get(CENSUS_ENV)
    if census:
        _census(Path(census))
    from rwscaler.cli import main  # noqa: PLC0415

    sys.exit(main(argv))


def in_loop_thread(fn: Callable[[], T]) -> T:
    """fn() run by the operator's event loop, between two of its callbacks, for a thread of these
    tools. For gc.get_objects() above all: from another thread it can hand out a tuple the loop's
    thread is still building, whose resize then fails inside the operator with "SystemError:
    Objects/tupleobject.c: bad argument to internal function" (seen once in the soak, as a failed tick)."""
    import asyncio.tasks  # noqa: PLC0415

    loops = {task.get_loop() for task in list(getattr(asyncio.tasks, "_all_tasks", ()))}
    if len(loops) != 1:
        raise RuntimeError(f"{len(loops)} event loops with tasks: expected the operator's one")
    done: concurrent.futures.Future[T] = concurrent.futures.Future()

    def call() -> None:
        try:
            done.set_result(fn())
        except Exception as err:
            done.set_exception(err)

    loops.pop().call_soon_threadsafe(call)
    return done.result(timeout=30)


def _every(seconds: float, fn: Callable[[], None], name: str) -> None:
    """fn() every `seconds`, for ever, in a daemon thread of the operator's process."""
    import threading  # noqa: PLC0415

    def loop() -> None:
        while True:
            time.sleep(seconds)
            fn()

    threading.Thread(target=loop, name=name, daemon=True).start()


PROFILE_ENV = "BENCH_OPERATOR_PROFILE"
MEMORY_ENV = "BENCH_OPERATOR_MEMORY"
CENSUS_ENV = "BENCH_OPERATOR_CENSUS"


def _census(path: Path, every: float = 30.0) -> None:
    """Whether the operator's RSS is live objects or memory kept after they went (no tracemalloc,
    so the operator runs at speed): every `every` seconds a block appended to `path` with VmRSS
    and VmHWM, pymalloc's totals (sys._debugmallocstats: bytes in used blocks against the arenas
    it holds), glibc's heap (mallinfo2: in use, free, mmapped), the 15 commonest object types, and
    VmRSS again after malloc_trim(0) (what glibc could hand back). C stderr (fd 2) is redirected
    for the instant of the pymalloc dump: a log line written in that instant lands in `path`."""
    import ctypes  # noqa: PLC0415
    import gc  # noqa: PLC0415
    from collections import Counter  # noqa: PLC0415

    class MallInfo2(ctypes.Structure):
        names = "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost"
        _fields_ = [(name, ctypes.c_size_t) for name in names.split()]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2

    def status(field: str) -> float:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
        return math.nan

    def pymalloc() -> str:
        with tempfile.TemporaryFile("w+") as dump:
            sys.stderr.flush()
            saved = os.dup(2)
            try:
                os.dup2(dump.fileno(), 2)
                sys._debugmallocstats()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            dump.seek(0)
            keep = (
                "# arenas allocated current",
                "# bytes in allocated blocks",
                "# bytes in available blocks",
                "# bytes lost to",
                "Total",
            )
            return "\n".join("  " + line for line in dump.read().splitlines() if line.startswith(keep))

    def write() -> None:
        info = libc.mallinfo2()
        try:
            counted = in_loop_thread(lambda: Counter(type(o).__name__ for o in gc.get_objects()))
            types = ", ".join(f"{k} {v}" for k, v in counted.most_common(15))
        except Exception as err:  # the loop not running yet, or busy past the wait
            types = f"not counted ({err!r})"
        lines = [
            f"=== {time.strftime('%H:%M:%S')} VmRSS {status('VmRSS'):.1f} MiB, VmHWM {status('VmHWM'):.1f} MiB",
            "pymalloc:",
            pymalloc(),
            f"glibc heap: in use {info.uordblks / 2**20:.1f} MiB, free {info.fordblks / 2**20:.1f} MiB, "
            f"mmapped {info.hblkhd / 2**20:.1f} MiB",
            f"gc objects: {types}",
        ]
        libc.malloc_trim(0)
        lines.append(f"after malloc_trim(0): VmRSS {status('VmRSS'):.1f} MiB")
        with open(path, "a") as out:
            out.write("\n".join(lines) + "\n")

    _every(every, write, "bench memory census")


def _trace_memory(path: Path, every: float = 30.0) -> None:
    """What holds the operator's memory: tracemalloc (one frame per allocation, to keep its cost
    down) from the start, and every `every` seconds `path` rewritten with the memory traced now
    and at its peak, the 30 files and the 40 lines that hold most of what is live. It slows the
    operator down: a run with it measures where memory goes, not the other columns."""
    import tracemalloc  # noqa: PLC0415

    tracemalloc.start(1)

    def write() -> None:
        snapshot = tracemalloc.take_snapshot()
        current, peak = tracemalloc.get_traced_memory()
        lines = [f"traced now {current / 2**20:.1f} MiB, peak {peak / 2**20:.1f} MiB", "", "by file:"]
        lines += [
            f"{st.size / 2**20:8.1f} MiB  {st.count:9d}  {st.traceback}"
            for st in snapshot.statistics("filename")[:30]
        ]
        lines += ["", "by line:"]
        lines += [
            f"{st.size / 2**20:8.1f} MiB  {st.count:9d}  {st.traceback}"
            for st in snapshot.statistics("lineno")[:40]
        ]
        path.write_text("\n".join(lines) + "\n")

    _every(every, write, "bench memory tracer")


def _sample_stacks(path: Path, every: float = 0.005) -> None:
    """Where the operator's event loop spends its time: a thread samples the main thread's stack
    every 5 ms and rewrites `path` every 10 s with the functions seen most, inclusive (anywhere
    in the stack) and exclusive (at its top). Sampling, not cProfile: cProfile roughly doubles the
    CPU of the code it measures, and the question is which part of a saturated core goes where.
    No py-spy on this machine."""
    import threading  # noqa: PLC0415
    from collections import Counter  # noqa: PLC0415

    main_id = threading.main_thread().ident
    inclusive: Counter[str] = Counter()
    exclusive: Counter[str] = Counter()
    samples = [0]

    def where(frame: Any) -> str:
        code = frame.f_code
        return f"{code.co_name} ({Path(code.co_filename).name}:{code.co_firstlineno})"

    def write() -> None:
        lines = [f"{samples[0]} samples every {every * 1000:.0f} ms", "", "exclusive:"]
        lines += [f"{100 * c / max(samples[0], 1):6.1f}%  {k}" for k, c in exclusive.most_common(40)]
        lines += ["", "inclusive:"]
        lines += [f"{100 * c / max(samples[0], 1):6.1f}%  {k}" for k, c in inclusive.most_common(80)]
        path.write_text("\n".join(lines) + "\n")

    def sample() -> None:
        last = time.monotonic()
        while True:
            time.sleep(every)
            frame = sys._current_frames().get(main_id or 0)
            if frame is None:
                continue
            samples[0] += 1
            exclusive[where(frame)] += 1
            seen = set()
            while frame is not None:
                seen.add(where(frame))
                frame = frame.f_back
            inclusive.update(seen)
            if time.monotonic() - last >= 10:
                last = time.monotonic()
                write()

    threading.Thread(target=sample, name="bench stack sampler", daemon=True).start()


def _wrap_ticks(loops_module: Any, path: str) -> None:
    """The same lateness as loops.py's RWSCALER_TICK_STATS, measured around the tick callable."""
    import asyncio  # noqa: PLC0415

    original = loops_module.Loops.__init__
    pending: list[float] = []
    flushed = [time.monotonic()]

    def flush() -> None:
        flushed[0] = time.monotonic()
        if pending:
            line = json.dumps({"time": time.time(), "lateness": [round(x, 4) for x in pending]})
            pending.clear()
            with open(path, "a", encoding="utf-8") as out:
                out.write(line + "\n")

    def init(self: Any, tick: Any, *args: Any, **kwargs: Any) -> None:
        due: dict[tuple[str, str], float] = {}

        async def timed(namespace: str, name: str) -> float | None:
            loop = asyncio.get_running_loop()
            key = (namespace, name)
            started = loop.time()
            if key in due:
                late = started - due.pop(key)
                if late >= 0:  # an early wake is not a scheduled tick
                    pending.append(late)
                    if time.monotonic() - flushed[0] >= 10:
                        flush()
            delay: float | None = await tick(namespace, name)
            if delay is not None:
                due[key] = loop.time() + delay
            return delay

        original(self, timed, *args, **kwargs)

    loops_module.Loops.__init__ = init


# ---- the cluster ---------------------------------------------------------------------------------
class Kubectl:
    def __init__(self, kubeconfig: Path) -> None:
        from tests.support.cluster import cache_dir  # noqa: PLC0415

        found = sorted((cache_dir() / "bin").glob("kubectl-*/kubectl"))
        if not found:
            raise SystemExit("no kubectl: run `make cluster`")
        self.binary = str(found[-1])
        self.kubeconfig = kubeconfig

    def __call__(self, *args: str, input: str | None = None, timeout: float = 600, check: bool = True) -> str:
        result = subprocess.run(
            [self.binary, "--kubeconfig", str(self.kubeconfig), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)[:200]} failed: {result.stderr.strip()[:2000]}")
        return result.stdout


def _docs(objs: list[dict[str, Any]]) -> str:
    return "\n".join(json.dumps(o) for o in objs)


def statefulset(name: str, replicas: int) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "labels": {BENCH_LABEL: "true"}},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name, BENCH_LABEL: "true"}},
                # kwok plays the kubelet: nothing runs; the image is never pulled.
                "spec": {
                    "containers": [
                        {
                            "name": "db",
                            "image": "postgres:15",
                            "ports": [{"name": "postgres", "containerPort": 5432}],
                        }
                    ]
                },
            },
        },
    }


def read_service(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"{name}-read", "labels": {BENCH_LABEL: "true"}},
        "spec": {"ports": [{"name": "postgres", "port": 5432, "targetPort": 5432}]},
    }


def workload(name: str, prometheus_url: str, interval: int) -> dict[str, Any]:
    return {
        "apiVersion": "rwscaler.io/v1alpha1",
        "kind": "ReadWriteWorkload",
        "metadata": {"name": name},
        "spec": {
            "primary": {"statefulSet": name},
            # minReplicas 2, the replica StatefulSet's size: healthy signals well under the objectives
            # are a reason to scale in once the 300 s scale-down window has passed, and the second
            # revision continues the first one's decision memory, so with a floor of 1 it scaled in
            # mid-window (DELETE pods, PATCH scale, woken ticks that the stats do not count).
            "replicas": {"statefulSet": f"{name}-replica", "minReplicas": 2, "maxReplicas": 4},
            "prometheus": {"url": prometheus_url, "timeout": "10s"},
            "metrics": {"preset": "postgres"},
            "objectives": {"readLatencyP99": "50ms", "writeLatencyP99": "20ms", "maxReplicationLag": "5s"},
            "pooler": {"kind": "EndpointSlice", "readService": f"{name}-read"},
            "behavior": {"intervalSeconds": interval},
            "mode": "Enforce",
        },
    }


def bench_nodes(count: int) -> list[dict[str, Any]]:
    nodes = []
    for j in range(count):
        name = f"{NODE_PREFIX}{j}"
        nodes.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "annotations": {
                        "kwok.x-k8s.io/node": "fake",
                        "rwscaler.local/fake-ip": f"10.215.1.{j + 10}",
                    },
                    "labels": {
                        BENCH_LABEL: "true",
                        "type": "kwok",
                        "kubernetes.io/hostname": name,
                        "kubernetes.io/os": "linux",
                        "kubernetes.io/arch": "amd64",
                    },
                },
                # 10.214.0.0/16 is the pod range; the plane's own nodes hold the first few /24s.
                "spec": {"podCIDR": f"10.214.{100 + j}.0/24", "podCIDRs": [f"10.214.{100 + j}.0/24"]},
            }
        )
    return nodes


@dataclass
class Setup:
    n: int
    namespaces: list[str]
    seconds: float = 0.0


def setup(kubectl: Kubectl, n: int, prometheus_url: str, interval: int) -> Setup:
    started = time.monotonic()
    k = namespace_count(n)
    namespaces = [f"{NS_PREFIX}{j}" for j in range(k)]
    pods = n * (1 + REPLICAS)
    node_count = min(155, math.ceil(pods / (PODS_PER_NODE - 5)))
    kubectl("apply", "-f", "-", input=_docs(bench_nodes(node_count)))
    kubectl(
        "create",
        "-f",
        "-",
        input=_docs(
            [
                {
                    "apiVersion": "v1",
                    "kind": "Namespace",
                    "metadata": {"name": ns, "labels": {BENCH_LABEL: "true"}},
                }
                for ns in namespaces
            ]
        ),
    )
    # The ServiceAccount admission plugin refuses pods until the namespace's default SA exists.
    _wait(
        "default ServiceAccounts",
        lambda: (
            len(
                kubectl(
                    "get", "serviceaccounts", "-A", "--field-selector=metadata.name=default", "-o", "name"
                ).split()
            )
            >= k
        ),
        120,
    )
    by_ns: dict[str, list[dict[str, Any]]] = {ns: [] for ns in namespaces}
    rww: dict[str, list[dict[str, Any]]] = {ns: [] for ns in namespaces}
    for i in range(n):
        ns, name = names(i, k)
        by_ns[ns] += [statefulset(name, 1), statefulset(f"{name}-replica", REPLICAS), read_service(name)]
        rww[ns].append(workload(name, prometheus_url, interval))

    def create(ns: str, objs: list[dict[str, Any]]) -> None:
        kubectl("create", "-n", ns, "-f", "-", input=_docs(objs), timeout=1800)

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda ns: create(ns, by_ns[ns]), namespaces))
    log(f"{n}: {3 * n} objects created in {time.monotonic() - started:.0f} s; waiting for {pods} pods")

    def running() -> int:
        out = kubectl(
            "get",
            "pods",
            "-A",
            "-l",
            f"{BENCH_LABEL}=true",
            "--field-selector=status.phase=Running",
            "-o",
            "name",
        )
        return len(out.split())

    _wait(f"{pods} Running pods", lambda: running() >= pods, 3600, every=5, progress=running)
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda ns: create(ns, rww[ns]), namespaces))
    took = time.monotonic() - started
    log(f"{n}: set up in {took:.0f} s ({node_count} bench nodes, {k} namespaces, {pods} pods)")
    return Setup(n, namespaces, took)


def teardown(kubectl: Kubectl, namespaces: list[str]) -> None:
    started = time.monotonic()
    if namespaces:
        kubectl("delete", "namespace", "--ignore-not-found", "--wait=false", *namespaces, check=False)
    # Leftovers of an earlier interrupted run too.
    kubectl(
        "delete", "namespace", "-l", f"{BENCH_LABEL}=true", "--ignore-not-found", "--wait=false", check=False
    )
    with contextlib.suppress(Exception):
        _wait(
            "bench namespaces gone",
            lambda: not kubectl("get", "namespace", "-l", f"{BENCH_LABEL}=true", "-o", "name").strip(),
            900,
            every=5,
        )
    kubectl("delete", "node", "-l", f"{BENCH_LABEL}=true", "--ignore-not-found", check=False)
    log(f"cleaned up in {time.monotonic() - started:.0f} s")


def _wait(what: str, probe: Any, timeout: float, every: float = 1.0, progress: Any = None) -> None:
    deadline = time.monotonic() + timeout
    last_report = time.monotonic()
    while not probe():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        if progress is not None and time.monotonic() - last_report > 30:
            log(f"  ... {what}: {progress()}")
            last_report = time.monotonic()
        time.sleep(every)


# ---- measuring -----------------------------------------------------------------------------------
_SAMPLE = re.compile(r"^(\w+)\{(.*)\} ([0-9.eE+-]+)$")


def _counters(text: str, metric: str) -> dict[tuple[tuple[str, str], ...], float]:
    out: dict[tuple[tuple[str, str], ...], float] = {}
    for line in text.splitlines():
        if not line.startswith(metric + "{"):
            continue
        m = _SAMPLE.match(line)
        if m is None:
            continue
        labels = tuple(sorted(re.findall(r'(\w+)="([^"]*)"', m.group(2))))
        out[labels] = out.get(labels, 0.0) + float(m.group(3))
    return out


def api_requests(kubectl: Kubectl) -> dict[tuple[str, str], float]:
    """apiserver_request_total summed by (verb, resource[/subresource]), leases and nodes left out."""
    out: dict[tuple[str, str], float] = {}
    for labels, value in _counters(kubectl("get", "--raw", "/metrics"), "apiserver_request_total").items():
        d = dict(labels)
        if d.get("resource") in EXCLUDED_RESOURCES:
            continue
        resource = d.get("resource", "") + (f"/{d['subresource']}" if d.get("subresource") else "")
        key = (d.get("verb", "?"), resource)
        out[key] = out.get(key, 0.0) + value
    return out


def prometheus_queries(url: str) -> float:
    import urllib.request  # noqa: PLC0415

    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()
    total = 0.0
    for labels, value in _counters(text, "prometheus_http_requests_total").items():
        if dict(labels).get("handler") in ("/api/v1/query", "/api/v1/query_range"):
            total += value
    return total


def _diff(after: dict[Any, float], before: dict[Any, float]) -> dict[Any, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v - before.get(k, 0.0) > 0}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime, stime, cutime, cstime: fields 14-17 (1-based), here 11-14 after the name
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int, field: str = "VmRSS") -> float:
    """VmRSS (now) or VmHWM (the highest since the start) of a process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def lateness(path: Path, start: float, end: float) -> list[float]:
    if not path.exists():
        return []
    out: list[float] = []
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            rec = json.loads(line)
            # a line holds the ticks of the 10 s before its time
            if start + 10 <= rec["time"] <= end:
                out.extend(rec["lateness"])
    return out


@dataclass
class Row:
    revision: str
    n: int
    cpu_ms_per_tick: float = 0.0
    cores: float = 0.0
    rss_mib: float = 0.0
    hwm_mib: float = 0.0  # VmHWM at the window's end: the start's burst, as a memory limit sees it
    verbs: dict[str, float] = field(default_factory=dict)
    resources: dict[str, float] = field(default_factory=dict)
    api_per_workload_interval: float = 0.0
    queries_per_interval: float = 0.0
    late: list[float] | None = None
    lateness_source: str = ""
    healthy: int = 0
    expected_ticks: int = 0
    note: str = ""


@dataclass
class Revision:
    label: str
    sha: str
    tree: Path
    builtin_stats: bool


@contextlib.contextmanager
def worktrees(revisions: list[str]) -> Iterator[list[Revision]]:
    made: list[Path] = []
    out: list[Revision] = []
    try:
        for rev in revisions:
            sha = subprocess.run(
                ["git", "-C", str(_REPO), "rev-parse", "--short", rev],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            tree = Path(tempfile.mkdtemp(prefix=f"rws-bench-{sha}-"))
            tree.rmdir()
            subprocess.run(
                ["git", "-C", str(_REPO), "worktree", "add", "--detach", str(tree), sha],
                capture_output=True,
                text=True,
                check=True,
            )
            made.append(tree)
            builtin = "TICK_STATS_ENV" in (tree / "operator/rwscaler/loops.py").read_text()
            out.append(Revision(rev if rev == sha else f"{rev} ({sha})", sha, tree, builtin))
        yield out
    finally:
        for tree in made:
            subprocess.run(
                ["git", "-C", str(_REPO), "worktree", "remove", "--force", str(tree)],
                capture_output=True,
                check=False,
            )


def metrics_known(kubectl: Kubectl) -> int:
    """Bench workloads whose status says MetricsAvailable=True (healthy: every signal known)."""
    path = '{range .items[*]}{.status.conditions[?(@.type=="MetricsAvailable")].status}{"\\n"}{end}'
    out = kubectl("get", "readwriteworkloads", "-A", "-o", f"jsonpath={path}")
    return sum(1 for line in out.splitlines() if line.strip() == "True")


def run_revision(
    rev: Revision,
    n: int,
    args: argparse.Namespace,
    kubectl: Kubectl,
    sa_kubeconfig: Path,
    prom_url: str,
    baseline: dict[tuple[str, str], float],
    workdir: Path,
) -> Row:
    row = Row(rev.label, n)
    stats = workdir / f"ticks-{rev.sha}-{n}.jsonl"
    log_path = workdir / f"operator-{rev.sha}-{n}.log"
    env = {**os.environ, "RWSCALER_TICK_STATS": str(stats), "PYTHONUNBUFFERED": "1"}
    if args.profile:
        env[PROFILE_ENV] = str(workdir / f"stacks-{rev.sha}-{n}.txt")
    if args.memory:
        env[MEMORY_ENV] = str(workdir / f"memory-{rev.sha}-{n}.txt")
    if args.census:
        env[CENSUS_ENV] = str(workdir / f"census-{rev.sha}-{n}.txt")
    env.pop("PYTHONPATH", None)
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--launch",
        str(rev.tree / "operator"),
        "--",
        "run",
        "-A",
        "--kubeconfig",
        str(sa_kubeconfig),
        "--log-level",
        "warning",
    ]
    with open(log_path, "w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        started = time.monotonic()

        # Warm-up: as many ticks counted as there are workloads (each has ticked about once; the
        # status a revision before left is no sign), then two intervals.
        def ticked() -> int:
            if proc.poll() is not None:
                raise RuntimeError(f"the operator of {rev.label} exited:\n{log_path.read_text()[-3000:]}")
            return len(lateness(stats, 0, math.inf))

        try:
            _wait(f"{n} ticks", lambda: ticked() >= n, args.warmup_timeout, every=2, progress=ticked)
            log(f"{rev.label} N={n}: {n} ticks after {time.monotonic() - started:.0f} s; warming up")
        except TimeoutError:
            # Measured all the same: what a revision that never gets there costs is the answer.
            row.note = f"never steady: {ticked()} ticks counted in {args.warmup_timeout:.0f} s of warm-up"
            log(f"{rev.label} N={n}: {row.note}; measuring anyway")
        time.sleep(2 * args.interval)
        t0, c0, a0, q0 = (
            time.time(),
            cpu_seconds(proc.pid),
            api_requests(kubectl),
            prometheus_queries(prom_url),
        )
        peak = rss_mib(proc.pid)
        while time.time() - t0 < args.window:
            time.sleep(1)
            peak = max(peak, rss_mib(proc.pid))
        t1, c1, a1, q1 = (
            time.time(),
            cpu_seconds(proc.pid),
            api_requests(kubectl),
            prometheus_queries(prom_url),
        )
        window = t1 - t0
        ticks = n * window / args.interval
        row.cpu_ms_per_tick = 1000 * (c1 - c0) / ticks
        row.cores = (c1 - c0) / window
        row.rss_mib = peak
        row.hwm_mib = rss_mib(proc.pid, "VmHWM")
        used = _diff(a1, a0)
        scale = window / args.baseline_window
        net = {k: v - baseline.get(k, 0.0) * scale for k, v in used.items()}
        for (verb, resource), count in net.items():
            row.verbs[verb] = row.verbs.get(verb, 0.0) + count / window
            row.resources[f"{verb} {resource}"] = count / window
        total = sum(max(v, 0.0) for v in row.verbs.values())
        row.api_per_workload_interval = total * args.interval / n
        row.queries_per_interval = (q1 - q0) * args.interval / window
        time.sleep(11)  # the last lines of tick stats
        row.late = lateness(stats, t0, t1 + 11)
        row.lateness_source = "loops.py RWSCALER_TICK_STATS" if rev.builtin_stats else "--launch tick wrapper"
        row.healthy = metrics_known(kubectl)
        row.expected_ticks = round(ticks)
        if proc.poll() is not None:
            row.note += f" operator exited ({proc.returncode})"
        return row
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def measure_size(
    n: int,
    args: argparse.Namespace,
    kubectl: Kubectl,
    sa_kubeconfig: Path,
    revs: list[Revision],
    workdir: Path,
) -> tuple[list[Row], Setup | None]:
    from tests.support.ports import free_port, wait_listening  # noqa: PLC0415
    from tests.support.prometheus import PrometheusServer, ScrapeTarget  # noqa: PLC0415

    port = free_port()
    exporter = subprocess.Popen([sys.executable, __file__, "--serve", str(n), "--port", str(port)])
    made: Setup | None = None
    namespaces = [f"{NS_PREFIX}{j}" for j in range(namespace_count(n))]
    try:
        if not wait_listening(port, timeout=30):
            raise RuntimeError("the synthetic exporter did not start")
        with PrometheusServer(
            [ScrapeTarget("postgres", f"127.0.0.1:{port}")],
            scrape_interval=SCRAPE_S,
            evaluation_interval=SCRAPE_S,
        ) as prom:
            prom.wait_for_targets(timeout=60)
            made = setup(kubectl, n, prom.url, args.interval)
            log(f"N={n}: idle baseline of API requests over {args.baseline_window:.0f} s")
            b0 = api_requests(kubectl)
            time.sleep(args.baseline_window)
            baseline = _diff(api_requests(kubectl), b0)
            rows = []
            for rev in revs:
                log(f"N={n}: {rev.label}")
                rows.append(run_revision(rev, n, args, kubectl, sa_kubeconfig, prom.url, baseline, workdir))
                print(render_table(rows, args), file=sys.stderr, flush=True)
            return rows, made
    finally:
        exporter.kill()
        exporter.wait()
        teardown(kubectl, namespaces)


# ---- the table -----------------------------------------------------------------------------------
def _pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def render_table(rows: list[Row], args: argparse.Namespace) -> str:
    header = [
        "revision",
        "N",
        "CPU ms/tick",
        "cores",
        "RSS MiB",
        "peak MiB",
        "API req/s by verb",
        "API req/wl/interval",
        "Prom queries/interval",
        "lateness p50/p95/max s",
        "ticks/due",
        "metrics known",
    ]
    lines = []
    for r in rows:
        verbs = " ".join(f"{v} {r.verbs[v]:.1f}" for v in sorted(r.verbs) if r.verbs[v] >= 0.05) or "-"
        late = (
            f"{statistics.median(r.late):.2f}/{_pct(r.late, 0.95):.2f}/{max(r.late):.2f}" if r.late else "n/a"
        )
        lines.append(
            [
                r.revision,
                str(r.n),
                f"{r.cpu_ms_per_tick:.1f}",
                f"{r.cores:.2f}",
                f"{r.rss_mib:.0f}",
                f"{r.hwm_mib:.0f}",
                verbs,
                f"{r.api_per_workload_interval:.2f}",
                f"{r.queries_per_interval:.1f}",
                late,
                f"{len(r.late or [])}/{r.expected_ticks}",
                f"{r.healthy}/{r.n}",
            ]
        )
    widths = [
        max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)
    ]
    fmt = "  ".join(f"{{:{'<' if i in (0, 6) else '>'}{w}}}" for i, w in enumerate(widths))
    out = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*line) for line in lines]
    return "\n".join(out)


def ratios(rows: list[Row]) -> list[str]:
    out = []
    for n in sorted({r.n for r in rows}):
        same = [r for r in rows if r.n == n]
        if len(same) < 2:
            continue
        a, b = same[0], same[-1]

        def ratio(x: float, y: float) -> str:
            return f"x{y / x:.2f}" if x > 0 else "-"

        out.append(
            f"N={n}: {b.revision} vs {a.revision}: CPU/tick {ratio(a.cpu_ms_per_tick, b.cpu_ms_per_tick)}, "
            f"RSS {ratio(a.rss_mib, b.rss_mib)}, API req/wl/interval "
            f"{ratio(a.api_per_workload_interval, b.api_per_workload_interval)}, "
            f"Prometheus queries/interval {ratio(a.queries_per_interval, b.queries_per_interval)}"
        )
    return out


def goals(rows: list[Row]) -> list[str]:
    out = []
    for r in rows:
        if r.n != 1000:
            continue
        p95 = _pct(r.late, 0.95) if r.late else None
        checks = [
            ("p95 lateness < 2 s", p95 is not None and p95 < 2),
            ("<= 0.3 API req/wl/interval", r.api_per_workload_interval <= 0.3),
            ("< 0.5 core", r.cores < 0.5),
            ("< 300 MiB", r.rss_mib < 300),
        ]
        out.append(
            f"goals at N=1000, {r.revision}: " + ", ".join(f"{c} {'yes' if ok else 'NO'}" for c, ok in checks)
        )
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="100 1000", help='workload counts (default "100 1000")')
    parser.add_argument("--interval", type=int, default=15, help="spec.behavior.intervalSeconds (default 15)")
    parser.add_argument("--window", type=float, default=120, help="steady window, seconds (default 120)")
    parser.add_argument("--baseline-window", type=float, default=30, help="idle API baseline, seconds")
    parser.add_argument(
        "--warmup-timeout",
        type=float,
        default=300,
        help="seconds to wait for N ticks before measuring anyway",
    )
    parser.add_argument(
        "--revisions", default="25730ec HEAD", help='revisions, before first (default "25730ec HEAD")'
    )
    parser.add_argument("--out", default=str(_REPO / "build" / "bench-operator.txt"))
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--launch", help=argparse.SUPPRESS)
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the operator's stacks (stacks-<rev>-<N>.txt in the run's directory)",
    )
    parser.add_argument(
        "--memory",
        action="store_true",
        help="trace the operator's allocations (memory-<rev>-<N>.txt in the run's directory; slows it)",
    )
    parser.add_argument(
        "--census",
        action="store_true",
        help="live memory against RSS every 30 s (census-<rev>-<N>.txt in the run's directory; trims the heap)",
    )
    args, rest = parser.parse_known_args()
    if args.serve is not None:
        serve(args.serve, args.port)
        return 0
    if args.launch is not None:
        launch(args.launch, [a for a in rest if a != "--"])
        return 0

    from tests.support.cluster import cluster_available, kubeconfig_path  # noqa: PLC0415
    from tests.support.prometheus import prometheus_binary  # noqa: PLC0415

    ok, reason = cluster_available()
    if not ok:
        print(f"bench-operator: {reason}", file=sys.stderr)
        return 2
    if prometheus_binary() is None:
        print("bench-operator: no prometheus binary; run `make pgenv-deps`", file=sys.stderr)
        return 2
    kubectl = Kubectl(kubeconfig_path())
    workdir = Path(tempfile.mkdtemp(prefix="rws-bench-operator-"))
    rows: list[Row] = []
    setups: list[Setup] = []
    began = time.monotonic()
    stopped = ""
    with worktrees(args.revisions.split()) as revs:
        # The CRD and the operator's RBAC of the newest revision (the plane is shared: what exists
        # is left as it is, only updated).
        newest = revs[-1].tree
        kubectl("apply", "--server-side", "--force-conflicts", "-f", str(newest / "crds"))
        kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/readwriteworkloads.rwscaler.io")
        kubectl(
            "apply", "--server-side", "--force-conflicts", "-f", str(newest / "manifests/rbac/namespace.yaml")
        )
        kubectl("apply", "--server-side", "--force-conflicts", "-f", str(newest / "manifests/rbac"))
        sa_kubeconfig = workdir / "sa.kubeconfig"
        subprocess.run(
            [str(_REPO / "hack/cluster/sa-kubeconfig.sh"), SA_NAMESPACE, SA_NAME, str(sa_kubeconfig), "4h"],
            check=True,
            capture_output=True,
        )
        for n in (int(s) for s in args.sizes.replace(",", " ").split()):
            try:
                got, made = measure_size(n, args, kubectl, sa_kubeconfig, revs, workdir)
            except (RuntimeError, TimeoutError) as err:
                stopped = f"N={n} stopped: {err}"
                log(stopped)
                break
            rows += got
            if made is not None:
                setups.append(made)
    table = render_table(rows, args)
    text = "\n".join(
        [
            f"bench-operator {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: interval {args.interval} s, "
            f"steady window {args.window:.0f} s, {REPLICAS + 1} pods per workload, "
            f"{PER_NAMESPACE} workloads per namespace, Prometheus scrape {SCRAPE_S:.0f} s",
            "",
            table,
            "",
            *ratios(rows),
            *goals(rows),
            *(f"setup N={s.n}: {s.seconds:.0f} s" for s in setups),
            *(f"{r.revision} N={r.n}: {r.note.strip()}" for r in rows if r.note),
            f"whole run: {time.monotonic() - began:.0f} s; operator logs and tick stats in {workdir}",
            *([stopped] if stopped else []),
            "API requests: apiserver_request_total over the window minus an idle baseline, leases/nodes left out;",
            "by resource: "
            + "; ".join(
                f"{r.revision} N={r.n}: "
                + ", ".join(
                    f"{k} {v:.1f}" for k, v in sorted(r.resources.items(), key=lambda kv: -kv[1]) if v >= 0.05
                )
                for r in rows
            ),
        ]
    )
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text + "\n")
    return 0 if rows and not stopped else 1


if __name__ == "__main__":
    sys.exit(main())
