"""Aim at the objective (issue 10, item 4), from docs/decisions.md "Replica sizing".

The capacity model's tolerance is a hysteresis below the capacity: the present read load past
`serving replicas x capacity` scales up at once (ceil(load / capacity)); a forecast must pass it
by more than the tolerance; a scale-down goes to ceil(forecast / (capacity x (1 - tolerance))),
so the replicas that stay carry the load at no more than 1 - tolerance of their capacity.
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
        (2880.0, 4),  # 0.90: the band's edge
        (2870.0, 4),  # 0.897: ceil(2870 / 800) = 4 all the same
        (2300.0, 4),  # 0.72, but 3 would carry it at 0.96: over 1 - tolerance, so no scale-down
        (2160.0, 3),  # 3 carry it at exactly 0.90: ceil(2160 / 720)
        (1500.0, 3),  # ceil(1500 / 720): the remaining replicas at no more than 90%
    ],
)
def test_the_present_load_past_the_capacity_scales_up_at_once(read_qps: float, expected: int) -> None:
    obs = make_obs(current=4, read_qps=read_qps, read_p99=0.6 * READ_OBJECTIVE)
    plan = decide(spec(), obs, Memory(), 0.0)
    assert plan.desired_replicas == expected


@pytest.mark.parametrize(
    ("read_qps", "slope_per_s", "expected"),
    [
        # 4 x 800/s = 3,200/s, a 120 s forecast: read QPS + 120 x slope
        (3000.0, 0.0, 4),
        (3000.0, 3.0, 4),  # forecast 3,360/s: 1.05 of the capacity, within the tolerance above it
        (3000.0, 4.0, 4),  # 3,480/s: 1.0875, still within it
        (3000.0, 5.0, 5),  # 3,600/s: 1.125, past it: ceil(3600 / 800)
        (3300.0, 0.0, 5),  # no forecast, but the present load is past the capacity
    ],
)
def test_a_forecast_must_pass_the_capacity_by_more_than_the_tolerance(
    read_qps: float, slope_per_s: float, expected: int
) -> None:
    # The averages' gap is slope x (300 s - 60 s); with no time since they were last updated
    # this tick leaves them as they are, and the slope is that gap's.
    reads = Ewma(fast=read_qps, slow=read_qps - 240.0 * slope_per_s, since=-1e6)
    memory = Memory(read_qps=reads, ewma_time=0.0)
    obs = make_obs(current=4, read_qps=read_qps, read_p99=0.6 * READ_OBJECTIVE)
    plan = decide(spec(120), obs, memory, 0.0)
    assert plan.desired_replicas == expected
