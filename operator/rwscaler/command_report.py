"""`rwscaler report NAME`: the weekly workload report (the seed's section 7) as one HTML page with
plots, plus PNG files (docs/report.md).

Reads the operator's own metrics (docs/operator-metrics.md) for one workload from Prometheus over
a range (default 12 weeks, hourly: one range query per series family, through the same async
client the operator uses), turns them into weeks (`core.weekly`), and draws the page
(`report_page`). A progress bar on stderr counts the queries. Nothing is written to the cluster.

Why not prometheus-api-client (which the project brief names): it is synchronous (requests), pulls
pandas and numpy for what is a dozen range queries, and would be a second Prometheus client
beside `metrics/client.py`, whose failures are already classified (unreachable, timeout, HTTP,
query errors) the way every other command reports them.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rwscaler.core.durations import parse_duration
from rwscaler.core.weekly import HOUR_S, WEEK_S, Hourly, weekly_report

if TYPE_CHECKING:
    from rwscaler.metrics.client import RangeSeries

DEFAULT_WEEKS = 12
TIMEOUT_S = 60.0
_DAY_UNITS = {"d": 86400.0, "w": WEEK_S}


def period(text: str) -> float:
    """Seconds in a report duration: Prometheus's units, plus d (days) and w (weeks)."""
    for unit, seconds in _DAY_UNITS.items():
        if text.endswith(unit) and text[:-1].isdigit():
            return int(text[:-1]) * seconds
    try:
        return parse_duration(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: expected e.g. 1w, 7d, 1h, 1m, 5s"
        ) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="the ReadWriteWorkload")
    parser.add_argument("-n", "--namespace", default="default", help="its namespace (default: default)")
    parser.add_argument(
        "--prometheus-url",
        required=True,
        metavar="URL",
        help="a Prometheus that scrapes the operator's /metrics (docs/operator-metrics.md)",
    )
    parser.add_argument(
        "--weeks",
        type=int,
        default=DEFAULT_WEEKS,
        help=f"weeks to report, ending now (default {DEFAULT_WEEKS})",
    )
    parser.add_argument(
        "--period",
        type=period,
        default=float(WEEK_S),
        metavar="DURATION",
        help="how long one of those 'weeks' is (default 1w; `make demo` reports minutes: 1m)",
    )
    parser.add_argument(
        "--step",
        type=period,
        metavar="DURATION",
        help="the sampling step within a period (default: an hour a week, period/168)",
    )
    parser.add_argument("--end", type=float, metavar="UNIX_TIME", help="the report's end (default: now)")
    parser.add_argument(
        "-o",
        "--out",
        type=Path,
        default=Path("rwscaler-report"),
        help="directory for report.html and the PNGs",
    )


def run(args: argparse.Namespace) -> int:
    if not 2 <= args.weeks <= 52:
        print("rwscaler report: --weeks must be between 2 and 52", file=sys.stderr)
        return 2
    step = args.step if args.step is not None else args.period * HOUR_S / WEEK_S
    if not 1.0 <= step <= args.period / 2:
        print(
            "rwscaler report: --step must be at least 1s and at most half of --period "
            f"({args.period:g}s), got {step:g}s",
            file=sys.stderr,
        )
        return 2
    from rwscaler import report_page  # noqa: PLC0415  (matplotlib: only this command needs it)

    if not report_page.has_matplotlib():
        print(f"rwscaler report: {report_page.NEEDS_MATPLOTLIB}", file=sys.stderr)
        return 2
    end = args.end if args.end is not None else time.time()
    try:
        hourly = asyncio.run(
            read(
                args.prometheus_url,
                args.namespace,
                args.name,
                Span(end, args.weeks, args.period, step),
                _progress,
            )
        )
    except QueryError as err:
        print(f"\nrwscaler report: {err}", file=sys.stderr)
        return 1
    if not hourly.read_qps and not hourly.write_qps and not hourly.replicas:
        print(
            f"rwscaler report: Prometheus at {args.prometheus_url} has no rwscaler series for "
            f"{args.namespace}/{args.name} in the {args.weeks} periods of {args.period:g}s asked for (does it scrape the operator's /metrics?)",
            file=sys.stderr,
        )
        return 1
    report = weekly_report(hourly)
    page = report_page.write(report, f"{args.namespace}/{args.name}", args.out)
    print(page)
    return 0


class QueryError(Exception):
    """A range query failed: the report says which and why, once."""


def _progress(done: int, total: int) -> None:
    width = 30
    filled = width * done // total
    sys.stderr.write(f"\rquerying Prometheus [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()


@dataclass(frozen=True, slots=True)
class Span:
    """What to read: `weeks` periods of `period` seconds ending at `end`, a sample every `step`."""

    end: float
    weeks: int
    period: float = WEEK_S
    step: float = HOUR_S


async def read(
    url: str, namespace: str, name: str, span: Span, progress: Callable[[int, int], None]
) -> Hourly:
    """The workload's history over the span, a sample per step."""
    # httpx loads only when a report is made (`rwscaler --help` and the other commands stay light).
    from rwscaler.metrics.client import Endpoint, PrometheusClient, QueryFailure  # noqa: PLC0415

    w = f'namespace="{namespace}", name="{name}"'
    ms = round(span.step * 1000)
    s = f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"  # each sample sums up the step before it
    queries = {
        "read_qps": f'avg_over_time(rwscaler_qps{{{w}, side="read"}}[{s}])',
        "write_qps": f'avg_over_time(rwscaler_qps{{{w}, side="write"}}[{s}])',
        "read_p99": f'max_over_time(rwscaler_latency_p99_seconds{{{w}, side="read"}}[{s}])',
        "write_p99": f'max_over_time(rwscaler_latency_p99_seconds{{{w}, side="write"}}[{s}])',
        "objectives": f"last_over_time(rwscaler_latency_objective_seconds{{{w}}}[{s}])",
        "replicas": f"avg_over_time(rwscaler_replicas_current{{{w}}}[{s}])",
        "classes": f"last_over_time(rwscaler_workload_class{{{w}}}[{s}]) == 1",
        "rules": f"sum by (rule) (increase(rwscaler_decisions_total{{{w}}}[{s}]))",
    }
    end = span.end
    start = end - span.weeks * span.period + span.step
    client = PrometheusClient(Endpoint(url), asyncio.Semaphore(4))
    answers: dict[str, list[RangeSeries]] = {}
    try:
        progress(0, len(queries))
        for done, (what, expr) in enumerate(queries.items(), start=1):
            answer = await client.query_range(expr, start, end, span.step, TIMEOUT_S)
            if isinstance(answer, QueryFailure):
                raise QueryError(f"{what}: {answer.reason.value}: {answer.message}")
            answers[what] = answer
            progress(done, len(queries))
    finally:
        await client.aclose()

    def one(what: str) -> tuple[tuple[float, float], ...]:
        series = answers[what]
        return series[0].values if series else ()

    objectives = {s.labels.get("side"): s.values[-1][1] for s in answers["objectives"] if s.values}
    return Hourly(
        end=end,
        weeks=span.weeks,
        period_s=span.period,
        step_s=span.step,
        read_qps=one("read_qps"),
        write_qps=one("write_qps"),
        read_p99=one("read_p99"),
        write_p99=one("write_p99"),
        read_objective=objectives.get("read"),
        write_objective=objectives.get("write"),
        replicas=one("replicas"),
        classes=tuple((t, s.labels.get("class", "")) for s in answers["classes"] for t, _ in s.values),
        rules={s.labels.get("rule", ""): s.values for s in answers["rules"]},
    )
