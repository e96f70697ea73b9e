"""`make demo`: rwscaler at work on the local control plane, in one command (docs/demo.md).

1. builds what it needs, each cached after the first time, printing each step and its time:
   Prometheus from Debian (`make pgenv-deps`), the control plane and helm from Go modules
   (`make cluster`, `make helm`), the operator image (`make image`);
2. starts a simulated database: the simulator's model (operator/rwscaler/sim/live.py) served
   over HTTP as a Prometheus exporter, whose replicas are the replica StatefulSet's Ready pods
   and whose read pool is the EndpointSlice the operator writes; and a Prometheus scraping it and
   the operator's own /metrics;
3. installs the chart (`helm install`, with the demo's Prometheus as prometheus.url) and runs its
   pod with the image in podman (`hack/image/run-in-cluster.sh`, as `make image-run`), then
   applies hack/demo/shop.yaml: a primary, three replicas and their ReadWriteWorkload;
4. drives the script below (`SCRIPT`: a read spike, then a write surge) and prints, as they
   happen, the operator's Events and the changes of its status (what it did and why), with a
   line of what the database sees every ten seconds;
5. ends with `rwscaler report` over the demo (periods of a minute), then stops and removes
   everything it started: the workload (first, while the operator can let go of it), the
   container, the CRD if the demo installed it, the release, the namespaces, Prometheus, and the
   control plane if it was not running before; and prints a summary.

    .venv/bin/python tools/demo.py [--out build/demo]

Ctrl-C (or SIGTERM) at any point tears down what was started so far.
"""

from __future__ import annotations

import argparse
import html
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_REPO = Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from tests.support.cluster import cluster_available, kubeconfig_path  # noqa: E402
from tests.support.exporter import ControlledExporter  # noqa: E402
from tests.support.ports import LOOPBACK, free_port  # noqa: E402
from tests.support.prometheus import PrometheusServer, ScrapeTarget  # noqa: E402

from rwscaler.sim.live import LiveDatabase, Load  # noqa: E402
from rwscaler.sim.model import ModelParams, Slowdown  # noqa: E402

MANIFEST = _REPO / "hack" / "demo" / "shop.yaml"
CHART = _REPO / "manifests" / "charts" / "rwscaler"
NS = "rwscaler-demo"  # the database and its workload (hack/demo/shop.yaml)
OPERATOR_NS = "rwscaler-demo-system"
RELEASE = "rwscaler-demo"
CONTAINER = f"{RELEASE}-operator"
WORKLOAD, PRIMARY, REPLICAS, READ_SERVICE = "shop-db", "shop-pg", "shop-pg-replica", "shop-pg-read"
READ_OBJECTIVE, WRITE_OBJECTIVE, MAX_LAG = 0.050, 0.020, 5.0  # as in hack/demo/shop.yaml
CRD = "readwriteworkloads.rwscaler.io"


@dataclass(frozen=True)
class Phase:
    name: str
    seconds: float
    reads: float  # per second, reached RAMP_S after the phase starts
    writes: float
    expect: str  # what the operator should do, printed when the phase starts


RAMP_S = 10.0
SCRIPT = (
    Phase("steady", 40, 1200, 20, "60 reads a write over 3 replicas: nothing to do"),
    Phase(
        "read spike",
        110,
        4000,
        20,
        "reads x3.3: the replicas saturate; a read bottleneck, so rwscaler adds replicas (up to 6) "
        "and routes reads to each new one once it is Ready and caught up",
    ),
    Phase(
        "calm",
        80,
        1200,
        20,
        "reads are back: after 20 s of calm it drains and removes one replica at a time, down to 3",
    ),
    Phase(
        "write surge",
        90,
        1200,
        2600,
        "writes x130: the primary is the bottleneck, so no replica is added (each costs the primary "
        "a WAL sender); replica 1 replays slowly and is taken out of the read pool when it lags",
    ),
    Phase("after", 60, 1200, 20, "writes are back: replica 1 catches up and rejoins the read pool"),
)
SCRIPT_S = sum(p.seconds for p in SCRIPT)
# The model behind the exporter (sim/model.py's defaults, but for these): a replica turns Ready
# when its pod does, so the model adds no provisioning time; replica 1 replays at a third of its
# speed during the write surge (a slow disk), so one replica lags and the others do not.
_SURGE = (sum(p.seconds for p in SCRIPT[:3]), sum(p.seconds for p in SCRIPT[:4]))


