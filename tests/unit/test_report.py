"""report.py: status rendering, condition transitions, the skip-if-unchanged rule, and events."""

from __future__ import annotations

import copy
from typing import Any

from tests.unit.builders import (
    READ_OBJECTIVE,
    WRITE_OBJECTIVE,
    assert_readable,
    make_obs,
    make_spec,
    no_stabilization,
)

from rwscaler.core.decide import decide
from rwscaler.core.durations import rfc3339
from rwscaler.core.memory import Memory
from rwscaler.core.observation import Aggregation, Signal, UnknownReason
from rwscaler.core.plan import Condition
from rwscaler.core.roles import RoleSource
from rwscaler.core.status import (
    StatusPrimary,
    StatusReplicaCounts,
    StatusScaleTarget,
    WorkloadStatus,
    dump_status,
    parse_status,
    without_nulls,
)
from rwscaler.core.vocabulary import ConditionType, EffectiveMode, EventReason, EventType, ReadyReason, Status
from rwscaler.report import (
    OWNED_KEYS,
    ReadyOverride,
    ScaleOutcome,
    events,
    format_ratio,
    merge_conditions,
    needs_patch,
    problem_status,
    render_status,
)

T0 = 1_700_000_000.0


def _status(obs: Any = None, *, spec: Any = None, previous: dict[str, Any] | None = None, now: float = T0):
    spec = spec or make_spec()
    obs = obs or make_obs()
    memory = Memory.from_status((previous or {}).get("memory"))
    plan = decide(spec, obs, memory, now)
    status = render_status(
        plan, obs, previous=previous or {}, generation=3, now=now, mode=EffectiveMode.ENFORCE
    )
    return plan, status


def _cond(status: dict[str, Any], kind: ConditionType) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind.value)


def test_status_has_every_field_the_crd_documents() -> None:
    plan, status = _status()
    for key in (
        "observedGeneration",
        "workloadClass",
        "readWriteRatio",
        "observed",
        "replicas",
        "readEndpoints",
        "maxReplicationLag",
        "recommendations",
        "conditions",
        "memory",
    ):
        assert key in status, key
    assert status["observedGeneration"] == 3
    assert status["readWriteRatio"] == "10.0"
    assert status["workloadClass"] == "ReadHeavy"
    assert status["replicas"] == {"current": 2, "desired": plan.desired_replicas, "ready": 2}
    assert status["readEndpoints"] == list(plan.read_pool)
    assert status["observed"]["readLatencyP99"] == "30ms"
    assert {c["type"] for c in status["conditions"]} == {t.value for t in ConditionType}
    assert Memory.from_status(status["memory"]) == plan.memory


def test_unknown_signals_are_unknown_with_a_reason_never_zero() -> None:
    obs = make_obs(read_qps=Signal.unknown(UnknownReason.UNREACHABLE, "connection refused"))
    _, status = _status(obs)
    assert status["observed"]["readQPS"] == "unknown"
    assert status["observed"]["unknown"]["readQPS"] == "PrometheusUnreachable: connection refused"
    assert status["readWriteRatio"] == "unknown"
    assert _cond(status, ConditionType.METRICS_AVAILABLE)["status"] == "False"


def test_status_says_which_latencies_are_averages() -> None:
    _, exact = _status()
    assert "averages" not in exact["observed"]
    obs = make_obs(read_p99=Signal(0.03, aggregation=Aggregation.AVERAGE))
    _, status = _status(obs)
    assert status["observed"]["averages"] == ["readLatencyP99"]


def test_ratio_strings() -> None:
    assert format_ratio(None) == "unknown"
    assert format_ratio(float("inf")) == "inf"
    assert format_ratio(250.4) == "250"
    assert format_ratio(42.54) == "42.5"
    assert format_ratio(0.05) == "0.05"


def test_last_transition_time_moves_only_on_a_flip() -> None:
    before = merge_conditions([], [Condition(ConditionType.READY, Status.TRUE, "Reconciled", "a")], T0, 1)
    same = merge_conditions(before, [Condition(ConditionType.READY, Status.TRUE, "Other", "b")], T0 + 60, 2)
    flipped = merge_conditions(
        same, [Condition(ConditionType.READY, Status.FALSE, "MetricsUnavailable", "c")], T0 + 120, 2
    )
    assert before[0].lastTransitionTime == rfc3339(T0)
    assert same[0].lastTransitionTime == rfc3339(T0)
    assert same[0].reason == "Other" and same[0].observedGeneration == 2
    assert flipped[0].lastTransitionTime == rfc3339(T0 + 120)


