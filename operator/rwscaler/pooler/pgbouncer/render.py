"""Render PgBouncer's `[databases]` section from a Plan: pure, deterministic, hashed.

Called by `apply.PgBouncerRouter` on every tick; the router writes the text only when
`RenderedDatabases.hash` differs from what the config store holds, and verifies each instance
against `RenderedDatabases.databases` (what `SHOW DATABASES` must report once it is loaded).

Two entries, both owned by rwscaler:
- the write database -> the primary;
- the read database -> a comma-separated `host=` list of exactly the servers in `plan.read_pool`
  (the primary when the pool falls back). PgBouncer >= 1.17 opens new server connections to such
  a list round-robin; it cannot skip a host that is down, which is why a leaving replica must be
  out of the list (and drained) before it stops.

What PgBouncer 1.18 (Debian 12) accepts per database, checked against the real binary: `host`,
`port`, `dbname`, `user`, `password`, `auth_user`, `pool_size`, `min_pool_size`, `reserve_pool`,
`connect_query`, `pool_mode`, `max_db_connections`, `client_encoding`, `datestyle`, `timezone`.
An unknown key (`query_timeout`, `server_connect_timeout`, `options`, ...) makes the whole file
fail to load. So the pool sizes of `plan.pool_sizing` are rendered per side, and its timeouts are
not: in 1.18 they are global `[pgbouncer]` settings, which the user owns (docs/pgbouncer.md).
Database keys: 1.18's ini parser rejects quoted keys, so names are limited to `[A-Za-z0-9_.-]`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass

from rwscaler.core.plan import Plan
from rwscaler.core.spec import PgBouncerSpec

HEADER = "; Managed by rwscaler: rewritten whenever the read pool changes; edits here are overwritten.\n"

# PgBouncer's own admin database; it cannot be defined in [databases].
RESERVED_DATABASE = "pgbouncer"
_KEY = re.compile(r"^[A-Za-z0-9_.-]+$")
_BARE_VALUE = re.compile(r"^[A-Za-z0-9_.-]+$")


class RenderError(ValueError):
    """The plan cannot be rendered into a config PgBouncer would load (reported, never applied)."""


@dataclass(frozen=True, slots=True)
class DatabaseEntry:
    """One rendered `[databases]` line, in the terms `SHOW DATABASES` reports it."""

    name: str
    hosts: tuple[str, ...]
    port: int
    dbname: str
    pool_size: int
    min_pool_size: int
    reserve_pool: int
    max_db_connections: int

    @property
    def host(self) -> str:
        """The `host=` value as written (and as `SHOW DATABASES` echoes it)."""
        return ",".join(self.hosts)

    def line(self) -> str:
        return (
            f"{self.name} = host={self.host} port={self.port} dbname={_value(self.dbname)} "
            f"pool_size={self.pool_size} min_pool_size={self.min_pool_size} "
            f"reserve_pool={self.reserve_pool} max_db_connections={self.max_db_connections}"
        )


@dataclass(frozen=True, slots=True)
class RenderedDatabases:
    text: str
    hash: str
    write: DatabaseEntry
    read: DatabaseEntry
    # Read-pool members that could not be routed because no address is known for them.
    unrouted: tuple[str, ...]

    @property
    def databases(self) -> tuple[DatabaseEntry, ...]:
        return (self.write, self.read)


def write_database_name(spec: PgBouncerSpec) -> str:
    return spec.writeDatabase or spec.database


def read_database_name(spec: PgBouncerSpec) -> str:
    return spec.readDatabase or f"{spec.database}_ro"


def config_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def normalize_address(address: str) -> str:
    """The canonical text of an IP address (PgBouncer reports server addresses this way).

    Only IP addresses are accepted: PgBouncer resolves host names itself and `SHOW SERVERS` shows
    the resolved IP, so a host name would make the drain's connection count unattributable.
    """
    try:
        return str(ipaddress.ip_address(address.strip()))
    except ValueError as e:
        raise RenderError(f"{address!r} is not an IP address") from e


def _value(text: str) -> str:
    """A connection-string value: bare when safe, else single-quoted with '' for a quote."""
    if _BARE_VALUE.match(text):
        return text
    return "'" + text.replace("'", "''") + "'"


def _check_name(kind: str, name: str) -> None:
    if not _KEY.match(name):
        raise RenderError(
            f"{kind} {name!r}: PgBouncer 1.18 accepts only letters, digits, '_', '.' and '-' in "
            f"database names of [databases]"
        )
    if name == RESERVED_DATABASE:
        raise RenderError(f"{kind} {name!r} is PgBouncer's admin console database")


def render_databases(
    spec: PgBouncerSpec, plan: Plan, primary: str, addresses: Mapping[str, str]
) -> RenderedDatabases:
    """The `[databases]` section for `plan`.

    `primary` is the primary's pod name; `addresses` maps pod names (the primary's and the
    replicas') to their IP addresses. A read-pool replica with no address is left out and listed
    in `unrouted`; if that leaves the read pool empty, the primary serves reads (the pool is never
    empty). Raises RenderError when nothing safe can be rendered (no address for the primary, a
    name PgBouncer would not load).
    """
    write_name, read_name = write_database_name(spec), read_database_name(spec)
    _check_name("writeDatabase", write_name)
    _check_name("readDatabase", read_name)
    if write_name == read_name:
        raise RenderError(f"writeDatabase and readDatabase are both {write_name!r}")
    if any(ord(c) < 32 or c == "\x7f" for c in spec.database):
        raise RenderError(f"database {spec.database!r} contains a control character")
    if primary not in addresses:
        raise RenderError(f"no address for the primary {primary}")
    primary_host = normalize_address(addresses[primary])

    read_hosts: list[str] = []
    unrouted: list[str] = []
    for name in plan.read_pool:
        if name in addresses:
            host = normalize_address(addresses[name])
            if host not in read_hosts:
                read_hosts.append(host)
        else:
            unrouted.append(name)
    fallback = plan.pool_fallback or not read_hosts
    if not read_hosts:
        read_hosts = [primary_host]

    sizing = plan.pool_sizing
    write = DatabaseEntry(
        name=write_name,
        hosts=(primary_host,),
        port=spec.serverPort,
        dbname=spec.database,
        pool_size=sizing.write_max_connections,
        min_pool_size=sizing.write_min_idle,
        # The seed's maximum is a maximum: no reserve on top of it.
        reserve_pool=0,
        max_db_connections=sizing.write_max_connections,
    )
    read = DatabaseEntry(
        name=read_name,
        hosts=tuple(read_hosts),
        port=spec.serverPort,
        dbname=spec.database,
        pool_size=sizing.read_max_connections,
        min_pool_size=sizing.read_min_idle,
        reserve_pool=0,
        max_db_connections=sizing.read_max_connections,
    )
    members = [n for n in plan.read_pool if n not in unrouted] or [primary]
    pool_note = f"; read pool: {', '.join(members)}"
    if fallback:
        pool_note += " (fallback: no replica qualifies, the primary serves reads)"
    text = f"{HEADER}{pool_note}\n{write.line()}\n{read.line()}\n"
    return RenderedDatabases(
        text=text, hash=config_hash(text), write=write, read=read, unrouted=tuple(unrouted)
    )
