"""One PgBouncer admin console session: SHOW DATABASES / SHOW SERVERS, RELOAD, RECONNECT.

Used by `apply` (and `access`, for `parse_admin_secret`). Every failure becomes an `AdminError` with a kind the operator can put
in status (unreachable, auth failed, timeout, command failed); nothing from psycopg escapes.

The admin console (the `pgbouncer` pseudo-database) speaks only the simple query protocol and
rejects transactions: checked with PgBouncer 1.18, a parameterized query fails with "extended
query protocol not supported by admin console" and a non-autocommit session with "invalid command
'BEGIN'". So sessions are autocommit, never prepare, and commands are sent without parameters
(psycopg then uses the simple protocol); database names are validated by the renderer before they
reach a command.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import psycopg
from psycopg.rows import dict_row

ADMIN_DATABASE = "pgbouncer"
DEFAULT_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class Instance:
    """One PgBouncer process's admin console address (a pod IP and PgBouncer's port)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class AdminCredentials:
    user: str
    password: str

    def __repr__(self) -> str:  # never print the password into logs or status
        return f"AdminCredentials(user={self.user!r}, password=***)"


def parse_admin_secret(value: str) -> AdminCredentials:
    """`user:password` as stored in spec.pooler.pgbouncer.adminSecret (the password may hold ':')."""
    user, sep, password = value.strip("\r\n").partition(":")
    if not sep or not user:
        raise ValueError("the admin secret must hold 'user:password'")
    return AdminCredentials(user=user, password=password)


class AdminErrorKind(StrEnum):
    UNREACHABLE = "AdminUnreachable"
    AUTH_FAILED = "AdminAuthFailed"
    TIMEOUT = "AdminTimeout"
    COMMAND_FAILED = "AdminCommandFailed"


@dataclass(frozen=True, slots=True)
class AdminError:
    instance: Instance
    kind: AdminErrorKind
    message: str

    def __str__(self) -> str:
        return f"{self.instance}: {self.kind.value}: {self.message}"


class AdminFailure(Exception):
    """Raised inside this module and `apply` only; callers get `AdminError` values."""

    def __init__(self, error: AdminError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True, slots=True)
class LiveDatabase:
    """A `SHOW DATABASES` row: what the running PgBouncer has loaded."""

    name: str
    host: str | None
    port: int | None
    dbname: str | None
    pool_size: int | None
    min_pool_size: int | None
    reserve_pool: int | None
    max_connections: int | None


# (ptr, local_port, connect_time): see ServerConnection.identity.
ConnectionIdentity = tuple[str, int, str]


@dataclass(frozen=True, slots=True)
class ServerConnection:
    """A `SHOW SERVERS` row: one connection from PgBouncer to a PostgreSQL server."""

    database: str
    user: str
    state: str
    addr: str
    port: int
    close_needed: bool
    ptr: str = ""  # PgBouncer's id of the connection: its memory address
    local_port: int = 0  # PgBouncer's end of the TCP connection (0 while it connects)
    connect_time: str = ""

    @property
    def identity(self) -> ConnectionIdentity:
        """Tells connections that existed before a RELOAD from those opened after it.

        Not `ptr` alone: PgBouncer reuses a closed connection's memory for the next one it
        opens, often within milliseconds, so a new connection can show an old one's `ptr`.
        """
        return (self.ptr, self.local_port, self.connect_time)


def _classify_connect_error(message: str) -> AdminErrorKind:
    # psycopg reports connection failures without a SQLSTATE; PgBouncer's FATAL text is stable.
    text = message.lower()
    if "password authentication failed" in text or "not allowed" in text or "no such user" in text:
        return AdminErrorKind.AUTH_FAILED
    if "timeout expired" in text or "timed out" in text:
        return AdminErrorKind.TIMEOUT
    return AdminErrorKind.UNREACHABLE


