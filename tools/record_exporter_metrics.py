"""Record what the real exporters export: the names behind the metrics presets' contract test.

``make record-exporter-metrics`` (or ``python tools/record_exporter_metrics.py``) starts the
real test beds, makes them serve traffic, and writes each exporter's ``/metrics`` to
``tests/fixtures/exporter-metrics/<exporter>-<version>-<role>.prom``, which
``tests/unit/test_metric_names_contract.py`` checks every preset's metric names against:

- :class:`tests.support.pgenv.PgEnv` with a primary and one replica (so primary-only rows,
  ``pg_standby``, and replica-only rows, ``pg_wal_receiver``, both exist), after pgbench served
  reads on ``orders_ro`` and writes on ``orders`` through PgBouncer 1.18:
  Debian's prometheus-postgres-exporter 0.11.1 with ``postgres_exporter_queries.yaml`` + pgenv's
  ``ROLE_QUERY`` (``postgres_exporter-0.11.1-*``); postgres_exporter v0.20.1 with its default
  collectors and the same query file (``postgres_exporter-0.20.1-*``); Debian's exporter running
  CloudNativePG 1.30.0's default monitoring queries (``tests/support/cnpg/default-monitoring-1.30.0.yaml``,
  every query name prefixed ``cnpg_``) against the same servers (``cnpg-*``); PgBouncer read by
  Spreaker's PyPI exporter (pgenv's own) and by prometheus-community's ``pgbouncer_exporter``
  v0.10.2 and v0.12.1;
- :class:`tests.support.mariadb.MariaDbEnv` with a primary and one replica, ``performance_schema``
  on and ``--collect.perf_schema.eventsstatements`` added to the collectors the bed already runs,
  after a read and write load: Debian's mysqld_exporter 0.14.0 and mysqld_exporter v0.20.0
  (``mysqld_exporter-*``).

The Go exporters not in Debian 12 are built once into ``$RWSCALER_CACHE/bin`` by
``hack/pgenv/build-go-exporters.sh`` (``make go-exporters``); one that is not built is reported
and its dumps are left as they were.

A dump keeps, per metric, its ``# TYPE`` and one line per set of label names (``name{a,b}``):
values, timestamps, label values, HELP texts and the exporters' Go/Python runtime families are
dropped, so a rerun changes a file only when a name or a label changes (and the date line).
Each file starts with ``# rwscaler-fixture:`` (exporter, version, role, provenance) and comment
lines saying what ran, how, when, and the exporter's own up/error samples at the scrape. Files
marked ``provenance=source`` (exporters that cannot run here, named from their source) are
written by hand and never touched by this script.

Rerun it after an exporter upgrade or a change of ``postgres_exporter_queries.yaml``; it takes
about half a minute on the 2-core development machine.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
for path in (_REPO, _REPO / "operator"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import yaml  # noqa: E402
from tests.support import mariadb as mariadb_support  # noqa: E402
from tests.support import pgenv as pgenv_support  # noqa: E402
from tests.support.ports import LOOPBACK, free_port, wait_listening  # noqa: E402
from tests.support.procs import ManagedProcess  # noqa: E402

OUT_DIR = _REPO / "tests" / "fixtures" / "exporter-metrics"
CNPG_QUERIES = _REPO / "tests" / "support" / "cnpg" / "default-monitoring-1.30.0.yaml"
CNPG_VERSION = "1.30.0"
#: What hack/pgenv/build-go-exporters.sh builds (keep the two in step).
GO_EXPORTERS = {
    "pgbouncer_exporter": ("v0.10.2", "v0.12.1"),
    "postgres_exporter": ("v0.20.1",),
    "mysqld_exporter": ("v0.20.0",),
}
MAKE_TARGET = "`make record-exporter-metrics` (tools/record_exporter_metrics.py)"

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+\S+(?:\s+\S+)?$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
_TYPE = re.compile(r"^# TYPE (\S+) (\S+)")
#: The exporters' own runtime families: they change with the Go or Python build, not the exporter.
_RUNTIME = ("go_", "process_", "promhttp_", "python_")
#: Samples whose values the header keeps: did the exporter reach its server, did a query fail.
_HEALTH = re.compile(
    r"^((?:pg|pgbouncer|mysql)_up|(?:pg|mysql)_exporter_last_scrape_error)(?:\{[^}]*\})? (\S+)"
)


# ---- dumps -----------------------------------------------------------------------------------
def label_names(body: str) -> tuple[str, ...]:
    """The label names of one sample's ``{...}`` (values may hold commas, quotes, braces)."""
    names: list[str] = []
    pos = 0
    while pos < len(body):
        m = _LABEL.match(body, pos)
        if m is None:
            raise ValueError(f"cannot parse labels {body!r} at {pos}")
        names.append(m.group(1))
        pos = m.end()
    return tuple(sorted(names))


