"""`rwscaler run`'s command line: what it refuses before kopf starts (one line, no traceback),
and the leader-election identity and namespace it derives (docs/operator.md's flag table)."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rwscaler import command_run


def _rwscaler(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rwscaler", "run", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def test_a_missing_kubeconfig_is_one_line_and_exit_1(tmp_path: Path) -> None:
    done = _rwscaler("--kubeconfig", str(tmp_path / "nope"))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"rwscaler run: kubeconfig {tmp_path / 'nope'}: no such file"]


def test_a_bad_default_prometheus_url_is_refused() -> None:
    done = _rwscaler("--prometheus-url", "http://bad host:9090")
    assert done.returncode == 2
    assert "--prometheus-url" in done.stderr and "Traceback" not in done.stderr


def test_leader_election_needs_a_namespace_outside_a_pod() -> None:
    env = {k: v for k, v in os.environ.items() if k != "POD_NAMESPACE"}
    done = _rwscaler("--leader-elect", env=env)
    assert done.returncode == 2 and "--lease-namespace" in done.stderr


def test_shards_need_a_namespace_and_exclude_leader_election() -> None:
    env = {k: v for k, v in os.environ.items() if k != "POD_NAMESPACE"}
    done = _rwscaler("--shards", env=env)
    assert done.returncode == 2 and "--shards needs --lease-namespace" in done.stderr
    done = _rwscaler("--shards", "--leader-elect", "--lease-namespace", "ops")
    assert done.returncode == 2 and "exclude each other" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("group", ["Upper", "-lead", "trail-", "a_b", "x" * 51, ""])
def test_a_shard_group_that_cannot_name_leases_is_refused(group: str) -> None:
    # docs/operator.md: lower-case letters, digits and '-', at most 50.
    done = _rwscaler("--shards", "--lease-namespace", "ops", "--shard-group", group)
    assert done.returncode == 2 and "--shard-group" in done.stderr and "Traceback" not in done.stderr


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command_run.add_arguments(parser)
    return parser.parse_args(argv)


def test_the_identity_is_the_pod_name_with_a_suffix_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAME", "rwscaler-7d9f-abcde")
    first, second = command_run._identity(_parse()), command_run._identity(_parse())
    assert first.startswith("rwscaler-7d9f-abcde_") and second.startswith("rwscaler-7d9f-abcde_")
    assert first != second  # a restarted process is not mistaken for the old holder
    assert command_run._identity(_parse("--identity", "op-a")) == "op-a"


def test_the_lease_namespace_comes_from_the_flag_then_the_pod(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAMESPACE", "rwscaler-system")
    assert command_run._lease_namespace(_parse()) == "rwscaler-system"
    assert command_run._lease_namespace(_parse("--lease-namespace", "ops")) == "ops"


def test_log_level_and_verbose() -> None:
    assert _parse().log_level == "info"
    assert _parse("-v").log_level == "debug"
    assert _parse("--log-level", "warning").log_level == "warning"
    with pytest.raises(SystemExit):
        _parse("--log-level", "chatty")


def test_a_bad_metrics_address_is_one_line_and_exit_2() -> None:
    done = _rwscaler("--metrics-address", "8081")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "rwscaler run: --metrics-address: '8081' is not ADDR:PORT (e.g. 127.0.0.1:9443)"
    ]
