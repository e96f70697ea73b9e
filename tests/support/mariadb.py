"""A MariaDB primary and GTID replicas (one by default), mysqld_exporter per server, and Prometheus.

The setup behind tests/integration/postgres/test_observe_mysql.py (the ``mysql`` preset
against real metrics) and the failover tests (test_failover_bed.py, test_failover_mysql.py). Every process runs on this machine and listens on 127.0.0.1 on a
free port (admin statements go through a Unix socket in the temp dir); everything is
stopped (verified gone) on exit and the temp dir is removed.

What runs, named as it would be in Kubernetes (namespace ``shop``):

- ``orders-db-0``: the primary (binary log, ``server_id`` 1); ``orders-db-replica-0``:
  a replica (``server_id`` 2) replicating with ``MASTER_USE_GTID=slave_pos`` as the user
  ``repl``, with ``read_only=1``. ``replicas=N`` makes ``orders-db-replica-0`` .. ``-N-1``
  (server ids 2..N+1); with ``replica_statefulset`` equal to ``primary_statefulset`` (one
  StatefulSet for every member, as Percona's MySQL operator lays them out) they are
  ``orders-db-1`` .. ``orders-db-N``. All are made by ``mariadb-install-db`` + ``mariadbd``
  (``--user=mysql`` when we are root; grant tables on), with the QUERY_RESPONSE_TIME plugin on.
- a heartbeat writer (as pt-heartbeat does it): a row ``(ts, server_id)`` in
  ``heartbeat.heartbeat`` on the primary, updated every :attr:`MariaDbEnv.heartbeat_interval`
  seconds, which mysqld_exporter's ``--collect.heartbeat`` reads on every server.
- one Debian ``prometheus-mysqld-exporter`` (0.14) per server, as the user ``exporter``
  (credentials in a my.cnf, ``--config.my-cnf``), and a Prometheus scraping them every
  second with target labels ``namespace`` and ``pod``. Besides what the ``mysql`` preset
  reads, ``--collect.global_variables`` (on by default in 0.14; ``SHOW GLOBAL VARIABLES`` is no
  ``Com_select``) gives the role metric ``mysql_global_variables_read_only`` (1 replica, 0 primary).

Failover (issue 11): roles move, pod names do not. :meth:`MariaDbEnv.failover` stops the
heartbeat, sets ``read_only=1`` on the primary, waits until every replica applied its last
GTID, promotes the chosen replica (``STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only=0``),
re-points the other replicas to it (``CHANGE MASTER TO``, GTID ``slave_pos``), makes the old
primary its replica (``gtid_slave_pos`` from its own binary log, ``read_only=1``) and restarts
the heartbeat on the new primary under its own ``server_id``. :meth:`MariaDbEnv.reset` fails
back to the original layout.
No PyMySQL: SQL goes through the ``mariadb`` command line client (:meth:`MariaDbEnv.sql`),
and the load driver (:meth:`MariaDbEnv.start_load`) feeds statements to long-running
``mariadb`` clients at fixed rates.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from .ports import LOOPBACK, free_port, wait_listening
from .procs import (
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

DEPS_HINT = "run `make pgenv-deps-mysql` (hack/pgenv/install.sh --mysql)"
MYSQL_OS_USER = "mysql"
#: Rows the load's reads and updates address (ids 1..N).
LOAD_ROWS = 100

Role = Literal["primary", "replica"]


def _which(name: str, fallback: str) -> str | None:
    path = shutil.which(name) or fallback
    return path if os.access(path, os.X_OK) else None


def binaries() -> dict[str, str | None]:
    """Every binary the setup needs, by role; None where missing."""
    return {
        "mariadbd": _which("mariadbd", "/usr/sbin/mariadbd"),
        "mariadb-install-db": _which("mariadb-install-db", "/usr/bin/mariadb-install-db"),
        "mariadb": _which("mariadb", "/usr/bin/mariadb"),
        "mysqld_exporter": _which("prometheus-mysqld-exporter", "/usr/bin/prometheus-mysqld-exporter"),
        "prometheus": prometheus_binary(),
    }


def mariadb_available() -> tuple[bool, str]:
    """(True, "") when everything is installed; else (False, what is missing and how to fix it)."""
    return setup_available(
        binaries(), setup="MariaDB", os_user=MYSQL_OS_USER, runs="mariadbd", hint=DEPS_HINT
    )


def _need(name: str) -> str:
    return need_binary(binaries(), name, DEPS_HINT)


@dataclass
class DbInstance:
    """One MariaDB server of the setup."""

    name: str
    """Its pod name: ``orders-db-0``, ``orders-db-replica-<n>`` (or ``orders-db-<n>``); fixed."""
    role: Role
    """The role it has now (a failover moves it)."""
    server_id: int
    port: int
    datadir: Path
    socket: Path
    exporter_port: int
    process: ManagedProcess | None = field(default=None, repr=False)
    exporter: ManagedProcess | None = field(default=None, repr=False)
    home_role: Role = "replica"
    """The role it was created with (its place in the original layout)."""

    @property
    def exporter_address(self) -> str:
        return f"{LOOPBACK}:{self.exporter_port}"


@dataclass(frozen=True)
class StreamResult:
    """What one fixed-rate statement stream achieved."""

    kind: str
    target_rate: float
    statements: int
    elapsed: float
    """From the first statement sent to the client's exit (every statement executed)."""

    @property
    def qps(self) -> float:
        return self.statements / self.elapsed if self.elapsed > 0 else 0.0


