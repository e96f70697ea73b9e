"""Regressions found in review: a terminating lagging pod, a scale-down right after an outage
longer than the window, and a failed lag query that must not empty the read pool."""

from __future__ import annotations

from tests.unit.builders import READ_OBJECTIVE, make_obs, make_spec, replica, run_ticks

from rwscaler.core.decide import decide
from rwscaler.core.memory import Memory
from rwscaler.core.observation import Signal, UnknownReason
from rwscaler.core.plan import Rule

DOWN = Signal.unknown(UnknownReason.UNREACHABLE, "connection refused")


def test_a_lagging_pod_above_the_statefulset_count_is_ignored_not_a_crash() -> None:
    # After a scale-in to 2, pod 2 is still terminating, and it lags.
    obs = make_obs(current=2, replicas=[replica(0), replica(1), replica(2, lag=60.0)])
    plan = decide(make_spec(), obs, Memory(), 0.0)
    assert plan.read_pool == ("db-replica-0", "db-replica-1")
    assert "db-replica-2" not in plan.memory.pool


def test_no_scale_down_on_the_first_sample_after_an_outage_longer_than_the_window() -> None:
    spec = make_spec(behavior={"scaleDown": {"stabilizationWindowSeconds": 300, "maxStep": 1}})
    calm = make_obs(current=4, lags=[0.1] * 4, read_p99=0.1 * READ_OBJECTIVE, read_qps=100.0)
    blind = make_obs(current=4, lags=[DOWN] * 4, read_qps=DOWN, write_qps=DOWN, read_p99=DOWN, write_p99=DOWN)
    seen = [blind] * 30 + [calm] * 2  # 450 s blind at 15 s ticks, then low load
    ticks = run_ticks(spec, [calm, *seen], step=15.0)
    assert all(t.plan.scale_to is None for t in ticks), [t.plan.summary for t in ticks if t.plan.scale_to]


def test_a_failed_lag_query_holds_the_pool_instead_of_emptying_it() -> None:
    spec = make_spec()
    plan = decide(spec, make_obs(current=2), Memory(), 0.0)
    assert plan.read_pool == ("db-replica-0", "db-replica-1")
    timeout = Signal.unknown(UnknownReason.TIMEOUT, "lag query timed out")
    held = decide(spec, make_obs(current=2, lags=[timeout, timeout]), plan.memory, 15.0)
    assert held.read_pool == ("db-replica-0", "db-replica-1")
    assert held.fired(Rule.METRICS_UNKNOWN)


def test_a_missing_lag_series_still_takes_that_replica_out() -> None:
    spec = make_spec()
    plan = decide(spec, make_obs(current=2), Memory(), 0.0)
    empty = Signal.unknown(UnknownReason.EMPTY, "no series")
    after = decide(spec, make_obs(current=2, lags=[0.1, empty]), plan.memory, 15.0)
    assert after.read_pool == ("db-replica-0",)
