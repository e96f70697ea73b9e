"""`kubectl rwscaler explain`'s "next action" lines, derived from status.memory and the spec."""

from __future__ import annotations

from typing import Any

from tests.unit.builders import READ_OBJECTIVE, make_obs, make_spec

from rwscaler import plugin_next
from rwscaler.core.decide import decide
from rwscaler.core.durations import rfc3339
from rwscaler.core.memory import Memory
from rwscaler.core.vocabulary import EffectiveMode
from rwscaler.report import render_status

T0 = 1_700_000_000.0


def _workload(
    mode: EffectiveMode = EffectiveMode.ENFORCE, memory: Memory | None = None, **spec: Any
) -> dict[str, Any]:
    """The object after one tick at T0 that scales 2 -> 4 (read p99 at twice its objective)."""
    s = make_spec(**spec)
    obs = make_obs(read_p99=2 * READ_OBJECTIVE)
    plan = decide(s, obs, memory or Memory(), T0)
    status = render_status(plan, obs, previous={}, generation=1, now=T0, mode=mode)
    return {"metadata": {"name": "o", "namespace": "s"}, "spec": s.model_dump(mode="json"), "status": status}


def _line(lines: list[str], key: str) -> str:
    found = [line for line in lines if line.strip().startswith(key)]
    assert found, lines
    return found[0]


def test_after_a_scale_up_the_next_decision_and_the_scale_down_reversal_window() -> None:
    lines = plugin_next.next_action(_workload(), T0 + 3)
    assert _line(lines, "decision:").endswith(f"{rfc3339(T0 + 15)} (in 12s), one every 15s")
    assert "at the next decision" in _line(lines, "scale up:")
    down = _line(lines, "scale down:")
    assert f"not before {rfc3339(T0 + 300)}" in down
    assert "scaleDown window 300s" in down


def test_a_shorter_window_moves_the_scale_down() -> None:
    behavior = {"scaleDown": {"stabilizationWindowSeconds": 60, "maxStep": 1}}
    lines = plugin_next.next_action(_workload(behavior=behavior), T0 + 3)
    assert f"not before {rfc3339(T0 + 60)}" in _line(lines, "scale down:")


def test_once_the_window_passed_a_scale_down_may_come_at_the_next_decision() -> None:
    obj = _workload()
    obj["status"]["memory"]["last_tick"] = T0 + 600
    lines = plugin_next.next_action(obj, T0 + 601)
    assert "at the next decision" in _line(lines, "scale down:")


def test_at_the_bounds_a_direction_is_not_possible() -> None:
    obj = _workload(replicas={"minReplicas": 4, "maxReplicas": 4})
    lines = plugin_next.next_action(obj, T0 + 1)
    assert "not possible: at maxReplicas 4" in _line(lines, "scale up:")
    assert "not possible: at minReplicas 4" in _line(lines, "scale down:")


def test_paused_and_recommend_change_nothing() -> None:
    obj = _workload(EffectiveMode.PAUSED)
    obj["metadata"]["annotations"] = {"rwscaler.io/paused": "true"}
    paused = plugin_next.next_action(obj, T0 + 1)
    assert "none while paused" in _line(paused, "changes:")
    recommend = plugin_next.next_action(_workload(EffectiveMode.RECOMMEND), T0 + 1)
    assert "mode Recommend" in _line(recommend, "changes:")
    assert not [line for line in paused + recommend if line.strip().startswith("scale")]


def test_an_old_last_tick_is_not_called_overdue_the_operator_writes_only_changes() -> None:
    lines = plugin_next.next_action(_workload(), T0 + 3600)
    decision = _line(lines, "decision:")
    assert "one every 15s (status last changed" in decision and "1h ago" in decision
    assert "overdue" not in decision
    assert "at the next decision (due now)" in _line(lines, "scale up:")


def test_a_drain_under_way_is_said() -> None:
    obj = _workload()
    obj["status"]["memory"]["drain"] = {"target_replicas": 1, "started": T0, "replicas": ["db-replica-1"]}
    down = _line(plugin_next.next_action(obj, T0 + 1), "scale down:")
    assert "draining db-replica-1" in down and "then to 1" in down


def test_nothing_without_a_decision_and_unknown_without_memory() -> None:
    assert plugin_next.next_action({"metadata": {}, "status": {}}, T0) == []
    obj = _workload()
    del obj["status"]["memory"]
    assert "unknown" in _line(plugin_next.next_action(obj, T0), "decision:")


def test_an_invalid_behavior_falls_back_to_the_defaults() -> None:
    obj = _workload()
    obj["spec"]["behavior"] = {"intervalSeconds": "soon"}
    assert "one every 15s" in _line(plugin_next.next_action(obj, T0), "decision:")


def test_a_pause_not_yet_reported_is_said() -> None:
    obj = _workload()
    obj["metadata"]["annotations"] = {"rwscaler.io/paused": "true"}
    lines = plugin_next.next_action(obj, T0 + 1)
    assert "once the operator sees the annotation" in _line(lines, "changes:")
    resumed = _workload(EffectiveMode.PAUSED)
    assert "pause annotation is gone" in _line(plugin_next.next_action(resumed, T0 + 1), "changes:")


def test_a_due_decision_counts_the_gates_from_now() -> None:
    obj = _workload()
    lines = plugin_next.next_action(obj, T0 + 17)
    assert _line(lines, "scale up:").strip() == "scale up:   at the next decision (due now)"
    assert f"not before {rfc3339(T0 + 300)}" in _line(lines, "scale down:")  # the reversal guard
    obj["status"]["memory"]["recommendations"] = []  # the last tick held: the window starts again
    down = _line(plugin_next.next_action(obj, T0 + 17), "scale down:")
    assert f"not before {rfc3339(T0 + 17 + 300)}" in down and "starts again" in down
    assert plugin_next.when(T0 + 0.2, T0) == f"{rfc3339(T0)} (now)"


def test_an_unreadable_memory_or_count_is_unknown_never_a_crash() -> None:
    obj = _workload()
    obj["status"]["memory"]["last_tick"] = "yesterday"
    assert "unknown" in _line(plugin_next.next_action(obj, T0), "decision:")
    obj = _workload()
    obj["status"]["replicas"] = {"current": "many"}
    assert "unknown" in _line(plugin_next.next_action(obj, T0 + 1), "scaling:")
