"""A real Prometheus server (the Debian ``prometheus`` binary) for integration tests.

Used by :mod:`tests.support.pgenv` and by any test that needs Prometheus to scrape
something: it writes a config for the given scrape targets, starts Prometheus on
127.0.0.1 on a free port with its storage in a temporary directory, waits until it is
ready, and stops it (verified gone) on exit.

    with PrometheusServer([ScrapeTarget("app", "127.0.0.1:9999", {"pod": "a-0"})]) as prom:
        prom.wait_for_targets()
        prom.query("up")

``stop()`` and ``start()`` can be called again on the same object (same port, same data)
to simulate a Prometheus outage. ``set_targets()`` rewrites the config and reloads it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .ports import LOOPBACK, free_port
from .procs import ManagedProcess

PROMETHEUS_CANDIDATES = ("/usr/bin/prometheus",)


def prometheus_binary() -> str | None:
    """Path of the Prometheus binary: ``$PROMETHEUS_BIN``, ``prometheus`` on PATH, Debian's path."""
    explicit = os.environ.get("PROMETHEUS_BIN")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    found = shutil.which("prometheus")
    if found:
        return found
    for candidate in PROMETHEUS_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


@dataclass(frozen=True)
class ScrapeTarget:
    """One scrape target: its job, ``host:port`` and the target labels Prometheus attaches."""

    job: str
    address: str
    labels: Mapping[str, str] = field(default_factory=dict)
    metrics_path: str = "/metrics"


@dataclass(frozen=True)
class Sample:
    """One series of an instant-query answer."""

    labels: dict[str, str]
    value: float
    timestamp: float


class PrometheusError(RuntimeError):
    pass


