"""`kubectl rwscaler`'s arguments, the namespace it picks, error lines and the pause patch.

No API server here: the parts that talk to one are tested in
tests/integration/cluster/test_plugin.py against the local control plane."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from rwscaler import command_plugin, plugin_api
from rwscaler.kube.client import KubeApiError


def _kubeconfig(path: Path, contexts: dict[str, str | None], current: str | None) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [
                    {"name": n, "context": {"cluster": "c", "user": "u", **({"namespace": ns} if ns else {})}}
                    for n, ns in contexts.items()
                ],
                **({"current-context": current} if current else {}),
            }
        )
    )
    return path


@pytest.mark.parametrize(
    "argv",
    [
        ["status", "-n", "shop", "--context", "b", "--kubeconfig", "k"],
        ["-n", "shop", "--context", "b", "--kubeconfig", "k", "status"],
        ["--kubeconfig", "k", "status", "--namespace", "shop", "--context", "b"],
    ],
)
def test_connection_flags_work_before_and_after_the_subcommand(argv: list[str]) -> None:
    args = command_plugin.build_parser().parse_args(argv)
    assert (args.command, args.namespace, args.context, args.kubeconfig) == ("status", "shop", "b", "k")


def test_flags_default_to_none_and_status_takes_all_namespaces() -> None:
    args = command_plugin.build_parser().parse_args(["status", "-A"])
    assert (args.namespace, args.context, args.kubeconfig, args.all_namespaces) == (None, None, None, True)
    args = command_plugin.build_parser().parse_args(["pause", "orders-db", "-n", "shop"])
    assert (args.command, args.name, args.namespace) == ("pause", "orders-db", "shop")


def test_no_command_prints_usage_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert command_plugin.main([]) == 2
    assert "status" in capsys.readouterr().err


def _namespace(argv: list[str]) -> str:
    """The namespace the plugin would use for these arguments."""
    client, namespace = command_plugin.connect(command_plugin.build_parser().parse_args(argv))
    asyncio.run(client.close())
    return namespace


def test_namespace_comes_from_the_flag_else_the_context_else_default(tmp_path: Path) -> None:
    kc = str(_kubeconfig(tmp_path / "kc", {"a": "shop", "b": None}, current="a"))
    assert _namespace(["status", "--kubeconfig", kc]) == "shop"
    assert _namespace(["status", "--kubeconfig", kc, "--context", "b"]) == "default"
    assert _namespace(["status", "--kubeconfig", kc, "-n", "other"]) == "other"


def test_kubeconfig_env_and_home_are_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _kubeconfig(tmp_path / "one", {"a": "from-one"}, current="a")
    second = _kubeconfig(tmp_path / "two", {"b": "bee"}, current="b")
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", f"{first}:{second}")
    assert _namespace(["status"]) == "from-one"
    assert _namespace(["status", "--context", "b"]) == "bee"
    monkeypatch.delenv("KUBECONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".kube").mkdir()
    _kubeconfig(tmp_path / ".kube" / "config", {"h": "home"}, current="h")
    assert _namespace(["status"]) == "home"


def test_a_missing_context_or_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kc = _kubeconfig(tmp_path / "kc", {"a": "shop"}, current="a")
    assert command_plugin.main(["status", "--kubeconfig", str(kc), "--context", "nope"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "context 'nope' not found" in err
    assert command_plugin.main(["status", "--kubeconfig", str(tmp_path / "absent")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "absent: no such file" in err


def test_an_unreachable_api_server_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kc = tmp_path / "kc"
    kc.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "c",
                        "cluster": {"server": "https://127.0.0.1:1", "insecure-skip-tls-verify": True},
                    }
                ],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "a", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "a",
            }
        )
    )
    assert command_plugin.main(["status", "-A", "--kubeconfig", str(kc)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: cannot reach the Kubernetes API server at https://127.0.0.1:1")
    assert err.count("\n") == 1


def test_a_forbidden_answer_says_who_may_not_do_what() -> None:
    err = KubeApiError(
        403,
        "Forbidden",
        'readwriteworkloads.rwscaler.io is forbidden: User "system:serviceaccount:t:nobody" cannot list '
        'resource "readwriteworkloads" in API group "rwscaler.io" in the namespace "shop"',
    )
    text = str(plugin_api.describe(err, "list", "shop", None))
    assert text == (
        'forbidden: user "system:serviceaccount:t:nobody" may not list readwriteworkloads.rwscaler.io '
        'in namespace "shop" (RBAC grants it no such permission)'
    )
    cluster_wide = KubeApiError(
        403,
        "Forbidden",
        'User "u" cannot list resource "readwriteworkloads" in API group "rwscaler.io" at the cluster scope',
    )
    assert "at cluster scope" in str(plugin_api.describe(cluster_wide, "list", None, None))
    opaque = KubeApiError(403, "Forbidden", "denied by a webhook")
    assert str(plugin_api.describe(opaque, "patch", "shop", None)) == (
        'forbidden: may not patch readwriteworkloads.rwscaler.io in namespace "shop": denied by a webhook'
    )


def test_the_pause_patch_sets_and_removes_the_annotation() -> None:
    assert plugin_api.pause_patch(True) == {"metadata": {"annotations": {"rwscaler.io/paused": "true"}}}
    assert plugin_api.pause_patch(False) == {"metadata": {"annotations": {"rwscaler.io/paused": None}}}


class _Answer(http.server.BaseHTTPRequestHandler):
    """A stand-in API server that answers every request with one status (a real HTTP boundary)."""

    status = 404
    body: ClassVar[dict[str, str]] = {
        "kind": "Status",
        "reason": "NotFound",
        "message": "the server could not find the requested resource",
    }

    def _answer(self) -> None:
        data = json.dumps(self.body).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PATCH = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def fake_api(tmp_path: Path) -> Iterator[tuple[Path, type[_Answer]]]:
    handler = type("Handler", (_Answer,), {})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    kc = tmp_path / "kc"
    kc.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{server.server_port}"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "a", "context": {"cluster": "c", "user": "u", "namespace": "shop"}}],
                "current-context": "a",
            }
        )
    )
    yield kc, handler
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(
    "argv", [["status"], ["status", "-A"], ["explain", "orders-db"], ["pause", "orders-db"]]
)
def test_a_missing_crd_is_named(
    fake_api: tuple[Path, type[_Answer]], capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    kc, _ = fake_api
    assert command_plugin.main([*argv, "--kubeconfig", str(kc)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "does not serve readwriteworkloads.rwscaler.io/v1alpha1: is the rwscaler CRD installed?" in err


def test_rejected_credentials_are_named(
    fake_api: tuple[Path, type[_Answer]], capsys: pytest.CaptureFixture[str]
) -> None:
    kc, handler = fake_api
    handler.status = 401
    handler.body = {"kind": "Status", "reason": "Unauthorized", "message": "Unauthorized"}
    assert command_plugin.main(["status", "--kubeconfig", str(kc)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: unauthorized: the API server at http://127.0.0.1:")
    assert err.count("\n") == 1


def test_failing_credentials_are_not_called_unreachable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kc = tmp_path / "kc"
    kc.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:1"}}],
                "users": [{"name": "u", "user": {"tokenFile": str(tmp_path / "no-such-token")}}],
                "contexts": [{"name": "a", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "a",
            }
        )
    )
    assert command_plugin.main(["status", "--kubeconfig", str(kc)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "unreachable" not in err.lower() and "cannot reach" not in err
    assert "no-such-token" in err
