"""The decision core is pure: an AST scan of operator/rwscaler/core/*.py proves it imports nothing
that does I/O, reads no clock and talks to no adapter. (import-linter enforces the import side
too, in `make lint`; this scan also catches calls such as open(), print() and datetime.now().)
And the import-linter contracts cover every module of the package: none sits outside the layers."""

from __future__ import annotations

import ast
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
CORE = REPO / "operator" / "rwscaler" / "core"
CORE_FILES = sorted(CORE.glob("*.py"))

FORBIDDEN_MODULES = {
    # network, processes, event loops
    "socket",
    "ssl",
    "subprocess",
    "http",
    "urllib",
    "asyncio",
    "requests",
    "httpx",
    "aiohttp",
    "psycopg",
    "psycopg2",
    "prometheus_api_client",
    # Kubernetes and the operator framework
    "kopf",
    "kubernetes",
    # the clock, the environment, the file system
    "time",
    "os",
    "sys",
    "pathlib",
    "io",
    "shutil",
    "tempfile",
    "glob",
    "logging",
    "threading",
    "multiprocessing",
    "random",
    "secrets",
    "uuid",
}
# Inside the package: the core sits below every adapter and never imports one.
FORBIDDEN_PACKAGES = (
    "rwscaler.metrics",
    "rwscaler.kube",
    "rwscaler.pooler",
    "rwscaler.sim",
    "rwscaler.handlers",
)
FORBIDDEN_NAME_CALLS = {"open", "print", "input", "exec", "eval", "breakpoint", "__import__"}
CLOCK_ATTRIBUTES = {"now", "utcnow", "today", "time", "monotonic", "perf_counter", "time_ns", "sleep"}
FILE_ATTRIBUTES = {"read_text", "write_text", "read_bytes", "write_bytes", "open"}


@dataclass(frozen=True)
class Violation:
    where: str
    what: str


def _module_root(name: str) -> str:
    return name.split(".", maxsplit=1)[0]


def scan(source: str, filename: str = "<source>") -> list[Violation]:
    tree = ast.parse(source, filename=filename)
    found: list[Violation] = []

    def add(node: ast.AST, what: str) -> None:
        found.append(Violation(f"{filename}:{getattr(node, 'lineno', 0)}", what))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if _module_root(alias.name) in FORBIDDEN_MODULES:
                    add(node, f"import {alias.name}")
                if alias.name.startswith(FORBIDDEN_PACKAGES):
                    add(node, f"import {alias.name} (an adapter)")
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 0 and _module_root(module) in FORBIDDEN_MODULES:
                add(node, f"from {module} import ...")
            if module.startswith(FORBIDDEN_PACKAGES):
                add(node, f"from {module} import ... (an adapter)")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in FORBIDDEN_NAME_CALLS:
                add(node, f"{func.id}() call")
            elif isinstance(func, ast.Attribute):
                if func.attr in CLOCK_ATTRIBUTES:
                    add(node, f".{func.attr}() call (a clock)")
                if func.attr in FILE_ATTRIBUTES:
                    add(node, f".{func.attr}() call (file I/O)")
                if func.attr in {"getenv", "environ"}:
                    add(node, f".{func.attr} (configuration I/O)")
        elif isinstance(node, ast.Attribute) and node.attr == "environ":
            add(node, "os.environ (configuration I/O)")
    return found


def test_the_core_exists() -> None:
    names = {p.stem for p in CORE_FILES}
    assert {"decide", "spec", "read_pool", "sizing", "trends", "classify", "pool_sizing", "memory"} <= names


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: p.name)
def test_core_module_does_no_io_and_reads_no_clock(path: Path) -> None:
    violations = scan(path.read_text(), str(path.relative_to(REPO)))
    assert not violations, "\n".join(f"{v.where}: {v.what}" for v in violations)