def normalise(text: str) -> list[str]:
    """Exposition text -> ``# TYPE`` lines and one ``name{label,names}`` line per label-name set."""
    types: dict[str, str] = {}
    series: dict[str, set[tuple[str, ...]]] = {}
    for line in text.splitlines():
        if m := _TYPE.match(line):
            types[m.group(1)] = m.group(2)
            continue
        if not line.strip() or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m is None:
            raise ValueError(f"cannot parse sample line {line!r}")
        if m.group(1).startswith(_RUNTIME):
            continue
        series.setdefault(m.group(1), set()).add(label_names(m.group(2) or ""))
    out: list[str] = []
    # A histogram's or summary's samples (_bucket, _sum, _count) follow its one TYPE line.
    family_of = {}
    for name in series:
        base = re.sub(r"_(bucket|sum|count|total|created)$", "", name)
        family_of[name] = name if name in types else base if base in types else name
    for family in sorted(set(family_of.values())):
        if family in types:
            out.append(f"# TYPE {family} {types[family]}")
        for name in sorted(n for n, f in family_of.items() if f == family):
            for labels in sorted(series[name]):
                out.append(f"{name}{{{','.join(labels)}}}" if labels else name)
    return out


def health(text: str) -> str:
    """``pg_up 1, pg_exporter_last_scrape_error 0``: the values of the exporter's own status samples."""
    found = [f"{m.group(1)} {m.group(2)}" for line in text.splitlines() if (m := _HEALTH.match(line))]
    return "at the scrape: " + (", ".join(found) if found else "no up sample")


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=15) as resp:
        body: bytes = resp.read()
    return body.decode()


def write_dump(
    exporter: str, version: str, role: str, how: Sequence[str], text: str, *, stamp: str, out_dir: Path
) -> Path:
    path = out_dir / f"{exporter}-{version}-{role}.prom"
    lines = normalise(text)
    header = [
        f"# rwscaler-fixture: exporter={exporter} version={version} role={role} provenance=run",
        f"# Recorded by {MAKE_TARGET} at {stamp}; {health(text)}.",
        *(f"# {line}" for line in how),
        "# Sample values, timestamps, label values, HELP and the go_/process_/promhttp_/python_ runtime",
        "# families removed; one line per metric name and label-name set.",
    ]
    path.write_text("\n".join(header + lines) + "\n")
    print(f"  wrote {path.relative_to(_REPO)} ({sum(not x.startswith('#') for x in lines)} series shapes)")
    return path


def command_version(argv: Sequence[str]) -> str:
    """``x.y.z`` from an exporter's ``--version`` output."""
    out = subprocess.run([*argv, "--version"], capture_output=True, text=True, timeout=30, check=False)
    m = re.search(r"version (\d+\.\d+\.\d+)", out.stdout + out.stderr)
    if m is None:
        raise RuntimeError(f"no version in {argv[0]} --version: {out.stdout + out.stderr!r}")
    return m.group(1)


def debian_version(package: str) -> str:
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True, check=False
    )
    return out.stdout.strip() or "?"


def log_warnings(proc: ManagedProcess, limit: int = 6) -> list[str]:
    """The exporter's warnings and errors, deduplicated, for the header (what really happened)."""
    seen: list[str] = []
    for line in proc.log_tail(400).splitlines():
        if not re.search(r"warn|error|fail|exception|traceback", line, re.IGNORECASE):
            continue
        text = re.sub(r"^\S*(time|ts)=\S+\s*", "", line.strip())
        text = re.sub(r"\d{4}-\d\d-\d\dT\S+\s*", "", text).replace(f"{_REPO}/", "")
        if text not in seen:
            seen.append(text)
    return [f"exporter log: {line[:300]}" for line in seen[:limit]]


# ---- CloudNativePG's default queries through postgres_exporter ----------------------------------
def cnpg_queries_for_postgres_exporter() -> tuple[str, list[str]]:
    """CloudNativePG's default queries with every name prefixed ``cnpg_``, and notes on what
    postgres_exporter does differently."""
    config = yaml.safe_load(CNPG_QUERIES.read_text())
    queries = yaml.safe_load(config["data"]["queries"])
    out: dict[str, object] = {}
    notes: list[str] = []
    for key, query in queries.items():
        name = f"cnpg_{query.get('name', key)}"  # CloudNativePG's `name:` overrides the prefix
        if name in out:
            notes.append(
                f"query {key} (runonserver {query.get('runonserver')}) left out: it exports as {name} too"
            )
            continue
        out[name] = {k: v for k, v in query.items() if k != "name"}
        ignored = sorted(set(query) & {"primary", "target_databases", "predicate_query"})
        if ignored:
            notes.append(f"{key}: postgres_exporter ignores {', '.join(ignored)}")
    return yaml.safe_dump(out, sort_keys=False), notes