def test_no_patch_when_only_the_tick_time_moved() -> None:
    # Prometheus down: every signal unknown, so the decision holds and memory learns nothing.
    unknown = make_obs(read_qps=None, write_qps=None, read_p99=None, write_p99=None, lags=[None, None])
    _, zeroth = _status(unknown)
    _, first = _status(unknown, previous=zeroth, now=T0 + 15)
    _, second = _status(unknown, previous=first, now=T0 + 30)
    assert first["memory"]["last_tick"] != second["memory"]["last_tick"]
    assert not needs_patch(first, second)
    _, known = _status(make_obs(), previous=second, now=T0 + 45)
    assert needs_patch(second, known)


def test_needs_patch_ignores_keys_rwscaler_does_not_own() -> None:
    _, status = _status()
    assert not needs_patch({**status, "somebodyElse": {"x": 1}}, status)


def test_problem_status_keeps_memory_and_other_conditions() -> None:
    _, status = _status()
    bad = problem_status(
        status, generation=4, now=T0 + 5, reason=ReadyReason.SECRET_NOT_FOUND, message="no Secret s"
    )
    assert bad["memory"] == status["memory"]
    assert bad["observedGeneration"] == 4
    ready = _cond(bad, ConditionType.READY)
    assert (ready["status"], ready["reason"]) == ("False", "SecretNotFound")
    assert ready["lastTransitionTime"] == rfc3339(T0 + 5)
    assert _cond(bad, ConditionType.WRITE_BOTTLENECK) == _cond(status, ConditionType.WRITE_BOTTLENECK)
    evs = events(status, bad)
    assert [(e.type, e.reason) for e in evs] == [(EventType.WARNING, EventReason.CONDITION_CHANGED)]
    assert "Ready True -> False (SecretNotFound)" in evs[0].message


def test_ready_override() -> None:
    spec = make_spec()
    obs = make_obs()
    plan = decide(spec, obs, Memory(), T0)
    status = render_status(
        plan,
        obs,
        previous={},
        generation=1,
        now=T0,
        mode=EffectiveMode.PAUSED,
        ready_override=ReadyOverride(Status.TRUE, ReadyReason.PAUSED, "paused"),
    )
    assert status["mode"] == "Paused"
    assert _cond(status, ConditionType.READY)["reason"] == "Paused"


def test_scale_and_pool_events() -> None:
    spec = no_stabilization()
    quiet = make_obs()
    _, before = _status(quiet, spec=spec)
    breach = make_obs(read_p99=2 * READ_OBJECTIVE, write_p99=0.5 * WRITE_OBJECTIVE)
    plan = decide(spec, breach, Memory.from_status(before["memory"]), T0 + 15)
    after = render_status(
        plan, breach, previous=before, generation=3, now=T0 + 15, mode=EffectiveMode.ENFORCE
    )
    assert plan.scale_to is not None and plan.scale_to > 2
    evs = events(before, after, plan, scale=ScaleOutcome(2, plan.scale_to))
    assert evs[0].reason is EventReason.SCALED_UP and evs[0].type is EventType.NORMAL
    assert f"2 -> {plan.scale_to}" in evs[0].message
    flips = [e for e in evs if e.reason is EventReason.CONDITION_CHANGED]
    assert any("ReadCapacityExhausted False -> True" in e.message for e in flips)
    for e in evs:
        assert_readable(e.message)

    failed = events(before, after, plan, scale=ScaleOutcome(2, 4, "forbidden"))
    assert failed[0].reason is EventReason.SCALE_FAILED and failed[0].type is EventType.WARNING

    moved = {**after, "readEndpoints": ["db-replica-0"]}
    pool = [e for e in events(after, moved, plan) if e.reason is EventReason.READ_POOL_CHANGED]
    assert len(pool) == 1 and "left: db-replica-1" in pool[0].message


def test_no_events_when_nothing_changed() -> None:
    _, first = _status()
    _, second = _status(previous=first, now=T0 + 15)
    assert events(first, second, None) == []


def test_conditions_that_start_fine_are_not_news_but_bad_ones_are() -> None:
    _, first = _status()
    evs = events({}, first)
    assert all(e.type is EventType.WARNING for e in evs)