def _short(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def canonical_addr(addr: str) -> str:
    """An address as comparable text (IPv6 spellings differ); non-IPs are returned unchanged."""
    try:
        return str(ipaddress.ip_address(addr))
    except ValueError:
        return addr


class AdminSession:
    """An open admin console connection; use `admin_session` to get one."""

    def __init__(self, instance: Instance, conn: psycopg.AsyncConnection[dict[str, Any]], timeout_s: float):
        self.instance = instance
        self._conn = conn
        self._timeout_s = timeout_s

    async def _run(self, command: str) -> list[dict[str, Any]]:
        try:
            async with asyncio.timeout(self._timeout_s):
                cur = await self._conn.execute(command, prepare=False)
                return await cur.fetchall() if cur.description else []
        except TimeoutError as e:
            raise AdminFailure(
                AdminError(
                    self.instance, AdminErrorKind.TIMEOUT, f"{command}: no answer in {self._timeout_s}s"
                )
            ) from e
        except psycopg.Error as e:
            kind = (
                AdminErrorKind.UNREACHABLE
                if isinstance(e, psycopg.OperationalError) and self._conn.closed
                else AdminErrorKind.COMMAND_FAILED
            )
            raise AdminFailure(AdminError(self.instance, kind, f"{command}: {_short(e)}")) from e

    async def show_databases(self) -> dict[str, LiveDatabase]:
        rows = await self._run("SHOW DATABASES")
        return {
            str(r["name"]): LiveDatabase(
                name=str(r["name"]),
                host=r.get("host"),
                port=r.get("port"),
                dbname=r.get("database"),
                pool_size=r.get("pool_size"),
                min_pool_size=r.get("min_pool_size"),
                reserve_pool=r.get("reserve_pool"),
                max_connections=r.get("max_connections"),
            )
            for r in rows
        }

    async def show_servers(self) -> list[ServerConnection]:
        rows = await self._run("SHOW SERVERS")
        return [
            ServerConnection(
                database=str(r["database"]),
                user=str(r["user"]),
                state=str(r["state"]),
                addr=canonical_addr(str(r["addr"])),
                port=int(r["port"]),
                close_needed=bool(r.get("close_needed", 0)),
                ptr=str(r.get("ptr") or ""),
                local_port=int(r.get("local_port") or 0),
                connect_time=str(r.get("connect_time") or ""),
            )
            for r in rows
        ]

    async def reload(self) -> None:
        # RELOAD answers "RELOAD" even when the file failed to load (PgBouncer only logs it):
        # callers verify with SHOW DATABASES.
        await self._run("RELOAD")

    async def reconnect(self, database: str) -> None:
        await self._run(f"RECONNECT {database}")


@asynccontextmanager
async def admin_session(
    instance: Instance, credentials: AdminCredentials, timeout_s: float = DEFAULT_TIMEOUT_S
) -> AsyncIterator[AdminSession]:
    """Connect to one admin console; raises AdminFailure (only) when that fails."""
    try:
        async with asyncio.timeout(timeout_s):
            conn = await psycopg.AsyncConnection.connect(
                host=instance.host,
                port=instance.port,
                dbname=ADMIN_DATABASE,
                user=credentials.user,
                password=credentials.password,
                autocommit=True,
                prepare_threshold=None,
                connect_timeout=max(2, int(timeout_s)),
                application_name="rwscaler",
                row_factory=dict_row,
            )
    except TimeoutError as e:
        raise AdminFailure(
            AdminError(instance, AdminErrorKind.TIMEOUT, f"no connection in {timeout_s}s")
        ) from e
    except psycopg.Error as e:
        message = _short(e)
        raise AdminFailure(AdminError(instance, _classify_connect_error(message), message)) from e
    try:
        yield AdminSession(instance, conn, timeout_s)
    finally:
        # The session is over either way; closing a broken connection has nothing to add.
        with contextlib.suppress(psycopg.Error):
            await conn.close()