def model(script_start: float) -> ModelParams:
    """The model, for a database clock at which the script starts at `script_start`."""
    start, end = (script_start + t for t in _SURGE)
    slow = Slowdown(replica=1, start=start, end=end, applyFactor=0.33)
    return ModelParams(provisioningSeconds=0, newReplicaLagSeconds=2, slowdowns=(slow,))


REPORT_PERIOD_S, REPORT_STEP_S = 60, 5


def load_at(t: float) -> tuple[Phase, Load]:
    """The script's phase and load `t` seconds after it started (each phase ramps from the last)."""
    before = Load(SCRIPT[0].reads, SCRIPT[0].writes)
    start = 0.0
    for phase in SCRIPT:
        if t < start + phase.seconds or phase is SCRIPT[-1]:
            k = min(max((t - start) / RAMP_S, 0.0), 1.0)
            return phase, Load(
                before.reads + (phase.reads - before.reads) * k,
                before.writes + (phase.writes - before.writes) * k,
            )
        before = Load(phase.reads, phase.writes)
        start += phase.seconds
    raise AssertionError("unreachable")


# ---- output -----------------------------------------------------------------------------------


class Screen:
    """What the demo prints: numbered steps, and lines stamped with a clock that starts when the
    workload is applied."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.t0: float | None = None
        self.steps = 0

    def step(self, text: str) -> float:
        self.steps += 1
        print(f"\n[{self.steps}] {text}", flush=True)
        return time.monotonic()

    def done(self, since: float, text: str = "done") -> None:
        print(f"    {text} ({time.monotonic() - since:.0f} s)", flush=True)

    def line(self, kind: str, text: str) -> str:
        """Print a line stamped with the demo's clock; returns the stamp."""
        at = "" if self.t0 is None else _clock(time.monotonic() - self.t0)
        print(f"  {at:>6}  {kind:<9} {text}", flush=True)
        return at


def _clock(seconds: float) -> str:
    return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"


HEARTBEAT_S = 30.0


