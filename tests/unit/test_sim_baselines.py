"""The simulator's HPA-based baselines, held to the rules KEDA and the HPA document.

keda-qps is KEDA's Prometheus scaler on total read QPS with an AverageValue threshold of the
workload's targetReadQPSPerReplica (800 in the default workload), feeding the HPA's default
behaviour. Every expected count below is worked out by hand from those documented rules
(kubernetes replica_calculator: ceil(total / target), 0.1 tolerance on total / (target x
current); HPA default behavior: 300 s scale-down stabilization seeded with the current count,
scale-up by at most max(100%, 4 pods) per 15 s; KEDA pollingInterval 30 s; an empty Prometheus
result is 0 with ignoreNullValues' default; a failed query propagates no metric, so the HPA
holds), not taken from the module's constants.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from rwscaler.cli import main
from rwscaler.core.observation import Observation, Signal, UnknownReason
from rwscaler.core.spec import ReadWriteWorkloadSpec
from rwscaler.sim.engine import simulate
from rwscaler.sim.keda_qps import KedaQpsPolicy
from rwscaler.sim.model import ModelParams
from rwscaler.sim.policies import HpaLatencyPolicy, available_policies
from rwscaler.sim.runner import UsageError, load_workload, run_policies
from rwscaler.sim.scenarios import scenario

SPEC = load_workload(None)  # 1-10 replicas, targetReadQPSPerReplica 800, read objective 50 ms


def obs(read_qps: float | None, current: int, reason: UnknownReason = UnknownReason.EMPTY) -> Observation:
    qps = Signal.of(read_qps) if read_qps is not None else Signal.unknown(reason, "test")
    return Observation(qps, Signal.of(40.0), Signal.of(0.02), Signal.of(0.005), current, "primary")


def run(policy: KedaQpsPolicy, steps: list[tuple[float, float | None, int]]) -> list[int]:
    """Each step: (t, read QPS or None for an empty result, current replicas) -> target."""
    return [policy.decide(i, t, obs(q, n)).target for i, (t, q, n) in enumerate(steps)]


def test_reads_doubling_doubles_the_count() -> None:
    # 3,200/s on 4 replicas is 800 each: on target. 6,400/s: ceil(6400 / 800) = 8, and 8 is
    # within the scale-up limit max(2 x 4, 4 + 4) = 8.
    assert run(KedaQpsPolicy(SPEC), [(0, 3200, 4), (30, 6400, 4)]) == [4, 8]


def test_scale_up_is_limited_to_max_100_percent_or_4_pods_per_period() -> None:
    # 8,000/s wants ceil(8000 / 800) = 10; from 2 replicas at most max(4, 6) = 6, then 10.
    assert run(KedaQpsPolicy(SPEC), [(0, 8000, 2), (30, 8000, 6)]) == [6, 10]


@pytest.mark.parametrize(
    ("qps", "expected"),
    [(3200 * 1.09, 4), (3200 * 0.91, 4), (3200 * 1.11, 5), (3200 * 1.5, 6)],
)
def test_within_the_tolerance_nothing_changes(qps: float, expected: int) -> None:
    # Usage ratio = qps / (800 x 4); |ratio - 1| <= 0.1 keeps 4; 1.11 -> ceil(4.44) = 5;
    # 1.5 -> ceil(6.0) = 6.
    assert run(KedaQpsPolicy(SPEC), [(0, qps, 4)]) == [expected]


def test_scale_down_waits_the_300_s_window() -> None:
    # 6,400/s on 8 replicas until t=0, then 1,600/s (ceil(1600 / 800) = 2). KEDA polls at 0 and
    # 30, so the HPA's sync at t=15 still sees 6,400 and recommends 8; that recommendation is the
    # last 8 in the window, and leaves it 300 s later, at t=315.
    steps = [(0.0, 6400.0, 8)] + [(15.0 * i, 1600.0, 8) for i in range(1, 22)]
    targets = run(KedaQpsPolicy(SPEC), steps)
    times = [t for t, _, _ in steps]
    assert all(n == 8 for t, n in zip(times, targets, strict=True) if t <= 300)
    assert targets[times.index(315.0)] == 2


def test_keda_polls_every_30_s() -> None:
    # Reads jump at t=15; KEDA last polled at t=0, so the HPA's sync at t=15 sees 3,200 (hold),
    # and the poll at t=30 sees 8,000 (10 wanted, at most 8 from 4).
    assert run(KedaQpsPolicy(SPEC), [(0, 3200, 4), (15, 8000, 4), (30, 8000, 4)]) == [4, 4, 8]


def test_without_cached_metrics_the_hpa_sees_each_sync() -> None:
    # KEDA's default useCachedMetrics: false queries at every HPA sync (15 s).
    policy = KedaQpsPolicy(SPEC, poll_interval=15)
    assert run(policy, [(0, 3200, 4), (15, 8000, 4)]) == [4, 8]


@pytest.mark.parametrize("reason", [UnknownReason.EMPTY, UnknownReason.NOT_A_NUMBER, UnknownReason.STALE])
def test_an_empty_result_is_zero_and_scales_to_the_minimum_after_the_window(reason: UnknownReason) -> None:
    # ignoreNullValues defaults to true: the scaler reports 0, the HPA wants 0 replicas; the
    # history is seeded with the current 4 at t=0, so the count holds until that leaves the
    # window at t=300, then falls to minReplicas (1).
    policy = KedaQpsPolicy(SPEC)
    targets = [policy.decide(i, 15.0 * i, obs(None, 4, reason)).target for i in range(21)]
    assert targets[: 300 // 15] == [4] * 20
    assert targets[20] == 1


@pytest.mark.parametrize(
    "reason",
    [
        UnknownReason.UNREACHABLE,
        UnknownReason.TIMEOUT,
        UnknownReason.HTTP_ERROR,
        UnknownReason.MULTIPLE_SERIES,
    ],
)
def test_a_failed_query_holds_the_count(reason: UnknownReason) -> None:
    # No fallback configured: KEDA gives the HPA no metric and the HPA does not scale.
    policy = KedaQpsPolicy(SPEC)
    assert policy.decide(0, 0, obs(6400, 4)).target == 8
    targets = [policy.decide(i, 30.0 * i, obs(None, 8, reason)).target for i in range(1, 40)]
    assert set(targets) == {8}
    # The bounds still apply: above maxReplicas (10) the HPA brings the count down to it.
    assert policy.decide(40, 1200, obs(None, 12, reason)).target == 10


def test_a_failed_query_then_a_result_scales_again() -> None:
    policy = KedaQpsPolicy(SPEC)
    targets = run(policy, [(0, 3200, 4), (30, None, 4), (60, 6400, 4)])
    assert targets == [4, 4, 8]


def test_every_ready_replica_serves_reads() -> None:
    assert KedaQpsPolicy(SPEC).decide(0, 0, obs(3200, 4)).pool is None


def test_the_outage_scenario_is_a_failed_query_for_keda() -> None:
    result = simulate(scenario("prometheus-outage"), "keda-qps", SPEC, ModelParams())
    blind = [e["replicas"] for e in result.timeline if not e["metrics_available"]]
    assert blind
    assert len(set(blind)) == 1


def test_hpa_latency_scales_on_the_p99_ratio() -> None:
    # p99 at twice the 50 ms objective on 3 replicas: ceil(3 x 2) = 6, within max(6, 7).
    policy = HpaLatencyPolicy(SPEC)
    o = Observation(Signal.of(3000), Signal.of(40), Signal.of(0.1), Signal.of(0.005), 3, "primary")
    assert policy.decide(0, 0, o).target == 6


def _without_target(spec: ReadWriteWorkloadSpec) -> ReadWriteWorkloadSpec:
    replicas = spec.replicas.model_copy(update={"targetReadQPSPerReplica": None})
    return spec.model_copy(update={"replicas": replicas})


def test_keda_qps_needs_a_target_per_replica() -> None:
    spec = _without_target(SPEC)
    assert "keda-qps" not in available_policies(spec)
    assert "keda-qps" in available_policies(SPEC)
    with pytest.raises(UsageError, match="targetReadQPSPerReplica"):
        run_policies(scenario("write-surge"), ["keda-qps"], spec, ModelParams())


def test_simulate_asked_for_keda_qps_without_a_target_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workload = tmp_path / "w.yaml"
    workload.write_text(
        "spec: {primary: {statefulSet: p}, replicas: {statefulSet: r, minReplicas: 1, maxReplicas: 4},\n"
        "       prometheus: {url: 'http://p:9090'}}\n"
    )
    assert (
        main(["simulate", "--scenario", "write-surge", "--workload", str(workload), "--policy", "keda-qps"])
        == 2
    )
    assert "targetReadQPSPerReplica" in capsys.readouterr().err
