"""`make mutate`: mutation testing of the decision core (operator/rwscaler/core/) with mutmut.

mutmut 3 imports the mutated code only from ./, src/ or source/, and the package's source root is
operator/, so the run happens in a staging copy (build/mutate: operator/ copied as src/, tests/
and pyproject.toml beside it, whose [tool.mutmut] section names what is mutated and which tests
run). The working tree is never modified.

    tools/mutate.py run [--scope safety|all] [--children N] [--code head|worktree]
                                         stage, run mutmut (niced), report
    tools/mutate.py retest               the last run's survivors again, with the tests as they are now
    tools/mutate.py report               report the last run again

The report: per function, mutants killed / survived / other (timeouts, suspicious, not checked);
every surviving mutant of the safety-critical functions with its diff; the overall kill rate of
what was checked. Exit status 1 when a safety-critical function has a surviving mutant.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAGE = ROOT / "build" / "mutate"

# The safety-critical functions (issue 10, item 9), as mutmut names them (module.x_function):
#   - the write-bound refusal, the both-rising refusal and the hold on unknown metrics
#     (recommend_replicas), the hold's "record nothing" in the stabilization (stabilize);
#   - the never-empty read pool and the pool held during a lag-query outage (select_read_pool);
#   - the drain before a scale-in (_drain_and_scale).
SAFETY_CRITICAL = {
    "rwscaler.core.sizing.x_recommend_replicas": "write-bound refusal, hold on unknown metrics",
    "rwscaler.core.sizing.x_stabilize": "hold on unknown metrics records nothing",
    "rwscaler.core.read_pool.x_select_read_pool": "never-empty read pool, held on a lag outage",
    "rwscaler.core.decide.x__drain_and_scale": "drain before scale-in",
}
STATUS_LINE = re.compile(r"^\s*(?P<name>\S+__mutmut_\d+): (?P<status>.+)$")


def stage(committed: bool) -> None:
    """Refresh build/mutate from HEAD (`committed`: the code, the tests and pyproject.toml as
    committed, so that edits in progress in the working tree cannot make the baseline run fail) or
    from the working tree. mutmut's own cache (build/mutate/mutants) is kept."""
    STAGE.mkdir(parents=True, exist_ok=True)
    for name in ("src", "tests", "operator"):
        if (STAGE / name).exists():
            shutil.rmtree(STAGE / name)
    if committed:
        archive = subprocess.run(
            ["git", "archive", "--format=tar", "HEAD", "operator", "tests", "pyproject.toml"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(STAGE)], input=archive, check=True)
        (STAGE / "operator").rename(STAGE / "src")
    else:
        skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
        shutil.copytree(ROOT / "operator", STAGE / "src", ignore=skip)
        shutil.copytree(ROOT / "tests", STAGE / "tests", ignore=skip)
        shutil.copy2(ROOT / "pyproject.toml", STAGE / "pyproject.toml")


def mutmut(*args: str, niced: bool = False) -> subprocess.CompletedProcess[str]:
    exe = str(Path(sys.executable).parent / "mutmut")
    cmd = (["nice", "-n", "15"] if niced else []) + [exe, *args]
    return subprocess.run(cmd, cwd=STAGE, text=True, capture_output=not niced, check=False)


def function_of(mutant: str) -> str:
    return mutant.partition("__mutmut_")[0]


def results() -> dict[str, str]:
    out = mutmut("results", "--all", "true").stdout
    found = {}
    for line in out.splitlines():
        m = STATUS_LINE.match(line)
        if m:
            found[m["name"]] = m["status"].strip()
    return found


def report() -> int:
    statuses = results()
    if not statuses:
        print("no mutmut results in build/mutate: run `make mutate` first")
        return 2
    per_function: dict[str, Counter[str]] = defaultdict(Counter)
    for name, status in statuses.items():
        per_function[function_of(name)][status] += 1
    print(f"{'function':60} {'killed':>7} {'survived':>9} {'other':>6}")
    for function in sorted(per_function):
        c = per_function[function]
        other = sum(c.values()) - c["killed"] - c["survived"]
        mark = " *" if function in SAFETY_CRITICAL else ""
        print(f"{function + mark:60} {c['killed']:>7} {c['survived']:>9} {other:>6}")
    print("(* safety-critical; other: not checked, timeout, suspicious, skipped, no tests)")
    survivors = [
        n for n, s in sorted(statuses.items()) if s == "survived" and function_of(n) in SAFETY_CRITICAL
    ]
    print()
    for function, what in SAFETY_CRITICAL.items():
        c = per_function.get(function, Counter())
        print(f"safety-critical {function} ({what}): {c['killed']} killed, {c['survived']} survived")
    for name in survivors:
        print()
        print(mutmut("show", name).stdout.rstrip())
    killed = sum(1 for s in statuses.values() if s == "killed")
    survived = sum(1 for s in statuses.values() if s == "survived")
    checked = killed + survived
    print()
    print(
        f"kill rate: {killed}/{checked} = {killed / checked:.1%} of the mutants checked "
        f"({len(statuses)} generated in operator/rwscaler/core/, {len(statuses) - checked} not killed or "
        f"survived: not run yet, timeouts, suspicious or no tests)"
        if checked
        else "kill rate: no mutant checked yet"
    )
    return 1 if survivors else 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="stage, run mutmut niced, report")
    run.add_argument("--scope", choices=("safety", "all"), default="all")
    run.add_argument("--children", type=int, default=2)
    run.add_argument(
        "--code",
        choices=("head", "worktree"),
        default="head",
        help="mutate the committed core or the working tree's",
    )
    sub.add_parser("report", help="report the last run")
    retest = sub.add_parser(
        "retest", help="re-stage the tests and run the last run's survivors again (new tests included)"
    )
    retest.add_argument("--children", type=int, default=2)
    retest.add_argument("--code", choices=("head", "worktree"), default="head")
    args = parser.parse_args()
    if args.command == "retest":
        survivors = [name for name, status in results().items() if status == "survived"]
        stage(committed=args.code == "head")
        if survivors:
            mutmut("run", "--max-children", str(args.children), *survivors, niced=True)
    if args.command == "run":
        stage(committed=args.code == "head")
        # One function after the other, in SAFETY_CRITICAL's order (mutmut itself goes file by
        # file), so that a run cut short has the most important functions done.
        batches = [[f"{f}__mutmut_*"] for f in SAFETY_CRITICAL] if args.scope == "safety" else [[]]
        for patterns in batches:
            done = mutmut("run", "--max-children", str(args.children), *patterns, niced=True)
            if done.returncode != 0:
                print(f"mutmut run {' '.join(patterns)} exited {done.returncode}", file=sys.stderr)
    return report()


if __name__ == "__main__":
    sys.exit(main())