# ---- exporters started here, beside the beds' own -------------------------------------------------
def go_exporter(name: str, version: str) -> Path | None:
    """A binary built by hack/pgenv/build-go-exporters.sh, or None (reported) when it is not."""
    binary = pgenv_support._cache_dir() / "bin" / f"{name}-{version}" / name
    if binary.is_file():
        return binary
    print(
        f"  {name} {version}: not built ({binary}; `make go-exporters`): its dumps are left as they were",
        file=sys.stderr,
    )
    return None


class Extra:
    """An exporter process this script starts (and stops) next to a bed, on a free port."""

    def __init__(self, name: str, argv: Sequence[str], *, log_dir: Path, env: dict[str, str] | None = None):
        self.port = free_port()
        self.proc = ManagedProcess(
            name,
            [*argv, f"--web.listen-address={LOOPBACK}:{self.port}"],
            log_path=log_dir / f"{name}.log",
            env=env,
        )
        self.proc.start()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/metrics"

    def wait(self) -> None:
        deadline = time.monotonic() + 30
        while not wait_listening(self.port, timeout=0.5):
            if not self.proc.running() or time.monotonic() > deadline:
                raise RuntimeError(f"{self.proc.name} is not listening:\n{self.proc.log_tail()}")


def stop_all(extras: Iterable[Extra]) -> None:
    procs = [e.proc for e in extras]
    for proc in procs:
        proc.request_stop()
    for proc in procs:
        proc.stop(timeout=15)


