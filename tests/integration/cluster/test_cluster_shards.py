"""Sharding: three operator replicas with `--shards` split the workloads (docs/operator.md "Sharding").

The replicas run as the operator's ServiceAccount with the Lease Role the chart renders for
`sharding.enabled=true` (bound here under a name of its own). Each workload's owner is computed
here from the rule the docs give (rendezvous hashing over SHA-256), not imported from the code.
Who ticks a workload is read from each replica's debug log (one line per tick, as in
test_cluster_ha.py). The workloads name StatefulSets that do not exist and an unreachable
Prometheus: every tick is cheap, and it still reads the workload and writes its status.

The bounds come from the same section: a killed replica's workloads move within a lease duration
plus two retry periods (19 s) and then tick at once (interval 1 s); the test allows 30 s, the HA
takeover goal. A cleanly stopped replica's workloads move within a retry period or two (asserted:
10 s). A joining replica acts a lease duration (15 s) after it joined.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from cluster_helpers import REPO, SA_NAME, SA_NAMESPACE, Kube, OperatorProcess, wait_for, workload_spec
from tests.support.figures import record

WORKLOADS = [f"w{i}" for i in range(12)]
KILL_MOVE_GOAL_S = 30.0
STOP_MOVE_GOAL_S = 10.0
TICK = re.compile(r"^\[([^\]]+)\] rwscaler\.handlers\s+\[DEBUG\s*\] ([^/\s]+)/([^:\s]+): ", re.MULTILINE)


def owner_by_the_docs(key: str, members: Iterable[str]) -> str:
    """docs/operator.md "Sharding": the largest first-8-bytes big-endian SHA-256 of
    identity + "\\n" + NAMESPACE/NAME; ties to the smaller identity."""

    def weight(identity: str) -> int:
        return int.from_bytes(hashlib.sha256(f"{identity}\n{key}".encode()).digest()[:8], "big")

    return sorted(members, key=lambda m: (-weight(m), m))[0]


def _ticks(ops: dict[str, OperatorProcess], ns: str) -> list[tuple[datetime, str, str]]:
    """(time, replica, workload) of every tick logged, sorted by time."""
    out = []
    for identity, op in ops.items():
        for stamp, namespace, name in TICK.findall(op.log_text()):
            if namespace == ns:
                out.append((datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f"), identity, name))
    return sorted(out)


def _tickers_since(
    ops: dict[str, OperatorProcess], ns: str, since: datetime
) -> dict[str, list[tuple[datetime, str]]]:
    by: dict[str, list[tuple[datetime, str]]] = {w: [] for w in WORKLOADS}
    for at, identity, name in _ticks(ops, ns):
        if at >= since and name in by:
            by[name].append((at, identity))
    return by


def _settled(
    ops: dict[str, OperatorProcess], ns: str, since: datetime, ticks: int = 3
) -> dict[str, list[tuple[datetime, str]]] | None:
    """Every workload's ticks since `since`, once each has at least `ticks` of them."""
    by = _tickers_since(ops, ns, since)
    return by if all(len(v) >= ticks for v in by.values()) else None


def _members_line(members: Iterable[str]) -> str:
    return f"members {sorted(members)!r}"


def _agreed(ops: dict[str, OperatorProcess], members: Iterable[str]) -> bool:
    """Every running replica of `ops` logged this member set last and acts."""
    line = _members_line(members)
    for op in ops.values():
        text = op.log_text()
        last = text.rfind(" members [")
        if last < 0 or not text[last:].lstrip().startswith(line) or "acts on its share" not in text:
            return False
    return True


def _leases(kube: Kube, group: str) -> set[str]:
    out = kube.kubectl(
        "-n", SA_NAMESPACE, "get", "leases", "-l", f"rwscaler.io/shard-group={group}",
        "-o", "jsonpath={.items[*].spec.holderIdentity}",
    )  # fmt: skip
    return set(out.split())


@pytest.fixture
def shard_rbac(kube: Kube, tmp_path: Path) -> Iterator[None]:
    """The chart's Lease Role for sharding.enabled=true, bound to the tests' ServiceAccount."""
    from tools.render_manifests import helm_path  # noqa: PLC0415

    rendered = subprocess.run(
        [str(helm_path()), "template", "rwscaler", str(REPO / "manifests/charts/rwscaler"),
         "-n", SA_NAMESPACE, "--set", "sharding.enabled=true",
         "--show-only", "templates/leader-election-role.yaml"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    role = yaml.safe_load(rendered)
    name = "rwscaler-test-shards"
    role["metadata"] = {"name": name, "namespace": SA_NAMESPACE}
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": SA_NAMESPACE},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": SA_NAME, "namespace": SA_NAMESPACE}],
    }
    manifest = tmp_path / "shard-rbac.yaml"
    manifest.write_text(yaml.safe_dump_all([role, binding]))
    kube.kubectl("apply", "-f", str(manifest))
    yield
    kube.kubectl("delete", "--ignore-not-found", "-f", str(manifest))