@dataclass(frozen=True)
class LoadResult:
    reads: StreamResult
    writes: StreamResult


class _Stream:
    """A ``mariadb`` client fed one statement per tick at a fixed rate for a duration."""

    def __init__(
        self, kind: str, argv: list[str], rate: float, duration: float, statement: Callable[[int], str]
    ) -> None:
        self.kind = kind
        self.rate = rate
        self.duration = duration
        self._statement = statement
        self._proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self._sent = 0
        self._started = 0.0
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._feed, name=f"load-{kind}", daemon=True)
        self._thread.start()

    def _feed(self) -> None:
        stdin = self._proc.stdin
        assert stdin is not None
        try:
            self._started = time.monotonic()
            total = int(self.rate * self.duration)
            while self._sent < total:
                due = min(total, int((time.monotonic() - self._started) * self.rate) + 1)
                if due > self._sent:
                    stdin.write("".join(self._statement(i) for i in range(self._sent, due)))
                    stdin.flush()
                    self._sent = due
                time.sleep(min(0.01, 1.0 / self.rate))
        except BaseException as err:  # reported by wait()
            self._error = err
        finally:
            with contextlib.suppress(OSError):
                stdin.close()

    def wait(self, timeout: float) -> StreamResult:
        self._thread.join(timeout)
        try:
            self._proc.wait(timeout=max(1.0, timeout))
        except subprocess.TimeoutExpired:
            self.kill()
            raise RuntimeError(f"{self.kind} load: the mariadb client did not finish in {timeout}s") from None
        elapsed = time.monotonic() - self._started
        err = self._proc.stderr.read() if self._proc.stderr is not None else ""
        if self._error is not None or self._proc.returncode != 0:
            raise RuntimeError(
                f"{self.kind} load: client exited {self._proc.returncode} after {self._sent} statements "
                f"({self._error!r}): {err.strip()}"
            )
        return StreamResult(self.kind, self.rate, self._sent, elapsed)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self._proc.kill()
        self._proc.wait(10)
        self._thread.join(5)


class LoadRun:
    """Reads and writes started by :meth:`MariaDbEnv.start_load`; :meth:`wait` returns the counts."""

    def __init__(self, reads: _Stream, writes: _Stream) -> None:
        self._reads = reads
        self._writes = writes
        self.duration = max(reads.duration, writes.duration)

    def stop(self) -> None:
        """End both streams now, without a result (before their server stops taking writes)."""
        for stream in (self._reads, self._writes):
            if stream._proc.poll() is None:
                stream.kill()

    def wait(self, timeout: float | None = None) -> LoadResult:
        limit = timeout if timeout is not None else self.duration + 30
        try:
            return LoadResult(self._reads.wait(limit), self._writes.wait(limit))
        finally:
            for stream in (self._reads, self._writes):
                if stream._proc.poll() is None:
                    stream.kill()


