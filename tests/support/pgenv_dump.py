"""Print the metric families the real exporters of the PostgreSQL setup emit.

``make pgenv-metrics`` (or ``python -m tests.support.pgenv_dump [--all]``): starts a
:class:`~tests.support.pgenv.PgEnv`, runs a short read and write pgbench load through
PgBouncer with replay paused on ``orders-pg-replica-0``, then prints, per exporter, every
``pg_*`` / ``pgbouncer_*`` family with its type and one sample series (labels included),
as Prometheus stores it (with the target labels). This is how the metric reference in
docs/testing-postgres.md was made; rerun it after a package upgrade.
"""

from __future__ import annotations

import argparse
import re
import time
import urllib.request

from .pgenv import PgEnv

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (.+)$")
_TYPE = re.compile(r"^# TYPE (\S+) (\S+)")


def families(text: str) -> dict[str, tuple[str, str]]:
    """name -> (type, first sample line) for the pg_* and pgbouncer_* families of one scrape."""
    types: dict[str, str] = {}
    found: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        if m := _TYPE.match(line):
            types[m.group(1)] = m.group(2)
            continue
        if line.startswith("#") or not (m := _SAMPLE.match(line)):
            continue
        name = m.group(1)
        if not name.startswith(("pg_", "pgbouncer_")) or name in found:
            continue
        base = re.sub(r"_(total|created)$", "", name)
        found[name] = (types.get(name, types.get(base, "untyped")), line)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--all", action="store_true", help="also list go_/process_/python_ families")
    args = parser.parse_args()
    with PgEnv() as env:
        print(f"# started in {env.timings['total']:.1f}s: {env.timings}")
        reads = env.start_pgbench("orders_ro", rate=100, duration=6, clients=2)
        writes = env.start_pgbench("orders", rate=25, duration=6, clients=1, read_only=False)
        time.sleep(2)
        env.pause_replay("orders-pg-replica-0")
        for run in (reads, writes):
            result = run.wait()
            print(f"# pgbench {result.database}: {result.transactions} transactions, tps {result.tps:.1f}")
        time.sleep(2)
        for target in env.scrape_targets():
            body = urllib.request.urlopen(f"http://{target.address}/metrics", timeout=10).read().decode()
            print(f"\n## job={target.job} {target.labels}")
            for _name, (kind, line) in sorted(families(body).items()):
                print(f"{kind:8} {line}")
            if args.all:
                others = sorted({m.group(1) for ln in body.splitlines() if (m := _SAMPLE.match(ln))})
                print(
                    "# other families:",
                    " ".join(n for n in others if not n.startswith(("pg_", "pgbouncer_"))),
                )
        env.resume_replay("orders-pg-replica-0")


if __name__ == "__main__":
    main()
