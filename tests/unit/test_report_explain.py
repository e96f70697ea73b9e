"""`rwscaler explain` renders what report.py wrote, without recomputing anything."""

from __future__ import annotations

import argparse
import io
import json
import sys
from dataclasses import replace

import pytest
import yaml
from tests.unit.builders import READ_OBJECTIVE, assert_readable, make_obs, no_stabilization

from rwscaler import command_explain
from rwscaler.core.decide import decide
from rwscaler.core.memory import Memory
from rwscaler.core.observation import Diagnostics, Signal
from rwscaler.core.roles import RoleSource
from rwscaler.core.status import StatusPrimary, StatusScaleTarget
from rwscaler.core.vocabulary import EffectiveMode, ReadyReason
from rwscaler.report import problem_status, render_status


def _object() -> dict:
    spec = no_stabilization()
    obs = make_obs(read_p99=2 * READ_OBJECTIVE, lags=[0.1, 30.0])
    plan = decide(spec, obs, Memory(), 1_700_000_000.0)
    status = render_status(
        plan, obs, previous={}, generation=1, now=1_700_000_000.0, mode=EffectiveMode.ENFORCE
    )
    return {"metadata": {"name": "orders", "namespace": "shop"}, "status": status}


def test_render_says_what_was_decided_and_why() -> None:
    text = command_explain.render(_object())
    assert text.startswith("shop/orders")
    assert "decision:" in text and "read p99" in text
    assert "db-replica-1: ready, lag 30s, out of pool" in text
    assert "ReadCapacityExhausted=True" in text
    assert "LatencyStep:" in text
    assert_readable(text)


def test_no_status_yet() -> None:
    assert "no status yet" in command_explain.render({"metadata": {"name": "x", "namespace": "y"}})


@pytest.mark.parametrize("output", ["text", "json"])
def test_reads_an_object_from_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], output: str
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(yaml.safe_dump(_object())))
    args = argparse.Namespace(file="-", name=None, namespace="default", kubeconfig=None, output=output)
    assert command_explain.run(args) == 0
    out = capsys.readouterr().out
    if output == "json":
        assert json.loads(out)["workloadClass"] == "ReadHeavy"
    else:
        assert "shop/orders" in out


def test_a_problem_only_status_shows_its_conditions() -> None:
    status = problem_status(
        {},
        generation=1,
        now=0.0,
        reason=ReadyReason.PRIMARY_NOT_FOUND,
        message="the primary StatefulSet s/db does not exist",
    )
    text = command_explain.render({"metadata": {"name": "w", "namespace": "s"}, "status": status})
    assert "no decision yet" in text
    assert "Ready=False (PrimaryStatefulSetNotFound)" in text
    assert "?" not in text


def test_the_scale_target_and_the_primary_are_shown_when_status_has_them() -> None:
    assert "primary:" not in command_explain.render(_object())
    spec = no_stabilization()
    obs = make_obs()
    plan = decide(spec, obs, Memory(), 1_700_000_000.0)
    status = render_status(
        plan,
        obs,
        previous={},
        generation=1,
        now=1_700_000_000.0,
        mode=EffectiveMode.ENFORCE,
        primary=StatusPrimary(pod="orders-2", source=RoleSource.METRIC),
        scale_target=StatusScaleTarget(
            apiVersion="postgresql.cnpg.io/v1", kind="Cluster", name="orders", replicas=3
        ),
    )
    text = command_explain.render({"metadata": {"name": "orders", "namespace": "shop"}, "status": status})
    assert "  target:    Cluster/orders (postgresql.cnpg.io/v1), its count 3" in text
    assert "  primary:   orders-2 (source: Metric)" in text
    assert_readable(text)


def test_a_status_of_another_version_is_explained_with_what_it_has() -> None:
    status = _object()["status"]
    del status["replicas"], status["observed"]
    status["mode"] = "Observe"  # a later version's word
    status["conditions"].append({"status": "True"})  # no type: left out
    status["elsewhere"] = {"x": 1}
    text = command_explain.render({"metadata": {"name": "w", "namespace": "s"}, "status": status})
    assert "mode:      ?" in text
    assert "replicas:  current ?, desired ?, ready ?" in text
    assert "readQPS ?" in text
    assert "ReadCapacityExhausted=True" in text


def test_the_key_metrics_and_their_rules_are_explained() -> None:
    """docs/diagnosis.md: shown in status.observed.keyMetrics and in `explain`, with the rule."""
    spec = no_stabilization()
    obs = replace(
        make_obs(write_qps=400.0),
        diagnostics=Diagnostics(
            rows_per_write=Signal.of(1.0), lock_waits=Signal.of(2.0), read_pool_waiting=Signal.of(0.0)
        ),
    )
    plan = decide(spec, obs, Memory(), 1_700_000_000.0)
    status = render_status(
        plan, obs, previous={}, generation=1, now=1_700_000_000.0, mode=EffectiveMode.ENFORCE
    )
    text = command_explain.render({"metadata": {"name": "orders", "namespace": "shop"}, "status": status})
    assert "key metrics: " in text and "lockWaits 2.0" in text and "rowsPerWrite 1.00" in text
    assert "WriteBottleneck=True (LockContention)" in text
    assert "BatchWrites: writes change 1.00 rows each at 400/s" in text
    assert "ReduceLockContention:" in text
    assert_readable(text)
