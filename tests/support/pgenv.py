"""A PostgreSQL 15 primary with streaming replicas, PgBouncer, exporters and Prometheus.

The one PostgreSQL test setup shared by the metrics tests (issue 4: presets against real
exporters) and the pooler tests (issue 5: lag-aware PgBouncer read pools). Every process
runs on this machine, listens on 127.0.0.1 on a free port (or on a Unix socket in the
temp dir), and is stopped (verified gone) on exit; the temp dir is removed.

What runs, named as it would be in Kubernetes (namespace ``shop``):

- ``orders-pg-0``: the primary; ``orders-pg-replica-0`` .. ``-N-1``: replicas made with
  ``pg_basebackup -R``, each streaming through its own physical slot, with
  ``application_name`` = ``cluster_name`` = its pod name (so ``SELECT
  current_setting('cluster_name')`` tells which server answered).
- PgBouncer (pod ``orders-pgbouncer-0``): database ``orders`` -> the primary,
  ``orders_ro`` -> all replicas (a ``host=`` list, round robin). Auth md5 from a userlist
  file; an admin user and a stats user for the admin console. Its ini file can be
  rewritten and reloaded (:meth:`PgEnv.write_pgbouncer_databases`, :meth:`PgEnv.pgbouncer_admin`).
- one ``prometheus-postgres-exporter`` per PostgreSQL server (with the extra queries of
  ``postgres_exporter_queries.yaml``), the PgBouncer exporter, and a Prometheus scraping
  them every second with target labels ``namespace`` and ``pod``.

PgBouncer 1.18 takes one ``port=`` for a whole ``host=`` list, and every server here has
its own TCP port. So each server also listens on a Unix socket in its own directory, and
that directory holds a symlink named for the common port (:data:`POOLER_PORT`, 5432):
PgBouncer reaches server X with ``host=<pooler_host(X)> port=5432``, exactly as it would
reach pods by DNS name on one port. :meth:`PgEnv.database_line` renders such a line.

Failover (issue 11): roles move, pod names do not. :meth:`PgEnv.failover` stops the primary
(a fast shutdown hands every WAL record to the streaming standbys first), promotes a replica
with ``pg_ctl promote``, re-points the other replicas to it (``primary_conninfo`` and
``primary_slot_name`` by ALTER SYSTEM + reload; they follow the new timeline,
``recovery_target_timeline`` being ``latest``), rebuilds the old primary as a replica of the new
one with a fresh ``pg_basebackup`` (no ``pg_rewind``: it needs ``wal_log_hints`` or data checksums,
and a base backup of this small database takes well under a second) and points PgBouncer's write
database at the new primary. The single steps are public too (:meth:`PgEnv.promote`,
:meth:`PgEnv.repoint`, :meth:`PgEnv.rejoin`), and :meth:`PgEnv.reset` restores the original layout
(``orders-pg-0`` the primary) by failing back. Every instance keeps its name, port, socket,
exporter and scrape target throughout.

The role metric: Debian's postgres_exporter 0.11.1 has no ``replication`` collector (it came in
0.13.0, enabled by default, exporting ``pg_replication_is_replica`` and
``pg_replication_lag_seconds``). The exporters here run ``postgres_exporter_queries.yaml`` plus
that collector's query as an extension query named ``pg_replication`` (:data:`ROLE_QUERY`), so
the series exist under the names a current exporter gives them.

Used by ``tests/integration/postgres/conftest.py`` (the session fixture ``pgenv``) and the
failover tests (``tests/integration/postgres/test_failover_*.py``).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import psycopg
from psycopg import sql as pgsql
from psycopg.rows import TupleRow

from .ports import LOOPBACK, free_port, wait_listening
from .procs import (
    SERVER_OS_USER,
    ManagedProcess,
    SetupLifecycle,
    chown_to_server_user,
    make_workdir,
    need_binary,
    remove_workdir,
    run,
    server_user,
    setup_available,
)
from .prometheus import PrometheusServer, ScrapeTarget, prometheus_binary

PG_MAJOR = 15
#: The port every server's pooler socket answers on (see the module docstring).
POOLER_PORT = 5432
QUERIES_FILE = Path(__file__).with_name("postgres_exporter_queries.yaml")
PGBOUNCER_EXPORTER_VERSION = "2.1.2"
DEPS_HINT = "run `make pgenv-deps` (hack/pgenv/install.sh)"
#: postgres_exporter 0.13+'s default ``replication`` collector (collector/pg_replication.go), as
#: an extension query for Debian's 0.11.1: the same SQL, the same metric names
#: (``pg_replication_lag_seconds``, ``pg_replication_is_replica``: 1 in recovery, 0 on a primary).
ROLE_QUERY = """
# Added by tests/support/pgenv.py: postgres_exporter 0.13+'s default replication collector.
pg_replication:
  query: |
    SELECT
      CASE WHEN NOT pg_is_in_recovery() THEN 0
           ELSE GREATEST(0, EXTRACT(EPOCH FROM (now() - pg_last_xact_replay_timestamp())))
           END AS lag_seconds,
      CASE WHEN pg_is_in_recovery() THEN 1 ELSE 0 END AS is_replica
  metrics:
    - lag_seconds:
        usage: "GAUGE"
        description: "Replication lag behind master in seconds"
    - is_replica:
        usage: "GAUGE"
        description: "Indicates if the server is a replica"
