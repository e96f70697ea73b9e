"""`rwscaler explain`: a ReadWriteWorkload's last decision, in words, from its status.

    rwscaler explain orders-db -n shop              read it from the cluster (current kubeconfig)
    kubectl get rww orders-db -o yaml | rwscaler explain -f -

Everything shown was written by the operator's tick (`rwscaler.report`): the summary, the rules
that fired with their inputs, the signals, the read pool, conditions and recommendations. Nothing
is recomputed here, so the explanation is the one the decision was made with.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Mapping
from typing import Any

import yaml

from rwscaler.core.spec import PLURAL


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", help="the ReadWriteWorkload's name")
    parser.add_argument("-n", "--namespace", default="default", help="its namespace (default: default)")
    parser.add_argument("-f", "--file", metavar="FILE", help="read the object from FILE ('-': stdin)")
    parser.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig (default: $KUBECONFIG)")
    parser.add_argument("-o", "--output", choices=("text", "json"), default="text", help="output format")


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def render(obj: Mapping[str, Any]) -> str:
    """The explanation of one ReadWriteWorkload object (as read from the API)."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    lines = [f"{meta.get('namespace', '?')}/{meta.get('name', '?')}"]
    if not status:
        return lines[0] + ": no status yet (is the operator running?)"
    decision = status.get("decision") or {}
    if not decision:
        # Only a problem was ever reported (the spec could not be used): the conditions say why.
        lines.append("  no decision yet:")
        for c in status.get("conditions") or []:
            lines.append(f"    {c.get('type')}={c.get('status')} ({c.get('reason')}): {c.get('message')}")
        return "\n".join(lines)
    mode = status.get("mode", "?")
    lines.append(f"  mode:      {mode}")
    if decision.get("summary"):
        lines.append(f"  decision:  {decision['summary']}")
    replicas = status.get("replicas") or {}
    lines.append(
        f"  replicas:  current {replicas.get('current', '?')}, desired {replicas.get('desired', '?')}, "
        f"ready {replicas.get('ready', '?')}"
        + (f"; last scaled {status['lastScaleTime']}" if status.get("lastScaleTime") else "")
    )
    lines.append(
        f"  class:     {status.get('workloadClass', '?')} (reads:writes {status.get('readWriteRatio', '?')})"
    )
    observed = status.get("observed") or {}
    lines.append(
        "  signals:   "
        + ", ".join(
            f"{k} {observed.get(k, '?')}"
            for k in ("readQPS", "writeQPS", "readLatencyP99", "writeLatencyP99")
        )
    )
    for name, why in (observed.get("unknown") or {}).items():
        lines.append(f"             {name} unknown: {why}")
    lines.append(f"  read pool: {', '.join(status.get('readEndpoints') or []) or 'none'}")
    for r in observed.get("replicas") or []:
        flags = ["ready" if r.get("ready") else "not ready", f"lag {r.get('lag')}"]
        flags.append("in pool" if r.get("inReadPool") else "out of pool")
        if r.get("draining"):
            flags.append("draining")
        lines.append(f"             {r.get('name')}: {', '.join(flags)}")
    lines.append("  conditions:")
    for c in status.get("conditions") or []:
        lines.append(f"    {c.get('type')}={c.get('status')} ({c.get('reason')}): {c.get('message')}")
    if decision.get("reasons"):
        lines.append("  why:")
        for r in decision["reasons"]:
            inputs = r.get("inputs") or {}
            shown = f" [{', '.join(f'{k}={v}' for k, v in inputs.items())}]" if inputs else ""
            lines.append(f"    {r.get('rule')}: {r.get('message')}{shown}")
    if status.get("recommendations"):
        lines.append("  recommendations:")
        for r in status["recommendations"]:
            lines.append(f"    {r.get('type')}: {r.get('message')}")
    return "\n".join(lines)


async def _fetch(kubeconfig: str | None, namespace: str, name: str) -> dict[str, Any] | None:
    from rwscaler.kube.client import KubeClient  # noqa: PLC0415  (only when reading the cluster)
    from rwscaler.kube.cluster import workload_path  # noqa: PLC0415

    client = KubeClient.from_kubeconfig(kubeconfig)
    try:
        return await client.get(workload_path(namespace, name))
    finally:
        await client.close()


def run(args: argparse.Namespace) -> int:
    if args.file:
        text = sys.stdin.read() if args.file == "-" else open(args.file).read()  # noqa: SIM115
        obj = yaml.safe_load(text)
    elif args.name:
        from rwscaler.kube.client import KubeApiError  # noqa: PLC0415
        from rwscaler.kube.config import KubeConfigError  # noqa: PLC0415

        try:
            obj = asyncio.run(_fetch(args.kubeconfig, args.namespace, args.name))
        except (KubeConfigError, KubeApiError) as err:
            print(f"rwscaler explain: {err}", file=sys.stderr)
            return 1
        if obj is None:
            print(f"{PLURAL} {args.namespace}/{args.name} not found", file=sys.stderr)
            return 1
    else:
        print("rwscaler explain: give a NAME or -f FILE", file=sys.stderr)
        return 2
    if not isinstance(obj, dict):
        print("rwscaler explain: not a ReadWriteWorkload object", file=sys.stderr)
        return 2
    if args.output == "json":
        print(json.dumps(obj.get("status") or {}, indent=2))
    else:
        print(render(obj))
    return 0