# ---- PostgreSQL, CloudNativePG queries, PgBouncer ------------------------------------------------
def record_postgres(stamp: str, out_dir: Path) -> list[Path]:
    written: list[Path] = []
    debian_exporter = pgenv_support.binaries()["postgres_exporter"]
    assert debian_exporter is not None
    debian = command_version([debian_exporter])
    debian_pkg = debian_version("prometheus-postgres-exporter")
    new_version = GO_EXPORTERS["postgres_exporter"][0]
    new_exporter = go_exporter("postgres_exporter", new_version)
    env = pgenv_support.PgEnv(replicas=1, with_prometheus=False)
    extras: dict[tuple[str, str], Extra] = {}
    with env:
        print(f"PostgreSQL bed up in {env.timings['total']:.1f}s")
        log_dir = env.workdir / "log"
        pg_version = env.sql(None, "SHOW server_version")[0][0]
        pgb_version = str(env.pgbouncer_admin("SHOW VERSION")[0].get("version", "?"))
        cnpg_text, cnpg_notes = cnpg_queries_for_postgres_exporter()
        cnpg_file = env.workdir / "cnpg-default-monitoring.yaml"
        cnpg_file.write_text(cnpg_text)
        try:
            for inst in env.instances:
                # CloudNativePG's default queries, through Debian's exporter, as its instance
                # manager runs them: connected to the postgres database.
                extras[("cnpg", inst.name)] = Extra(
                    f"cnpg-queries-{inst.name}",
                    [debian_exporter, f"--extend.query-path={cnpg_file}", "--disable-default-metrics",
                     "--disable-settings-metrics", "--log.level=warn"],
                    log_dir=log_dir,
                    env={"DATA_SOURCE_NAME": _pg_url(env, inst, "postgres")},
                )  # fmt: skip
                if new_exporter is not None:
                    # The current exporter: its default collectors (the replication collector
                    # among them) plus the project's query file, without pgenv's ROLE_QUERY.
                    extras[("new", inst.name)] = Extra(
                        f"postgres-exporter-{new_version}-{inst.name}",
                        [str(new_exporter), f"--extend.query-path={pgenv_support.QUERIES_FILE}",
                         "--no-collector.settings", "--log.level=warn"],
                        log_dir=log_dir,
                        env={"DATA_SOURCE_NAME": _pg_url(env, inst, env.database)},
                    )  # fmt: skip
            dsn = (
                f"postgres://{env.pgbouncer_stats_user}:{env.pgbouncer_stats_password}"
                f"@{LOOPBACK}:{env.pgbouncer_port}/pgbouncer?sslmode=disable"
            )
            for version in GO_EXPORTERS["pgbouncer_exporter"]:
                binary = go_exporter("pgbouncer_exporter", version)
                if binary is not None:
                    extras[("pgbouncer", version)] = Extra(
                        f"pgbouncer-exporter-{version}",
                        [str(binary), "--log.level=warn"],
                        log_dir=log_dir,
                        env={"PGBOUNCER_EXPORTER_CONNECTION_STRING": dsn},
                    )
            for extra in extras.values():
                extra.wait()
            # Traffic through PgBouncer on both databases: reads reach the replica, writes the
            # primary, so both have pg_stat_statements rows and PgBouncer has stats for both.
            reads = env.start_pgbench(env.read_database, rate=50, duration=4, clients=2)
            writes = env.start_pgbench(env.database, rate=20, duration=4, clients=1, read_only=False)
            for run in (reads, writes):
                result = run.wait()
                print(f"  pgbench {result.database}: {result.transactions} transactions")
            time.sleep(2.5)  # the standby's replies, a stats round
            bed = (
                f"Bed: tests/support/pgenv.py, PostgreSQL {pg_version} primary orders-pg-0 + streaming replica "
                f"orders-pg-replica-0, {pgb_version}, after pgbench through PgBouncer (reads on orders_ro, "
                "writes on orders)."
            )
            for inst in env.instances:
                of = f"of {inst.name} ({inst.role})"
                written.append(
                    write_dump(
                        "postgres_exporter", debian, inst.role,
                        [bed, f"Scraped: prometheus-postgres-exporter {debian} (Debian {debian_pkg}) {of},",
                         "  --extend.query-path=tests/support/postgres_exporter_queries.yaml + pgenv.ROLE_QUERY "
                         "(stands in for 0.13+'s replication collector), --disable-settings-metrics."],
                        scrape(env.exporter_url(inst)), stamp=stamp, out_dir=out_dir,
                    )
                )  # fmt: skip
                cnpg = extras[("cnpg", inst.name)]
                written.append(
                    write_dump(
                        "cnpg", CNPG_VERSION, inst.role,
                        [bed, f"Scraped: CloudNativePG {CNPG_VERSION}'s default monitoring queries "
                         "(tests/support/cnpg/default-monitoring-1.30.0.yaml, each query name prefixed cnpg_),",
                         f"  run by prometheus-postgres-exporter {debian} (not CloudNativePG's instance manager) "
                         f"{of}, database postgres, --disable-default-metrics --disable-settings-metrics.",
                         f"  Notes: {'; '.join(cnpg_notes)}.", *log_warnings(cnpg.proc)],
                        scrape(cnpg.url), stamp=stamp, out_dir=out_dir,
                    )
                )  # fmt: skip
                new = extras.get(("new", inst.name))
                if new is not None:
                    written.append(
                        write_dump(
                            "postgres_exporter", new_version.lstrip("v"), inst.role,
                            [bed, f"Scraped: prometheus-community postgres_exporter {new_version} (built by "
                             f"hack/pgenv/build-go-exporters.sh from the release tag) {of},",
                             "  default collectors, --extend.query-path=tests/support/postgres_exporter_queries.yaml "
                             "(no ROLE_QUERY: the replication collector is built in), --no-collector.settings.",
                             *log_warnings(new.proc)],
                            scrape(new.url), stamp=stamp, out_dir=out_dir,
                        )
                    )  # fmt: skip
            spreaker = pgenv_support.PGBOUNCER_EXPORTER_VERSION
            written.append(
                write_dump(
                    "prometheus-pgbouncer-exporter", spreaker, "pooler",
                    [bed, f"Scraped: Spreaker's prometheus-pgbouncer-exporter {spreaker} (PyPI; pgenv's own), "
                     "exclude_databases [pgbouncer]."],
                    scrape(env.exporter_url("pgbouncer")), stamp=stamp, out_dir=out_dir,
                )
            )  # fmt: skip
            for version in GO_EXPORTERS["pgbouncer_exporter"]:
                pgb = extras.get(("pgbouncer", version))
                if pgb is None:
                    continue
                written.append(
                    write_dump(
                        "pgbouncer_exporter", version.lstrip("v"), "pooler",
                        [bed, f"Scraped: prometheus-community pgbouncer_exporter {version} (built by "
                         "hack/pgenv/build-go-exporters.sh from the release tag),",
                         "  --pgBouncer.connectionString as the pooler's stats user.", *log_warnings(pgb.proc)],
                        scrape(pgb.url), stamp=stamp, out_dir=out_dir,
                    )
                )  # fmt: skip
        finally:
            stop_all(extras.values())
    return written


def _pg_url(env: pgenv_support.PgEnv, inst: pgenv_support.PgInstance, database: str) -> str:
    return (
        f"postgresql://{env.superuser}@{LOOPBACK}:{inst.port}/{database}"
        "?sslmode=disable&application_name=postgres_exporter"
    )


