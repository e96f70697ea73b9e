"""The `rwscaler` command line (rwscaler.cli): each subcommand is reached through its loader, and
running one loads only what it needs: `rwscaler simulate` loads neither kopf nor the Kubernetes
client nor any adapter, in a fresh interpreter (the probe below is shown to see kopf when
`rwscaler run` loads it, so its silence for simulate means something)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rwscaler import cli

# What only the operator (or the kubectl plugin) may load.
HEAVY = (
    "kopf",
    "kubernetes",
    "httpx",
    "psycopg",
    "rwscaler.handlers",
    "rwscaler.reconcile",
    "rwscaler.kube",
    "rwscaler.pooler",
    "rwscaler.metrics",
)

PROBE = """
import contextlib, io, json, sys
from rwscaler.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    code = main(sys.argv[1:])
heavy = {heavy!r}
loaded = sorted(m for m in sys.modules if any(m == h or m.startswith(h + ".") for h in heavy))
print(json.dumps({{"code": code, "loaded": loaded}}))
"""


def _loaded_by(*argv: str) -> tuple[int, list[str]]:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(heavy=HEAVY), *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(done.stdout.splitlines()[-1])
    return result["code"], result["loaded"]


def test_simulate_loads_neither_kopf_nor_the_kubernetes_client() -> None:
    code, loaded = _loaded_by("simulate")
    assert code == 0
    assert loaded == []


def test_the_probe_sees_kopf_when_run_loads_the_operator(tmp_path: Path) -> None:
    # `run` imports the operator's wiring before it checks the kubeconfig (then exits 1).
    code, loaded = _loaded_by("run", "--kubeconfig", str(tmp_path / "nope"))
    assert code == 1
    assert "kopf" in loaded and "rwscaler.handlers" in loaded


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_each_loader_gives_its_subcommand_module(name: str) -> None:
    command = cli.COMMANDS[name].load()
    assert callable(command.add_arguments) and callable(command.run)
    assert command.__name__.rsplit(".", 1)[-1] == f"command_{name}"  # type: ignore[attr-defined]


def test_no_subcommand_prints_the_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([]) == 2
    help_text = capsys.readouterr().out
    assert all(name in help_text for name in cli.COMMANDS)