"""

Role = Literal["primary", "replica"]


# ---- binaries -------------------------------------------------------------------------
def _cache_dir() -> Path:
    return Path(os.environ.get("RWSCALER_CACHE", str(Path.home() / ".cache" / "rwscaler")))


def pg_bindir() -> Path | None:
    """Directory of the PostgreSQL 15 server binaries (``$PGENV_PG_BINDIR`` or Debian's)."""
    explicit = os.environ.get("PGENV_PG_BINDIR")
    candidates = [Path(explicit)] if explicit else [Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin")]
    for candidate in candidates:
        if (candidate / "postgres").is_file():
            return candidate
    return None


def _executable(path: str | Path | None) -> str | None:
    if path is None:
        return None
    return str(path) if os.access(path, os.X_OK) else None


def pgbouncer_exporter_binary() -> str | None:
    """The PgBouncer exporter (PyPI prometheus-pgbouncer-exporter, installed by install.sh)."""
    explicit = os.environ.get("PGBOUNCER_EXPORTER_BIN")
    if explicit:
        return _executable(explicit)
    venv = _cache_dir() / f"pgbouncer-exporter-{PGBOUNCER_EXPORTER_VERSION}"
    return _executable(venv / "bin" / "pgbouncer-exporter") or _executable(shutil.which("pgbouncer-exporter"))


def binaries() -> dict[str, str | None]:
    """Every binary the setup needs, by role; None where missing."""
    bindir = pg_bindir()
    pg = {
        name: _executable(bindir / name) if bindir else None
        for name in ("postgres", "initdb", "pg_basebackup", "pgbench", "pg_ctl", "pg_controldata")
    }
    return {
        **pg,
        "pgbouncer": _executable(shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"),
        "prometheus": prometheus_binary(),
        "postgres_exporter": _executable(
            os.environ.get("POSTGRES_EXPORTER_BIN")
            or shutil.which("prometheus-postgres-exporter")
            or "/usr/bin/prometheus-postgres-exporter"
        ),
        "pgbouncer_exporter": pgbouncer_exporter_binary(),
    }


def pgenv_available() -> tuple[bool, str]:
    """(True, "") when everything is installed; else (False, what is missing and how to fix it)."""
    return setup_available(
        binaries(), setup="PostgreSQL", os_user=SERVER_OS_USER, runs="the servers", hint=DEPS_HINT
    )


def _need(name: str) -> str:
    return need_binary(binaries(), name, DEPS_HINT)


# ---- data -----------------------------------------------------------------------------
@dataclass
class PgInstance:
    """One PostgreSQL server of the setup."""

    name: str
    """Its pod name: ``orders-pg-0`` or ``orders-pg-replica-<ordinal>``."""
    role: Role
    ordinal: int
    port: int
    datadir: Path
    socket_dir: Path
    """Unix socket directory; also its ``host=`` in PgBouncer (with ``port=5432``)."""
    exporter_port: int
    slot: str | None = None
    process: ManagedProcess | None = field(default=None, repr=False)
    exporter: ManagedProcess | None = field(default=None, repr=False)
    home_role: Role = "replica"
    """The role it was created with: its place in the layout, which a failover does not move
    (``role`` is the role it has now)."""

    @property
    def is_primary(self) -> bool:
        return self.role == "primary"

    @property
    def pooler_host(self) -> str:
        return str(self.socket_dir)

    @property
    def exporter_address(self) -> str:
        return f"{LOOPBACK}:{self.exporter_port}"


@dataclass(frozen=True)
class PgbenchResult:
    """What one pgbench run achieved (parsed from its report)."""

    database: str
    clients: int
    target_rate: float
    duration: float
    transactions: int
    failed: int
    tps: float
    """Transactions per second, without the initial connection time (pgbench's ``tps =``)."""
    latency_avg_ms: float | None
    started_at: float
    """Wall-clock (epoch) start and end, to line the run up with Prometheus samples."""
    ended_at: float
    exit_code: int
    output: str = field(repr=False)


class PgbenchRun:
    """A pgbench started in the background (:meth:`PgEnv.start_pgbench`)."""

    def __init__(
        self,
        argv: list[str],
        env: Mapping[str, str],
        *,
        database: str,
        clients: int,
        rate: float,
        duration: float,
        script_path: Path | None,
    ) -> None:
        self.database = database
        self.clients = clients
        self.rate = rate
        self.duration = duration
        self._script_path = script_path
        self.started_at = time.time()
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **env},
        )

    def stop(self) -> None:
        """End the run now (SIGTERM), without a report: for a writer whose server goes away."""
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.communicate()
        if self._script_path is not None:
            self._script_path.unlink(missing_ok=True)

    @property
    def running(self) -> bool:
        return self._proc.poll() is None

    def wait(self, check: bool = True, timeout: float | None = None) -> PgbenchResult:
        limit = timeout if timeout is not None else self.duration + 120
        try:
            output, _ = self._proc.communicate(timeout=limit)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            output, _ = self._proc.communicate()
            raise RuntimeError(f"pgbench did not finish in {limit}s:\n{output}") from None
        finally:
            if self._script_path is not None:
                self._script_path.unlink(missing_ok=True)
        ended = time.time()
        result = parse_pgbench(
            output,
            database=self.database,
            clients=self.clients,
            rate=self.rate,
            duration=self.duration,
            started_at=self.started_at,
            ended_at=ended,
            exit_code=self._proc.returncode,
        )
        if check and (self._proc.returncode != 0 or result.failed):
            raise RuntimeError(f"pgbench exited {self._proc.returncode}, {result.failed} failed:\n{output}")
        return result


def _number(pattern: str, text: str) -> float | None:
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else None


def parse_pgbench(
    output: str,
    *,
    database: str,
    clients: int,
    rate: float,
    duration: float,
    started_at: float,
    ended_at: float,
    exit_code: int,
) -> PgbenchResult:
    """Parse pgbench 15's report."""
    transactions = _number(r"^number of transactions actually processed: (\d+)", output)
    tps = _number(r"^tps = ([0-9.]+)", output)
    if transactions is None or tps is None:
        raise RuntimeError(f"cannot parse pgbench output (exit {exit_code}):\n{output}")
    return PgbenchResult(
        database=database,
        clients=clients,
        target_rate=rate,
        duration=duration,
        transactions=int(transactions),
        failed=int(_number(r"^number of failed transactions: (\d+)", output) or 0),
        tps=tps,
        latency_avg_ms=_number(r"^latency average = ([0-9.]+) ms", output),
        started_at=started_at,
        ended_at=ended_at,
        exit_code=exit_code,
        output=output,
    )


# ---- the setup ------------------------------------------------------------------------
class PgEnv(SetupLifecycle):
    """PostgreSQL primary + streaming replicas + PgBouncer + exporters + Prometheus."""

    def __init__(
        self,
        replicas: int = 2,
        *,
        namespace: str = "shop",
        primary_statefulset: str = "orders-pg",
        replica_statefulset: str = "orders-pg-replica",
        pgbouncer_pod: str = "orders-pgbouncer-0",
        database: str = "orders",
        read_database: str = "orders_ro",
        scrape_interval: float = 1.0,
        with_prometheus: bool = True,
        pgbench_scale: int = 1,
        base_dir: Path | None = None,
        instance_names: Callable[[Role, int], str] | None = None,
        exporter_queries: Path | None = None,
        exporter_database: str | None = None,
        exporter_args: Sequence[str] = (),
        settings: Mapping[str, str] | None = None,
    ) -> None:
        """Optional, for setups laid out like an operator's (the CloudNativePG test,
        ``tests/support/cnpg``): ``instance_names(role, ordinal)`` names the servers (pods)
        instead of ``<primary_statefulset>-0`` / ``<replica_statefulset>-<ordinal>`` (the
        primary is ordinal 0, replicas count from 0); ``exporter_queries`` replaces
        ``postgres_exporter_queries.yaml`` as the exporters' ``--extend.query-path``;
        ``exporter_database`` is the database the exporters connect to (default ``database``);
        ``exporter_args`` are added to every exporter's command line; ``settings`` are appended
        to every server's postgresql.conf as ``name = 'value'`` (e.g. ``pg_stat_statements.max``)."""
        if replicas < 0:
            raise ValueError("replicas must be >= 0")
        super().__init__()
        self.namespace = namespace
        self._initial_namespace = namespace
        self.primary_statefulset = primary_statefulset
        self.replica_statefulset = replica_statefulset
        self.pgbouncer_pod = pgbouncer_pod
        self.database = database
        self.read_database = read_database
        self.scrape_interval = scrape_interval
        self.with_prometheus = with_prometheus
        self.pgbench_scale = pgbench_scale
        self._initial_replicas = replicas
        self._instance_names = instance_names
        self.exporter_queries = exporter_queries or QUERIES_FILE
        self.exporter_database = exporter_database or database
        self.exporter_args = tuple(exporter_args)
        self.settings = dict(settings or {})
        self._base_dir = base_dir
        #: Role used by clients and pgbench (owns the database; md5 through PgBouncer).
        self.app_user = "app"
        self.app_password = secrets.token_hex(8)
        #: PgBouncer admin console (``admin_users``) and stats user (``stats_users``).
        self.pgbouncer_admin_user = "pgbouncer_admin"
        self.pgbouncer_admin_password = secrets.token_hex(8)
        self.pgbouncer_stats_user = "pgbouncer_exporter"
        self.pgbouncer_stats_password = secrets.token_hex(8)
        self.superuser = "postgres"

        self.primary: PgInstance | None = None
        self.replicas: list[PgInstance] = []
        #: Former primaries out of service after a failover (stopped, or still running on their
        #: own timeline), until :meth:`rejoin` makes them replicas of the primary.
        self.detached: list[PgInstance] = []
        self._queries_path = self.exporter_queries
        self.pgbouncer_port = 0
        self.pgbouncer_exporter_port = 0
        self.pgbouncer_ini_path = Path()
        self.pgbouncer_userlist_path = Path()
        self.prometheus: PrometheusServer | None = None
        self._pgbouncer: ManagedProcess | None = None
        self._pgbouncer_exporter: ManagedProcess | None = None
        self._lock = threading.RLock()
        #: Walsenders stopped by :meth:`stop_walsender` (replica pod name -> pid).
        self._stopped_walsenders: dict[str, int] = {}

    # ---- lifecycle: SetupLifecycle's start and close call these -----------------------
    def _available(self) -> tuple[bool, str]:
        return pgenv_available()

    def _start_all(self) -> None:
        t0 = time.monotonic()
        self.workdir = make_workdir(
            "pgenv-", self._base_dir, ("data", "s", "log", "pgbouncer"), SERVER_OS_USER
        )
        self._start_primary()
        self.timings["primary"] = time.monotonic() - t0
        self._init_primary()
        self.timings["schema+pgbench -i"] = time.monotonic() - t0
        with ThreadPoolExecutor(max_workers=max(1, self._initial_replicas)) as pool:
            list(pool.map(self._create_replica, range(self._initial_replicas)))
        self.wait_streaming(timeout=60)
        self.timings["replicas streaming"] = time.monotonic() - t0
        self._start_pgbouncer()
        self._start_exporters()
        self.timings["pgbouncer+exporters"] = time.monotonic() - t0
        if self.with_prometheus:
            self.prometheus = PrometheusServer(
                self.scrape_targets(),
                scrape_interval=self.scrape_interval,
                workdir=self.workdir / "prometheus",
            )
            self.prometheus.start()
            self.prometheus.wait_for_targets(timeout=60)
        self.timings["total"] = time.monotonic() - t0

    def _stop_all(self) -> None:
        self.continue_walsenders()
        if self.prometheus is not None:
            self.prometheus.stop()
        procs = [p for p in (self._pgbouncer_exporter, self._pgbouncer) if p is not None]
        for inst in self.instances:
            if inst.exporter is not None:
                procs.append(inst.exporter)
        for inst in [*self.replicas, *self.detached]:
            if inst.process is not None:
                procs.append(inst.process)
        for proc in procs:
            proc.request_stop()
        with ThreadPoolExecutor(max_workers=max(1, len(procs))) as pool:
            list(pool.map(lambda p: p.stop(timeout=15), procs))
        if self.primary is not None and self.primary.process is not None:
            self.primary.process.stop(timeout=15)
        remove_workdir(self.workdir)
        self.replicas = []
        self.detached = []
        self.primary = None

    # ---- naming -------------------------------------------------------------------
    @property
    def instances(self) -> list[PgInstance]:
        """The primary first, then the replicas by ordinal, then detached former primaries."""
        return (
            ([self.primary] if self.primary is not None else [])
            + sorted(self.replicas, key=lambda r: r.ordinal)
            + list(self.detached)
        )

    def instance(self, which: str | PgInstance | None = None) -> PgInstance:
        """An instance by pod name (or ``"primary"``, ``"replica-<n>"``); None means the primary."""
        if isinstance(which, PgInstance):
            return which
        if which is None or which == "primary":
            if self.primary is None:
                raise RuntimeError("the setup is not running")
            return self.primary
        for inst in self.instances:
            if which == inst.name or (inst.home_role == "replica" and which == f"replica-{inst.ordinal}"):
                return inst
        raise KeyError(f"no instance {which!r}; have {[i.name for i in self.instances]}")

    def replica_name(self, ordinal: int) -> str:
        if self._instance_names is not None:
            return self._instance_names("replica", ordinal)
        return f"{self.replica_statefulset}-{ordinal}"

    @property
    def primary_name(self) -> str:
        if self._instance_names is not None:
            return self._instance_names("primary", 0)
        return f"{self.primary_statefulset}-0"

    # ---- PostgreSQL ---------------------------------------------------------------
    def _new_instance(self, name: str, role: Role, ordinal: int) -> PgInstance:
        used = frozenset({POOLER_PORT})
        return PgInstance(
            name=name,
            role=role,
            ordinal=ordinal,
            port=free_port(avoid=used),
            datadir=self.workdir / "data" / name,
            socket_dir=self.workdir / "s" / name,
            exporter_port=free_port(),
            slot=name.replace("-", "_") if role == "replica" else None,
            home_role=role,
        )

    def _server_conf(self, inst: PgInstance) -> str:
        return "\n".join(
            [
                "",
                "# --- rwscaler pgenv (tests/support/pgenv.py)",
                f"listen_addresses = '{LOOPBACK}'",
                f"port = {inst.port}",
                f"unix_socket_directories = '{inst.socket_dir}'",
                f"cluster_name = '{inst.name}'",
                "max_connections = 100",
                "shared_buffers = 32MB",
                "fsync = off",
                "synchronous_commit = off",
                "wal_level = replica",
                "max_wal_senders = 10",
                "max_replication_slots = 10",
                "max_wal_size = 256MB",
                "hot_standby = on",
                "hot_standby_feedback = on",
                "wal_receiver_status_interval = 1s",
                "wal_receiver_timeout = 10s",
                "wal_sender_timeout = 10s",
                "wal_retrieve_retry_interval = 1s",
                "shared_preload_libraries = 'pg_stat_statements'",
                "pg_stat_statements.track = top",
                "log_min_messages = warning",
                "log_line_prefix = '%m [%p] %q%a '",
                *(f"{name} = '{value}'" for name, value in self.settings.items()),
                "",
            ]
        )

    def _start_server(self, inst: PgInstance) -> None:
        inst.socket_dir.mkdir(parents=True, exist_ok=True)
        chown_to_server_user(inst.socket_dir)
        link = inst.socket_dir / f".s.PGSQL.{POOLER_PORT}"
        if not link.is_symlink():
            link.symlink_to(f".s.PGSQL.{inst.port}")
        inst.process = ManagedProcess(
            inst.name,
            [_need("postgres"), "-D", str(inst.datadir)],
            log_path=self.workdir / "log" / f"{inst.name}.log",
            as_server_user=True,
            stop_signal=signal.SIGINT,  # fast shutdown
        )
        inst.process.start()
        deadline = time.monotonic() + 60
        while True:
            if not inst.process.running():
                raise RuntimeError(f"{inst.name} exited at start:\n{inst.process.log_tail()}")
            try:
                with psycopg.connect(self.dsn(inst, dbname="postgres"), connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def _start_primary(self) -> None:
        inst = self._new_instance(self.primary_name, "primary", 0)
        self.primary = inst
        run(
            [_need("initdb"), "-D", str(inst.datadir), "-U", self.superuser, "--auth=trust",
             "-E", "UTF8", "--locale=C", "--no-sync"],
            as_server_user=True,
        )  # fmt: skip
        with open(inst.datadir / "postgresql.conf", "a") as conf:
            conf.write(self._server_conf(inst))
        self._start_server(inst)

    def _init_primary(self) -> None:
        with self.connect(dbname="postgres") as conn:
            conn.execute(
                pgsql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    pgsql.Identifier(self.app_user), pgsql.Literal(self.app_password)
                )
            )
            conn.execute(
                pgsql.SQL("CREATE DATABASE {} OWNER {}").format(
                    pgsql.Identifier(self.database), pgsql.Identifier(self.app_user)
                )
            )
        with self.connect() as conn:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        primary = self.instance()
        run(
            [_need("pgbench"), "-i", "-q", "-s", str(self.pgbench_scale), "-I", "dtGvp",
             "-h", LOOPBACK, "-p", str(primary.port), "-U", self.app_user, self.database],
            timeout=300,
        )  # fmt: skip

    def _create_replica(self, ordinal: int) -> PgInstance:
        inst = self._new_instance(self.replica_name(ordinal), "replica", ordinal)
        self._base_backup(inst)
        with self._lock:
            self.replicas.append(inst)
        self._start_server(inst)
        return inst

    def _base_backup(self, inst: PgInstance) -> None:
        """A fresh data directory for ``inst``: a base backup of the primary streaming through
        ``inst``'s own slot (created here), with ``inst``'s settings appended."""
        primary = self.instance()
        assert inst.slot is not None
        # Reserve the slot's WAL before the backup starts: with `pg_basebackup -C` two backups in
        # parallel race, and one's fast checkpoint can recycle WAL the other has not reserved yet
        # ("requested WAL segment has already been removed").
        with self.connect() as conn:
            conn.execute("SELECT pg_create_physical_replication_slot(%s, true)", (inst.slot,))
        run(
            [_need("pg_basebackup"), "-h", LOOPBACK, "-p", str(primary.port), "-U", self.superuser,
             "-D", str(inst.datadir), "-X", "stream", "-R", "-S", inst.slot,
             "--checkpoint=fast", "--no-sync"],
            as_server_user=True,
            timeout=300,
        )  # fmt: skip
        with open(inst.datadir / "postgresql.conf", "a") as conf:
            conf.write(self._server_conf(inst))
        with open(inst.datadir / "postgresql.auto.conf", "a") as auto:
            auto.write(
                f"primary_conninfo = '{self._primary_conninfo(inst)}'\nprimary_slot_name = '{inst.slot}'\n"
            )

    def _primary_conninfo(self, inst: PgInstance, port: int | None = None) -> str:
        port = port if port is not None else self.instance().port
        return f"host={LOOPBACK} port={port} user={self.superuser} application_name={inst.name} connect_timeout=2"

    def break_replication(self, which: str | PgInstance) -> None:
        """Break a replica's stream while every server keeps running: point its
        ``primary_conninfo`` at a port where nothing listens (ALTER SYSTEM + reload).
        Its WAL receiver stops streaming and keeps retrying; :meth:`restore_replication`
        (or :meth:`reset`) points it back."""
        inst = self._replica(which)
        dead_port = free_port()
        self._set_primary_conninfo(inst, self._primary_conninfo(inst, port=dead_port))
        deadline = time.monotonic() + 15
        while self.sql(inst, "SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'")[0][0]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{inst.name}: still streaming 15s after its primary_conninfo was broken")
            time.sleep(0.1)

    def restore_replication(self, which: str | PgInstance, wait: bool = True) -> None:
        inst = self._replica(which)
        self._set_primary_conninfo(inst, self._primary_conninfo(inst))
        if wait:
            self.wait_streaming()

    def replication_broken(self, which: str | PgInstance) -> bool:
        """True when the replica's primary_conninfo is not the one that reaches the primary."""
        inst = self._replica(which)
        return bool(self.sql(inst, "SHOW primary_conninfo")[0][0] != self._primary_conninfo(inst))

    def _set_primary_conninfo(self, inst: PgInstance, conninfo: str) -> None:
        with self.connect(inst) as conn:
            conn.execute(pgsql.SQL("ALTER SYSTEM SET primary_conninfo = {}").format(pgsql.Literal(conninfo)))
            conn.execute("SELECT pg_reload_conf()")

    def wait_streaming(self, timeout: float = 30.0) -> None:
        """Wait until the primary's pg_stat_replication shows every replica streaming."""
        want = {r.name for r in self.replicas}
        deadline = time.monotonic() + timeout
        rows: list[tuple[Any, ...]] = []
        while True:
            rows = self.sql(
                None, "SELECT application_name, state FROM pg_stat_replication", dbname="postgres"
            )
            if want <= {name for name, state in rows if state == "streaming"}:
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"replicas not streaming after {timeout}s: {rows}")
            time.sleep(0.1)

    def wait_caught_up(
        self, timeout: float = 30.0, replicas: Iterable[str | PgInstance] | None = None
    ) -> None:
        """Wait until the replicas (default: all) replayed the primary's current WAL position."""
        (target,) = self.sql(None, "SELECT pg_current_wal_lsn()::text", dbname="postgres")[0]
        chosen = [self.instance(r) for r in replicas] if replicas is not None else list(self.replicas)
        deadline = time.monotonic() + timeout
        for inst in chosen:
            while True:
                (behind,) = self.sql(
                    inst, "SELECT pg_wal_lsn_diff(%s::pg_lsn, pg_last_wal_replay_lsn()) > 0", (target,)
                )[0]
                if not behind:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{inst.name} has not replayed {target} after {timeout}s")
                time.sleep(0.05)

    def add_replica(self, wait: bool = True) -> PgInstance:
        """Create, start and scrape one more replica (the next ordinal). PgBouncer is not changed."""
        with self._lock:
            ordinal = max((r.ordinal for r in self.replicas), default=-1) + 1
        inst = self._create_replica(ordinal)
        self._start_exporter(inst)
        if wait:
            self.wait_streaming()
        self._update_prometheus_targets(wait=wait)
        return inst

    def remove_replica(self, which: str | PgInstance | None = None) -> PgInstance:
        """Stop and delete a replica (default: the highest ordinal), its exporter, target and slot.

        PgBouncer is not changed: drain it first (a scale-in removes the highest ordinal).
        """
        with self._lock:
            if which is None:
                if not self.replicas:
                    raise RuntimeError("no replica to remove")
                inst = max(self.replicas, key=lambda r: r.ordinal)
            else:
                inst = self.instance(which)
                if inst.is_primary:
                    raise ValueError("the primary cannot be removed")
            self.replicas.remove(inst)
        self._update_prometheus_targets(wait=False)
        for proc in (inst.exporter, inst.process):
            if proc is not None:
                proc.stop(timeout=15)
        if inst.slot is not None:
            with contextlib.suppress(psycopg.Error):
                self.sql(None, "SELECT pg_drop_replication_slot(%s)", (inst.slot,), dbname="postgres")
        shutil.rmtree(inst.datadir, ignore_errors=True)
        shutil.rmtree(inst.socket_dir, ignore_errors=True)
        return inst

    def reset(self) -> None:
        """Bring the setup back to its initial state, cheaply when nothing changed.

        Starts Prometheus, PgBouncer and stopped servers again; puts the original namespace
        label back; after a failover fails back to the original primary (:meth:`failover`); removes replicas added
        beyond the initial count and re-creates initial ones that were removed; resumes
        replay everywhere; restores the initial ``[databases]`` (RELOAD) and RESUMEs or
        ENABLEs databases paused or disabled on the admin console; waits until every
        replica streams and has caught up."""
        self.continue_walsenders()
        if self.prometheus is not None and not self.prometheus.running:
            self.start_prometheus(wait=False)
        if self.namespace != self._initial_namespace:
            self.set_namespace(self._initial_namespace, wait=False)
        for inst in [self.instance(), *self.replicas]:
            if inst.process is not None and not inst.process.running():
                self._start_server(inst)
        self._restore_layout()
        for extra in [r for r in self.replicas if r.ordinal >= self._initial_replicas]:
            self.remove_replica(extra)
        have = {r.ordinal for r in self.replicas}
        for ordinal in range(self._initial_replicas):
            if ordinal not in have:
                inst = self._create_replica(ordinal)
                self._start_exporter(inst)
                self._update_prometheus_targets(wait=False)
        for inst in self.replicas:
            if self.replay_paused(inst):
                self.resume_replay(inst)
            if self.replication_broken(inst):
                self.restore_replication(inst, wait=False)
        if not self.pgbouncer_running:
            self.start_pgbouncer()
        initial = self.render_pgbouncer_ini(self.initial_databases())
        if self.pgbouncer_ini_path.read_text() != initial:
            self._write_file(self.pgbouncer_ini_path, initial)
            self.pgbouncer_admin("RELOAD")
        for row in self.pgbouncer_admin("SHOW DATABASES"):
            if row["name"] == "pgbouncer":
                continue
            if row.get("paused"):
                self.pgbouncer_admin(f"RESUME {row['name']}")
            if row.get("disabled"):
                self.pgbouncer_admin(f"ENABLE {row['name']}")
        self.wait_streaming(timeout=60)
        self.wait_caught_up(timeout=60)
        if self.prometheus is not None:
            self.prometheus.wait_for_targets(timeout=60)

    def stop_instance(self, which: str | PgInstance) -> None:
        """Stop one server (fast shutdown), keeping its data: ``start_instance`` brings it back."""
        inst = self.instance(which)
        if inst.process is not None:
            inst.process.stop(timeout=15)

    def start_instance(self, which: str | PgInstance) -> None:
        self._start_server(self.instance(which))

    # ---- failover -------------------------------------------------------------------
    def is_in_recovery(self, which: str | PgInstance) -> bool:
        """What the server itself says (``pg_is_in_recovery()``): True on a replica."""
        return bool(self.sql(which, "SELECT pg_is_in_recovery()", dbname="postgres")[0][0])

    def timeline(self, which: str | PgInstance | None = None) -> int:
        """The timeline a server writes (primary) or receives (replica, from its WAL receiver;
        0 while it has none)."""
        inst = self.instance(which)
        if self.is_in_recovery(inst):
            rows = self.sql(inst, "SELECT received_tli FROM pg_stat_wal_receiver", dbname="postgres")
            return int(rows[0][0] or 0) if rows else 0
        (name,) = self.sql(inst, "SELECT pg_walfile_name(pg_current_wal_lsn())", dbname="postgres")[0]
        return int(str(name)[:8], 16)

    def promote(self, which: str | PgInstance) -> PgInstance:
        """``pg_ctl promote -w`` on a replica: it leaves recovery on a new timeline and becomes
        :attr:`primary`. The former primary is not touched: it moves to :attr:`detached` (still
        running, if it was, on the old timeline) until :meth:`rejoin`; the other replicas keep
        following it until :meth:`repoint`."""
        inst = self._replica(which)
        run([_need("pg_ctl"), "promote", "-D", str(inst.datadir), "-w", "-t", "60"], as_server_user=True)
        deadline = time.monotonic() + 30
        while self.is_in_recovery(inst):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{inst.name} still in recovery 30s after pg_ctl promote")
            time.sleep(0.05)
        with self._lock:
            old = self.primary
            self.replicas.remove(inst)
            inst.role = "primary"
            self.primary = inst
            if old is not None:
                self.detached.append(old)
        return inst

    def _ensure_slot(self, inst: PgInstance) -> None:
        """``inst``'s physical slot on the primary (made when missing, reserving WAL at once)."""
        if inst.slot is None:
            inst.slot = inst.name.replace("-", "_")
        self.sql(
            None,
            "SELECT pg_create_physical_replication_slot(%s, true) "
            "WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = %s)",
            (inst.slot, inst.slot),
            dbname="postgres",
        )

    def repoint(self, which: str | PgInstance, timeout: float = 30.0) -> None:
        """Make a replica stream from the current primary through its own slot there:
        ``primary_conninfo`` and ``primary_slot_name`` by ALTER SYSTEM, then a reload (its WAL
        receiver restarts). Returns once it streams the primary's timeline from it."""
        inst = self._replica(which)
        self._ensure_slot(inst)
        with self.connect(inst, dbname="postgres") as conn:
            conn.execute(
                pgsql.SQL("ALTER SYSTEM SET primary_conninfo = {}").format(
                    pgsql.Literal(self._primary_conninfo(inst))
                )
            )
            conn.execute(
                pgsql.SQL("ALTER SYSTEM SET primary_slot_name = {}").format(pgsql.Literal(inst.slot))
            )
            conn.execute("SELECT pg_reload_conf()")
        self.wait_following(inst, timeout=timeout)

    def wait_following(self, which: str | PgInstance, timeout: float = 30.0) -> None:
        """Wait until a replica's WAL receiver streams the current primary's timeline from it."""
        inst = self._replica(which)
        primary = self.instance()
        want = ("streaming", primary.port, self.timeline(primary))
        deadline = time.monotonic() + timeout
        rows: list[tuple[Any, ...]] = []
        while True:
            rows = self.sql(
                inst, "SELECT status, sender_port, received_tli FROM pg_stat_wal_receiver", dbname="postgres"
            )
            if rows and tuple(rows[0]) == want:
                return
            if time.monotonic() > deadline:
                log = inst.process.log_tail() if inst.process is not None else ""
                raise TimeoutError(
                    f"{inst.name} does not follow {primary.name} {want} after {timeout}s: {rows}\n{log}"
                )
            time.sleep(0.05)

    def rejoin(self, which: str | PgInstance, timeout: float = 60.0) -> PgInstance:
        """Bring an instance back as a replica of the current primary (typically the former
        primary after :meth:`promote`): stop it, replace its data directory by a fresh
        ``pg_basebackup`` of the primary, start it. Same name, port, socket and exporter."""
        inst = self.instance(which)
        if inst is self.primary:
            raise ValueError(f"{inst.name} is the primary")
        if inst.process is not None:
            inst.process.stop(timeout=15)
        if inst.slot is None:
            inst.slot = inst.name.replace("-", "_")
        with contextlib.suppress(psycopg.Error):  # a leftover inactive slot of the same name
            self.sql(
                None,
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                "WHERE slot_name = %s AND NOT active",
                (inst.slot,),
                dbname="postgres",
            )
        shutil.rmtree(inst.datadir)
        self._base_backup(inst)
        with self._lock:
            if inst in self.detached:
                self.detached.remove(inst)
            if inst not in self.replicas:
                self.replicas.append(inst)
            inst.role = "replica"
        self._start_server(inst)
        self.wait_following(inst, timeout=timeout)
        return inst

    def _checkpoint_lsn(self, inst: PgInstance) -> str:
        """The last checkpoint a stopped server wrote (``pg_controldata``): after a clean
        shutdown, the last record of its WAL."""
        out = run([_need("pg_controldata"), "-D", str(inst.datadir)], as_server_user=True).stdout
        match = re.search(r"^Latest checkpoint location:\s+(\S+)$", out, re.MULTILINE)
        if match is None:
            raise RuntimeError(f"no checkpoint location in pg_controldata of {inst.name}:\n{out}")
        return match.group(1)

    def failover(
        self,
        which: str | PgInstance,
        *,
        rejoin_old: bool = True,
        pgbouncer: bool = True,
        timeout: float = 60.0,
    ) -> dict[str, float]:
        """Make replica ``which`` the primary, as an HA manager's switchover does; returns the
        seconds from the start to the end of each step, also kept in :attr:`timings` as
        ``failover: <step>``.

        1. the primary stops (fast shutdown: its WAL senders first hand every record, the
           shutdown checkpoint included, to the streaming replicas), and ``which`` replays up
           to that checkpoint (``pg_controldata``): no committed write is lost;
        2. :meth:`promote` (``pg_ctl promote``): a new timeline;
        3. :meth:`repoint` every other replica (they follow the new timeline; one that cannot,
           having replayed past the fork, is rebuilt by :meth:`rejoin`);
        4. unless ``rejoin_old`` is False, :meth:`rejoin` the old primary (a fresh base backup);
           otherwise it stays stopped in :attr:`detached`;
        5. unless ``pgbouncer`` is False, PgBouncer's write database -> the new primary and
           its read database -> the replicas (RELOAD).
        """
        new = self._replica(which)
        old = self.instance()
        t0 = time.monotonic()
        steps: dict[str, float] = {}
        if old.process is not None:
            old.process.stop(timeout=15)
        end = self._checkpoint_lsn(old)
        deadline = time.monotonic() + timeout
        while not self.sql(
            new, "SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), %s::pg_lsn) > 0", (end,), dbname="postgres"
        )[0][0]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{new.name} has not replayed {old.name}'s shutdown checkpoint {end}")
            time.sleep(0.02)
        steps["old primary stopped"] = time.monotonic() - t0
        self.promote(new)
        steps["promoted"] = time.monotonic() - t0
        for replica in list(self.replicas):
            try:
                self.repoint(replica, timeout=min(timeout, 10.0))
            except TimeoutError:
                self.rejoin(replica, timeout=timeout)
        steps["replicas re-pointed"] = time.monotonic() - t0
        if rejoin_old:
            self.rejoin(old, timeout=timeout)
            steps["old primary rejoined"] = time.monotonic() - t0
        if pgbouncer and self.pgbouncer_running:
            self.write_pgbouncer_databases(self.initial_databases())
            steps["pgbouncer re-pointed"] = time.monotonic() - t0
        for step, seconds in steps.items():
            self.timings[f"failover: {step}"] = seconds
        return steps

    def _restore_layout(self) -> None:
        """The original roles again: the original primary the primary, every other instance
        its replica. Nothing happens when they hold already."""
        home = self.instance(self.primary_name)
        if self.primary is home and not self.detached:
            return
        for stale in [d for d in self.detached if d is not home]:
            self.rejoin(stale)
        if home in self.detached:
            self.rejoin(home)
        if self.primary is not home:
            self.failover(home, pgbouncer=False)

    # ---- SQL ----------------------------------------------------------------------
    def dsn(
        self, which: str | PgInstance | None = None, *, dbname: str | None = None, user: str | None = None
    ) -> str:
        """A libpq DSN straight to a server over TCP (superuser, trust auth)."""
        inst = self.instance(which)
        return (
            f"host={LOOPBACK} port={inst.port} dbname={dbname or self.database} "
            f"user={user or self.superuser} application_name=pgenv"
        )

    def connect(
        self, which: str | PgInstance | None = None, *, dbname: str | None = None
    ) -> psycopg.Connection[TupleRow]:
        """An autocommit connection straight to a server (superuser)."""
        return psycopg.connect(self.dsn(which, dbname=dbname), autocommit=True, connect_timeout=5)

    def sql(
        self,
        which: str | PgInstance | None,
        query: str,
        params: Sequence[Any] | None = None,
        *,
        dbname: str | None = None,
    ) -> list[tuple[Any, ...]]:
        """Run one statement on a server; its rows (empty when it returns none)."""
        with self.connect(which, dbname=dbname) as conn:
            cur = conn.execute(query.encode(), params)
            return list(cur.fetchall()) if cur.description is not None else []

    def pause_replay(self, which: str | PgInstance) -> None:
        """``pg_wal_replay_pause()`` on a replica; returns when replay is paused."""
        inst = self._replica(which)
        self.sql(inst, "SELECT pg_wal_replay_pause()")
        deadline = time.monotonic() + 10
        while self.sql(inst, "SELECT pg_get_wal_replay_pause_state()")[0][0] != "paused":
            if time.monotonic() > deadline:
                raise TimeoutError(f"{inst.name}: replay not paused after 10s")
            time.sleep(0.05)

    def resume_replay(self, which: str | PgInstance) -> None:
        self.sql(self._replica(which), "SELECT pg_wal_replay_resume()")

    def replay_paused(self, which: str | PgInstance) -> bool:
        return bool(self.sql(self._replica(which), "SELECT pg_is_wal_replay_paused()")[0][0])

    def stop_walsender(self, which: str | PgInstance) -> int:
        """A silent partition: SIGSTOP the primary's walsender that serves this replica (its
        ``pg_stat_replication`` row by ``application_name`` = the pod name). Nothing is closed:
        the receiver still says ``streaming`` and the primary still lists the standby until
        ``wal_receiver_timeout`` (10 s here) makes the receiver give up. Returns the pid;
        :meth:`continue_walsender` (also :meth:`reset` and the teardown) SIGCONTs it."""
        inst = self._replica(which)
        rows = self.sql(
            None,
            "SELECT pid FROM pg_stat_replication WHERE application_name = %s",
            (inst.name,),
            dbname="postgres",
        )
        if len(rows) != 1:
            raise RuntimeError(f"{inst.name}: expected one walsender on the primary, found {rows}")
        pid = int(rows[0][0])
        self._stopped_walsenders[inst.name] = pid  # before the signal: cleanup always continues it
        os.kill(pid, signal.SIGSTOP)
        return pid

    def continue_walsender(self, which: str | PgInstance) -> None:
        """SIGCONT the walsender :meth:`stop_walsender` stopped for this replica (if any)."""
        pid = self._stopped_walsenders.pop(self.instance(which).name, None)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def continue_walsenders(self) -> None:
        """SIGCONT every walsender :meth:`stop_walsender` stopped."""
        while self._stopped_walsenders:
            _name, pid = self._stopped_walsenders.popitem()
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def _replica(self, which: str | PgInstance) -> PgInstance:
        inst = self.instance(which)
        if inst.is_primary:
            raise ValueError(f"{inst.name} is the primary, not a replica")
        return inst

    # ---- PgBouncer ----------------------------------------------------------------
    def pooler_host(self, which: str | PgInstance | None = None) -> str:
        """The ``host=`` value that reaches this server from PgBouncer (with ``port=5432``)."""
        return self.instance(which).pooler_host

    def database_line(
        self, servers: Sequence[str | PgInstance], *, dbname: str | None = None, **params: str | int
    ) -> str:
        """A ``[databases]`` value: ``host=<a>,<b> port=5432 dbname=orders [k=v ...]``."""
        if not servers:
            raise ValueError("a database needs at least one server")
        hosts = ",".join(self.pooler_host(s) for s in servers)
        extra = "".join(f" {k}={v}" for k, v in params.items())
        return f"host={hosts} port={POOLER_PORT} dbname={dbname or self.database}{extra}"

    def initial_databases(self) -> dict[str, str]:
        """The ``[databases]`` entries at start: write -> primary, read -> every replica."""
        readers: Sequence[str | PgInstance] = self.replicas or [self.instance()]
        return {
            self.database: self.database_line([self.instance()]),
            self.read_database: self.database_line(sorted(readers, key=lambda r: self.instance(r).ordinal)),
        }

    def pgbouncer_settings_ini(self) -> str:
        """The ``[pgbouncer]`` section (everything but the databases) this setup runs with."""
        settings = {
            "listen_addr": LOOPBACK,
            "listen_port": self.pgbouncer_port,
            "unix_socket_dir": "",
            "auth_type": "md5",
            "auth_file": self.pgbouncer_userlist_path,
            "admin_users": self.pgbouncer_admin_user,
            "stats_users": self.pgbouncer_stats_user,
            "pool_mode": "transaction",
            "server_round_robin": 1,
            "default_pool_size": 10,
            "max_client_conn": 200,
            "ignore_startup_parameters": "extra_float_digits",
            "server_login_retry": 1,
            "server_connect_timeout": 3,
            "query_wait_timeout": 10,
            "server_lifetime": 3600,
            "log_connections": 0,
            "log_disconnections": 0,
            "log_stats": 0,
        }
        return "[pgbouncer]\n" + "".join(f"{k} = {v}\n" for k, v in settings.items())

    def render_pgbouncer_ini(self, databases: Mapping[str, str] | str) -> str:
        """A whole pgbouncer.ini: a ``[databases]`` section (a mapping, or its rendered text)
        followed by :meth:`pgbouncer_settings_ini`."""
        if isinstance(databases, str):
            body = databases if databases.lstrip().startswith("[databases]") else "[databases]\n" + databases
        else:
            body = "[databases]\n" + "".join(f"{name} = {line}\n" for name, line in databases.items())
        return body.rstrip("\n") + "\n\n" + self.pgbouncer_settings_ini()

    def write_pgbouncer_databases(self, databases: Mapping[str, str] | str, *, reload: bool = True) -> None:
        """Rewrite the ini with these databases and (by default) ``RELOAD`` through the admin console."""
        self._write_file(self.pgbouncer_ini_path, self.render_pgbouncer_ini(databases))
        if reload:
            self.pgbouncer_admin("RELOAD")

    def pgbouncer_dsn(
        self, database: str | None = None, *, user: str | None = None, password: str | None = None
    ) -> str:
        """A DSN through PgBouncer (default: the read database as the app user)."""
        user = user or self.app_user
        if password is None:
            password = {
                self.app_user: self.app_password,
                self.pgbouncer_admin_user: self.pgbouncer_admin_password,
                self.pgbouncer_stats_user: self.pgbouncer_stats_password,
            }.get(user, "")
        return (
            f"host={LOOPBACK} port={self.pgbouncer_port} dbname={database or self.read_database} "
            f"user={user} password={password} application_name=pgenv"
        )

    def connect_pgbouncer(self, database: str | None = None) -> psycopg.Connection[TupleRow]:
        """An autocommit app connection through PgBouncer (no server-side prepared statements:
        PgBouncer 1.18 in transaction mode cannot carry them)."""
        return psycopg.connect(
            self.pgbouncer_dsn(database), autocommit=True, prepare_threshold=None, connect_timeout=5
        )

    def pgbouncer_admin(self, command: str) -> list[dict[str, Any]]:
        """Run an admin console command (``SHOW POOLS``, ``RELOAD``, ``RECONNECT db``, ...) as
        the admin user; the rows as dicts (empty for commands without rows)."""
        with psycopg.connect(
            self.pgbouncer_dsn("pgbouncer", user=self.pgbouncer_admin_user),
            autocommit=True,
            cursor_factory=psycopg.ClientCursor,  # the console speaks the simple protocol only
            connect_timeout=5,
        ) as conn:
            cur = conn.execute(command.encode())
            if cur.description is None:
                return []
            names = [col.name for col in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def backend_owner(self, pid: int) -> str | None:
        """The instance (pod name) a PostgreSQL backend process belongs to: its parent is
        that server's postmaster. None when the process is gone or not a backend here."""
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            return None
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        for inst in self.instances:
            if inst.process is not None and inst.process.pid == ppid:
                return inst.name
        return None

    def pgbouncer_server_connections(self, database: str | None = None) -> Counter[str]:
        """PgBouncer's server connections (``SHOW SERVERS``) per instance, optionally for one
        database. Through the Unix sockets every row says ``addr=unix port=5432``, so rows
        are attributed by ``remote_pid`` (the backend's PID) instead of by address."""
        counts: Counter[str] = Counter()
        for row in self.pgbouncer_admin("SHOW SERVERS"):
            if database is not None and row["database"] != database:
                continue
            owner = self.backend_owner(int(row["remote_pid"])) if row.get("remote_pid") else None
            counts[owner or f"{row['addr']}:{row['port']}"] += 1
        return counts

    def reload_pgbouncer(self) -> None:
        self.pgbouncer_admin("RELOAD")

    def _write_file(self, path: Path, text: str) -> None:
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        user = server_user()
        if user is not None:
            os.chown(tmp, user.pw_uid, user.pw_gid)
        os.replace(tmp, path)

    def _start_pgbouncer(self) -> None:
        self.pgbouncer_port = free_port()
        self.pgbouncer_ini_path = self.workdir / "pgbouncer" / "pgbouncer.ini"
        self.pgbouncer_userlist_path = self.workdir / "pgbouncer" / "userlist.txt"
        users = {
            self.app_user: self.app_password,
            self.pgbouncer_admin_user: self.pgbouncer_admin_password,
            self.pgbouncer_stats_user: self.pgbouncer_stats_password,
        }
        self._write_file(self.pgbouncer_userlist_path, "".join(f'"{u}" "{p}"\n' for u, p in users.items()))
        os.chmod(self.pgbouncer_userlist_path, 0o600)
        self._write_file(self.pgbouncer_ini_path, self.render_pgbouncer_ini(self.initial_databases()))
        self._pgbouncer = ManagedProcess(
            "pgbouncer",
            [_need("pgbouncer"), str(self.pgbouncer_ini_path)],
            log_path=self.workdir / "log" / "pgbouncer.log",
            as_server_user=True,
            stop_signal=signal.SIGINT,  # safe shutdown
        )
        self.start_pgbouncer()

    def start_pgbouncer(self) -> None:
        """(Re)start PgBouncer with the current ini file (same port); wait until it listens."""
        if self._pgbouncer is None:
            raise RuntimeError("the setup is not running")
        self._pgbouncer.start()
        if not wait_listening(self.pgbouncer_port, timeout=30):
            raise RuntimeError(f"pgbouncer not listening:\n{self._pgbouncer.log_tail()}")

    def stop_pgbouncer(self) -> None:
        """Stop PgBouncer (its admin console becomes unreachable); ``start_pgbouncer`` brings it back."""
        if self._pgbouncer is not None:
            self._pgbouncer.stop(timeout=15)

    @property
    def pgbouncer_running(self) -> bool:
        return self._pgbouncer is not None and self._pgbouncer.running()

    @property
    def pgbouncer_log_path(self) -> Path:
        return self.workdir / "log" / "pgbouncer.log"

    # ---- exporters and Prometheus -------------------------------------------------
    def _start_exporter(self, inst: PgInstance) -> None:
        inst.exporter = ManagedProcess(
            f"postgres-exporter-{inst.name}",
            [
                _need("postgres_exporter"),
                f"--web.listen-address={inst.exporter_address}",
                f"--extend.query-path={self._queries_path}",
                "--disable-settings-metrics",
                "--log.level=warn",
                *self.exporter_args,
            ],
            log_path=self.workdir / "log" / f"postgres-exporter-{inst.name}.log",
            env={
                "DATA_SOURCE_NAME": f"postgresql://{self.superuser}@{LOOPBACK}:{inst.port}/{self.exporter_database}"
                "?sslmode=disable&application_name=postgres_exporter"
            },
        )
        inst.exporter.start()

    def _start_exporters(self) -> None:
        if self.exporter_queries == QUERIES_FILE:
            # One --extend.query-path per exporter: the project's queries plus the role query.
            self._queries_path = self.workdir / "postgres_exporter_queries.yaml"
            self._queries_path.write_text(QUERIES_FILE.read_text().rstrip("\n") + "\n" + ROLE_QUERY)
        for inst in self.instances:
            self._start_exporter(inst)
        self.pgbouncer_exporter_port = free_port()
        config = self.workdir / "pgbouncer" / "exporter.yml"
        # JSON is YAML. (The exporter's $(VAR) substitution works in plain YAML scalars only.)
        config.write_text(
            "{"
            f'"exporter_host": "{LOOPBACK}", "exporter_port": {self.pgbouncer_exporter_port}, '
            f'"pgbouncers": [{{"dsn": "postgresql://{self.pgbouncer_stats_user}:{self.pgbouncer_stats_password}'
            f'@{LOOPBACK}:{self.pgbouncer_port}/pgbouncer", "connect_timeout": 2, '
            '"exclude_databases": ["pgbouncer"]}]'
            "}\n"
        )
        config.chmod(0o600)
        self._pgbouncer_exporter = ManagedProcess(
            "pgbouncer-exporter",
            [_need("pgbouncer_exporter"), "--config", str(config), "--log-level", "WARNING"],
            log_path=self.workdir / "log" / "pgbouncer-exporter.log",
            stop_signal=signal.SIGKILL,  # it only polls for SIGTERM every 4 s; it holds nothing
        )
        self._pgbouncer_exporter.start()
        ports = [i.exporter_port for i in self.instances] + [self.pgbouncer_exporter_port]
        for port in ports:
            if not wait_listening(port, timeout=30):
                raise RuntimeError(f"an exporter is not listening on {port}")

    def scrape_targets(self) -> list[ScrapeTarget]:
        """What Prometheus scrapes, with Kubernetes-like target labels (namespace, pod)."""
        targets = [
            ScrapeTarget(
                "postgres-exporter", inst.exporter_address, {"namespace": self.namespace, "pod": inst.name}
            )
            for inst in self.instances
            if inst.exporter is not None
        ]
        if self._pgbouncer_exporter is not None:
            targets.append(
                ScrapeTarget(
                    "pgbouncer-exporter",
                    f"{LOOPBACK}:{self.pgbouncer_exporter_port}",
                    {"namespace": self.namespace, "pod": self.pgbouncer_pod},
                )
            )
        return targets

    def _update_prometheus_targets(self, wait: bool) -> None:
        if self.prometheus is None:
            return
        self.prometheus.set_targets(self.scrape_targets())
        if wait:
            self.prometheus.wait_for_targets(timeout=60)

    def set_namespace(self, namespace: str, wait: bool = True) -> None:
        """Label every scrape target with this ``namespace`` from now on (a workload in that
        namespace of the local control plane reads this setup's series); :meth:`reset` puts
        the original one back."""
        if namespace == self.namespace:
            return
        self.namespace = namespace
        self._update_prometheus_targets(wait=wait)

    def exporter_url(self, which: str | PgInstance | Literal["pgbouncer"] | None = None) -> str:
        if which == "pgbouncer":
            return f"http://{LOOPBACK}:{self.pgbouncer_exporter_port}/metrics"
        return f"http://{self.instance(which).exporter_address}/metrics"

    def stop_prometheus(self) -> None:
        """Stop Prometheus (an outage); ``start_prometheus`` resumes with the same port and data."""
        if self.prometheus is not None:
            self.prometheus.stop()

    def start_prometheus(self, wait: bool = True) -> None:
        if self.prometheus is None:
            raise RuntimeError("this PgEnv runs without Prometheus")
        self.prometheus.start()
        if wait:
            self.prometheus.wait_for_targets(timeout=60)

    @property
    def prometheus_url(self) -> str:
        if self.prometheus is None:
            raise RuntimeError("this PgEnv runs without Prometheus")
        return self.prometheus.url

    # ---- load ---------------------------------------------------------------------
    def write_script(self) -> str:
        """The default write transaction: ONE autocommit UPDATE (1 transaction = 1 query)."""
        accounts = 100_000 * self.pgbench_scale
        return (
            f"\\set aid random(1, {accounts})\n"
            "\\set delta random(-5000, 5000)\n"
            "UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;\n"
        )

    def start_pgbench(
        self,
        database: str | None = None,
        *,
        rate: float,
        duration: float,
        clients: int = 2,
        jobs: int = 1,
        read_only: bool = True,
        script: str | None = None,
        builtin: str | None = None,
    ) -> PgbenchRun:
        """Start pgbench through PgBouncer at a fixed ``--rate`` (transactions/s in total).

        Read-only runs use pgbench's ``-S`` (one SELECT per transaction); write runs use
        :meth:`write_script` (one UPDATE per transaction) unless ``script`` (a pgbench
        script text) or ``builtin`` (e.g. ``tpcb-like``) is given. ``duration`` is rounded
        to whole seconds (pgbench's ``-T``)."""
        database = database or (self.read_database if read_only else self.database)
        seconds = max(1, round(duration))
        argv = [
            _need("pgbench"), "-n", "-h", LOOPBACK, "-p", str(self.pgbouncer_port), "-U", self.app_user,
            "-c", str(clients), "-j", str(jobs), "-T", str(seconds), "-R", repr(float(rate)),
        ]  # fmt: skip
        script_path: Path | None = None
        if builtin is not None:
            argv += ["-b", builtin]
        elif script is not None or not read_only:
            fd, name = tempfile.mkstemp(prefix="pgbench-", suffix=".sql", dir=self.workdir)
            with os.fdopen(fd, "w") as f:
                f.write(script if script is not None else self.write_script())
            script_path = Path(name)
            argv += ["-f", str(script_path)]
        else:
            argv.append("-S")
        argv.append(database)
        return PgbenchRun(
            argv,
            {"PGPASSWORD": self.app_password},
            database=database,
            clients=clients,
            rate=rate,
            duration=seconds,
            script_path=script_path,
        )

    def run_pgbench(
        self,
        database: str | None = None,
        *,
        rate: float,
        duration: float,
        clients: int = 2,
        jobs: int = 1,
        read_only: bool = True,
        script: str | None = None,
        builtin: str | None = None,
        check: bool = True,
    ) -> PgbenchResult:
        """Run pgbench to the end (see :meth:`start_pgbench`) and return what it achieved."""
        return self.start_pgbench(
            database,
            rate=rate,
            duration=duration,
            clients=clients,
            jobs=jobs,
            read_only=read_only,
            script=script,
            builtin=builtin,
        ).wait(check=check)
