"""A Prometheus exporter whose metric values the test sets at run time.

Used by the metrics and operator integration tests (and the observe benchmark) to control
exactly what a real Prometheus scrapes: ``set()`` a gauge or counter sample, ``inc()`` a
counter, ``remove()`` a series or a whole family, ``clear()`` everything. It can also
misbehave on purpose (``fail_with(503)``, ``delay = 2.0``) so that tests can show how the
operator handles a broken target.

    with ControlledExporter() as exp, PrometheusServer([exp.target("app", pod="a-0")]) as prom:
        exp.set("app_requests_total", {"side": "read"}, 10, kind="counter")
        prom.wait_for_targets()

It is a threaded HTTP server on 127.0.0.1 on a free port; ``/metrics`` is served in the
Prometheus text exposition format 0.0.4.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal

from .ports import LOOPBACK, free_port
from .prometheus import ScrapeTarget

MetricKind = Literal["gauge", "counter", "untyped"]
LabelKey = tuple[tuple[str, str], ...]

_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _label_key(labels: Mapping[str, str] | None) -> LabelKey:
    items = tuple(sorted((labels or {}).items()))
    for name, value in items:
        if not _LABEL_RE.match(name) or name.startswith("__"):
            raise ValueError(f"invalid label name {name!r}")
        if not isinstance(value, str):
            raise TypeError(f"label {name!r}: value must be a str, got {type(value).__name__}")
    return items


def _escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def format_value(value: float) -> str:
    """A sample value in the text format (NaN, +Inf, -Inf spelled as Prometheus expects)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


@dataclass
class _Family:
    kind: MetricKind
    help: str
    samples: dict[LabelKey, float] = field(default_factory=dict)


class ControlledExporter:
    """A ``/metrics`` endpoint on 127.0.0.1 serving the values the test sets."""

    def __init__(self, port: int | None = None, host: str = LOOPBACK) -> None:
        self._port = port
        self.host = host
        self._lock = threading.Lock()
        self._families: dict[str, _Family] = {}
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._scrapes = 0
        self._failure_status: int | None = None
        #: Seconds every response is delayed (to simulate a slow target).
        self.delay: float = 0.0

    # ---- values -----------------------------------------------------------------
    def set(
        self,
        name: str,
        labels: Mapping[str, str] | None = None,
        value: float = 0.0,
        *,
        kind: MetricKind = "gauge",
        help: str | None = None,
    ) -> None:
        """Set one sample. A family's kind is fixed by its first ``set``/``inc``."""
        if not _NAME_RE.match(name):
            raise ValueError(f"invalid metric name {name!r}")
        key = _label_key(labels)
        with self._lock:
            family = self._families.get(name)
            if family is None:
                family = _Family(kind=kind, help=help or f"{name} (set by the test)")
                self._families[name] = family
            elif family.kind != kind:
                raise ValueError(f"{name} is a {family.kind}, not a {kind}")
            if help is not None:
                family.help = help
            family.samples[key] = float(value)

    def inc(self, name: str, labels: Mapping[str, str] | None = None, amount: float = 1.0) -> float:
        """Add ``amount`` to a counter sample (created at 0); return the new value."""
        if amount < 0:
            raise ValueError("a counter only goes up")
        key = _label_key(labels)
        with self._lock:
            family = self._families.setdefault(
                name, _Family(kind="counter", help=f"{name} (set by the test)")
            )
            if family.kind != "counter":
                raise ValueError(f"{name} is a {family.kind}, not a counter")
            family.samples[key] = family.samples.get(key, 0.0) + amount
            return family.samples[key]

    def get(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        with self._lock:
            family = self._families.get(name)
            return None if family is None else family.samples.get(_label_key(labels))

    def remove(self, name: str, labels: Mapping[str, str] | None = None) -> None:
        """Remove one series (``labels`` given) or the whole family (``labels`` None)."""
        with self._lock:
            if labels is None:
                self._families.pop(name, None)
                return
            family = self._families.get(name)
            if family is not None:
                family.samples.pop(_label_key(labels), None)
                if not family.samples:
                    del self._families[name]

    def clear(self) -> None:
        with self._lock:
            self._families.clear()

    def fail_with(self, status: int | None) -> None:
        """Answer every scrape with this HTTP status (None: serve normally again)."""
        with self._lock:
            self._failure_status = status

    @property
    def scrape_count(self) -> int:
        """How many times ``/metrics`` was requested."""
        with self._lock:
            return self._scrapes

    def render(self) -> str:
        """The exposition text that the next scrape will get."""
        with self._lock:
            lines: list[str] = []
            for name in sorted(self._families):
                family = self._families[name]
                help_text = family.help.replace("\\", "\\\\").replace("\n", "\\n")
                lines.append(f"# HELP {name} {help_text}")
                lines.append(f"# TYPE {name} {family.kind}")
                for key in sorted(family.samples):
                    value = format_value(family.samples[key])
                    if key:
                        rendered = ",".join(f'{k}="{_escape_label_value(v)}"' for k, v in key)
                        lines.append(f"{name}{{{rendered}}} {value}")
                    else:
                        lines.append(f"{name} {value}")
            return "\n".join(lines) + "\n"

    # ---- server -----------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the exporter is not started")
        return self._port

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, as a Prometheus scrape target."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}/metrics"

    def target(self, job: str, **labels: str) -> ScrapeTarget:
        """A scrape target for :class:`tests.support.prometheus.PrometheusServer`."""
        return ScrapeTarget(job=job, address=self.address, labels=dict(labels))

    def start(self) -> ControlledExporter:
        if self._server is not None:
            return self
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != "/metrics":
                    self.send_error(404)
                    return
                with exporter._lock:
                    exporter._scrapes += 1
                    failure = exporter._failure_status
                if exporter.delay > 0:
                    time.sleep(exporter.delay)
                if failure is not None:
                    self.send_error(failure)
                    return
                body = exporter.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        port = self._port if self._port is not None else free_port()
        server = ThreadingHTTPServer((self.host, port), Handler)
        server.daemon_threads = True
        self._server = server
        self._port = port
        self._thread = threading.Thread(target=server.serve_forever, name=f"exporter-{port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ControlledExporter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