# ---- MariaDB ----------------------------------------------------------------------------------
#: Collectors the bed's exporters run (tests/support/mariadb.py), and what this script adds for
#: what the mysql preset reads besides them: the performance_schema statement digests (its latency
#: fallback), which need performance_schema on.
MYSQL_BED_COLLECTORS = (
    "--collect.global_status --collect.slave_status --collect.heartbeat "
    "--collect.info_schema.query_response_time --collect.global_variables"
)
MYSQL_EXTRA_EXPORTER_ARGS = ("--collect.perf_schema.eventsstatements",)
MYSQL_EXTRA_SERVER_ARGS = ("--performance-schema=ON",)


def record_mysql(stamp: str, out_dir: Path) -> list[Path]:
    written: list[Path] = []
    binary = mariadb_support.binaries()["mysqld_exporter"]
    assert binary is not None
    debian = command_version([binary])
    debian_pkg = debian_version("prometheus-mysqld-exporter")
    new_version = GO_EXPORTERS["mysqld_exporter"][0]
    new_exporter = go_exporter("mysqld_exporter", new_version)
    env = mariadb_support.MariaDbEnv(
        replicas=1, server_args=MYSQL_EXTRA_SERVER_ARGS, exporter_args=MYSQL_EXTRA_EXPORTER_ARGS
    )
    extras: dict[str, Extra] = {}
    with env:
        print(f"MariaDB bed up in {env.timings['total']:.1f}s")
        try:
            if new_exporter is not None:
                for inst in env.instances:
                    cnf = env.workdir / f"{inst.name}-exporter-{new_version}.cnf"
                    cnf.write_text(f"[client]\nuser={env.exporter_user}\npassword={env.exporter_password}\n")
                    cnf.chmod(0o600)
                    extras[inst.name] = Extra(
                        f"mysqld-exporter-{new_version}-{inst.name}",
                        [str(new_exporter), f"--config.my-cnf={cnf}", f"--mysqld.address={LOOPBACK}:{inst.port}",
                         *MYSQL_BED_COLLECTORS.split(), *MYSQL_EXTRA_EXPORTER_ARGS, "--log.level=warn"],
                        log_dir=env.workdir / "log",
                    )  # fmt: skip
            for extra in extras.values():
                extra.wait()
            server = env.sql(None, "SELECT VERSION()")[0][0]
            env.start_load(read_rate=40, write_rate=10, duration=4).wait()
            env.wait_caught_up(timeout=30)
            time.sleep(1.5)
            bed = (
                f"Bed: tests/support/mariadb.py, MariaDB {server} primary orders-db-0 + GTID replica "
                "orders-db-replica-0 (performance_schema=ON, QUERY_RESPONSE_TIME plugin, heartbeat writer), "
                "after reads and writes."
            )
            flags = f"  {MYSQL_BED_COLLECTORS} {' '.join(MYSQL_EXTRA_EXPORTER_ARGS)}."
            for inst in env.instances:
                assert inst.exporter is not None
                of = f"of {inst.name} ({inst.role})"
                written.append(
                    write_dump(
                        "mysqld_exporter", debian, inst.role,
                        [bed, f"Scraped: prometheus-mysqld-exporter {debian} (Debian {debian_pkg}) {of},", flags,
                         *log_warnings(inst.exporter)],
                        scrape(f"http://{inst.exporter_address}/metrics"), stamp=stamp, out_dir=out_dir,
                    )
                )  # fmt: skip
                new = extras.get(inst.name)
                if new is not None:
                    written.append(
                        write_dump(
                            "mysqld_exporter", new_version.lstrip("v"), inst.role,
                            [bed, f"Scraped: prometheus mysqld_exporter {new_version} (built by "
                             f"hack/pgenv/build-go-exporters.sh from the release tag) {of},", flags,
                             *log_warnings(new.proc)],
                            scrape(new.url), stamp=stamp, out_dir=out_dir,
                        )
                    )  # fmt: skip
        finally:
            stop_all(extras.values())
    return written


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="where the .prom files go")
    parser.add_argument("--only", choices=("postgres", "mysql"), help="record one bed only (default: both)")
    args = parser.parse_args(list(argv) if argv is not None else None)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    t0 = time.monotonic()
    written: list[Path] = []
    if args.only in (None, "postgres"):
        written += record_postgres(stamp, args.out)
    if args.only in (None, "mysql"):
        written += record_mysql(stamp, args.out)
    print(f"recorded {len(written)} dumps in {time.monotonic() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
