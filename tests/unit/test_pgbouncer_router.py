"""PgBouncerRouter without a PgBouncer: the write-only-on-change rule, and failures as values.

The admin console parts run against the real PgBouncer in
tests/integration/postgres/test_pgbouncer_routing.py; here the instances are loopback ports where
nothing listens (connection refused) or where a socket accepts and never answers (timeout), which
is what a dead or hung PgBouncer pod looks like to the operator.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from test_pgbouncer_render import ADDRESSES, PRIMARY, pgb, plan_with

from rwscaler.pooler.pgbouncer.admin import (
    AdminCredentials,
    AdminErrorKind,
    Instance,
    LiveDatabase,
    ServerConnection,
    _classify_connect_error,
    parse_admin_secret,
)
from rwscaler.pooler.pgbouncer.apply import (
    FileConfigStore,
    PgBouncerRouter,
    reconnect_reason,
    retargeted_by_reload,
)
from rwscaler.pooler.pgbouncer.render import config_hash, render_databases

CREDS = AdminCredentials("admin", "secret")


class MemoryStore:
    def __init__(self, text: str | None = None, fail: Exception | None = None) -> None:
        self.text = text
        self.fail = fail
        self.writes: list[tuple[str, str]] = []

    async def read(self) -> str | None:
        if self.fail is not None:
            raise self.fail
        return self.text

    async def write(self, text: str, text_hash: str) -> None:
        self.writes.append((text, text_hash))
        self.text = text


@pytest.fixture
def refused() -> Instance:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return Instance("127.0.0.1", port)  # closed again: connections are refused


@pytest.fixture
def silent() -> Iterator[Instance]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)  # the kernel completes the handshake; nobody ever answers
        yield Instance("127.0.0.1", s.getsockname()[1])


async def test_writes_only_when_the_hash_changes() -> None:
    store = MemoryStore()
    router = PgBouncerRouter(store)
    two = plan_with(("db-replica-0", "db-replica-1"))
    first = await router.apply(two, pgb(), PRIMARY, ADDRESSES, [], CREDS)
    again = await router.apply(two, pgb(), PRIMARY, ADDRESSES, [], CREDS)
    one = await router.apply(plan_with(("db-replica-0",)), pgb(), PRIMARY, ADDRESSES, [], CREDS)
    assert (first.changed, again.changed, one.changed) == (True, False, True)
    assert len(store.writes) == 2
    assert store.writes[-1][1] == config_hash(store.writes[-1][0])
    assert first.errors == again.errors == ()
    assert first.converged  # vacuously: no instance to disagree


async def test_file_store_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "databases.ini"
    router = PgBouncerRouter(FileConfigStore(path))
    result = await router.apply(plan_with(("db-replica-0",)), pgb(), PRIMARY, ADDRESSES, [], CREDS)
    assert result.changed and result.rendered is not None
    assert path.read_text() == result.rendered.text
    assert [p.name for p in tmp_path.iterdir()] == ["databases.ini"]  # no temp file left
    mtime = path.stat().st_mtime_ns
    again = await router.apply(plan_with(("db-replica-0",)), pgb(), PRIMARY, ADDRESSES, [], CREDS)
    assert not again.changed and path.stat().st_mtime_ns == mtime


async def test_render_error_writes_nothing() -> None:
    store = MemoryStore("old")
    result = await PgBouncerRouter(store).apply(
        plan_with(("db-replica-0",)), pgb(), PRIMARY, {"db-replica-0": "10.0.0.6"}, [], CREDS
    )
    assert result.render_error is not None and "no address for the primary" in result.render_error
    assert store.writes == [] and store.text == "old"
    assert not result.converged
    assert result.errors == (f"render: {result.render_error}",)


async def test_store_failure_is_a_value() -> None:
    store = MemoryStore(fail=RuntimeError("ConfigMap shop/pgbouncer not found"))
    result = await PgBouncerRouter(store).apply(
        plan_with(("db-replica-0",)), pgb(), PRIMARY, ADDRESSES, [], CREDS
    )
    assert result.write_error == "RuntimeError: ConfigMap shop/pgbouncer not found"
    assert result.instances == () and not result.converged


async def test_unreachable_instance_is_reported_and_counts_are_unknown(refused: Instance) -> None:
    router = PgBouncerRouter(MemoryStore(), timeout_s=2.0)
    result = await router.apply(plan_with(("db-replica-0",)), pgb(), PRIMARY, ADDRESSES, [refused], CREDS)
    assert result.changed  # the config is written even though nobody can reload it yet
    (inst,) = result.instances
    assert inst.error is not None and inst.error.kind is AdminErrorKind.UNREACHABLE
    assert not inst.converged and not result.converged
    assert str(refused) in result.errors[0]
    counts = await router.count_server_connections(ADDRESSES, [refused], CREDS, pgb())
    # Unknown, never 0: a drain must not finish because PgBouncer could not be asked.
    assert counts.counts == dict.fromkeys(ADDRESSES)
    assert [e.kind for e in counts.errors] == [AdminErrorKind.UNREACHABLE]


async def test_hung_instance_times_out(silent: Instance) -> None:
    router = PgBouncerRouter(MemoryStore(), timeout_s=0.5)
    counts = await router.server_connections(ADDRESSES, [silent], CREDS, pgb())
    assert counts == dict.fromkeys(ADDRESSES)
    result = await router.apply(plan_with(("db-replica-0",)), pgb(), PRIMARY, ADDRESSES, [silent], CREDS)
    assert result.instances[0].error is not None
    assert result.instances[0].error.kind is AdminErrorKind.TIMEOUT


async def test_no_instance_means_unknown_connections() -> None:
    counts = await PgBouncerRouter(MemoryStore()).server_connections(ADDRESSES, [], CREDS, pgb())
    assert counts == dict.fromkeys(ADDRESSES)


def test_admin_secret_parsing() -> None:
    assert parse_admin_secret("admin:pa:ss\n") == AdminCredentials("admin", "pa:ss")
    assert "pa:ss" not in repr(parse_admin_secret("admin:pa:ss"))
    for bad in ("admin", ":pw", ""):
        with pytest.raises(ValueError, match="user:password"):
            parse_admin_secret(bad)


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ('connection to server at "10.0.0.9", port 6432 failed: FATAL:  password authentication failed',
         AdminErrorKind.AUTH_FAILED),
        ("connection failed: FATAL:  not allowed", AdminErrorKind.AUTH_FAILED),
        ("connection refused Is the server running on that host", AdminErrorKind.UNREACHABLE),
        ("connection failed: timeout expired", AdminErrorKind.TIMEOUT),
    ],
)  # fmt: skip
def test_connect_errors_are_classified(message: str, kind: AdminErrorKind) -> None:
    assert _classify_connect_error(message) is kind


def _server(
    addr: str, ptr: str, close_needed: bool = False, db: str = "orders_ro", local_port: int = 40001
) -> ServerConnection:
    return ServerConnection(
        db, "app", "idle", addr, 5432, close_needed, ptr, local_port, "2026-11-22 10:00:00"
    )


def _live(host: str) -> LiveDatabase:
    return LiveDatabase("orders_ro", host, 5432, "orders", 16, 8, 0, 16)


@pytest.mark.parametrize(
    ("before", "servers", "why"),
    [
        # PgBouncer 1.18: the RELOAD marked every old connection; new ones (ptr n1) are fine.
        ("10.0.0.6,10.0.0.7", [_server("10.0.0.6", "o1", True), _server("10.0.0.7", "o2", True),
                                _server("10.0.0.6", "n1")], None),
        # a pooler that did not mark them on RELOAD: the leaving host's connection is unmarked
        ("10.0.0.6,10.0.0.7", [_server("10.0.0.7", "o2")], "no longer listed"),
        # the list did not change: connections to a listed host stay
        ("10.0.0.6", [_server("10.0.0.6", "o1")], None),
        # the list changed and an old connection to a kept host is unmarked: it would never be
        # rebalanced over the new list
        ("10.0.0.7,10.0.0.6", [_server("10.0.0.6", "o1", True), _server("10.0.0.6", "o3")],
         "opened by the old list"),
        # a connection opened after the RELOAD at the memory of a closed old one (PgBouncer
        # reuses it at once): same ptr, another TCP connection, so not an old one
        ("10.0.0.6,10.0.0.7", [_server("10.0.0.6", "o1", True), _server("10.0.0.6", "o2", local_port=40002)],
         None),
        # nothing changed, nothing stray: no RECONNECT on an ordinary tick
        (None, [_server("10.0.0.6", "o1")], None),
        # other databases' connections are not this database's business
        ("10.0.0.6", [_server("10.0.0.9", "x", db="orders")], None),
    ],
)  # fmt: skip
def test_reconnect_only_for_connections_left_unmarked(
    before: str | None, servers: list[ServerConnection], why: str | None
) -> None:
    entry = render_databases(
        pgb(serverPort=5432), plan_with(("db-replica-0",)), PRIMARY, ADDRESSES
    ).read  # host 10.0.0.6
    old = frozenset(_server("10.0.0.6", ptr).identity for ptr in ("o1", "o2", "o3"))
    reason = reconnect_reason(entry, _live(before) if before else None, old, servers)
    if why is None:
        assert reason is None
    else:
        assert reason is not None and why in reason


@pytest.mark.parametrize(
    ("live", "retargeted"),
    [
        # what PgBouncer 1.18 compares: host (as text), port, dbname
        ({"orders_ro": _live("10.0.0.6,10.0.0.7")}, {"orders_ro"}),
        ({"orders_ro": replace(_live("10.0.0.6"), port=6543)}, {"orders_ro"}),
        ({"orders_ro": replace(_live("10.0.0.6"), dbname="other")}, {"orders_ro"}),
        # pool sizes are applied without closing any connection
        ({"orders_ro": replace(_live("10.0.0.6"), pool_size=2, min_pool_size=1)}, set()),
        # a database PgBouncer does not have yet has no connection to drop
        ({}, set()),
    ],
)
def test_retargeted_by_reload(live: dict[str, LiveDatabase], retargeted: set[str]) -> None:
    rendered = render_databases(pgb(serverPort=5432), plan_with(("db-replica-0",)), PRIMARY, ADDRESSES)
    assert rendered.read.host == "10.0.0.6" and rendered.read.dbname == "orders"
    assert retargeted_by_reload(rendered, live) == retargeted


class ScriptedAdmin:
    """Answers SHOW SERVERS from a script (the last answer repeats); counts the calls."""

    def __init__(self, *answers: list[ServerConnection]) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def show_servers(self) -> list[ServerConnection]:
        self.calls += 1
        return self.answers[min(self.calls, len(self.answers)) - 1]


def _logging_in(db: str = "orders_ro") -> ServerConnection:
    return replace(_server("10.0.0.6", "n1", db=db), state="new", local_port=0)


async def test_reload_waits_until_no_login_is_in_progress() -> None:
    quiet = [_server("10.0.0.6", "o1")]
    admin = ScriptedAdmin([_logging_in()], [_logging_in()], quiet)
    router = PgBouncerRouter(MemoryStore(), login_wait_s=5)
    assert await router._quiet_servers(admin, {"orders_ro"}) == quiet
    assert admin.calls == 3


async def test_login_wait_is_bounded_and_only_for_retargeted_databases() -> None:
    busy = [_logging_in()]
    router = PgBouncerRouter(MemoryStore(), login_wait_s=0.1)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    assert await router._quiet_servers(ScriptedAdmin(busy), {"orders_ro"}) == busy
    assert 0.1 <= loop.time() - t0 < 2
    # a login of a database the RELOAD leaves alone is no reason to wait
    other = ScriptedAdmin([_logging_in(db="orders")])
    await router._quiet_servers(other, {"orders_ro"})
    assert other.calls == 1
