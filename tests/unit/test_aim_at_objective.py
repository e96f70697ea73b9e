"""Aim at the objective (issue 10, item 4), from docs/decisions.md "Replica sizing".

The capacity model's tolerance is a hysteresis below the capacity: the present read load past
`serving replicas x capacity` (on its 60 s average when lower than the sample; a sample past
1 + tolerance on its own) scales up at once to ceil(load / capacity); a forecast (over
forecastSeconds) must pass the capacity by more than the tolerance; a scale-down waits until the load is under
1 - tolerance of the serving capacity, then goes to ceil(load / capacity), as the HPA does.
"""

from __future__ import annotations

import pytest
from tests.unit.builders import READ_OBJECTIVE, make_obs, no_stabilization

from rwscaler.core.decide import decide
from rwscaler.core.memory import Ewma, Memory
from rwscaler.core.spec import ReadWriteWorkloadSpec


def spec(forecast: int = 0) -> ReadWriteWorkloadSpec:
    return no_stabilization(
        replicas={"targetReadQPSPerReplica": 800.0, "maxReplicas": 20},
        behavior={"tolerance": 0.1, "trend": {"forecastSeconds": forecast}},
    )


@pytest.mark.parametrize(
    ("read_qps", "expected"),
    [
        # 4 replicas x 800/s = 3,200/s; tolerance 0.1
        (3520.0, 5),  # 1.10: the old band held here, 10% past the capacity
        (3300.0, 5),  # 1.03: past the capacity
        (3201.0, 5),  # just past it
        (3200.0, 4),  # exactly at it
        (2900.0, 4),  # 0.91: within the band below
        (2880.0, 4),  # 0.90: the band's edge, not under it
        (2870.0, 4),  # 0.897: under the band, but ceil(2870 / 800) = 4 all the same
        (2300.0, 3),  # 0.72: ceil(2300 / 800)
        (1500.0, 2),  # ceil(1500 / 800)
    ],
)
def test_the_present_load_past_the_capacity_scales_up_at_once(read_qps: float, expected: int) -> None:
    obs = make_obs(current=4, read_qps=read_qps, read_p99=0.6 * READ_OBJECTIVE)
    plan = decide(spec(), obs, Memory(), 0.0)
    assert plan.desired_replicas == expected


@pytest.mark.parametrize(
    ("read_qps", "slope_per_s", "p99_level", "expected"),
    [
        # 4 x 800/s = 3,200/s; forecastSeconds 120: read QPS + 120 x slope
        (3000.0, 0.0, 0.6, 4),
        (3000.0, 3.0, 0.6, 4),  # forecast 3,360/s: 1.05 of the capacity, within the tolerance above it
        (3000.0, 4.0, 0.6, 4),  # 3,480/s: 1.0875, still within it
        (3000.0, 5.0, 0.6, 5),  # 3,600/s: 1.125, past it: ceil(3600 / 800)
        (3000.0, 3.0, 0.95, 4),  # read p99 near its objective changes nothing: the band is for the load
        (3300.0, 0.0, 0.6, 5),  # no forecast, but the present load is past the capacity
    ],
)
def test_a_forecast_must_pass_the_capacity_by_more_than_the_tolerance(
    read_qps: float, slope_per_s: float, p99_level: float, expected: int
) -> None:
    # The averages' gap is slope x (300 s - 60 s); with no time since they were last updated
    # this tick leaves them as they are, and the slope is that gap's.
    reads = Ewma(fast=read_qps, slow=read_qps - 240.0 * slope_per_s, since=-1e6)
    memory = Memory(read_qps=reads, ewma_time=0.0)
    obs = make_obs(current=4, read_qps=read_qps, read_p99=p99_level * READ_OBJECTIVE)
    plan = decide(spec(120), obs, memory, 0.0)
    assert plan.desired_replicas == expected


@pytest.mark.parametrize(
    ("sample", "average", "expected"),
    [
        # 4 x 800/s = 3,200/s, tolerance 0.1
        (3300.0, 3100.0, 4),  # a sample at 1.03 over a 60 s average at 0.97: noise, hold
        (3300.0, 3250.0, 5),  # both past the capacity: sustained, scale up
        (3530.0, 3100.0, 5),  # a sample past 1 + tolerance (1.103): a jump, not noise
        (3500.0, 3100.0, 4),  # 1.094: within the band, and the average is under the capacity
    ],
)
def test_one_noisy_sample_past_the_capacity_is_not_a_reason(
    sample: float, average: float, expected: int
) -> None:
    # No time since the averages were updated: this tick leaves the 60 s average where it was.
    memory = Memory(read_qps=Ewma(fast=average, slow=average, since=-1e6), ewma_time=0.0)
    obs = make_obs(current=4, read_qps=sample, read_p99=0.6 * READ_OBJECTIVE)
    assert decide(spec(), obs, memory, 0.0).desired_replicas == expected


@pytest.mark.parametrize(
    ("learned", "expected"),
    [
        (None, 4),  # forecast 3,400/s on 4 x 800: 1.0625, within the 10% band
        (840.0, 5),  # the objective broke at 840/s per replica: the band stops at 1.05
        (900.0, 4),  # broke at 900/s: the band (1.1) is already under it
    ],
)
def test_the_band_never_reaches_past_a_learned_breaking_point(learned: float | None, expected: int) -> None:
    reads = Ewma(fast=3000.0, slow=3000.0 - 240.0 * (400.0 / 120.0), since=-1e6)  # slope 400/120 s
    memory = Memory(read_qps=reads, ewma_time=0.0, breach_qps_per_replica=learned, breach_time=0.0)
    obs = make_obs(current=4, read_qps=3000.0, read_p99=0.6 * READ_OBJECTIVE)
    assert decide(spec(120), obs, memory, 0.0).desired_replicas == expected
