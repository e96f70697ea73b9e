"""`kubectl rwscaler` against the local control plane: the venv's `kubectl-rwscaler` executable,
and the same through the real kubectl binary as a plugin.

Workloads get their status either from a running operator (pause/resume) or written by the admin
through the status subresource, rendered by the operator's own `report.render_status` (so the
table reads exactly what a tick writes). Covered: status -A and -n, explain, the status schema
keeping every field a tick writes (primary and scale target included), pause then resume,
`--context` in a kubeconfig with two contexts, `--kubeconfig` and `$KUBECONFIG`, a missing
workload, and a ServiceAccount without RBAC.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster_helpers import (
    GROUP,
    PLURAL,
    READ_OBJECTIVE,
    REPO,
    VERSION,
    Kube,
    Metrics,
    OperatorProcess,
    Plane,
    Signals,
    kubectl_binary,
    wait_for,
    workload_spec,
)
from tests.support.tiers import need
from tests.unit.builders import make_obs

from rwscaler.core.decide import decide
from rwscaler.core.memory import Memory
from rwscaler.core.roles import RoleSource
from rwscaler.core.spec import ReadWriteWorkloadSpec
from rwscaler.core.status import StatusPrimary, StatusScaleTarget
from rwscaler.core.vocabulary import EffectiveMode
from rwscaler.report import render_status

BIN_DIR = Path(sys.executable).parent
PLUGIN = BIN_DIR / "kubectl-rwscaler"
PAUSED = "rwscaler.io/paused"
NO_PROMETHEUS = "http://127.0.0.1:9"  # the status is written by the test; nothing reads this


@pytest.fixture
def plugin() -> Path:
    need(PLUGIN.is_file(), f"no {PLUGIN}: run `make venv` (it installs the kubectl-rwscaler console script)")
    return PLUGIN


def run(
    argv: list[str], *, kubeconfig: Path | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The plugin (or kubectl) as a user runs it; `kubeconfig` adds --kubeconfig."""
    base = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    extra = ["--kubeconfig", str(kubeconfig)] if kubeconfig is not None else []
    return subprocess.run(
        [*argv, *extra], env={**base, **(env or {})}, capture_output=True, text=True, timeout=60, check=False
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    return result.stdout


def failed(result: subprocess.CompletedProcess[str]) -> str:
    """The one line on stderr of a failure (exit code 1, nothing on stdout)."""
    assert result.returncode == 1, f"exit {result.returncode}: {result.stdout}{result.stderr}"
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr.strip()


def rows(table: str) -> dict[str, list[str]]:
    """Table lines split into cells, keyed by the line's first cells joined with '/'."""
    lines = table.splitlines()
    header = re.split(r"\s{3,}", lines[0].strip())
    out = {}
    for line in lines[1:]:
        cells = re.split(r"\s{3,}", line.strip())
        key = "/".join(cells[:2]) if header[0] == "NAMESPACE" else cells[0]
        out[key] = cells
    return out


def rendered_status(
    spec: Mapping[str, Any],
    now: float,
    primary: StatusPrimary | None = None,
    scale_target: StatusScaleTarget | None = None,
    **obs: Any,
) -> dict[str, Any]:
    """The status the operator's tick writes for this spec and observation."""
    model = ReadWriteWorkloadSpec.model_validate(dict(spec))
    observation = make_obs(**obs)
    plan = decide(model, observation, Memory(), now)
    return render_status(
        plan,
        observation,
        previous={},
        generation=1,
        now=now,
        mode=EffectiveMode.ENFORCE,
        primary=primary,
        scale_target=scale_target,
    )


def put_workload(
    kube: Kube, ns: str, name: str, *, status: bool = True, interval: int = 60, **obs: Any
) -> dict[str, Any] | None:
    """A ReadWriteWorkload, and (unless `status=False`) its status written through the
    subresource; returns that status."""
    spec = workload_spec(NO_PROMETHEUS, behavior={"intervalSeconds": interval})
    kube.create_workload(ns, name, spec)
    written = None
    if status:
        written = rendered_status(spec, time.time(), **obs)
        body = {"status": written}
        kube.custom.patch_namespaced_custom_object_status(GROUP, VERSION, ns, PLURAL, name, body)
        wait_for(f"{ns}/{name}'s status", lambda: kube.status(ns, name).get("mode"))
    return written


@pytest.fixture
def other_ns(plane: Plane) -> Iterator[str]:
    name = f"rwt-plugin-other-{uuid.uuid4().hex[:5]}"
    plane.kube.create_namespace(name)
    yield name
    plane.kube.delete_namespace(name)


def _kubeconfig_with_contexts(admin: Path, out: Path, namespaces: Mapping[str, str], current: str) -> Path:
    """The admin's cluster and user, under one context per (name, namespace)."""
    config = yaml.safe_load(admin.read_text())
    cluster, user = config["clusters"][0]["name"], config["users"][0]["name"]
    config["contexts"] = [
        {"name": c, "context": {"cluster": cluster, "user": user, "namespace": ns}}
        for c, ns in namespaces.items()
    ]
    config["current-context"] = current
    out.write_text(yaml.safe_dump(config))
    return out


def test_status_lists_all_namespaces_or_one(plugin: Path, kube: Kube, ns: str, other_ns: str) -> None:
    put_workload(kube, ns, "healthy")
    put_workload(kube, ns, "blind", read_qps=None, write_qps=None, lags=[None, None])
    put_workload(kube, other_ns, "hot", read_p99=2 * READ_OBJECTIVE, lags=[0.1, 30.0])
    put_workload(kube, other_ns, "fresh", status=False)

    every = ok(run([str(plugin), "status", "-A"], kubeconfig=kube.kubeconfig))
    assert every.splitlines()[0].split()[:2] == ["NAMESPACE", "NAME"]
    table = rows(every)
    assert table[f"{ns}/healthy"] == [
        ns, "healthy", "ReadHeavy", "10.0:1", "2/2", "-", "db-replica-0,db-replica-1", "100ms", "Enforce", "-"
    ]  # fmt: skip
    blind = table[f"{ns}/blind"]
    assert blind[2:4] == ["Unknown", "unknown"] and blind[7] == "unknown"
    assert "MetricsAvailable=False(" in blind[9]
    assert "ReadCapacityExhausted=True(" in table[f"{other_ns}/hot"][9]
    assert table[f"{other_ns}/fresh"][2:9] == ["-"] * 7

    one = ok(run([str(plugin), "status", "-n", other_ns], kubeconfig=kube.kubeconfig))
    assert one.splitlines()[0].split()[0] == "NAME"
    assert set(rows(one)) == {"hot", "fresh"}

    empty = ok(run([str(plugin), "status", "-n", "kube-public"], kubeconfig=kube.kubeconfig))
    assert empty.strip() == 'No ReadWriteWorkloads found in namespace "kube-public".'


def test_the_api_server_keeps_every_status_field_and_the_plugin_shows_primary_and_target(
    plugin: Path, kube: Kube, ns: str
) -> None:
    """The CRD's status schema (rendered from the status model) accepts what a tick writes and
    prunes none of it, the primary and the scale target included."""
    written = put_workload(
        kube,
        ns,
        "cnpg-db",
        read_p99=2 * READ_OBJECTIVE,
        lags=[0.1, None],
        primary=StatusPrimary(pod="orders-2", source=RoleSource.LABEL),
        scale_target=StatusScaleTarget(
            apiVersion="postgresql.cnpg.io/v1", kind="Cluster", name="orders", replicas=3
        ),
    )
    assert written is not None and {"primary", "scaleTarget", "memory", "decision", "observed"} <= set(
        written
    )
    assert kube.status(ns, "cnpg-db") == written
    table = rows(ok(run([str(plugin), "status", "-n", ns], kubeconfig=kube.kubeconfig)))
    assert table["cnpg-db"][4] == "orders-2"
    text = ok(run([str(plugin), "explain", "cnpg-db", "-n", ns], kubeconfig=kube.kubeconfig))
    assert "  target:    Cluster/orders (postgresql.cnpg.io/v1), its count 3" in text
    assert "  primary:   orders-2 (source: Label)" in text


def test_kubectl_runs_it_as_a_plugin(plugin: Path, kube: Kube, ns: str) -> None:
    put_workload(kube, ns, "orders-db")
    kubectl = kubectl_binary()
    env = {
        "PATH": os.pathsep.join([str(plugin.parent), str(Path(kubectl).parent), os.environ.get("PATH", "")]),
        "KUBECONFIG": str(kube.kubeconfig),
    }
    listed = ok(run([kubectl, "plugin", "list", "--name-only"], env=env))
    assert "kubectl-rwscaler" in listed
    table = rows(ok(run([kubectl, "rwscaler", "status", "-A"], env=env)))
    assert table[f"{ns}/orders-db"][2:5] == ["ReadHeavy", "10.0:1", "2/2"]
    explained = ok(run([kubectl, "rwscaler", "explain", "orders-db", "-n", ns], env=env))
    assert explained.startswith(f"{ns}/orders-db")


def test_explain_says_the_decision_and_when_the_next_action_is_allowed(
    plugin: Path, kube: Kube, ns: str
) -> None:
    put_workload(kube, ns, "hot", read_p99=2 * READ_OBJECTIVE)
    text = ok(run([str(plugin), "explain", "hot", "-n", ns], kubeconfig=kube.kubeconfig))
    assert text.startswith(f"{ns}/hot\n")
    assert "decision:  ReadHeavy (10.0:1): scaling 2 -> 3" in text
    assert "signals:   readQPS 1000, writeQPS 100, readLatencyP99 100ms" in text
    assert "LatencyStep:" in text
    assert "next action (the earliest, if the signals call for it):" in text
    assert re.search(r"decision: +\S+Z \(in \d+(\.\d+)?s\), one every 60s", text), text
    assert "scale up:   at the next decision" in text
    assert "no reversal within the scaleDown window 3600s" in text


def test_pause_then_resume_with_the_operator_running(
    plugin: Path,
    kube: Kube,
    ns: str,
    db: None,
    signals: Signals,
    prometheus: Metrics,
    operator: Callable[[], OperatorProcess],
) -> None:
    signals.set()
    signals.lag(range(2), 0.1)
    kube.create_workload(ns, "orders-db", workload_spec(prometheus.prometheus.url))
    operator()
    wait_for("status.mode Enforce", lambda: kube.status(ns, "orders-db").get("mode") == "Enforce")

    said = ok(run([str(plugin), "pause", "orders-db", "-n", ns], kubeconfig=kube.kubeconfig))
    assert said.strip() == f"{ns}/orders-db paused: rwscaler decides and reports, changes nothing"
    annotations = (kube.workload(ns, "orders-db") or {})["metadata"].get("annotations") or {}
    assert annotations.get(PAUSED) == "true"
    wait_for("status.mode Paused", lambda: kube.status(ns, "orders-db").get("mode") == "Paused")
    kube.wait_condition(ns, "orders-db", "Ready", reason="Paused")
    table = rows(ok(run([str(plugin), "status", "-n", ns], kubeconfig=kube.kubeconfig)))
    assert table["orders-db"][7] == "Paused"
    again = ok(run([str(plugin), "pause", "orders-db", "-n", ns], kubeconfig=kube.kubeconfig))
    assert again.strip() == f"{ns}/orders-db already paused: rwscaler decides and reports, changes nothing"
    explained = ok(run([str(plugin), "explain", "orders-db", "-n", ns], kubeconfig=kube.kubeconfig))
    assert "none while paused" in explained

    said = ok(run([str(plugin), "resume", "orders-db", "-n", ns], kubeconfig=kube.kubeconfig))
    assert said.strip() == f"{ns}/orders-db resumed: rwscaler acts again (mode Enforce)"
    annotations = (kube.workload(ns, "orders-db") or {})["metadata"].get("annotations") or {}
    assert PAUSED not in annotations
    wait_for("status.mode Enforce again", lambda: kube.status(ns, "orders-db").get("mode") == "Enforce")


def test_context_and_kubeconfig_choose_the_namespace(
    plugin: Path, kube: Kube, ns: str, other_ns: str, tmp_path: Path
) -> None:
    put_workload(kube, ns, "first-db")
    put_workload(kube, other_ns, "second-db")
    kc = _kubeconfig_with_contexts(
        kube.kubeconfig, tmp_path / "two-contexts", {"first": ns, "second": other_ns}, current="first"
    )
    assert set(rows(ok(run([str(plugin), "status"], kubeconfig=kc)))) == {"first-db"}
    assert set(rows(ok(run([str(plugin), "status", "--context", "second"], kubeconfig=kc)))) == {"second-db"}
    # $KUBECONFIG, as kubectl reads it, and -n over the context's namespace.
    via_env = ok(run([str(plugin), "--context", "second", "status", "-n", ns], env={"KUBECONFIG": str(kc)}))
    assert set(rows(via_env)) == {"first-db"}
    explained = ok(run([str(plugin), "explain", "second-db", "--context", "second"], kubeconfig=kc))
    assert explained.startswith(f"{other_ns}/second-db")
    err = failed(run([str(plugin), "status", "--context", "third"], kubeconfig=kc))
    assert err.startswith(f"error: kubeconfig {kc}") and "context 'third' not found" in err


def test_a_missing_workload_is_one_line(plugin: Path, kube: Kube, ns: str) -> None:
    for verb in ("explain", "pause", "resume"):
        err = failed(run([str(plugin), verb, "nope", "-n", ns], kubeconfig=kube.kubeconfig))
        assert err == f'error: readwriteworkload "nope" not found in namespace "{ns}"'


def test_a_user_without_access_is_told_what_was_denied(
    plugin: Path, kube: Kube, ns: str, tmp_path: Path
) -> None:
    put_workload(kube, ns, "orders-db")
    kube.core.create_namespaced_service_account(ns, {"metadata": {"name": "nobody"}})
    kc = tmp_path / "nobody.kubeconfig"
    subprocess.run(
        [str(REPO / "hack/cluster/sa-kubeconfig.sh"), ns, "nobody", str(kc), "10m"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    user = f"system:serviceaccount:{ns}:nobody"
    # The ServiceAccount's kubeconfig names its namespace: the plugin uses it without -n.
    err = failed(run([str(plugin), "status"], kubeconfig=kc))
    assert err == (
        f'error: forbidden: user "{user}" may not list readwriteworkloads.rwscaler.io '
        f'in namespace "{ns}" (RBAC grants it no such permission)'
    )
    err = failed(run([str(plugin), "status", "-A"], kubeconfig=kc))
    assert f'user "{user}" may not list readwriteworkloads.rwscaler.io at cluster scope' in err
    err = failed(run([str(plugin), "pause", "orders-db"], kubeconfig=kc))
    assert f'user "{user}" may not get readwriteworkloads.rwscaler.io in namespace "{ns}"' in err
    assert PAUSED not in ((kube.workload(ns, "orders-db") or {})["metadata"].get("annotations") or {})
