"""The weekly workload report's numbers (the seed's section 7): one row per week of a workload's
history, and the trend and recommendations they imply.

Pure: `rwscaler report` (command_report.py) reads the operator's own metrics from Prometheus
(docs/operator-metrics.md) as hourly samples and hands them here as `Hourly`; the page is drawn by
`report_page.py`. The trend is the decision core's own (`ratio_trend`, on one point a week), and
its recommendation the words the operator's status gives for it (`explain.trend_recommendation`),
so the report and the operator never disagree.

A week is judged only on what was recorded: a ratio needs reads and writes known in at least half
of its hours (`MIN_COVERAGE`), else it is None (unknown, never 0), as is every figure of a week
without samples.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from rwscaler.core.explain import trend_recommendation
from rwscaler.core.observation import RatioHistory
from rwscaler.core.plan import Recommendation
from rwscaler.core.ratio_trend import RatioTrend, ratio_trend

WEEK_S = 7 * 86400
HOUR_S = 3600
# A week's ratio needs both sides known in at least this share of its hours.
MIN_COVERAGE = 0.5

Samples = Sequence[tuple[float, float]]  # (unix time, value), hourly


@dataclass(frozen=True, slots=True)
class Hourly:
    """A workload's history as the report reads it: hourly samples of the operator's metrics."""

    end: float  # the report's end (unix time); week k of n ends at end - (n - 1 - k) weeks
    weeks: int
    # A "week" is `period_s` long and sampled every `step_s` (`rwscaler report --period/--step`:
    # `make demo` reports minutes sampled every few seconds).
    period_s: float = WEEK_S
    step_s: float = HOUR_S
    read_qps: Samples = ()
    write_qps: Samples = ()
    read_p99: Samples = ()
    write_p99: Samples = ()
    read_objective: float | None = None
    write_objective: float | None = None
    replicas: Samples = ()
    classes: Sequence[tuple[float, str]] = ()  # (time, class) where the class gauge was 1
    rules: Mapping[str, Samples] = field(default_factory=dict)  # rule -> decisions in each hour


@dataclass(frozen=True, slots=True)
class Latency:
    """One side's hourly p99 over a week, against its objective."""

    median: float | None
    p95: float | None
    worst: float | None
    breach_share: float | None  # share of the known hours over the objective


@dataclass(frozen=True, slots=True)
class Week:
    start: float
    end: float
    read_qps: float | None  # the week's average
    write_qps: float | None
    ratio: float | None
    coverage: float  # share of the hours with both sides known
    workload_class: str | None  # the class most of its hours had
    read: Latency
    write: Latency
    replicas_min: float | None
    replicas_avg: float | None
    replicas_max: float | None
    rules: Mapping[str, float]  # rule -> decisions it took part in


@dataclass(frozen=True, slots=True)
class WeeklyReport:
    weeks: tuple[Week, ...]
    trend: RatioTrend
    recommendations: tuple[Recommendation, ...]
    read_objective: float | None
    write_objective: float | None
    period_s: float = WEEK_S


def weekly_report(hourly: Hourly) -> WeeklyReport:
    starts = [hourly.end - (hourly.weeks - k) * hourly.period_s for k in range(hourly.weeks)]
    weeks = tuple(_week(hourly, start) for start in starts)
    trend = ratio_trend(RatioHistory(hourly.period_s, tuple(w.ratio for w in weeks)))
    recommendation = trend_recommendation(trend)
    return WeeklyReport(
        weeks,
        trend,
        (recommendation,) if recommendation is not None else (),
        hourly.read_objective,
        hourly.write_objective,
        hourly.period_s,
    )


def _by_time(samples: Samples, start: float, period: float) -> dict[float, float]:
    """The week's finite samples (the week is (start, start + period]), by time."""
    return {t: v for t, v in samples if start < t <= start + period and math.isfinite(v)}


def _within(samples: Samples, start: float, period: float) -> list[float]:
    return list(_by_time(samples, start, period).values())


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _quantile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile by linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    at = q * (len(ordered) - 1)
    low = math.floor(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def _latency(samples: Samples, start: float, period: float, objective: float | None) -> Latency:
    values = _within(samples, start, period)
    breach = None
    if values and objective is not None:
        breach = sum(1 for v in values if v > objective) / len(values)
    return Latency(_quantile(values, 0.5), _quantile(values, 0.95), max(values, default=None), breach)


def _week(hourly: Hourly, start: float) -> Week:
    period = hourly.period_s
    reads, writes = _by_time(hourly.read_qps, start, period), _by_time(hourly.write_qps, start, period)
    both = sorted(reads.keys() & writes.keys())
    coverage = min(len(both) / round(period / hourly.step_s), 1.0)
    ratio = None
    if both and coverage >= MIN_COVERAGE:
        total_writes = sum(writes[t] for t in both)
        if total_writes > 0:
            ratio = sum(reads[t] for t in both) / total_writes
    classes = Counter(c for t, c in hourly.classes if start < t <= start + period)
    replicas = _within(hourly.replicas, start, period)
    return Week(
        start=start,
        end=start + period,
        read_qps=_mean(list(reads.values())),
        write_qps=_mean(list(writes.values())),
        ratio=ratio,
        coverage=coverage,
        workload_class=classes.most_common(1)[0][0] if classes else None,
        read=_latency(hourly.read_p99, start, period, hourly.read_objective),
        write=_latency(hourly.write_p99, start, period, hourly.write_objective),
        replicas_min=min(replicas, default=None),
        replicas_avg=_mean(replicas),
        replicas_max=max(replicas, default=None),
        rules={
            rule: total
            for rule, samples in sorted(hourly.rules.items())
            if (total := sum(_within(samples, start, period))) > 0
        },
    )
