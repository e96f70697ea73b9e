"""core/weekly.py: the weekly report's numbers (docs/report.md)."""

from __future__ import annotations

import pytest

from rwscaler.core.weekly import Hourly, weekly_report

WEEK, HOUR = 7 * 86400, 3600
END = 2_000_000_000.0
HOURS = WEEK // HOUR  # 168


def hours(weeks: int, value: object, *, skip: set[int] | None = None) -> list[tuple[float, float]]:
    """One sample an hour over `weeks` weeks ending at END; value(week, hour) or a constant."""
    out = []
    for k in range(weeks):
        start = END - (weeks - k) * WEEK
        for h in range(1, HOURS + 1):
            if skip and h in skip:
                continue
            v = value(k, h) if callable(value) else value
            out.append((start + h * HOUR, float(v)))  # type: ignore[arg-type]
    return out


def test_ratio_is_total_reads_over_total_writes_where_both_are_known() -> None:
    reads = hours(2, lambda k, h: 100 if h <= 84 else 300)
    writes = hours(2, 10)
    w = weekly_report(Hourly(END, 2, read_qps=reads, write_qps=writes)).weeks
    assert w[0].ratio == pytest.approx(20.0) and w[0].read_qps == pytest.approx(200.0)
    assert w[0].coverage == 1.0


def test_a_week_with_fewer_than_half_its_hours_known_has_no_ratio() -> None:
    missing = set(range(1, 86))  # 85 of 168 hours missing: 83 known, under half
    reads = hours(1, 100, skip=missing)
    writes = hours(1, 10)
    week = weekly_report(Hourly(END, 1 + 1, read_qps=reads, write_qps=writes)).weeks[-1]
    assert week.ratio is None and week.coverage == pytest.approx(83 / 168)
    enough = weekly_report(Hourly(END, 2, read_qps=hours(1, 100, skip=set(range(1, 84))), write_qps=writes))
    assert enough.weeks[-1].ratio == pytest.approx(10.0)  # 85 hours known: over half


def test_nothing_recorded_is_unknown_never_zero() -> None:
    week = weekly_report(Hourly(END, 2)).weeks[0]
    assert (week.ratio, week.read_qps, week.workload_class, week.replicas_avg) == (None, None, None, None)
    assert week.read.median is None and week.rules == {}


def test_class_latency_replicas_and_rules_per_week() -> None:
    start = END - WEEK
    classes = [(start + h * HOUR, "ReadHeavy" if h <= 100 else "Mixed") for h in range(1, HOURS + 1)]
    p99 = hours(1, lambda k, h: 0.01 * (h % 10 + 1))  # 10..100 ms, evenly
    week = weekly_report(
        Hourly(
            END,
            1,
            read_p99=p99,
            read_objective=0.05,
            replicas=hours(1, lambda k, h: 2 if h <= 100 else 4),
            classes=classes,
            rules={"LatencyStep": hours(1, lambda k, h: 1 if h == 5 else 0), "Stabilized": hours(1, 0)},
        )
    ).weeks[0]
    assert week.workload_class == "ReadHeavy"
    assert week.read.worst == pytest.approx(0.10)
    assert week.read.breach_share == pytest.approx(0.5, abs=0.02)  # 60..100 ms of 10..100
    assert (week.replicas_min, week.replicas_max) == (2, 4)
    assert week.rules == {"LatencyStep": 1}  # a rule that never took part is left out


@pytest.mark.parametrize(
    ("first", "last", "direction", "advice"),
    [
        (100.0, 30.0, -1, "evaluate write-optimized storage"),
        (30.0, 100.0, 1, "provision read replicas ahead of the objective"),
        (50.0, 50.0, 0, None),
    ],
)
def test_the_trend_and_its_recommendation_are_the_decision_cores(
    first: float, last: float, direction: int, advice: str | None
) -> None:
    weeks = 12
    reads = hours(weeks, 1000)
    writes = hours(weeks, lambda k, h: 1000 / (first * (last / first) ** (k / (weeks - 1))))
    report = weekly_report(Hourly(END, weeks, read_qps=reads, write_qps=writes))
    assert report.trend.direction == direction
    if advice is None:
        assert report.recommendations == ()
    else:
        assert len(report.recommendations) == 1 and advice in report.recommendations[0].message


def test_a_shorter_period_is_judged_on_its_own_samples() -> None:
    """`rwscaler report --period 1m --step 5s` (make demo): 12 samples a period, half needed."""
    end, period, step = 1_000_000.0, 60.0, 5.0
    reads = [(end - 120 + i * step, 1000.0 if i <= 12 else 3000.0) for i in range(1, 25)]
    writes = [(t, 10.0) for t, _ in reads if t <= end - 60 or t > end - 30]  # the last period: 6 of 12
    report = weekly_report(Hourly(end, 2, read_qps=reads, write_qps=writes, period_s=period, step_s=step))
    first, last = report.weeks
    assert (first.start, first.end, last.end) == (end - 120, end - 60, end)
    assert first.ratio == pytest.approx(100.0) and first.coverage == 1.0
    assert last.ratio == pytest.approx(300.0) and last.coverage == 0.5
    assert report.period_s == period
