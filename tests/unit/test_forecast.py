"""The read-load forecast from the seasons (issue 10, item 5), from docs/decisions.md "Forecast".

The expected load is the highest of the trend (read QPS + climb x forecastSeconds) and, per
season with history, `peak x growth` with growth = today's 60 s average / the load one season
ago, bounded to [1/2, 2]; the hold (over scaleDownLookaheadSeconds) is the highest season's
`peak_down x growth`, and a scale-down keeps it. Numbers here come from those sentences.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from tests.unit.builders import make_obs, make_spec, no_stabilization, rec_types, rules

from rwscaler.core.decide import decide
from rwscaler.core.forecast import forecast_read_qps, horizons, trend_horizon
from rwscaler.core.memory import Ewma, Memory
from rwscaler.core.observation import History, Observation, RatioHistory, Season
from rwscaler.core.spec import ReadWriteWorkloadSpec
from rwscaler.core.vocabulary import EffectiveMode, RecommendationType, Rule
from rwscaler.report import render_status

DAY, WEEK = 86400.0, 7 * 86400.0


def history(*seasons: Season) -> History:
    return History(horizon_up_s=435.0, horizon_down_s=3900.0, seasons=seasons)


def test_without_history_the_forecast_is_the_trend_or_the_present() -> None:
    present = forecast_read_qps(1000.0, 1000.0, 0.0, 120.0, History())
    assert (present.expected_qps, present.basis, present.hold_qps) == (1000.0, "present", None)
    climbing = forecast_read_qps(1000.0, 1000.0, 2.0, 120.0, History())
    assert (climbing.expected_qps, climbing.basis) == (1240.0, "trend")


def test_yesterdays_rise_scaled_by_today_against_yesterday() -> None:
    # Yesterday 1,000/s at this time, then 4,000/s within the horizon; today is 10% busier.
    f = forecast_read_qps(1100.0, 1100.0, 0.0, 120.0, history(Season(DAY, 1000.0, 4000.0, 4000.0)))
    assert f.expected_qps == pytest.approx(4400.0)
    assert f.basis == "yesterday"
    assert f.hold_qps == pytest.approx(4400.0)
    assert f.hold_basis == "yesterday"


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        (3000.0, 8000.0),  # 3x yesterday, bounded to 2x: 4,000 x 2
        (2000.0, 8000.0),  # exactly 2x
        (400.0, 2000.0),  # 0.4x, bounded to 1/2: 4,000 x 0.5 (still above today's 400/s)
    ],
)
def test_growth_is_bounded_to_half_and_double(today: float, expected: float) -> None:
    f = forecast_read_qps(today, today, 0.0, 120.0, history(Season(DAY, 1000.0, 4000.0, 4000.0)))
    assert f.expected_qps == pytest.approx(expected)


def test_the_busier_season_wins_and_is_named() -> None:
    seasons = (Season(DAY, 1000.0, 1200.0, 1500.0), Season(WEEK, 1000.0, 3000.0, 3500.0))
    f = forecast_read_qps(1000.0, 1000.0, 0.0, 120.0, history(*seasons))
    assert (f.expected_qps, f.basis) == (3000.0, "a week ago")
    assert (f.hold_qps, f.hold_basis) == (3500.0, "a week ago")


def test_a_season_with_unknown_history_is_skipped() -> None:
    seasons = (Season(DAY, None, 9000.0, 9000.0), Season(WEEK, 1000.0, None, None))
    f = forecast_read_qps(1000.0, 1000.0, 0.0, 120.0, history(*seasons))
    assert (f.expected_qps, f.basis, f.hold_qps) == (1000.0, "present", None)


@pytest.mark.parametrize(
    ("present", "expected", "basis"),
    [
        # Yesterday rose from 1,000/s to 5,000/s; today the same rush is under way (growth 1 from
        # the 5-minute averages) and its slope, 20/s, would carry it to present + 2,400/s.
        (4000.0, 5000.0, "yesterday"),  # within what yesterday expected: its peak bounds the trend
        (5500.0, 5500.0, "yesterday"),  # 10% over the peak is still within it: the peak, not less
        (5501.0, 7901.0, "trend"),  # past 110% of it: today is not yesterday, the trend rules
    ],
)
def test_a_season_bounds_the_trend_while_the_load_is_within_it(
    present: float, expected: float, basis: str
) -> None:
    h = dataclasses.replace(history(Season(DAY, 1000.0, 5000.0, 5000.0)), now_qps=1000.0)
    f = forecast_read_qps(present, present, 20.0, 120.0, h)
    assert f.expected_qps == pytest.approx(max(expected, present))
    assert f.basis == basis


def test_growth_compares_the_5_minute_averages_when_known() -> None:
    # Mid-jump, the 60 s average (3,000/s) has moved further than the 5-minute one (2,000/s);
    # yesterday's 5-minute average at this moment was 2,000/s too: growth 1, not 1.5.
    h = dataclasses.replace(history(Season(DAY, 2000.0, 5000.0, 5000.0)), now_qps=2000.0)
    assert forecast_read_qps(3000.0, 3000.0, 0.0, 120.0, h).expected_qps == pytest.approx(5000.0)
    unknown_now = history(Season(DAY, 2000.0, 5000.0, 5000.0))
    assert forecast_read_qps(3000.0, 3000.0, 0.0, 120.0, unknown_now).expected_qps == pytest.approx(7500.0)


def test_horizons_cover_the_trend_a_tick_and_the_smoothing() -> None:
    spec = make_spec(behavior={"intervalSeconds": 15, "trend": {"forecastSeconds": 120}})
    assert trend_horizon(spec) == 120.0
    # up: 120 + 15 + 300; down: max(3600, 135) + 300
    assert horizons(spec, 15.0) == (435.0, 3900.0)
    assert horizons(spec, 300.0) == (720.0, 3900.0)  # a coarser tick (the simulator's step)


@pytest.mark.parametrize(
    ("trend", "message"),
    [
        ({"seasonsSeconds": [400]}, "must be longer than scaleDownLookaheadSeconds"),
        (
            {"scaleDownLookaheadSeconds": 0, "seasonsSeconds": [400]},
            "must be longer than trend.forecastSeconds",
        ),
        ({"windowSeconds": 1209600}, "at least 3 periods"),
        ({"shiftSeconds": 700000}, "must not exceed periodSeconds"),
    ],
)
def test_trend_settings_that_cannot_work_are_refused(trend: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_spec(behavior={"trend": trend})


def spec_800(mode: str = "Enforce") -> ReadWriteWorkloadSpec:
    return no_stabilization(
        replicas={"targetReadQPSPerReplica": 800.0, "maxReplicas": 10},
        behavior={"trend": {"forecastSeconds": 120}},
        mode=mode,
    )


def with_history(h: History, **obs: Any) -> Observation:
    return dataclasses.replace(make_obs(**obs), history=h)


def test_yesterdays_morning_rush_is_provisioned_before_it_comes() -> None:
    # 1,200/s now on 2 replicas; yesterday this moment was 1,200/s and the next minutes 5,400/s.
    h = history(Season(DAY, 1200.0, 5400.0, 5400.0))
    plan = decide(spec_800(), with_history(h, current=2, read_qps=1200.0), Memory(), 1000.0)
    assert plan.scale_to == 7  # ceil(5400 / 800)
    assert Rule.READ_FORECAST in rules(plan)
    assert plan.forecast is not None and plan.forecast.basis == "yesterday"


def test_recommend_mode_offers_pre_provisioning_with_the_count() -> None:
    h = history(Season(DAY, 1200.0, 5400.0, 5400.0))
    plan = decide(spec_800("Recommend"), with_history(h, current=2, read_qps=1200.0), Memory(), 1000.0)
    assert plan.scale_to is None
    pre = next(r for r in plan.recommendations if r.type is RecommendationType.PRE_PROVISION_REPLICAS)
    assert pre.replicas == 7
    assert "yesterday" in pre.message and "Recommend mode applies nothing" in pre.message


def test_no_pre_provisioning_offer_when_the_season_asks_for_no_more() -> None:
    h = history(Season(DAY, 1200.0, 1250.0, 1250.0))
    plan = decide(spec_800("Recommend"), with_history(h, current=2, read_qps=1200.0), Memory(), 1000.0)
    assert RecommendationType.PRE_PROVISION_REPLICAS not in rec_types(plan)


@pytest.mark.parametrize(
    ("peak_down", "expected"),
    [
        (None, 2),  # no season: 1,200/s on 5 replicas is under 90%: ceil(1200 / 800)
        (5400.0, 5),  # the next hour needed 5,400/s yesterday: keep what carries it (7 > 5, so 5)
        (3000.0, 4),  # keep ceil(3000 / 800) = 4
    ],
)
def test_a_scale_down_keeps_what_the_next_hour_needed(peak_down: float | None, expected: int) -> None:
    seasons = () if peak_down is None else (Season(DAY, 1200.0, 1200.0, peak_down),)
    memory = Memory(read_qps=Ewma(fast=1200.0, slow=1200.0, since=0.0), ewma_time=1000.0)
    plan = decide(spec_800(), with_history(history(*seasons), current=5, read_qps=1200.0), memory, 1000.0)
    assert plan.desired_replicas == expected


def test_status_shows_the_forecast_and_the_trend_verdict() -> None:
    h = dataclasses.replace(
        history(Season(DAY, 1200.0, 5400.0, 6000.0)),
        ratios=RatioHistory(period_s=WEEK, points=(50.0,) * 12, shift_s=3 * DAY),
    )
    obs = with_history(h, current=2, read_qps=1200.0)
    plan = decide(spec_800(), obs, Memory(), 1000.0)
    status = render_status(plan, obs, previous={}, generation=1, now=1000.0, mode=EffectiveMode.ENFORCE)
    assert status["forecast"] == {
        "expectedReadQPS": "5400/s",
        "horizon": "2m",
        "basis": "yesterday",
        "keepReadQPS": "6000/s",
        "keepHorizon": "1h5m",
        "keepBasis": "yesterday",
    }
    assert status["readWriteTrend"]["verdict"] == "Steady"
    assert status["readWriteTrend"]["points"] == 12
