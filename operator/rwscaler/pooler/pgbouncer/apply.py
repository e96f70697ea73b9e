"""PgBouncerRouter: the operator's act stage for `pooler.kind: PgBouncer`.

Called by `route.PgBouncerReadRouter` (the reconcile loop's router) once per tick, after `decide`:

    router = PgBouncerRouter(store)                 # store: configmap.ConfigMapStore in the operator
    result = await router.apply(plan, spec.pooler.pgbouncer, primary, endpoints, instances, creds)
    counts = await router.server_connections(endpoints, instances, creds, spec.pooler.pgbouncer)
    # -> ReplicaObservation.connections for the next tick (None = unknown, never 0 on error)

`apply` is idempotent and stateless (everything it compares is read back from the store and from
each PgBouncer), so it is safe to call on every tick and after an operator restart:

1. render the `[databases]` section (pure); a render error is returned, nothing is written;
2. write it to the store only when its hash differs from what the store holds;
3. on each instance, concurrently: `SHOW DATABASES`; if what is loaded differs from the rendered
   entries, wait (at most `login_wait_s`) until no connection of a database the RELOAD will
   retarget is logging in (see `_quiet_servers`), then `RELOAD` and look again (in Kubernetes
   the mounted ConfigMap file lags the API write by up to a minute, so an instance may stay
   "not converged" for a few ticks and is reloaded again on each; PgBouncer also answers RELOAD
   with success when the file failed to load);
4. once an instance runs the rendered config, make sure every pooled connection that must go is
   marked to close: those to a host no longer listed, and, when the host list changed, those
   opened by the old list (so connections reopen round-robin over the new one and a joining
   replica gets its share of the reads at once instead of after `server_lifetime`). PgBouncer
   1.18's RELOAD marks them itself when `host=` changes; `RECONNECT <db>` is issued only for
   connections it left unmarked, because a RECONNECT right after such a RELOAD makes PgBouncer
   reject clients for a moment (see `reconnect_reason`). Marked connections close as they are
   released: at once when idle, at the end of the transaction in transaction pooling, at the end
   of the client session in session pooling.

Failures never raise: they come back in `ApplyResult` / `ConnectionCounts` for status and events,
and the next tick retries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from rwscaler.core.plan import Plan
from rwscaler.core.spec import PgBouncerSpec
from rwscaler.pooler.pgbouncer.admin import (
    DEFAULT_TIMEOUT_S,
    AdminCredentials,
    AdminError,
    AdminFailure,
    AdminSession,
    ConnectionIdentity,
    Instance,
    LiveDatabase,
    ServerConnection,
    admin_session,
    canonical_addr,
)
from rwscaler.pooler.pgbouncer.render import (
    DatabaseEntry,
    RenderedDatabases,
    RenderError,
    config_hash,
    render_databases,
)


class ConfigStore(Protocol):
    """Where the rendered `[databases]` text lives (a ConfigMap key, or a file in tests)."""

    async def read(self) -> str | None:
        """The current text, or None when there is none yet."""
        ...

    async def write(self, text: str, text_hash: str) -> None:
        """Store the text; raise on failure (the router turns it into `ApplyResult.write_error`)."""
        ...


class FileConfigStore:
    """A ConfigStore on a local file: for PgBouncer running next to the caller, and for tests."""

    def __init__(self, path: Path) -> None:
        self.path = path

    async def read(self) -> str | None:
        try:
            return await asyncio.to_thread(self.path.read_text)
        except FileNotFoundError:
            return None

    async def write(self, text: str, text_hash: str) -> None:
        def _write() -> None:
            # Write-then-rename: PgBouncer never reads a half-written file.
            tmp = self.path.with_name(f".{self.path.name}.{text_hash[:12]}.tmp")
            tmp.write_text(text)
            tmp.replace(self.path)

        await asyncio.to_thread(_write)


@dataclass(frozen=True, slots=True)
class InstanceResult:
    instance: Instance
    # The instance runs exactly the rendered [databases] entries (checked with SHOW DATABASES).
    converged: bool
    reloaded: bool
    reconnected: tuple[str, ...]
    error: AdminError | None = None
    # When not converged without an admin error: which fields differ, for status.
    mismatch: str = ""


@dataclass(frozen=True, slots=True)
class ApplyResult:
    rendered: RenderedDatabases | None
    changed: bool  # the store held other text and was written this time
    render_error: str | None
    write_error: str | None
    instances: tuple[InstanceResult, ...]

    @property
    def converged(self) -> bool:
        """The config is stored and every instance runs it (false when rendering or writing failed)."""
        return (
            self.rendered is not None
            and self.write_error is None
            and all(i.converged for i in self.instances)
        )

    @property
    def errors(self) -> tuple[str, ...]:
        """One line per problem, for status conditions and events."""
        out: list[str] = []
        if self.render_error:
            out.append(f"render: {self.render_error}")
        if self.write_error:
            out.append(f"write: {self.write_error}")
        for i in self.instances:
            if i.error is not None:
                out.append(str(i.error))
            elif not i.converged:
                out.append(f"{i.instance}: config not loaded yet ({i.mismatch})")
        return tuple(out)


@dataclass(frozen=True, slots=True)
class ConnectionCounts:
    # Server connections per replica pod, summed over every instance; None when unknown.
    counts: dict[str, int | None]
    errors: tuple[AdminError, ...]


def _mismatch(expected: DatabaseEntry, live: LiveDatabase | None) -> str:
    if live is None:
        return f"{expected.name} not defined"
    wanted = {
        "host": expected.host,
        "port": expected.port,
        "database": expected.dbname,
        "pool_size": expected.pool_size,
        "min_pool_size": expected.min_pool_size,
        "reserve_pool": expected.reserve_pool,
        "max_connections": expected.max_db_connections,
    }
    have = {
        "host": live.host,
        "port": live.port,
        "database": live.dbname,
        "pool_size": live.pool_size,
        "min_pool_size": live.min_pool_size,
        "reserve_pool": live.reserve_pool,
        "max_connections": live.max_connections,
    }
    diffs = [f"{k} {have[k]!r} != {v!r}" for k, v in wanted.items() if have[k] != v]
    return f"{expected.name}: {', '.join(diffs)}" if diffs else ""


def _all_mismatches(rendered: RenderedDatabases, live: Mapping[str, LiveDatabase]) -> str:
    return "; ".join(m for e in rendered.databases if (m := _mismatch(e, live.get(e.name))))


def _hosts(live: LiveDatabase | None) -> set[str]:
    if live is None or not live.host:
        return set()
    return {canonical_addr(h.strip()) for h in live.host.split(",") if h.strip()}


def reconnect_reason(
    entry: DatabaseEntry,
    before: LiveDatabase | None,
    old_connections: frozenset[ConnectionIdentity],
    servers: Sequence[ServerConnection],
) -> str | None:
    """Why `entry`'s database needs a RECONNECT now (None: it does not).

    `before` is what the instance had loaded before this apply's RELOAD, `old_connections` the
    identities of the server connections it had then, `servers` its connections now. RECONNECT
    closes every pooled connection of the database as it is released, so connections reopen
    round-robin over the new host list: a leaving replica is drained, a joining one gets its
    share of the reads. But PgBouncer 1.18's RELOAD already does exactly that when a database's
    `host=` changes (it marks them close_needed), and a RECONNECT right after it is harmful
    there: it drops the connections then in their login phase, which sets the pool's "last
    login failed" flag, and while no other connection is left PgBouncer rejects clients with
    "server login has been failing, try again later (server_login_retry)". So RECONNECT only
    when a connection that must go is not yet marked (old ones told apart by
    `ServerConnection.identity`).
    """
    listed = set(entry.hosts)
    unmarked = [s for s in servers if s.database == entry.name and not s.close_needed]
    if any(s.addr not in listed or s.port != entry.port for s in unmarked):
        return "connections to a server no longer listed are not marked to close"
    if (
        before is not None
        and _hosts(before) != listed
        and any(s.identity in old_connections for s in unmarked)
    ):
        return "the host list changed but connections opened by the old list are not marked to close"
    return None


def retargeted_by_reload(rendered: RenderedDatabases, live: Mapping[str, LiveDatabase]) -> set[str]:
    """The databases a RELOAD will retarget: PgBouncer 1.18 compares host, port and dbname as
    text and, when one differs, marks the database's connections to close and drops at once
    those still logging in."""
    return {
        e.name
        for e in rendered.databases
        if (old := live.get(e.name)) is not None
        and (old.host, old.port, old.dbname) != (e.host, e.port, e.dbname)
    }


# Long enough for a PostgreSQL login (tens of milliseconds, more with TLS or SCRAM), short
# enough that a lagging replica leaves the pool within the same tick.
LOGIN_WAIT_S = 1.0
LOGIN_POLL_S = 0.02


class PgBouncerRouter:
    """Routes the read side through PgBouncer; one per ReadWriteWorkload (or shared: it is stateless)."""

    def __init__(
        self, store: ConfigStore, timeout_s: float = DEFAULT_TIMEOUT_S, login_wait_s: float = LOGIN_WAIT_S
    ) -> None:
        self.store = store
        self.timeout_s = timeout_s
        self.login_wait_s = login_wait_s

    async def apply(
        self,
        plan: Plan,
        spec: PgBouncerSpec,
        primary: str,
        endpoints: Mapping[str, str],
        instances: Sequence[Instance],
        credentials: AdminCredentials,
    ) -> ApplyResult:
        """Make every PgBouncer instance route as `plan` says (see the module docstring).

        `primary`: the primary's pod name; `endpoints`: pod name -> IP address, for the primary and
        the replicas; `instances`: the PgBouncer pods' admin console addresses.
        """
        try:
            rendered = render_databases(spec, plan, primary, endpoints)
        except RenderError as e:
            return ApplyResult(None, False, str(e), None, ())
        changed = False
        try:
            current = await self.store.read()
            if current is None or config_hash(current) != rendered.hash:
                await self.store.write(rendered.text, rendered.hash)
                changed = True
        except Exception as e:  # any store failure is reported for status; the next tick retries
            return ApplyResult(rendered, False, None, f"{type(e).__name__}: {e}", ())
        results = await asyncio.gather(*(self._apply_one(i, credentials, rendered) for i in instances))
        return ApplyResult(rendered, changed, None, None, tuple(results))

    async def _apply_one(
        self, instance: Instance, credentials: AdminCredentials, rendered: RenderedDatabases
    ) -> InstanceResult:
        reloaded = False
        reconnected: list[str] = []
        try:
            async with admin_session(instance, credentials, self.timeout_s) as admin:
                before = await admin.show_databases()
                live = before
                old: frozenset[ConnectionIdentity] = frozenset()
                if _all_mismatches(rendered, live):
                    servers = await self._quiet_servers(admin, retargeted_by_reload(rendered, live))
                    old = frozenset(s.identity for s in servers)
                    await admin.reload()
                    reloaded = True
                    live = await admin.show_databases()
                mismatch = _all_mismatches(rendered, live)
                if mismatch:
                    # Not loaded (the file has not reached the pod yet, or PgBouncer rejected it):
                    # no RECONNECT, which would only reopen connections by the old list.
                    return InstanceResult(instance, False, reloaded, (), None, mismatch)
                servers = await admin.show_servers()
                for entry in rendered.databases:
                    if reconnect_reason(entry, before.get(entry.name), old, servers):
                        await admin.reconnect(entry.name)
                        reconnected.append(entry.name)
                return InstanceResult(instance, True, reloaded, tuple(reconnected))
        except AdminFailure as f:
            return InstanceResult(instance, False, reloaded, tuple(reconnected), f.error)

    async def _quiet_servers(self, admin: AdminSession, databases: set[str]) -> list[ServerConnection]:
        """`SHOW SERVERS` once none of `databases`' connections is logging in (state "new"), or
        when `login_wait_s` has passed.

        Why wait: a RELOAD that retargets a database drops its connections still logging in,
        which PgBouncer 1.18 counts as a failed login; until a later login succeeds it refuses
        every client that finds no other connection ("server login has been failing, try again
        later (server_login_retry)"), and it opens no new connection for `server_login_retry`
        (15 s by default). A login that finishes first is merely marked to close when released.
        After the wait the RELOAD goes ahead regardless: routing away from a lagging replica
        matters more than a possible refusal.
        """
        deadline = asyncio.get_running_loop().time() + self.login_wait_s
        while True:
            servers = await admin.show_servers()
            logging_in = any(s.state == "new" and s.database in databases for s in servers)
            if not logging_in or asyncio.get_running_loop().time() >= deadline:
                return servers
            await asyncio.sleep(LOGIN_POLL_S)

    async def _servers(
        self, instance: Instance, credentials: AdminCredentials
    ) -> list[ServerConnection] | AdminError:
        try:
            async with admin_session(instance, credentials, self.timeout_s) as admin:
                return await admin.show_servers()
        except AdminFailure as f:
            return f.error

    async def count_server_connections(
        self,
        endpoints: Mapping[str, str],
        instances: Sequence[Instance],
        credentials: AdminCredentials,
        spec: PgBouncerSpec,
    ) -> ConnectionCounts:
        """Server connections each pod in `endpoints` still has from any PgBouncer instance.

        Counts every database's connections to the pod's address and `spec.serverPort`, summed
        over all instances. If any instance cannot be asked, every count is None: a drain must not
        finish on a partial answer.
        """
        answers = await asyncio.gather(*(self._servers(i, credentials) for i in instances))
        errors = tuple(a for a in answers if isinstance(a, AdminError))
        if errors or not instances:
            return ConnectionCounts({name: None for name in endpoints}, errors)
        counts: dict[str, int | None] = {}
        for name, address in endpoints.items():
            addr = canonical_addr(address)
            counts[name] = sum(
                1
                for servers in answers
                if not isinstance(servers, AdminError)
                for s in servers
                if s.addr == addr and s.port == spec.serverPort
            )
        return ConnectionCounts(counts, ())

    async def server_connections(
        self,
        endpoints: Mapping[str, str],
        instances: Sequence[Instance],
        credentials: AdminCredentials,
        spec: PgBouncerSpec,
    ) -> dict[str, int | None]:
        """`count_server_connections` without the errors: the values for ReplicaObservation."""
        return (await self.count_server_connections(endpoints, instances, credentials, spec)).counts


__all__ = [
    "AdminCredentials",
    "AdminError",
    "AdminSession",
    "ApplyResult",
    "ConfigStore",
    "ConnectionCounts",
    "FileConfigStore",
    "Instance",
    "InstanceResult",
    "PgBouncerRouter",
]
