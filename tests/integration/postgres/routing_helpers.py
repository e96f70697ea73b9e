"""What the PgBouncer tests share: PgEnv's servers on one port each behind TCP relays, and
rwscaler's PgBouncerRouter writing the `[databases]` file PgBouncer includes.

Addresses. In Kubernetes every server is a pod IP on one port, and PgBouncer 1.18 takes one
`port=` for a whole `host=` list. PgEnv's servers share 127.0.0.1 on different ports (and offer
Unix sockets per server, but `SHOW SERVERS` reports every Unix socket as `unix`, so connections
could not be counted per replica). So a small TCP relay per server listens on its own loopback
address and one common port (127.0.0.20 primary, 127.0.0.21+n replica n, all loopback)
forwarding to the server's real port: PgBouncer sees the topology it sees in a cluster.

The router writes a `FileConfigStore` standing in for the ConfigMap; PgEnv's pgbouncer.ini gets
`[databases] %include <that file>`, the layout docs/pgbouncer.md tells users to build from a
ConfigMap.

Used by test_pgbouncer_routing.py and test_whole_chain.py (imported as `routing_helpers`, like
failover_helpers.py).
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.pgenv import PgEnv

from rwscaler.pooler.pgbouncer.admin import AdminCredentials, Instance
from rwscaler.pooler.pgbouncer.apply import FileConfigStore, PgBouncerRouter

LOOPBACK = "127.0.0.1"
PRIMARY_ALIAS = "127.0.0.20"


def replica_alias(ordinal: int) -> str:
    return f"127.0.0.{21 + ordinal}"


# ---- relays ------------------------------------------------------------------------------
class Relays:
    """TCP relays <alias>:<common port> -> 127.0.0.1:<server port>, on an event loop thread."""

    def __init__(self, routes: dict[str, int]) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="pg-relays", daemon=True)
        self._thread.start()
        self._servers: list[asyncio.Server] = []
        self._writers: set[asyncio.StreamWriter] = set()
        # alias -> seconds a new connection waits before it reaches the server: a slow login
        self.connect_delay_s: dict[str, float] = {}
        self.port = 0
        for _ in range(20):
            with socket.socket() as probe:
                probe.bind((next(iter(routes)), 0))
                port = probe.getsockname()[1]
            try:
                for alias, target in routes.items():
                    server = asyncio.start_server(self._handler(alias, target), alias, port)
                    self._servers.append(self._call(server))
                self.port = port
                return
            except OSError:
                self._close_servers()
        raise RuntimeError("no common free port on the loopback aliases")

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    def _handler(
        self, alias: str, target: int
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(self.connect_delay_s.get(alias, 0.0))
            try:
                up_reader, up_writer = await asyncio.open_connection(LOOPBACK, target)
            except OSError:
                writer.close()  # the server is down: the pod's IP answers nothing useful
                return
            self._writers.update((writer, up_writer))

            async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
                try:
                    while data := await src.read(65536):
                        dst.write(data)
                        await dst.drain()
                except OSError:
                    pass
                finally:
                    dst.close()

            try:
                await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
            except asyncio.CancelledError:
                pass  # closing the relays; asyncio's stream callback would log a cancelled task
            finally:
                self._writers.difference_update((writer, up_writer))

        return handle

    def _close_servers(self) -> None:
        async def close() -> None:
            for server in self._servers:
                server.close()
            for w in list(self._writers):
                w.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self._call(close())
        self._servers.clear()

    def close(self) -> None:
        self._close_servers()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


# ---- which servers answer ----------------------------------------------------------------
def read_servers(env: PgEnv, database: str, clients: int = 4) -> Counter[str]:
    """Which servers answer `clients` reads made concurrently (each holds its transaction while
    the others start, so PgBouncer needs several server connections, opened round-robin).
    `clients` must not exceed the pool size, or the last BEGIN waits for a server forever."""
    conns = [env.connect_pgbouncer(database) for _ in range(clients)]
    seen: Counter[str] = Counter()
    try:
        for c in conns:
            c.execute("BEGIN")
        for c in conns:
            row = c.execute("SELECT current_setting('cluster_name'), pg_is_in_recovery()").fetchone()
            assert row is not None
            seen[f"{row[0]}{'' if row[1] else ' (primary)'}"] += 1
        for c in conns:
            c.execute("COMMIT")
    finally:
        for c in conns:
            c.close()
    return seen


# ---- the routed setup --------------------------------------------------------------------
@dataclass
class RoutedBed:
    """PgEnv behind relays, with rwscaler's router owning PgBouncer's included `[databases]`."""

    relays: Relays
    addresses: dict[str, str]  # pod name -> the relay address PgBouncer reaches it on
    include: Path  # the file rwscaler writes (the ConfigMap key)
    router: PgBouncerRouter
    instance: Instance  # the PgBouncer admin console
    creds: AdminCredentials


@contextmanager
def routed_bed(env: PgEnv) -> Iterator[RoutedBed]:
    """Start a relay per server and point PgBouncer's ini at rwscaler's include file (loaded at
    the router's first apply); the relays are closed on exit (PgEnv's reset restores the ini)."""
    routes = {PRIMARY_ALIAS: env.instance().port}
    addresses = {env.primary_name: PRIMARY_ALIAS}
    for r in env.replicas:
        routes[replica_alias(r.ordinal)] = r.port
        addresses[r.name] = replica_alias(r.ordinal)
    relays = Relays(routes)
    try:
        include = env.workdir / "pgbouncer" / "rwscaler-databases.ini"
        include.unlink(missing_ok=True)
        # The user's pgbouncer.ini; rwscaler owns only the included file (the ConfigMap key).
        env.write_pgbouncer_databases(f"%include {include}\n", reload=False)
        yield RoutedBed(
            relays=relays,
            addresses=addresses,
            include=include,
            router=PgBouncerRouter(FileConfigStore(include)),
            instance=Instance(LOOPBACK, env.pgbouncer_port),
            creds=AdminCredentials(env.pgbouncer_admin_user, env.pgbouncer_admin_password),
        )
    finally:
        relays.close()