class MariaDbEnv(SetupLifecycle):
    """MariaDB primary + GTID replicas + mysqld_exporter each + heartbeat + Prometheus."""

    def __init__(
        self,
        *,
        replicas: int = 1,
        namespace: str = "shop",
        primary_statefulset: str = "orders-db",
        replica_statefulset: str = "orders-db-replica",
        database: str = "orders",
        scrape_interval: float = 1.0,
        heartbeat_interval: float = 0.5,
        base_dir: Path | None = None,
        server_args: Sequence[str] = (),
        exporter_args: Sequence[str] = (),
    ) -> None:
        """``server_args`` are appended to every ``mariadbd`` command line (a later option wins:
        ``--performance-schema=ON``), ``exporter_args`` to every mysqld_exporter's (more
        collectors); by default neither adds anything."""
        if replicas < 1:
            raise ValueError("replicas must be >= 1")
        super().__init__()
        self._initial_replicas = replicas
        self.namespace = namespace
        self._initial_namespace = namespace
        self.primary_statefulset = primary_statefulset
        self.replica_statefulset = replica_statefulset
        self.database = database
        self.scrape_interval = scrape_interval
        self.heartbeat_interval = heartbeat_interval
        self._base_dir = base_dir
        self.server_args = tuple(server_args)
        self.exporter_args = tuple(exporter_args)
        self.app_user, self.app_password = "app", secrets.token_hex(8)
        self.repl_user, self.repl_password = "repl", secrets.token_hex(8)
        self.exporter_user, self.exporter_password = "exporter", secrets.token_hex(8)
        self.primary: DbInstance | None = None
        self.replicas: list[DbInstance] = []
        self.prometheus: PrometheusServer | None = None
        self._heartbeat: subprocess.Popen[str] | None = None
        self._heartbeat_stop = threading.Event()
        self._heartbeat_thread: threading.Thread | None = None
        self._heartbeat_server_id = 1
        self._roles_lock = threading.Lock()

    @property
    def instances(self) -> list[DbInstance]:
        """The primary first, then the replicas by ``server_id``."""
        head = [self.primary] if self.primary is not None else []
        return head + sorted(self.replicas, key=lambda r: r.server_id)

    @property
    def replica(self) -> DbInstance | None:
        """The first replica (lowest ``server_id``); None when the setup is not running."""
        return min(self.replicas, key=lambda r: r.server_id) if self.replicas else None

    def instance(self, which: str | DbInstance | None = None) -> DbInstance:
        """An instance by pod name; None means the primary."""
        if isinstance(which, DbInstance):
            return which
        if which is None:
            return self._primary()
        for inst in self.instances:
            if inst.name == which:
                return inst
        raise KeyError(f"no instance {which!r}; have {[i.name for i in self.instances]}")

    @property
    def primary_name(self) -> str:
        return f"{self.primary_statefulset}-0"

    def replica_pod_name(self, index: int) -> str:
        """The pod name of the ``index``-th replica (from 0) of the original layout."""
        if self.replica_statefulset == self.primary_statefulset:
            return f"{self.replica_statefulset}-{index + 1}"
        return f"{self.replica_statefulset}-{index}"

    @property
    def replica_name(self) -> str:
        return self.replica_pod_name(0)

    @property
    def pod_names(self) -> list[str]:
        """Every pod name of the original layout: the primary's first."""
        return [self.primary_name, *(self.replica_pod_name(i) for i in range(self._initial_replicas))]

    @property
    def prometheus_url(self) -> str:
        if self.prometheus is None:
            raise RuntimeError("the setup is not running")
        return self.prometheus.url

    # ---- lifecycle: SetupLifecycle's start and close call these ----------------------------
    def _available(self) -> tuple[bool, str]:
        return mariadb_available()

    def _start_all(self) -> None:
        t0 = time.monotonic()
        self.workdir = make_workdir("mariadbenv-", self._base_dir, ("data", "s", "log", "tmp"), MYSQL_OS_USER)
        self.primary = self._new_instance(self.primary_name, "primary", 1)
        self.replicas = [
            self._new_instance(self.replica_pod_name(i), "replica", i + 2)
            for i in range(self._initial_replicas)
        ]
        for inst in self.instances:
            self._install(inst)
        self.timings["install-db"] = time.monotonic() - t0
        for inst in self.instances:
            self._start_server(inst)
        for inst in self.instances:
            self._wait_server(inst)
        self.timings["servers"] = time.monotonic() - t0
        self._init_primary()
        self._start_replication()
        self.wait_caught_up(timeout=30)
        self.timings["replication"] = time.monotonic() - t0
        self._start_heartbeat()
        for inst in self.instances:
            self._start_exporter(inst)
        self.prometheus = PrometheusServer(
            self.scrape_targets(),
            scrape_interval=self.scrape_interval,
            workdir=self.workdir / "prometheus",
        )
        self.prometheus.start()
        self.prometheus.wait_for_targets(timeout=30)
        self.timings["total"] = time.monotonic() - t0

    def _stop_all(self) -> None:
        self._stop_heartbeat()
        if self.prometheus is not None:
            self.prometheus.stop()
        procs = [p for i in self.instances for p in (i.exporter, i.process) if p is not None]
        for proc in procs:
            proc.request_stop()
        for proc in procs:
            proc.stop(timeout=20)
        leftovers = [i.name for i in self.instances if i.process is not None and i.process.running()]
        if leftovers:
            raise RuntimeError(f"still running after stop: {leftovers}")
        remove_workdir(self.workdir)
        self.primary = None
        self.replicas = []

    # ---- servers ------------------------------------------------------------------------
    def _new_instance(self, name: str, role: Role, server_id: int) -> DbInstance:
        return DbInstance(
            name=name,
            role=role,
            server_id=server_id,
            home_role=role,
            port=free_port(),
            datadir=self.workdir / "data" / name,
            socket=self.workdir / "s" / f"{name}.sock",
            exporter_port=free_port(),
        )

    def _user_args(self) -> list[str]:
        return [f"--user={MYSQL_OS_USER}"] if server_user(MYSQL_OS_USER) is not None else []

    def _install(self, inst: DbInstance) -> None:
        inst.datadir.mkdir()
        chown_to_server_user(inst.datadir, MYSQL_OS_USER)
        run(
            [_need("mariadb-install-db"), "--no-defaults", f"--datadir={inst.datadir}", *self._user_args(),
             "--auth-root-authentication-method=normal", "--skip-test-db", "--skip-name-resolve",
             "--innodb-log-file-size=16M"],
            timeout=120,
        )  # fmt: skip

    def _start_server(self, inst: DbInstance) -> None:
        argv = [
            _need("mariadbd"), "--no-defaults", *self._user_args(),
            f"--datadir={inst.datadir}", f"--socket={inst.socket}", f"--port={inst.port}",
            f"--bind-address={LOOPBACK}", f"--pid-file={self.workdir / 's' / inst.name}.pid",
            f"--tmpdir={self.workdir / 'tmp'}", "--skip-name-resolve",
            f"--server-id={inst.server_id}", "--log-bin=binlog", "--log-slave-updates",
            "--gtid-strict-mode=1", "--binlog-format=ROW",
            "--innodb-buffer-pool-size=32M", "--innodb-log-file-size=16M",
            "--innodb-flush-log-at-trx-commit=2", "--sync-binlog=0", "--innodb-use-native-aio=0",
            "--plugin-load-add=query_response_time", "--query-response-time-stats=ON",
            "--performance-schema=OFF", "--max-connections=50", "--skip-slave-start",
            *self.server_args,
        ]  # fmt: skip
        inst.process = ManagedProcess(inst.name, argv, log_path=self.workdir / "log" / f"{inst.name}.log")
        inst.process.start()

    def _wait_server(self, inst: DbInstance, timeout: float = 60.0) -> None:
        assert inst.process is not None
        deadline = time.monotonic() + timeout
        while True:
            if not inst.process.running():
                raise RuntimeError(f"{inst.name} exited at start:\n{inst.process.log_tail()}")
            if inst.socket.exists() and wait_listening(inst.port, 0.2):
                with contextlib.suppress(RuntimeError):
                    self.sql(inst, "SELECT 1")
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{inst.name} not accepting connections after {timeout}s")
            time.sleep(0.1)

    def _init_primary(self) -> None:
        db = self.database
        self.sql(
            None,
            f"""
            CREATE USER '{self.repl_user}'@'{LOOPBACK}' IDENTIFIED BY '{self.repl_password}';
            GRANT REPLICATION SLAVE ON *.* TO '{self.repl_user}'@'{LOOPBACK}';
            CREATE USER '{self.exporter_user}'@'{LOOPBACK}' IDENTIFIED BY '{self.exporter_password}'
              WITH MAX_USER_CONNECTIONS 3;
            GRANT PROCESS, REPLICATION CLIENT, SLAVE MONITOR, SELECT ON *.* TO '{self.exporter_user}'@'{LOOPBACK}';
            CREATE USER '{self.app_user}'@'{LOOPBACK}' IDENTIFIED BY '{self.app_password}';
            CREATE DATABASE {db};
            GRANT ALL ON {db}.* TO '{self.app_user}'@'{LOOPBACK}';
            CREATE TABLE {db}.items (id INT AUTO_INCREMENT PRIMARY KEY, v BIGINT NOT NULL);
            INSERT INTO {db}.items (v) SELECT seq FROM seq.seq_1_to_{LOAD_ROWS};
            CREATE DATABASE heartbeat;
            CREATE TABLE heartbeat.heartbeat (ts VARCHAR(26) NOT NULL,
              server_id INT UNSIGNED NOT NULL PRIMARY KEY);
            INSERT INTO heartbeat.heartbeat (ts, server_id) VALUES (NOW(6), 1);
            """,
        )

    def _start_replication(self) -> None:
        for replica in self.replicas:
            self._replicate(replica)

    def _replicate(self, replica: DbInstance, *, own_binlog: bool = False) -> None:
        """Make ``replica`` a read-only GTID replica of the primary. ``own_binlog``: it was a
        primary, so its replication position is what its own binary log holds."""
        primary = self._primary()
        start = "SET GLOBAL gtid_slave_pos = @@gtid_binlog_pos;" if own_binlog else ""
        self.sql(
            replica,
            f"""
            SET GLOBAL read_only = 1;
            STOP SLAVE;
            {start}
            CHANGE MASTER TO MASTER_HOST='{LOOPBACK}', MASTER_PORT={primary.port},
              MASTER_USER='{self.repl_user}', MASTER_PASSWORD='{self.repl_password}',
              MASTER_USE_GTID=slave_pos, MASTER_CONNECT_RETRY=1;
            START SLAVE;
            """,
        )

    def _primary(self) -> DbInstance:
        if self.primary is None:
            raise RuntimeError("the setup is not running")
        return self.primary

    def _replica(self, which: str | DbInstance | None = None) -> DbInstance:
        """A replica by pod name (None: the first one)."""
        if which is None:
            if self.replica is None:
                raise RuntimeError("the setup is not running")
            return self.replica
        inst = self.instance(which)
        if inst is self.primary:
            raise ValueError(f"{inst.name} is the primary, not a replica")
        return inst

    # ---- SQL ----------------------------------------------------------------------------
    def client_argv(self, inst: DbInstance | None, *, admin: bool = True) -> list[str]:
        """A ``mariadb`` client: root over the Unix socket (admin) or the app user over TCP."""
        inst = inst or self._primary()
        base = [_need("mariadb"), "--no-defaults", "--batch", "--skip-column-names"]
        if admin:
            return [*base, f"--socket={inst.socket}", "--user=root"]
        return [*base, f"--host={LOOPBACK}", f"--port={inst.port}", f"--user={self.app_user}",
                f"--password={self.app_password}", self.database]  # fmt: skip

    def sql(self, inst: DbInstance | None, statements: str, timeout: float = 30.0) -> list[list[str]]:
        """Run statements as root on a server (None: the primary); the rows, tab-split."""
        proc = subprocess.run(
            self.client_argv(inst),
            input=statements,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            name = (inst or self._primary()).name
            raise RuntimeError(f"{name}: mariadb exited {proc.returncode}: {proc.stderr.strip()}")
        return [line.split("\t") for line in proc.stdout.splitlines()]

    def slave_status(self, which: str | DbInstance | None = None) -> dict[str, str]:
        """``SHOW SLAVE STATUS`` of a replica (default: the first), by field name."""
        proc = subprocess.run(
            [*(a for a in self.client_argv(self._replica(which)) if a != "--skip-column-names"), "--vertical"],
            input="SHOW SLAVE STATUS", capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
        status: dict[str, str] = {}
        for line in proc.stdout.splitlines():
            key, sep, value = line.strip().partition(": ")
            if sep:
                status[key] = value
        return status

    def wait_caught_up(self, timeout: float = 30.0, source: DbInstance | None = None) -> None:
        """Wait until every replica's SQL thread applied the current GTID position of the
        primary (or of ``source``, a primary being demoted)."""
        (pos,) = self.sql(source, "SELECT @@gtid_binlog_pos")[0]
        deadline = time.monotonic() + timeout
        for replica in [r for r in self.instances if r is not self.primary and r is not source]:
            while True:
                (done,) = self.sql(replica, f"SELECT MASTER_GTID_WAIT('{pos}', 0.5)")[0]
                if done == "0":
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{replica.name} has not applied {pos!r} after {timeout}s: {self.slave_status(replica)}"
                    )

    def stop_replica_sql_thread(self, which: str | DbInstance | None = None) -> None:
        self.sql(self._replica(which), "STOP SLAVE SQL_THREAD")

    def start_replica_sql_thread(self, wait: bool = True, which: str | DbInstance | None = None) -> None:
        self.sql(self._replica(which), "START SLAVE SQL_THREAD")
        if wait:
            self.wait_caught_up()

    def read_only(self, which: str | DbInstance | None = None) -> bool:
        """The server's ``@@read_only`` (what ``mysql_global_variables_read_only`` reports)."""
        return self.sql(self.instance(which), "SELECT @@read_only")[0][0] == "1"

    # ---- failover -----------------------------------------------------------------------
    def failover(self, which: str | DbInstance, timeout: float = 30.0) -> dict[str, float]:
        """Make replica ``which`` the primary, as a switchover does; returns the seconds from
        the start to the end of each step (also in :attr:`timings` as ``failover: <step>``).

        1. the heartbeat stops and the primary turns ``read_only=1`` (no client write lands
           there any more); every replica applies its last GTID;
        2. ``which``: ``STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only=0``;
        3. the other replicas: ``CHANGE MASTER TO`` the new primary (GTID ``slave_pos``);
        4. the old primary: ``gtid_slave_pos`` = its own binary log's position, ``read_only=1``,
           a replica of the new primary;
        5. the heartbeat resumes on the new primary (its own ``server_id`` row).
        """
        new = self._replica(which)
        old = self._primary()
        t0 = time.monotonic()
        steps: dict[str, float] = {}
        self._stop_heartbeat()
        self.sql(old, "SET GLOBAL read_only = 1")
        self.wait_caught_up(timeout=timeout, source=old)
        steps["old primary read-only, replicas caught up"] = time.monotonic() - t0
        self.sql(new, "STOP SLAVE; RESET SLAVE ALL; SET GLOBAL read_only = 0;")
        with self._roles_lock:
            self.replicas.remove(new)
            self.replicas.append(old)
            new.role, old.role = "primary", "replica"
            self.primary = new
        steps["promoted"] = time.monotonic() - t0
        for replica in self.replicas:
            self._replicate(replica, own_binlog=replica is old)
        steps["replicas re-pointed"] = time.monotonic() - t0
        self._start_heartbeat()
        self.wait_caught_up(timeout=timeout)
        steps["replicating from the new primary"] = time.monotonic() - t0
        for step, seconds in steps.items():
            self.timings[f"failover: {step}"] = seconds
        return steps

    def set_namespace(self, namespace: str, wait: bool = True) -> None:
        """Label every scrape target with this ``namespace`` from now on; :meth:`reset` puts
        the original one back."""
        if namespace == self.namespace:
            return
        self.namespace = namespace
        if self.prometheus is not None:
            self.prometheus.set_targets(self.scrape_targets())
            if wait:
                self.prometheus.wait_for_targets(timeout=30)

    def reset(self) -> None:
        """The original layout again (fails back to ``orders-db-0`` after a failover), the
        original namespace label, every replica's threads running, and everyone caught up."""
        self.set_namespace(self._initial_namespace, wait=False)
        home = self.instance(self.primary_name)
        if self.primary is not home:
            self.failover(home)
        for replica in self.replicas:
            status = self.slave_status(replica)
            if status.get("Slave_IO_Running") != "Yes" or status.get("Slave_SQL_Running") != "Yes":
                self.sql(replica, "START SLAVE")
            if not self.read_only(replica):
                self.sql(replica, "SET GLOBAL read_only = 1")
        if self._heartbeat is None:
            self._start_heartbeat()
        self.wait_caught_up()
        if self.prometheus is not None:
            self.prometheus.wait_for_targets(timeout=30)

    # ---- heartbeat (what pt-heartbeat --update does) ------------------------------------
    def _start_heartbeat(self) -> None:
        """pt-heartbeat --update on the current primary, in the row of its own ``server_id``."""
        primary = self._primary()
        self._heartbeat_server_id = primary.server_id
        if primary.server_id != 1:  # the original primary's row is made with the schema
            self.sql(
                None,
                "INSERT IGNORE INTO heartbeat.heartbeat (ts, server_id) "
                f"VALUES (NOW(6), {primary.server_id})",
            )
        self._heartbeat = subprocess.Popen(
            self.client_argv(None),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._heartbeat_stop.clear()
        self._heartbeat_thread = threading.Thread(target=self._beat, name="heartbeat", daemon=True)
        self._heartbeat_thread.start()

    def _beat(self) -> None:
        proc = self._heartbeat
        assert proc is not None and proc.stdin is not None
        with contextlib.suppress(OSError):
            while not self._heartbeat_stop.wait(self.heartbeat_interval):
                proc.stdin.write(
                    f"UPDATE heartbeat.heartbeat SET ts = NOW(6) WHERE server_id = {self._heartbeat_server_id};\n"
                )
                proc.stdin.flush()

    def _stop_heartbeat(self) -> None:
        self._heartbeat_stop.set()
        if self._heartbeat_thread is not None:
            self._heartbeat_thread.join(5)
            self._heartbeat_thread = None
        if self._heartbeat is not None:
            with contextlib.suppress(OSError):
                if self._heartbeat.stdin is not None:
                    self._heartbeat.stdin.close()
            try:
                self._heartbeat.wait(5)
            except subprocess.TimeoutExpired:
                self._heartbeat.kill()
                self._heartbeat.wait(5)
            self._heartbeat = None

    @property
    def heartbeat_qps(self) -> float:
        """The heartbeat's own writes per second on the primary (UPDATEs: part of write QPS)."""
        return 1.0 / self.heartbeat_interval

    # ---- exporters and Prometheus -------------------------------------------------------
    def _start_exporter(self, inst: DbInstance) -> None:
        cnf = self.workdir / f"{inst.name}-exporter.cnf"
        cnf.write_text(
            "[client]\n"
            f"user={self.exporter_user}\npassword={self.exporter_password}\n"
            f"host={LOOPBACK}\nport={inst.port}\n"
        )
        cnf.chmod(0o600)
        argv = [
            _need("mysqld_exporter"), f"--config.my-cnf={cnf}",
            f"--web.listen-address={inst.exporter_address}",
            # What the mysql preset reads, nothing else (every collector's SELECT is a Com_select).
            "--collect.global_status", "--collect.slave_status", "--collect.heartbeat",
            "--collect.info_schema.query_response_time",
            # The role metric (mysql_global_variables_read_only); SHOW GLOBAL VARIABLES is no Com_select.
            "--collect.global_variables",
            "--no-collect.info_schema.innodb_cmp",
            "--no-collect.info_schema.innodb_cmpmem", "--no-collect.info_schema.innodb_metrics",
            "--log.level=warn",
            *self.exporter_args,
        ]  # fmt: skip
        inst.exporter = ManagedProcess(
            f"{inst.name}-exporter", argv, log_path=self.workdir / "log" / f"{inst.name}-exporter.log"
        )
        inst.exporter.start()
        if not wait_listening(inst.exporter_port, 15):
            raise RuntimeError(f"{inst.name} exporter not listening:\n{inst.exporter.log_tail()}")

    def scrape_targets(self) -> list[ScrapeTarget]:
        return [
            ScrapeTarget("mysqld", i.exporter_address, {"namespace": self.namespace, "pod": i.name})
            for i in self.instances
        ]

    # ---- load ---------------------------------------------------------------------------
    def start_load(self, *, read_rate: float, write_rate: float, duration: float) -> LoadRun:
        """Reads (point SELECTs, on the replica) and writes (INSERT and UPDATE alternately, on
        the primary) at fixed rates for ``duration`` seconds, each through one ``mariadb`` client."""

        def read(i: int) -> str:
            return f"SELECT v FROM items WHERE id = {i % LOAD_ROWS + 1};\n"

        def write(i: int) -> str:
            if i % 2:
                return f"UPDATE items SET v = v + 1 WHERE id = {i % LOAD_ROWS + 1};\n"
            return f"INSERT INTO items (v) VALUES ({i});\n"

        reads = _Stream("read", self.client_argv(self._replica(), admin=False), read_rate, duration, read)
        writes = _Stream("write", self.client_argv(self._primary(), admin=False), write_rate, duration, write)
        return LoadRun(reads, writes)