def test_three_replicas_split_the_workloads_and_moves_are_bounded(
    kube: Kube, ns: str, operator: Callable[..., OperatorProcess], shard_rbac: None
) -> None:
    group = f"t{uuid.uuid4().hex[:8]}"
    for name in WORKLOADS:
        spec = workload_spec("http://127.0.0.1:9")
        spec["primary"] = {"statefulSet": f"{name}-primary"}
        spec["replicas"] = {"statefulSet": f"{name}-missing", "minReplicas": 1, "maxReplicas": 4}
        spec["pooler"] = {"kind": "EndpointSlice", "readService": f"{name}-read"}
        kube.create_workload(ns, name, spec)

    def start(identity: str) -> OperatorProcess:
        return operator(
            "--shards", "--lease-namespace", SA_NAMESPACE, "--shard-group", group,
            "--identity", identity, "--log-level", "debug",
        )  # fmt: skip

    ops = {i: start(i) for i in ("op-a", "op-b", "op-c")}
    wait_for("three replicas agreeing and acting", lambda: _agreed(ops, ops), timeout=90)
    assert _leases(kube, group) == set(ops)

    # 1. Every workload ticked by exactly the replica the docs' rule names.
    t0 = datetime.now()
    by = wait_for("every workload ticking", lambda: _settled(ops, ns, t0), timeout=60)
    for name, ticks in by.items():
        expected = owner_by_the_docs(f"{ns}/{name}", ops)
        assert {who for _, who in ticks} == {expected}, f"{name}: ticked by {ticks}, owner {expected}"
    shares = {i: sum(owner_by_the_docs(f"{ns}/{w}", ops) == i for w in WORKLOADS) for i in ops}
    record("shards: 12 workloads over 3 replicas", f"{shares}")

    # 2. kill -9 of op-b: its workloads move to the survivors the rule names for {a, c}.
    survivors = {"op-a": ops["op-a"], "op-c": ops["op-c"]}
    moved = [w for w in WORKLOADS if owner_by_the_docs(f"{ns}/{w}", ops) == "op-b"]
    assert moved, "op-b owns nothing: the test would show no move"
    killed = datetime.now()
    killed_at = time.monotonic()
    ops["op-b"].kill()

    def moved_all() -> bool:
        by = _tickers_since(survivors, ns, killed)
        return all(any(who == owner_by_the_docs(f"{ns}/{w}", survivors) for _, who in by[w]) for w in moved)

    wait_for("op-b's workloads ticked by their new owners", moved_all, timeout=60)
    kill_move_s = time.monotonic() - killed_at
    record(
        "shards: a killed replica's workloads move", f"{kill_move_s:.1f} s (bound 19 s + a tick; goal 30 s)"
    )
    assert kill_move_s <= KILL_MOVE_GOAL_S
    wait_for("op-b's Lease removed by a survivor", lambda: _leases(kube, group) == set(survivors), timeout=30)

    # 3. A fourth replica joins: it takes only its share; nobody else's workloads move.
    ops["op-d"] = joined = start("op-d")
    live = {"op-a": ops["op-a"], "op-c": ops["op-c"], "op-d": joined}
    wait_for("op-d joined and acting, the others agreeing", lambda: _agreed(live, live), timeout=90)
    t2 = datetime.now()
    by = wait_for("every workload ticking", lambda: _settled(live, ns, t2), timeout=60)
    for name, ticks in by.items():
        expected = owner_by_the_docs(f"{ns}/{name}", live)
        assert {who for _, who in ticks} == {expected}, f"{name}: ticked by {ticks}, owner {expected}"
        before = owner_by_the_docs(f"{ns}/{name}", survivors)
        assert expected in {before, "op-d"}, f"{name} moved from {before} to {expected}, not to op-d"

    # Never two owners at once: from t0 on, each workload's ticks change hands at most once per
    # membership change and never come back (a, b, a would mean two replicas acting in turn).
    for name, ticks in _tickers_since(ops, ns, t0).items():
        hands = [who for i, (_, who) in enumerate(ticks) if i == 0 or ticks[i - 1][1] != who]
        assert len(hands) == len(set(hands)), f"{name} went back and forth: {hands}"

    # 4. A clean stop: op-d deletes its Lease and its share moves back at once.
    stopped = datetime.now()
    stopped_at = time.monotonic()
    joined.stop()
    back = [w for w in WORKLOADS if owner_by_the_docs(f"{ns}/{w}", live) == "op-d"]

    def moved_back() -> bool:
        by = _tickers_since(survivors, ns, stopped)
        return all(any(who == owner_by_the_docs(f"{ns}/{w}", survivors) for _, who in by[w]) for w in back)

    assert _leases(kube, group) == set(survivors), "op-d's clean stop left its Lease"
    wait_for("op-d's workloads ticked by their owners again", moved_back, timeout=30)
    stop_move_s = time.monotonic() - stopped_at
    record(
        "shards: a stopped replica's workloads move", f"{stop_move_s:.1f} s (goal {STOP_MOVE_GOAL_S:.0f} s)"
    )
    assert stop_move_s <= STOP_MOVE_GOAL_S
