"""The workload class and ratio at every boundary DESIGN.md names (seed section 1, gaps closed):
r > 100 ReadDominated; 10 <= r <= 100 ReadHeavy; 1 <= r < 10 Mixed; 0.1 <= r < 1 WriteHeavy;
r < 0.1 WriteDominated; reads without writes ReadDominated; no traffic Idle; a side unknown Unknown."""

from __future__ import annotations

import math

import pytest
from tests.unit.builders import make_obs, make_spec

from rwscaler.core.classify import WorkloadClass, classify, read_write_ratio
from rwscaler.core.decide import decide
from rwscaler.core.memory import Memory

WC = WorkloadClass
EPS = 1e-9


@pytest.mark.parametrize(
    ("reads", "writes", "expected"),
    [
        # > 100
        (100_000.0, 1.0, WC.READ_DOMINATED),
        (100.0 + 1e-6, 1.0, WC.READ_DOMINATED),
        # exactly 100 belongs to ReadHeavy (10 <= r <= 100)
        (100.0, 1.0, WC.READ_HEAVY),
        (1000.0, 10.0, WC.READ_HEAVY),
        (100.0 - 1e-6, 1.0, WC.READ_HEAVY),
        # exactly 10 is ReadHeavy, just under is Mixed
        (10.0, 1.0, WC.READ_HEAVY),
        (500.0, 50.0, WC.READ_HEAVY),
        (10.0 - 1e-6, 1.0, WC.MIXED),
        # exactly 1 is Mixed, just under is WriteHeavy
        (1.0, 1.0, WC.MIXED),
        (250.0, 250.0, WC.MIXED),
        (1.0 - 1e-6, 1.0, WC.WRITE_HEAVY),
        # exactly 0.1 is WriteHeavy, just under is WriteDominated
        (0.1, 1.0, WC.WRITE_HEAVY),
        (10.0, 100.0, WC.WRITE_HEAVY),
        (0.1 - 1e-6, 1.0, WC.WRITE_DOMINATED),
        (1.0, 1000.0, WC.WRITE_DOMINATED),
        # no reads at all, some writes: ratio 0
        (0.0, 50.0, WC.WRITE_DOMINATED),
        # zero writes with reads: reads only, the far read end
        (5.0, 0.0, WC.READ_DOMINATED),
        # no traffic at all
        (0.0, 0.0, WC.IDLE),
        # a side unknown is never guessed
        (None, 10.0, WC.UNKNOWN),
        (10.0, None, WC.UNKNOWN),
        (None, None, WC.UNKNOWN),
    ],
)
def test_class_boundaries(reads: float | None, writes: float | None, expected: WorkloadClass) -> None:
    assert classify(reads, writes) is expected


@pytest.mark.parametrize(
    ("reads", "writes", "expected"),
    [(500.0, 50.0, 10.0), (1.0, 4.0, 0.25), (0.0, 3.0, 0.0), (7.0, 0.0, math.inf)],
)
def test_ratio(reads: float, writes: float, expected: float) -> None:
    assert read_write_ratio(reads, writes) == expected


@pytest.mark.parametrize(("reads", "writes"), [(0.0, 0.0), (None, 1.0), (1.0, None)])
def test_ratio_is_none_when_idle_or_unknown(reads: float | None, writes: float | None) -> None:
    assert read_write_ratio(reads, writes) is None


def test_classes_are_ordered_by_ratio() -> None:
    """Walking the ratio down from 1000:1 to 1:1000 visits each class once, in order."""
    order = [WC.READ_DOMINATED, WC.READ_HEAVY, WC.MIXED, WC.WRITE_HEAVY, WC.WRITE_DOMINATED]
    seen: list[WorkloadClass] = []
    for exponent in range(30, -31, -1):
        c = classify(10 ** (exponent / 10), 1.0)
        if not seen or seen[-1] is not c:
            seen.append(c)
    assert seen == order


@pytest.mark.parametrize(
    ("reads", "writes", "expected_class", "expected_ratio"),
    [
        (2000.0, 10.0, "ReadDominated", 200.0),
        (100.0, 1.0, "ReadHeavy", 100.0),
        (30.0, 10.0, "Mixed", 3.0),
        (10.0, 100.0, "WriteHeavy", 0.1),
        (1.0, 100.0, "WriteDominated", 0.01),
        (0.0, 0.0, "Idle", None),
        (None, 5.0, "Unknown", None),
    ],
)
def test_plan_reports_class_and_ratio(
    reads: float | None, writes: float | None, expected_class: str, expected_ratio: float | None
) -> None:
    plan = decide(make_spec(), make_obs(read_qps=reads, write_qps=writes), Memory(), 0.0)
    assert plan.workload_class == expected_class
    if expected_ratio is None:
        assert plan.ratio is None
    else:
        assert plan.ratio == pytest.approx(expected_ratio)
    assert plan.summary.startswith(expected_class)


def test_zero_writes_ratio_is_infinite_in_plan() -> None:
    plan = decide(make_spec(), make_obs(read_qps=300.0, write_qps=0.0), Memory(), 0.0)
    assert plan.workload_class == "ReadDominated"
    assert plan.ratio == math.inf
    assert "inf" in plan.summary