def test_without_nulls_removes_nulls_at_every_depth() -> None:
    assert without_nulls({"a": None, "b": {"c": None, "d": 1}, "e": [{"f": None}]}) == {
        "b": {"d": 1},
        "e": [{}],
    }


def test_primary_and_scale_target_are_written_when_given_and_left_out_when_not() -> None:
    plan, status = _status()
    assert "primary" not in status and "scaleTarget" not in status
    obs = make_obs()
    given = render_status(
        plan,
        obs,
        previous={},
        generation=3,
        now=T0,
        mode=EffectiveMode.ENFORCE,
        primary=StatusPrimary(pod="db-0", source=RoleSource.LABEL),
        scale_target=StatusScaleTarget(
            apiVersion="apps/v1", kind="StatefulSet", name="db-replica", replicas=2
        ),
    )
    assert given["primary"] == {"pod": "db-0", "source": "Label"}
    assert given["scaleTarget"] == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": "db-replica",
        "replicas": 2,
    }
    assert {k: v for k, v in given.items() if k not in ("primary", "scaleTarget")} == status
    # Owned: a problem report keeps them, and a change of primary is worth a patch.
    bad = problem_status(given, generation=3, now=T0, reason=ReadyReason.SECRET_NOT_FOUND, message="m")
    assert bad["primary"] == given["primary"] and bad["scaleTarget"] == given["scaleTarget"]
    assert needs_patch(given, {**given, "primary": {"pod": "db-1", "source": "Metric"}})


def test_owned_keys_are_the_status_model_fields() -> None:
    assert tuple(WorkloadStatus.model_fields) == OWNED_KEYS
    _, status = _status()
    assert set(status) <= set(OWNED_KEYS)


def test_a_rendered_status_reads_back_as_itself() -> None:
    """What the tick writes, parsed through the model and written again, is the same JSON."""
    spec = no_stabilization()
    for obs in (
        make_obs(),
        make_obs(read_p99=2 * READ_OBJECTIVE, lags=[0.1, 30.0]),
        make_obs(read_qps=None, write_qps=None, lags=[None, None]),
        make_obs(read_p99=Signal(0.03, aggregation=Aggregation.AVERAGE)),
    ):
        _, status = _status(obs, spec=spec)
        assert dump_status(parse_status(status)) == status


def test_parse_status_reads_what_it_can_and_never_raises() -> None:
    _, status = _status()
    odd = {
        **status,
        "somebodyElse": {"x": 1},  # another tool's key: ignored
        "mode": "Observe",  # a mode of a later version: left out
        "replicas": {"current": "three", "desired": 4, "later": True},
        "conditions": [*status["conditions"], {"status": "True"}, "junk"],
        "observed": {"readQPS": "5", "replicas": [{"name": "r", "lag": 3}]},
    }
    parsed = parse_status(odd)
    assert parsed.mode is None
    assert parsed.replicas == StatusReplicaCounts(desired=4)
    assert [c.type for c in parsed.conditions or []] == [c["type"] for c in status["conditions"]]
    assert parsed.observed is not None and parsed.observed.readQPS == "5"
    assert parsed.observed.replicas is not None and parsed.observed.replicas[0].name == "r"
    assert parsed.observed.replicas[0].lag is None
    assert parsed.memory == status["memory"]
    for nothing in (None, "status", [], {}):
        assert parse_status(nothing) == WorkloadStatus()


def test_parse_status_shares_nothing_with_what_it_read() -> None:
    _, status = _status()
    status = {**status, "memory": {"pool": {"r-0": [1.0, "x"]}, "nested": {"a": {"b": 1}}}}
    odd = {**status, "replicas": "garbage"}  # the repairing path too
    for data in (status, odd):
        before = copy.deepcopy(data)
        parsed = parse_status(data)
        assert data == before  # what was read is left as it was
        assert parsed.memory is not None
        parsed.memory["pool"]["r-0"].append("changed")
        parsed.memory["nested"]["a"]["b"] = 2
        assert data == before  # and the parsed status holds none of its objects


def test_a_problem_status_drops_what_it_cannot_read_and_keeps_the_rest() -> None:
    _, status = _status()
    bad = problem_status(
        {**status, "replicas": "garbage", "somebodyElse": 1},
        generation=4,
        now=T0,
        reason=ReadyReason.SECRET_NOT_FOUND,
        message="m",
    )
    assert "replicas" not in bad and "somebodyElse" not in bad
    assert bad["memory"] == status["memory"] and bad["decision"] == status["decision"]
