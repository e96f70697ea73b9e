"""Render the plain manifests in manifests/ from the Helm chart (`make manifests`).

    python tools/render_manifests.py [--helm PATH] [--check]

runs `helm template rwscaler manifests/charts/rwscaler -n rwscaler-system` with the chart's
default values and writes each rendered object to its file (`OUTPUTS`), under a header saying
it is generated. `--check` writes nothing and exits 1 when a committed file differs from a fresh
rendering; the chart's workload alerts go to a plain Prometheus rules file (`ALERTS`) and its
Grafana dashboard to `DASHBOARD`.
`manifests/rbac/namespace.yaml` stays hand-written (helm does not create the release
namespace). tests/integration/chart/test_chart_manifests.py calls `render` to compare.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "manifests" / "charts" / "rwscaler"
RELEASE = "rwscaler"
NAMESPACE = "rwscaler-system"
HEADER = "# rendered from manifests/charts/rwscaler by `make manifests`; do not edit\n"

# kind -> the file (relative to the repository) that holds the one object of that kind
OUTPUTS = {
    "ServiceAccount": "manifests/rbac/serviceaccount.yaml",
    "ClusterRole": "manifests/rbac/clusterrole.yaml",
    "ClusterRoleBinding": "manifests/rbac/clusterrolebinding.yaml",
    "Role": "manifests/rbac/role.yaml",
    "RoleBinding": "manifests/rbac/rolebinding.yaml",
    "Deployment": "manifests/operator.yaml",
}


# The workloads' alerts (the chart's files/workload-alerts.yaml) as a plain rules file.
ALERTS = "manifests/prometheus/rwscaler-alerts.yaml"
# The Grafana dashboard (the chart's files/dashboard.json), to import by hand.
DASHBOARD = "manifests/grafana/rwscaler-dashboard.json"


def helm_path() -> Path:
    """Where `make helm` puts helm (hack/cluster/lib.sh `bin_path helm`); it may not exist yet."""
    env = dict(os.environ)
    env.setdefault("RWSCALER_CACHE", str(Path.home() / ".cache" / "rwscaler"))
    out = subprocess.run(
        ["bash", "-c", ". hack/cluster/lib.sh && bin_path helm"],
        cwd=REPO,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return Path(out.stdout.strip())


def split_documents(text: str) -> list[str]:
    """The non-empty YAML documents of a multi-document stream, each as its own text."""
    docs: list[list[str]] = [[]]
    for line in text.splitlines(keepends=True):
        if line.rstrip() == "---":
            docs.append([])
        else:
            docs[-1].append(line)
    texts = ["".join(lines).strip("\n") + "\n" for lines in docs]
    return [t for t in texts if yaml.safe_load(t) is not None]


def render(helm: Path) -> dict[str, str]:
    """Repository-relative path -> the file's content, from a fresh `helm template`."""
    out = subprocess.run(
        [str(helm), "template", RELEASE, str(CHART), "--namespace", NAMESPACE],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    files: dict[str, str] = {}
    for doc in split_documents(out):
        kind = yaml.safe_load(doc).get("kind")
        path = OUTPUTS.get(kind)
        if path is None:
            raise SystemExit(f"render_manifests: the chart renders a {kind} that no file in manifests/ takes")
        if path in files:
            raise SystemExit(f"render_manifests: the chart renders more than one {kind}")
        files[path] = HEADER + doc
    missing = sorted(set(OUTPUTS.values()) - set(files))
    if missing:
        raise SystemExit(f"render_manifests: nothing rendered for {', '.join(missing)}")
    files[ALERTS] = alert_rules()
    files[DASHBOARD] = (CHART / "files" / "dashboard.json").read_text()
    return files


def alert_rules() -> str:
    """The chart's workload alerts as a plain Prometheus rules file (for a Prometheus without the
    Prometheus Operator: `rule_files`)."""
    rules = (CHART / "files" / "workload-alerts.yaml").read_text()
    indented = "".join(f"      {line}" if line.strip() else line for line in rules.splitlines(keepends=True))
    return HEADER + "groups:\n  - name: rwscaler-workloads\n    rules:\n" + indented


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--helm", type=Path, help="the helm binary (default: the one `make helm` builds)")
    parser.add_argument("--check", action="store_true", help="compare, write nothing; exit 1 on a difference")
    args = parser.parse_args(argv)
    helm = args.helm or helm_path()
    if not helm.is_file():
        print(f"render_manifests: no helm at {helm}: run `make helm`", file=sys.stderr)
        return 2
    stale = []
    for rel, text in render(helm).items():
        path = REPO / rel
        if args.check:
            if not path.is_file() or path.read_text() != text:
                stale.append(rel)
        elif not path.is_file() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {rel}")
    if stale:
        print(f"out of date (run `make manifests`): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