@pytest.mark.parametrize("path", [p for p in CORE_FILES if p.name != "__init__.py"], ids=lambda p: p.name)
def test_core_module_says_what_it_is_for(path: Path) -> None:
    doc = ast.get_docstring(ast.parse(path.read_text()))
    assert doc and len(doc) > 40, f"{path.name} needs a module docstring"


@pytest.mark.parametrize(
    ("source", "what"),
    [
        ("import time", "import time"),
        ("import os.path", "import os.path"),
        ("from os import environ", "from os import"),
        ("import socket", "import socket"),
        ("from urllib.request import urlopen", "from urllib.request"),
        ("import http.client", "import http.client"),
        ("import asyncio", "import asyncio"),
        ("import kopf", "import kopf"),
        ("from kubernetes import client", "from kubernetes"),
        ("import httpx", "import httpx"),
        ("import psycopg", "import psycopg"),
        ("import subprocess", "import subprocess"),
        ("from rwscaler.metrics.source import WorkloadQuery", "an adapter"),
        ("open('x')", "open() call"),
        ("print('x')", "print() call"),
        ("import datetime\ndatetime.datetime.now()", ".now() call"),
        ("from datetime import datetime\ndatetime.utcnow()", ".utcnow() call"),
        ("from datetime import date\ndate.today()", ".today() call"),
        ("t.time()", ".time() call"),
        ("t.monotonic()", ".monotonic() call"),
        ("x = env.environ['HOME']", "os.environ"),
        ("p.read_text()", "file I/O"),
    ],
)
def test_scan_finds_what_it_forbids(source: str, what: str) -> None:
    """The scan is not vacuous: each forbidden thing, planted in a snippet, is found."""
    violations = scan(source)
    assert any(what in v.what for v in violations), violations


def test_scan_allows_plain_computation() -> None:
    source = (
        "from __future__ import annotations\nimport math\nfrom dataclasses import dataclass, replace\n"
        "def decide(now: float) -> float:\n    return math.exp(-now)\n"
    )
    assert scan(source) == []


# The import-linter contracts (pyproject.toml, checked by `make lint`) cover every module: each is
# named by a contract, itself or through a package above it, so none sits outside the layers.

PACKAGE = REPO / "operator" / "rwscaler"


def _contract_names(contract: dict[str, Any]) -> set[str]:
    """Every module a contract names (layers split into their modules, containers prefixed)."""
    names: set[str] = set()
    for key in ("source_modules", "forbidden_modules", "modules", "protected_modules", "allowed_importers"):
        names.update(contract.get(key, ()))
    prefixes = [f"{container}." for container in contract.get("containers", ())] or [""]
    for layer in contract.get("layers", ()):
        tails = {tail.strip().strip("()") for tail in re.split(r"[|:]", layer)}
        names.update(prefix + tail for prefix in prefixes for tail in tails)
    return names


def _named_by_contracts() -> set[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    return set().union(*(_contract_names(c) for c in config["contracts"]))


def _package_modules() -> list[str]:
    modules = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


def test_every_module_is_named_by_an_import_contract() -> None:
    named = _named_by_contracts()
    uncovered = [
        module
        for module in _package_modules()
        if module != "rwscaler"  # the root package: `root_packages`, the scope of every contract
        and not any(module == name or module.startswith(f"{name}.") for name in named)
    ]
    assert not uncovered, f"not named by any [[tool.importlinter.contracts]] in pyproject.toml: {uncovered}"


def test_the_coverage_check_sees_layers_and_containers() -> None:
    contract = {"containers": ["p.q"], "layers": ["a", "b | (c)", "d : e"], "source_modules": ["s"]}
    assert _contract_names(contract) == {"p.q.a", "p.q.b", "p.q.c", "p.q.d", "p.q.e", "s"}
    assert "rwscaler.pooler.pgbouncer.render" in _named_by_contracts()
    assert "rwscaler.cli" in _package_modules() and "rwscaler.pooler" in _package_modules()