def run(argv: Sequence[str], *, quiet: bool = False) -> str:
    """Run a command from the checkout, its output indented on the screen (unless quiet), with a
    line every HEARTBEAT_S while it says nothing (a first build is quiet for minutes); exit
    naming it when it fails (with its last lines, when quiet)."""
    proc = subprocess.Popen(argv, cwd=_REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    out: list[str] = []
    started, said = time.monotonic(), threading.Event()
    last = [started]  # when it last said something

    def heartbeat() -> None:
        while not said.wait(1.0):
            if time.monotonic() - last[0] >= HEARTBEAT_S:
                last[0] = time.monotonic()
                print(f"      | ... still running ({_clock(last[0] - started)})", flush=True)

    if not quiet:
        threading.Thread(target=heartbeat, daemon=True).start()
    try:
        for text in proc.stdout:
            out.append(text)
            last[0] = time.monotonic()
            if not quiet:
                print(f"      | {text.rstrip()}", flush=True)
    finally:
        said.set()
    if proc.wait() != 0:
        tail = "".join(out[-20:]) if quiet else ""
        raise SystemExit(f"demo: `{' '.join(argv)}` failed (exit {proc.returncode})\n{tail}")
    return "".join(out)


# ---- the simulated database, served as an exporter --------------------------------------------


class Exporter(ControlledExporter):
    """/metrics on 127.0.0.1 (the tests' exporter, tests/support/exporter.py): the database's
    state at its last step (`LiveDatabase.exposition`), published each second."""

    def __init__(self, db: LiveDatabase) -> None:
        super().__init__()
        self.db = db
        self.text = ""

    def publish(self) -> None:
        text = self.db.exposition()
        with self._lock:
            self.text = text

    def render(self) -> str:
        with self._lock:
            return self.text


# ---- the cluster, read with the admin kubeconfig ---------------------------------------------


class Cluster:
    def __init__(self) -> None:
        from kubernetes import client, config  # noqa: PLC0415 (the dev extra; only here)

        api = config.new_client_from_config(str(kubeconfig_path()))  # type: ignore[no-untyped-call]
        # Typed Any: the client's models make every field Optional, which says nothing here.
        self.core: Any = client.CoreV1Api(api)
        self.discovery: Any = client.DiscoveryV1Api(api)
        self.custom: Any = client.CustomObjectsApi(api)
        self.extensions: Any = client.ApiextensionsV1Api(api)
        self.api_error: type[Exception] = client.ApiException

    def ready_replicas(self) -> set[int]:
        pods = self.core.list_namespaced_pod(NS, label_selector=f"app={REPLICAS}").items
        out = set()
        for pod in pods:
            conditions = pod.status.conditions or []
            ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
            if ready and pod.metadata.deletion_timestamp is None:
                out.add(int(pod.metadata.name.rsplit("-", 1)[1]))
        return out

    def read_pool(self) -> set[int] | None:
        """The replicas in the read Service's EndpointSlice; None before the operator wrote one."""
        slices = self.discovery.list_namespaced_endpoint_slice(
            NS, label_selector=f"kubernetes.io/service-name={READ_SERVICE}"
        ).items
        if not slices:
            return None
        names = {e.target_ref.name for s in slices for e in (s.endpoints or []) if e.target_ref}
        return {int(n.rsplit("-", 1)[1]) for n in names if n.startswith(f"{REPLICAS}-")}

    def workload(self) -> dict[str, Any] | None:
        try:
            body: dict[str, Any] = self.custom.get_namespaced_custom_object(
                "rwscaler.io", "v1alpha1", NS, "readwriteworkloads", WORKLOAD
            )
        except self.api_error as err:
            if getattr(err, "status", None) == 404:  # not created yet
                return None
            raise
        return body

    def events(self) -> list[Any]:
        items = self.core.list_namespaced_event(NS, field_selector=f"involvedObject.name={WORKLOAD}").items
        return sorted(items, key=lambda e: e.last_timestamp or e.event_time or e.metadata.creation_timestamp)

    def crd_exists(self) -> bool:
        try:
            self.extensions.read_custom_resource_definition(CRD)
        except self.api_error as err:
            if getattr(err, "status", None) == 404:
                return False
            raise
        return True


# ---- what the operator did and why, as it happens ---------------------------------------------


# The events the summary repeats: what the operator did, and the turns of the two conditions
# that explain the write surge.
ACTIONS = ("ScaledUp", "ScaledDown", "ReadPoolChanged")
TURNS = ("WriteBottleneck False -> True", "WriteBottleneck True -> False", "ReplicationLagHigh False -> True")


@dataclass
class Watch:
    """Prints the workload's new Events and the changes of its status, and keeps the figures for
    the summary."""

    screen: Screen
    seen_events: dict[str, int] = field(default_factory=dict)
    conditions: dict[str, tuple[str, str]] = field(default_factory=dict)
    replicas: tuple[Any, Any] | None = None
    pool: tuple[str, ...] = ()
    workload_class: str | None = None
    reasons: dict[str, int] = field(default_factory=dict)  # event reason -> count
    actions: list[tuple[str, str]] = field(default_factory=list)  # (clock, what) for the summary

    def events(self, events: list[Any]) -> list[str]:
        """Print the new events; returns their reasons."""
        new = []
        for e in events:
            count = e.count or 1
            if self.seen_events.get(e.metadata.uid, 0) >= count:
                continue
            self.seen_events[e.metadata.uid] = count
            self.reasons[e.reason] = self.reasons.get(e.reason, 0) + 1
            new.append(e.reason)
            at = self.screen.line("event", f"{e.reason}: {e.message}")
            if at and (e.reason in ACTIONS or e.message.startswith(TURNS)):
                self.actions.append((at, f"{e.reason}: {e.message}"))
        return new

    def status(self, body: dict[str, Any] | None) -> None:
        """Print what the events do not say: the replica counts and the class. The conditions and
        the read pool are kept for the demo's waits (their changes are events already)."""
        status = (body or {}).get("status") or {}
        self.conditions = {
            c["type"]: (c.get("status", ""), c.get("reason") or "") for c in status.get("conditions") or []
        }
        self.pool = tuple(sorted(status.get("readEndpoints") or []))
        counts = status.get("replicas") or {}
        replicas = (counts.get("current"), counts.get("desired"))
        if replicas not in (self.replicas, (None, None)):
            self.replicas = replicas
            self.screen.line("replicas", f"current {replicas[0]}, desired {replicas[1]}")
        klass = status.get("workloadClass")
        if klass and klass != self.workload_class:
            self.workload_class = klass
            self.screen.line("class", f"{klass} (reads per write: {status.get('readWriteRatio')})")


@dataclass
class PhaseFigures:
    """What one phase saw, each second: for the summary's table and its checks."""

    replicas_max: int = 0
    read_p99_max: float = 0.0
    write_p99_max: float = 0.0
    lag_max: float = 0.0
    pool_min: int | None = None
    # At the phase's last second: Ready replicas, the pool and the read p99.
    ready_last: int = 0
    pool_last: tuple[int, ...] = ()
    read_p99_last: float = 0.0
    out_of_pool: set[int] = field(default_factory=set)  # Ready replicas kept out of the pool
    events: list[str] = field(default_factory=list)  # the reasons of the operator's events

    def add(self, ready: set[int], pool: list[int], read_p99: float, write_p99: float, lag: float) -> None:
        self.replicas_max = max(self.replicas_max, len(ready))
        self.read_p99_max = max(self.read_p99_max, read_p99)
        self.write_p99_max = max(self.write_p99_max, write_p99)
        self.lag_max = max(self.lag_max, lag)
        self.pool_min = len(pool) if self.pool_min is None else min(self.pool_min, len(pool))
        self.ready_last, self.pool_last, self.read_p99_last = len(ready), tuple(pool), read_p99
        self.out_of_pool |= ready - set(pool)


def checks(f: dict[str, PhaseFigures]) -> list[tuple[bool, str]]:
    """What the script expects of the operator (docs/demo.md), each with whether it happened."""
    spike, calm, surge, after = f["read spike"], f["calm"], f["write surge"], f["after"]
    return [
        (
            spike.replicas_max > 3 and spike.read_p99_last <= READ_OBJECTIVE,
            f"read spike: replicas added (up to {spike.replicas_max}), read p99 back under the objective "
            f"({spike.read_p99_last * 1000:.0f} ms at the end)",
        ),
        (calm.ready_last == 3, f"calm: back to minReplicas 3 ({calm.ready_last} at the end)"),
        (
            "ScaledUp" not in surge.events and "ScaledUp" not in after.events,
            "write surge: no replica added for a write bottleneck",
        ),
        (1 in surge.out_of_pool, "write surge: the lagging replica 1 taken out of the read pool"),
        (1 in after.pool_last, "after: replica 1 caught up and back in the read pool"),
    ]


# ---- the demo ---------------------------------------------------------------------------------


class Demo:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.screen = Screen()
        self.teardown: list[tuple[str, Callable[[], object]]] = []
        self.helm = ""
        self.kubectl = ""
        self.reasons: dict[str, int] = {}
        self.actions: list[tuple[str, str]] = []

    def on_exit(self, what: str, undo: Callable[[], object]) -> None:
        self.teardown.append((what, undo))

    def tear_down(self) -> None:
        if not self.teardown:
            return
        since = self.screen.step("tearing down what the demo started")
        for what, undo in reversed(self.teardown):
            print(f"    {what}", flush=True)
            try:
                undo()
            except (Exception, SystemExit) as err:
                print(f"      failed: {err}", flush=True)
        self.teardown.clear()
        self.screen.done(since)

    # -- 1. build --------------------------------------------------------------------------------
    def build(self) -> None:
        plane_was_up = cluster_available()[0]
        for what, target in (
            (
                "Prometheus and the exporters, from Debian (make pgenv-deps; apt-get the first time)",
                "pgenv-deps",
            ),
            (
                "the local control plane (make cluster; built from Go modules the first time: 10-20 min)",
                "cluster",
            ),
            ("helm (make helm; built once)", "helm"),
            ("the operator image (make image; the Debian base once, a few minutes)", "image"),
        ):
            since = self.screen.step(what)
            run(["make", "-s", "--no-print-directory", target])
            self.screen.done(since)
            if target == "cluster" and not plane_was_up:
                self.on_exit(
                    "the local control plane (make cluster-down)", lambda: run(["make", "-s", "cluster-down"])
                )
        self.helm = run(["make", "-s", "--no-print-directory", "helm"], quiet=True).strip().splitlines()[-1]
        tools = run(["make", "-s", "--no-print-directory", "tools-path"], quiet=True).strip()
        self.kubectl = str(Path(tools.split(":")[0]) / "kubectl")

    def k(self, *args: str) -> str:
        return run([self.kubectl, "--kubeconfig", str(kubeconfig_path()), *args], quiet=True)

    # -- 2.-3. start -----------------------------------------------------------------------------
    def start(self) -> tuple[LiveDatabase, Exporter, PrometheusServer, Cluster]:
        cluster = Cluster()
        if self.k("get", "namespace", NS, "--ignore-not-found", "-o", "name").strip():
            raise SystemExit(
                f"demo: the namespace {NS} exists (an earlier demo left it?): `kubectl delete namespace {NS}` first"
            )
        since = self.screen.step("the simulated database (sim/live.py as an exporter) and Prometheus")
        db = LiveDatabase(model(0.0), NS, PRIMARY, REPLICAS, MAX_LAG, now=0.0)
        db.advance(0.0, Load(SCRIPT[0].reads, SCRIPT[0].writes))
        exporter = Exporter(db)
        exporter.start()
        self.on_exit("the database's exporter", exporter.stop)
        exporter.publish()
        metrics_port, liveness_port = free_port(), free_port()
        workdir = self.out / "prometheus"
        shutil.rmtree(workdir, ignore_errors=True)
        prometheus = PrometheusServer(
            [
                ScrapeTarget("demo-db", f"{LOOPBACK}:{exporter.port}"),
                ScrapeTarget("rwscaler", f"{LOOPBACK}:{metrics_port}"),
            ],
            workdir=workdir,
        ).start()

        def stop_prometheus() -> None:
            prometheus.stop()
            shutil.rmtree(workdir, ignore_errors=True)

        self.on_exit("Prometheus", stop_prometheus)
        print(f"    database exporter http://{LOOPBACK}:{exporter.port}/metrics, Prometheus {prometheus.url}")
        self.screen.done(since)

        since = self.screen.step(f"the chart ({RELEASE} in {OPERATOR_NS}) and the operator's pod in podman")
        crd_was_there = cluster.crd_exists()
        self.k("create", "namespace", NS)
        self.on_exit(f"namespace {NS}", lambda: self.k("delete", "namespace", NS, "--wait=true"))
        run(
            [
                self.helm, "install", RELEASE, str(CHART), "--kubeconfig", str(kubeconfig_path()),
                "-n", OPERATOR_NS, "--create-namespace",
                "--set", "replicas=0",  # kwok runs no container: podman runs the pod (below)
                "--set", f"prometheus.url={prometheus.url}",
                "--set", f"watchNamespaces={{{NS}}}",
            ],
            quiet=True,
        )  # fmt: skip
        self.on_exit(
            f"namespace {OPERATOR_NS}",
            lambda: self.k("delete", "namespace", OPERATOR_NS, "--ignore-not-found"),
        )
        self.on_exit(
            f"helm release {RELEASE}",
            lambda: run(
                [self.helm, "uninstall", RELEASE, "-n", OPERATOR_NS, "--kubeconfig", str(kubeconfig_path())]
            ),
        )
        if not crd_was_there:
            self.on_exit(f"the CRD {CRD} (the demo installed it)", lambda: self.k("delete", "crd", CRD))
        run(
            [
                "bash", "hack/image/run-in-cluster.sh", "--detach", "-n", OPERATOR_NS,
                "--from-deployment", RELEASE, "--name", CONTAINER,
                "--metrics-port", str(metrics_port), "--liveness-port", str(liveness_port),
            ],
            quiet=True,
        )  # fmt: skip
        self.on_exit(
            f"the operator's container {CONTAINER}",
            lambda: run(["bash", "hack/image/run-in-cluster.sh", "--stop", "--name", CONTAINER], quiet=True),
        )
        print(
            f"    operator: podman container {CONTAINER}, its metrics http://{LOOPBACK}:{metrics_port}/metrics"
        )
        # Undone first, while the operator runs and can let go of it (its finalizer).
        self.on_exit(f"the workload {NS}/{WORKLOAD}", self.delete_workload)
        self.k("apply", "-f", str(MANIFEST))
        print(f"    applied {MANIFEST.relative_to(_REPO)}: {NS}/{WORKLOAD}, 1 primary, 3 replicas")
        self.screen.done(since)
        return db, exporter, prometheus, cluster

    def delete_workload(self) -> None:
        try:
            self.k("delete", "readwriteworkload", WORKLOAD, "-n", NS, "--ignore-not-found", "--timeout=30s")
        except SystemExit:  # the operator did not let go: drop its finalizers, nothing else holds it
            patch = '{"metadata":{"finalizers":null}}'
            self.k("patch", "readwriteworkload", WORKLOAD, "-n", NS, "--type=merge", "-p", patch)

    # -- 4. drive --------------------------------------------------------------------------------
    def drive(
        self, db: LiveDatabase, exporter: Exporter, cluster: Cluster
    ) -> tuple[float, float, dict[str, PhaseFigures]]:
        watch = Watch(self.screen)
        since = self.screen.step(
            "waiting for the operator to take the workload (Ready=True, 3 replicas in the pool); times from now on"
        )
        self.screen.t0 = start = time.monotonic()

        def tick(t: float, load: Load) -> tuple[set[int], Any, list[str]]:
            ready, pool = cluster.ready_replicas(), cluster.read_pool()
            db.follow(ready, pool)
            result = db.advance(t, load)
            exporter.publish()
            body = cluster.workload()
            said = watch.events(cluster.events())
            watch.status(body)
            return ready, result, said

        while True:
            tick(time.monotonic() - start, Load(SCRIPT[0].reads, SCRIPT[0].writes))
            if watch.conditions.get("Ready", ("",))[0] == "True" and len(watch.pool) == 3:
                break
            if time.monotonic() - start > 180:
                raise SystemExit(
                    "demo: the operator did not make the workload Ready in 3 minutes (see above)"
                )
            time.sleep(1.0)
        self.screen.done(since)

        self.screen.step(f"the script: {len(SCRIPT)} phases, {SCRIPT_S:.0f} s")
        figures = {p.name: PhaseFigures() for p in SCRIPT}
        t0 = time.monotonic()
        db.cluster.params = model(t0 - start)  # the database's clock started with the wait
        wall_start = time.time()
        phase_now: Phase | None = None
        next_line = 0.0
        while (t := time.monotonic() - t0) < SCRIPT_S:
            phase, load = load_at(t)
            if phase is not phase_now:
                phase_now = phase
                print(
                    f"\n  {_clock(time.monotonic() - start):>6}  == {phase.name} ({phase.seconds:.0f} s):",
                    end=" ",
                )
                print(f"reads {phase.reads:.0f}/s, writes {phase.writes:.0f}/s. {phase.expect}", flush=True)
            ready, result, said = tick(t + (t0 - start), load)
            lag = max(result.lags.values(), default=0.0)
            figures[phase.name].add(ready, db.pool, result.read_p99, result.write_p99, lag)
            figures[phase.name].events += said
            if t >= next_line:
                next_line += 10.0
                self.screen.line(
                    "database",
                    f"reads {load.reads:.0f}/s writes {load.writes:.0f}/s | {len(ready)} replicas Ready, "
                    f"{len(db.pool)} in the pool | read p99 {result.read_p99 * 1000:.0f} ms "
                    f"(objective {READ_OBJECTIVE * 1000:.0f}), write p99 {result.write_p99 * 1000:.0f} ms "
                    f"(objective {WRITE_OBJECTIVE * 1000:.0f}) | lag max {lag:.1f} s",
                )
            time.sleep(max(0.0, 1.0 - (time.monotonic() - t0 - t)))
        self.screen.t0 = None
        self.reasons, self.actions = watch.reasons, watch.actions
        return wall_start, time.time(), figures

    # -- 5. report and summary -------------------------------------------------------------------
    def report(self, prometheus: PrometheusServer, start: float, end: float) -> Path:
        since = self.screen.step(f"the workload report (rwscaler report, periods of {REPORT_PERIOD_S} s)")
        periods = int((end - start) // REPORT_PERIOD_S)
        out = self.out / "report"
        page = run(
            [
                sys.executable, "-m", "rwscaler", "report", WORKLOAD, "-n", NS,
                "--prometheus-url", prometheus.url, "--weeks", str(periods),
                "--period", f"{REPORT_PERIOD_S}s", "--step", f"{REPORT_STEP_S}s",
                "--end", f"{end:.0f}", "-o", str(out),
            ],
            quiet=True,
        ).strip().splitlines()[-1]  # fmt: skip
        self.screen.done(since)
        return Path(page)

    def summary(self, figures: dict[str, PhaseFigures], page: Path) -> bool:
        """Print the summary; False when the operator did not do what the script expects."""
        print("\nWhat happened (the database as the demo's model served it):\n")
        head = f"  {'phase':<12} {'reads/s':>8} {'writes/s':>8} {'max Ready':>9} {'min pool':>8} {'read p99 max':>12} {'write p99 max':>13} {'lag max':>8}"
        print(head)
        print("  " + "-" * (len(head) - 2))
        for p in SCRIPT:
            f = figures[p.name]
            print(
                f"  {p.name:<12} {p.reads:>8.0f} {p.writes:>8.0f} {f.replicas_max:>9} {f.pool_min or 0:>8} "
                f"{_ms(f.read_p99_max):>12} {_ms(f.write_p99_max):>13} {f.lag_max:>7.1f}s"
            )
        print("\nWhat rwscaler did (its events, on the clock above):\n")
        for at, what in self.actions:
            print(f"  {at:>6}  {what if len(what) <= 150 else what[:147] + '...'}")
        said = ", ".join(f"{reason} {n}" for reason, n in sorted(self.reasons.items()))
        print(f"\n  all its events: {said or 'none'}")
        print(
            f"  objectives: read p99 {READ_OBJECTIVE * 1000:.0f} ms, write p99 {WRITE_OBJECTIVE * 1000:.0f} ms, lag {MAX_LAG:.0f} s"
        )
        trend = re.search(r'<p id="trend">(.*?)</p>', page.read_text()) if page.is_file() else None
        print(f"  report: {page}")
        if trend:
            print(f"  its trend: {html.unescape(trend.group(1))}")
        print("\nWhat the script expects of rwscaler:\n")
        verdicts = checks(figures)
        for happened, what in verdicts:
            print(f"  {'yes' if happened else 'NO ':<3}  {what}")
        return all(happened for happened, _ in verdicts)

    def main(self) -> int:
        try:
            self.build()
            db, exporter, prometheus, cluster = self.start()
            start, end, figures = self.drive(db, exporter, cluster)
            page = self.report(prometheus, start, end)
            self.tear_down()
            as_expected = self.summary(figures, page)
        finally:
            self.tear_down()
        took = _clock(time.monotonic() - self.screen.started)
        if not as_expected:
            print(
                f"\nmake demo: done in {took} (min:s), but rwscaler did not do all the script expects (NO above)"
            )
            return 1
        print(f"\nmake demo: done in {took} (min:s)")
        return 0


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.0f} s"


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--out", type=Path, default=_REPO / "build" / "demo", help="report and Prometheus data"
    )
    args = parser.parse_args(argv)
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    # SIGTERM (a CI timeout, `kill`) tears down as Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return Demo(args.out).main()
    except KeyboardInterrupt:
        print("\ndemo: interrupted; what it started is stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
