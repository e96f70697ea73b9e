"""The simulator: its command line contract, trace validation, and what the scenarios must show.

These run the real model and the real `decide`; they assert behaviour (no scale-up in the write
surge, no stale reads in the lag storm, hold during the outage), not timings.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rwscaler.cli import main
from rwscaler.sim.engine import simulate
from rwscaler.sim.model import ModelParams, p99
from rwscaler.sim.report import scale_ups_in_window
from rwscaler.sim.runner import UsageError, load_model, load_scenario, load_workload
from rwscaler.sim.scenarios import SCENARIOS, TraceError, load_csv, scenario

SPEC = load_workload(None)
PARAMS = ModelParams()
TIMELINE_KEYS = {
    "t", "read_qps", "write_qps", "replicas", "ready_replicas", "read_pool", "read_p99_ms", "write_p99_ms",
    "max_lag_seconds", "workload_class", "metrics_available", "conditions", "recommendations",
}  # fmt: skip
SUMMARY_KEYS = {
    "read_slo_violation_minutes", "write_slo_violation_minutes", "replica_hours", "stale_read_fraction",
    "scale_ups", "scale_downs", "max_replicas",
}  # fmt: skip


def test_no_arguments_prints_every_policy(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate"]) == 0
    out = capsys.readouterr().out
    for policy in ("rwscaler", "keda-qps", "hpa-latency", "static", "oracle"):
        assert any(line.startswith(policy) for line in out.splitlines()), out


def test_json_contract(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--scenario", "write-surge", "--policy", "rwscaler", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["policy"] == "rwscaler"
    assert set(data["summary"]) >= SUMMARY_KEYS
    assert len(data["timeline"]) == len(scenario("write-surge").rows)
    assert set(data["timeline"][0]) >= TIMELINE_KEYS


def test_trace_file_and_outage_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "t.csv"
    rows = ["t,read_qps,write_qps,metrics_available"]
    rows += [f"{15 * i},{2000 if i < 20 else 6000},50,{0 if 20 <= i < 30 else 1}" for i in range(60)]
    trace.write_text("\n".join(rows) + "\n")
    assert main(["simulate", "--trace", str(trace), "--policy", "rwscaler", "--json"]) == 0
    tl = json.loads(capsys.readouterr().out)["timeline"]
    blind = [e for e in tl if not e["metrics_available"]]
    assert len(blind) == 10
    # Blind: hold (the count cannot change while no metric is seen), and say why.
    assert len({e["replicas"] for e in blind}) == 1
    assert all("MetricsAvailable" not in e["conditions"] for e in blind)
    # Once metrics come back, the spike is answered.
    assert tl[-1]["replicas"] > blind[0]["replicas"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("t,read_qps\n0,1\n", "missing write_qps"),
        ("t,read_qps,write_qps\n0,1,1\n0,1,1\n", "t must increase"),
        ("t,read_qps,write_qps\n0,1,1\n15,-1,1\n", "must be finite and not negative"),
        ("t,read_qps,write_qps,metrics_available\n0,1,1,yes\n15,1,1,1\n", "metrics_available 1 or 0"),
        ("t,read_qps,write_qps\n0,1,1\n", "at least two rows"),
    ],
)
def test_bad_traces_say_why(tmp_path: Path, text: str, message: str) -> None:
    trace = tmp_path / "bad.csv"
    trace.write_text(text)
    with pytest.raises(TraceError, match=message):
        load_csv(trace)


def test_bad_inputs_exit_2_with_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "w.yaml"
    bad.write_text("spec: {replicas: {statefulSet: r, minReplicas: 5, maxReplicas: 2}}\n")
    assert main(["simulate", "--workload", str(bad)]) == 2
    assert "not a valid ReadWriteWorkload" in capsys.readouterr().err
    model = tmp_path / "m.yaml"
    model.write_text("replicaReadCapacity: -1\n")
    with pytest.raises(UsageError, match="not a valid model"):
        load_model(model)
    with pytest.raises(UsageError, match="unknown scenario"):
        load_scenario("nope", None)


def test_plot_writes_a_png(tmp_path: Path) -> None:
    out = tmp_path / "run.png"
    assert main(["simulate", "--scenario", "lag-storm", "--policy", "rwscaler", "--plot", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_latency_grows_with_utilization() -> None:
    assert p99(5, 0.0) < p99(5, 0.5) < p99(5, 0.9) < p99(5, 0.99) < p99(5, 1.5)


def test_no_scale_up_during_the_write_surge() -> None:
    scn = scenario("write-surge")
    result = simulate(scn, "rwscaler", SPEC, PARAMS)
    assert scale_ups_in_window(result, scn) == 0
    start, end = scn.window or (0, 0)
    during = [e for e in result.timeline if start + 300 <= e["t"] < end - 300]
    assert sum("WriteBottleneck" in e["conditions"] for e in during) > len(during) / 2
    assert any("VerticalScalePrimary" in e["recommendations"] for e in during)


def test_lag_storm_serves_no_stale_read_where_the_lag_unaware_baselines_do() -> None:
    scn = scenario("lag-storm")
    ours = simulate(scn, "rwscaler", SPEC, PARAMS)
    assert ours.summary.stale_read_fraction == 0.0
    for baseline in ("keda-qps", "hpa-latency"):
        assert simulate(scn, baseline, SPEC, PARAMS).summary.stale_read_fraction > 0.01, baseline
    assert any("ReplicationLagHigh" in e["conditions"] for e in ours.timeline)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_scenario_keeps_bounds_and_never_serves_stale(name: str) -> None:
    result = simulate(scenario(name), "rwscaler", SPEC, PARAMS)
    lo, hi = SPEC.replicas.minReplicas, SPEC.replicas.maxReplicas
    assert all(lo <= e["replicas"] <= hi for e in result.timeline[1:])
    assert result.summary.stale_read_fraction == 0.0
    assert all(e["read_pool"] for e in result.timeline)
