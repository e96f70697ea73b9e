"""Helpers of the observation tests against a real Prometheus (fixtures are in conftest.py).

- ``PromEnv``: a ControlledExporter and the Prometheus scraping it; ``settle()`` waits until
  Prometheus has scraped what the exporter serves now.
- ``workload(...)``: a WorkloadQuery for ``shop/orders`` (primary ``orders-pg-0``, replicas
  ``orders-pg-replica-0/1``) with the given metrics spec and Prometheus URL.
- ``custom_metrics(...)``: a `custom` metrics spec over the exporter's ``app_*`` series.
- ``backfilled_prometheus(text)``: a Prometheus over weeks of history written as OpenMetrics
  and turned into TSDB blocks with promtool (``openmetrics(...)`` writes the text).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.tiers import need

_REPO = Path(__file__).resolve().parents[3]
if str(_REPO) not in sys.path:  # plain `pytest` (not `python -m pytest`) does not add the checkout
    sys.path.insert(0, str(_REPO))

from tests.support.exporter import ControlledExporter  # noqa: E402
from tests.support.prometheus import PrometheusServer, prometheus_binary  # noqa: E402

from rwscaler.core.spec import ReadWriteWorkloadSpec  # noqa: E402
from rwscaler.metrics.source import WorkloadQuery  # noqa: E402

SCRAPE_S = 0.5
NAMESPACE = "shop"
PRIMARY = "orders-pg-0"
REPLICAS = ("orders-pg-replica-0", "orders-pg-replica-1")


def require_prometheus() -> None:
    need(
        prometheus_binary() is not None,
        "no prometheus binary: run `make pgenv-deps` (Debian's prometheus package)",
    )


@dataclass
class PromEnv:
    exporter: ControlledExporter
    prom: PrometheusServer

    def settle(self, scrapes: int = 2) -> None:
        """Return after Prometheus scraped the exporter `scrapes` more times and ingested them.

        Prometheus scrapes one target in sequence and appends a scrape's samples before it starts
        the next: once the exporter has served one scrape more, the last counted one is stored
        (an event, where a fixed pause after the response was not always long enough under load)."""
        start = self.exporter.scrape_count
        deadline = time.monotonic() + 30
        while self.exporter.scrape_count < start + scrapes + 1:
            if time.monotonic() > deadline:
                raise TimeoutError("Prometheus stopped scraping the exporter")
            time.sleep(0.05)


def workload(
    url: str,
    metrics: dict[str, Any],
    *,
    name: str = "orders",
    namespace: str = NAMESPACE,
    primary_set: str = "orders-pg",
    replica_set: str = "orders-pg-replica",
    replica_pods: tuple[str, ...] = REPLICAS,
    prometheus: dict[str, Any] | None = None,
    pooler: dict[str, Any] | None = None,
    interval_s: int = 5,
    bearer_token: str | None = None,
    ca_pem: str | None = None,
) -> WorkloadQuery:
    spec: dict[str, Any] = {
        # One set for both roles names it in replicas only (admission refuses it twice).
        "primary": {} if primary_set == replica_set else {"statefulSet": primary_set},
        "replicas": {"statefulSet": replica_set, "minReplicas": 1, "maxReplicas": 8},
        "prometheus": {"url": url, **(prometheus or {})},
        "metrics": metrics,
        "behavior": {"intervalSeconds": interval_s},
    }
    if pooler is not None:
        spec["pooler"] = pooler
    return WorkloadQuery(
        key=f"{namespace}/{name}",
        namespace=namespace,
        name=name,
        spec=ReadWriteWorkloadSpec.model_validate(spec),
        primary_pods=(f"{primary_set}-0",),
        replica_pods=replica_pods,
        bearer_token=bearer_token,
        ca_pem=ca_pem,
    )


# Custom queries over the exporter's `app_*` series, with placeholders.
CUSTOM_QUERIES = {
    "readQPS": 'sum(rate(app_queries_total{namespace=~"${namespace}", side="read"}[${window}]))',
    "writeQPS": 'sum(rate(app_queries_total{namespace=~"${namespace}", side="write"}[${window}]))',
    "readLatencyP99": 'max(app_latency_p99_seconds{namespace=~"${namespace}", side="read"})',
    "writeLatencyP99": 'max(app_latency_p99_seconds{namespace=~"${namespace}", side="write"})',
    "replicationLag": 'app_lag_seconds{namespace=~"${namespace}", pod=~"${replica_pods}"}',
}


def pgbouncer(database: str) -> dict[str, Any]:
    """A PgBouncer pooler block for `database`, whose postgres-preset series the tests write."""
    return {
        "kind": "PgBouncer",
        "pgbouncer": {
            "deployment": f"{database}-pgbouncer",
            "configMap": f"{database}-pgbouncer",
            "database": database,
            "adminSecret": {"name": "admin", "key": "auth"},
        },
    }


def custom_metrics(**overrides: str) -> dict[str, Any]:
    return {"preset": "custom", "queries": {**CUSTOM_QUERIES, **overrides}}


class SteadyCounters:
    """Counters of the exporter incremented at fixed rates by a background thread (per second)."""

    def __init__(
        self, exporter: ControlledExporter, rates: dict[tuple[str, tuple[tuple[str, str], ...]], float]
    ):
        self.exporter = exporter
        self.rates = rates
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        step = 0.05
        while not self._stop.wait(step):
            for (name, labels), rate in self.rates.items():
                self.exporter.inc(name, dict(labels), rate * step)

    def __enter__(self) -> SteadyCounters:
        for name, labels in self.rates:
            self.exporter.set(name, dict(labels), 0, kind="counter")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def serve_healthy(env: PromEnv) -> None:
    """Serve the `app_*` series CUSTOM_QUERIES read, with known values; return once scraped."""
    exp = env.exporter
    for side in ("read", "write"):
        exp.set("app_queries_total", {"namespace": NAMESPACE, "side": side}, 0, kind="counter")
    exp.set("app_latency_p99_seconds", {"namespace": NAMESPACE, "side": "read"}, 0.012)
    exp.set("app_latency_p99_seconds", {"namespace": NAMESPACE, "side": "write"}, 0.004)
    exp.set("app_lag_seconds", {"namespace": NAMESPACE, "pod": REPLICAS[0]}, 0.25)
    exp.set("app_lag_seconds", {"namespace": NAMESPACE, "pod": REPLICAS[1]}, 3.5)
    # A pod of another namespace with the same name must not be mistaken for ours.
    exp.set("app_lag_seconds", {"namespace": "other", "pod": REPLICAS[0]}, 99.0)
    env.settle()


# ---- backfilled history (test_history.py) ---------------------------------------------------------
HISTORY_RETENTION = "120d"
_RETENTION_WRAPPER = """#!/bin/sh
# PrometheusServer passes --storage.tsdb.retention.time=1d, which would delete the backfilled
# blocks at start (the flag cannot be given twice): replace it.
for arg in "$@"; do
  shift
  case "$arg" in
    --storage.tsdb.retention.time=*) arg="--storage.tsdb.retention.time={retention}" ;;
  esac
  set -- "$@" "$arg"
