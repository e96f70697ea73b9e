"""Start and stop the long-running server processes of the integration tests.

Used by :mod:`tests.support.prometheus` and :mod:`tests.support.pgenv`. Every process is
started in its own session (so it and all its children share one process group), writes
stdout and stderr to a log file, and is stopped with a polite signal first, then SIGKILL
to the whole group; :meth:`ManagedProcess.stop` returns only when no process of the group
is left.

Server processes that refuse to run as root (PostgreSQL, PgBouncer) are started as the
``postgres`` OS user when the tests run as root (CI does): see :func:`server_user`
(MariaDB's ``mysql`` user is the same lookup with another name).

Also the pieces the test setups (:mod:`tests.support.pgenv`, :mod:`tests.support.mariadb`)
share: the availability check, finding a needed binary, the temp dir's life, and their start
and close bookkeeping (:class:`SetupLifecycle`).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Self

SERVER_OS_USER = "postgres"


def running_as_root() -> bool:
    return os.geteuid() == 0


def server_user(name: str = SERVER_OS_USER) -> pwd.struct_passwd | None:
    """The OS user ``name`` (default ``postgres``) server processes run as when we are root;
    None when we are not root (ourselves) or there is no such user."""
    if not running_as_root():
        return None
    try:
        return pwd.getpwnam(name)
    except KeyError:
        return None


def chown_to_server_user(path: Path, name: str = SERVER_OS_USER) -> None:
    """Give ``path`` (recursively) to the server user ``name`` when running as root; no-op otherwise."""
    user = server_user(name)
    if user is None:
        return
    os.chown(path, user.pw_uid, user.pw_gid)
    for root, dirs, files in os.walk(path):
        for entry in [*dirs, *files]:
            with contextlib.suppress(FileNotFoundError):
                os.lchown(os.path.join(root, entry), user.pw_uid, user.pw_gid)


# ---- what the test setups share ---------------------------------------------------------
def setup_available(
    binaries: Mapping[str, str | None], *, setup: str, os_user: str, runs: str, hint: str
) -> tuple[bool, str]:
    """(True, "") when no binary is missing (None) and, when we are root, the OS user ``os_user``
    exists to run ``runs`` as; else (False, what is missing and ``hint`` on how to fix it)."""
    missing = sorted(name for name, path in binaries.items() if path is None)
    problems = [f"missing {', '.join(missing)}"] if missing else []
    if running_as_root() and server_user(os_user) is None:
        problems.append(f"running as root but there is no `{os_user}` OS user to run {runs} as")
    if problems:
        return False, f"{setup} test setup unavailable ({'; '.join(problems)}): {hint}"
    return True, ""


def need_binary(binaries: Mapping[str, str | None], name: str, hint: str) -> str:
    """The path of binary ``name``; raise with ``hint`` when it is missing."""
    path = binaries[name]
    if path is None:
        raise RuntimeError(f"{name} not found: {hint}")
    return path


def make_workdir(prefix: str, base_dir: Path | None, subdirs: Sequence[str], os_user: str) -> Path:
    """A fresh temp dir (mode 0755, under ``base_dir`` or /tmp) with ``subdirs``, given to the
    server user ``os_user`` when we are root."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix, dir=base_dir or "/tmp"))
    os.chmod(workdir, 0o755)
    for sub in subdirs:
        (workdir / sub).mkdir()
    chown_to_server_user(workdir, os_user)
    return workdir


def remove_workdir(workdir: Path) -> None:
    """Remove a setup's temp dir (kept, and said so, when ``PGENV_KEEP=1``)."""
    if workdir != Path() and workdir.exists():
        if os.environ.get("PGENV_KEEP") == "1":
            print(f"PGENV_KEEP=1: keeping {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def log_tails(workdir: Path, lines: int = 15) -> str:
    """The last ``lines`` lines of every log in ``workdir/log``, each under its name."""
    parts: list[str] = []
    log_dir = workdir / "log"
    if workdir != Path() and log_dir.is_dir():
        for log in sorted(log_dir.iterdir()):
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
            parts.append(f"--- {log.name}\n{tail}")
    return "\n".join(parts)


class SetupLifecycle:
    """Start and close bookkeeping of a test setup: start once, close once (also at interpreter
    exit), and on a failed start close what did start and raise with the logs' tails.

    Subclasses set ``self.workdir`` in :meth:`_start_all` and implement the three hooks."""

    def __init__(self) -> None:
        self.workdir = Path()
        self._started = False
        self._lifecycle_lock = threading.Lock()
        #: Seconds each start phase took (printed by the self-tests, kept in the docs).
        self.timings: dict[str, float] = {}

    def _available(self) -> tuple[bool, str]:
        raise NotImplementedError

    def _start_all(self) -> None:
        raise NotImplementedError

    def _stop_all(self) -> None:
        raise NotImplementedError

    def start(self) -> Self:
        if self._started:
            return self
        ok, reason = self._available()
        if not ok:
            raise RuntimeError(reason)
        self._started = True
        atexit.register(self.close)
        try:
            self._start_all()
        except BaseException as err:
            logs = log_tails(self.workdir)
            self.close()
            raise RuntimeError(f"{type(self).__name__} failed to start: {err}\nlogs:\n{logs}") from None
        return self

    def close(self) -> None:
        """Stop every process (verified gone) and remove the temp dir. Idempotent."""
        with self._lifecycle_lock:
            if not self._started:
                return
            self._started = False
        atexit.unregister(self.close)
        self._stop_all()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def run(
    argv: Sequence[str],
    *,
    as_server_user: bool = False,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120.0,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    """Run a short command, capture its output, raise with the output when it fails."""
    user = server_user() if as_server_user else None
    full_env = {**os.environ, **(env or {})}
    if user is not None:
        full_env["HOME"] = user.pw_dir
        full_env["USER"] = user.pw_name
    proc = subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
        user=user.pw_uid if user is not None else None,
        group=user.pw_gid if user is not None else None,
        extra_groups=[] if user is not None else None,
        check=False,
    )
    if check and proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes of process group ``pgid``, read from /proc."""
    members: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) >= 3 and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


class ManagedProcess:
    """One server process (and its children), logged to a file, stopped for sure."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        as_server_user: bool = False,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env or {})
        self.cwd = cwd
        self.as_server_user = as_server_user
        self.stop_signal = stop_signal
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        if self.running():
            return
        user = server_user() if self.as_server_user else None
        env = {**os.environ, **self.env}
        if user is not None:
            env["HOME"] = user.pw_dir
            env["USER"] = user.pw_name
        with open(self.log_path, "ab") as log:
            if user is not None:
                os.chown(self.log_path, user.pw_uid, user.pw_gid)
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.cwd,
                start_new_session=True,
                user=user.pw_uid if user is not None else None,
                group=user.pw_gid if user is not None else None,
                extra_groups=[] if user is not None else None,
            )

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def signal(self, sig: signal.Signals) -> None:
        if self.running() and self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(sig)

    def request_stop(self) -> None:
        """Send the stop signal without waiting (to stop several processes in parallel)."""
        self.signal(self.stop_signal)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the process and every process of its group; return when all are gone."""
        proc = self._proc
        if proc is None:
            return
        pgid = proc.pid  # start_new_session: the process leads its own group
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(self.stop_signal)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
                proc.wait(timeout=10)
        # Children (e.g. PostgreSQL backends) may outlive their leader for a moment.
        deadline = time.monotonic() + timeout
        while group_members(pgid):
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
            time.sleep(0.05)
            if time.monotonic() > deadline + 10:
                raise RuntimeError(f"{self.name}: processes of group {pgid} survive SIGKILL")
        self._proc = None