def _fmt_seconds(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"


def render_config(
    targets: Iterable[ScrapeTarget],
    *,
    scrape_interval: float = 1.0,
    evaluation_interval: float = 1.0,
    scrape_timeout: float | None = None,
) -> str:
    """The prometheus.yml for these targets (JSON, which is YAML), one scrape config per job."""
    by_job: dict[str, list[ScrapeTarget]] = {}
    for target in targets:
        by_job.setdefault(target.job, []).append(target)
    timeout = scrape_timeout if scrape_timeout is not None else scrape_interval
    scrape_configs: list[dict[str, Any]] = []
    for job, job_targets in sorted(by_job.items()):
        paths = {t.metrics_path for t in job_targets}
        if len(paths) != 1:
            raise ValueError(f"job {job!r}: all its targets must share one metrics_path, got {sorted(paths)}")
        scrape_configs.append(
            {
                "job_name": job,
                "metrics_path": paths.pop(),
                "static_configs": [{"targets": [t.address], "labels": dict(t.labels)} for t in job_targets],
            }
        )
    config = {
        "global": {
            "scrape_interval": _fmt_seconds(scrape_interval),
            "scrape_timeout": _fmt_seconds(timeout),
            "evaluation_interval": _fmt_seconds(evaluation_interval),
        },
        "scrape_configs": scrape_configs,
    }
    return json.dumps(config, indent=2) + "\n"


class PrometheusServer:
    """The Debian Prometheus, on 127.0.0.1, scraping the given targets."""

    def __init__(
        self,
        targets: Sequence[ScrapeTarget] = (),
        *,
        scrape_interval: float = 1.0,
        evaluation_interval: float = 1.0,
        port: int | None = None,
        workdir: Path | None = None,
        binary: str | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 60.0,
        host: str = LOOPBACK,
    ) -> None:
        self.host = host  # another address only where the e2e tier's kind target needs it
        self.targets: list[ScrapeTarget] = list(targets)
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.port = port if port is not None else free_port()
        self.startup_timeout = startup_timeout
        self.extra_args = list(extra_args)
        self._binary = binary
        self._own_workdir = workdir is None
        self.workdir = workdir if workdir is not None else Path(tempfile.mkdtemp(prefix="prometheus-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path = self.workdir / "prometheus.yml"
        self.data_dir = self.workdir / "data"
        self._process: ManagedProcess | None = None

    # ---- lifecycle ------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.running()

    def write_config(self) -> None:
        self.config_path.write_text(
            render_config(
                self.targets,
                scrape_interval=self.scrape_interval,
                evaluation_interval=self.evaluation_interval,
            )
        )

    def start(self) -> PrometheusServer:
        """Start (or restart after ``stop()``) and wait until ``/-/ready`` answers 200."""
        if self.running:
            return self
        binary = self._binary or prometheus_binary()
        if binary is None:
            raise PrometheusError("no prometheus binary: run `make pgenv-deps` (or set PROMETHEUS_BIN)")
        self.write_config()
        self.data_dir.mkdir(exist_ok=True)
        argv = [
            binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--web.listen-address={self.host}:{self.port}",
            "--web.enable-lifecycle",
            "--storage.tsdb.retention.time=1d",
            "--log.level=warn",
            *self.extra_args,
        ]
        self._process = ManagedProcess("prometheus", argv, log_path=self.workdir / "prometheus.log")
        self._process.start()
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if not self._process.running():
                raise PrometheusError(f"prometheus exited at start:\n{self._process.log_tail()}")
            with contextlib.suppress(OSError):
                if self._get_raw("/-/ready", timeout=1.0)[0] == 200:
                    return self
            time.sleep(0.1)
        tail = self._process.log_tail()
        self.stop()
        raise PrometheusError(f"prometheus not ready after {self.startup_timeout}s:\n{tail}")

    def stop(self) -> None:
        """Stop the process (data and port are kept, so ``start()`` resumes where it was)."""
        if self._process is not None:
            self._process.stop(timeout=15)
            self._process = None

    def close(self) -> None:
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> PrometheusServer:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_targets(self, targets: Sequence[ScrapeTarget]) -> None:
        """Replace the scrape targets and reload the config (no restart)."""
        self.targets = list(targets)
        self.write_config()
        if self.running:
            self.reload()

    def reload(self) -> None:
        status, body = self._request("POST", "/-/reload", timeout=30)
        if status != 200:
            raise PrometheusError(f"reload failed: {status} {body[:500]!r}")

    def request_stop(self) -> None:
        if self._process is not None:
            self._process.signal(signal.SIGTERM)

    def hang(self) -> None:
        """SIGSTOP: the server keeps its port and accepts connections but answers nothing."""
        if self._process is not None:
            self._process.signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None:
            self._process.signal(signal.SIGCONT)

    # ---- HTTP -----------------------------------------------------------------------
    def _request(self, method: str, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
        req = urllib.request.Request(self.url + path, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return int(resp.status), bytes(resp.read())
        except urllib.error.HTTPError as err:
            return int(err.code), bytes(err.read())

    def _get_raw(self, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
        return self._request("GET", path, timeout=timeout)

    def api(self, path: str, params: Mapping[str, str] | None = None, timeout: float = 10.0) -> Any:
        """GET ``/api/v1/<path>`` and return its ``data`` (raises on an error answer)."""
        query = "?" + urllib.parse.urlencode(params) if params else ""
        status, body = self._get_raw(f"/api/v1/{path}{query}", timeout=timeout)
        try:
            doc = json.loads(body)
        except ValueError as err:
            raise PrometheusError(f"{path}: HTTP {status}: {body[:300]!r}") from err
        if status != 200 or doc.get("status") != "success":
            raise PrometheusError(f"{path}: HTTP {status}: {doc.get('errorType')}: {doc.get('error')}")
        return doc["data"]

    def query(self, expr: str, at: float | None = None) -> list[Sample]:
        """An instant query; a vector or scalar answer as samples."""
        params = {"query": expr}
        if at is not None:
            params["time"] = repr(at)
        data = self.api("query", params)
        kind = data["resultType"]
        if kind == "vector":
            return [
                Sample(dict(r["metric"]), float(r["value"][1]), float(r["value"][0])) for r in data["result"]
            ]
        if kind == "scalar":
            ts, value = data["result"]
            return [Sample({}, float(value), float(ts))]
        raise PrometheusError(f"unexpected result type {kind} for {expr!r}")

    def query_value(self, expr: str) -> float | None:
        """The value of a query that has at most one series (None when empty)."""
        samples = self.query(expr)
        if len(samples) > 1:
            raise PrometheusError(f"{expr!r} returned {len(samples)} series, expected one")
        return samples[0].value if samples else None

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[dict[str, Any]]:
        """A range query; the raw ``result`` list (``metric`` and ``values`` per series)."""
        data = self.api(
            "query_range", {"query": expr, "start": repr(start), "end": repr(end), "step": repr(step)}
        )
        result: list[dict[str, Any]] = data["result"]
        return result

    def series_names(self, match: str = '{__name__=~".+"}') -> set[str]:
        """Names of the metric families Prometheus currently holds that match ``match``."""
        data = self.api("series", {"match[]": match, "start": repr(time.time() - 300)})
        return {str(s["__name__"]) for s in data}

    def wait_for(
        self,
        expr: str,
        predicate: Callable[[list[Sample]], bool] = bool,
        timeout: float = 30.0,
        interval: float = 0.5,
    ) -> list[Sample]:
        """Poll ``expr`` until ``predicate(samples)`` is true; raise TimeoutError with the last answer."""
        deadline = time.monotonic() + timeout
        last: list[Sample] = []
        while True:
            with contextlib.suppress(PrometheusError, OSError):
                last = self.query(expr)
                if predicate(last):
                    return last
            if time.monotonic() > deadline:
                raise TimeoutError(f"{expr!r}: condition not met after {timeout}s; last answer {last}")
            time.sleep(interval)

    def active_targets(self) -> list[dict[str, Any]]:
        data = self.api("targets", {"state": "active"})
        targets: list[dict[str, Any]] = data["activeTargets"]
        return targets

    def wait_for_targets(self, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until every configured target is active and its last scrape was ``up``."""
        wanted = {(t.job, t.address) for t in self.targets}
        deadline = time.monotonic() + timeout
        last: list[dict[str, Any]] = []
        while True:
            with contextlib.suppress(PrometheusError, OSError):
                last = self.active_targets()
                up = {
                    (str(t["scrapePool"]), urllib.parse.urlsplit(str(t["scrapeUrl"])).netloc)
                    for t in last
                    if t.get("health") == "up"
                }
                if wanted <= up:
                    return last
            if time.monotonic() > deadline:
                summary = [
                    (t["labels"].get("job"), t["labels"].get("instance"), t.get("health"), t.get("lastError"))
                    for t in last
                ]
                raise TimeoutError(f"targets not all up after {timeout}s: {summary}")
            time.sleep(0.25)