done
exec {binary} "$@"
"""


def openmetrics(series: dict[tuple[str, tuple[tuple[str, str], ...]], list[tuple[float, float]]]) -> str:
    """OpenMetrics text of these series ((name, labels) -> [(unix seconds, value)], oldest first)."""
    lines: list[str] = []
    for (name, labels), samples in sorted(series.items()):
        selector = "{" + ",".join(f'{k}="{v}"' for k, v in labels) + "}"
        lines.extend(f"{name}{selector} {value:.6f} {ts:.3f}" for ts, value in samples)
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def backfilled_prometheus(text: str, retention: str = HISTORY_RETENTION) -> Iterator[PrometheusServer]:
    """A Prometheus (no scrape target) over TSDB blocks made from OpenMetrics `text` with
    `promtool tsdb create-blocks-from openmetrics`, with a retention long enough to keep them."""
    binary = prometheus_binary()
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    need(binary is not None and os.access(promtool, os.X_OK), "no prometheus/promtool: run `make pgenv-deps`")
    assert binary is not None
    with tempfile.TemporaryDirectory(prefix="rwscaler-history-") as tmp:
        work = Path(tmp)
        source = work / "history.om"
        source.write_text(text)
        data = work / "data"
        data.mkdir()
        done = subprocess.run(
            [promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(source), str(data)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"promtool failed: {done.stdout}\n{done.stderr}")
        wrapper = work / "prometheus-long-retention"
        wrapper.write_text(_RETENTION_WRAPPER.format(retention=retention, binary=shlex.quote(binary)))
        wrapper.chmod(0o755)
        with PrometheusServer([], workdir=work, binary=str(wrapper)) as prom:
            yield prom
