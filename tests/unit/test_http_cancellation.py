"""A cancelled or abandoned request leaves no connection behind (docs/soak.md, the CLOSE-WAIT leak).

Against a real HTTP server on 127.0.0.1 that this module runs in the test's own event loop: it
holds each request it receives until the test lets it hang up (or answers at once, or sends the
headers and part of a body and then stalls). The tests are driven by what the server received,
never by the clock: start requests, wait until the server holds them, cancel or abandon them, let
the server hang up, then wait (polling, with a generous bound) until the client's pool is settled,
and check that no connection is still counted as busy, that no socket to the server is left in
CLOSE-WAIT (/proc/self/net/tcp), and that more requests than the pool has slots still get answers.

httpcore 1.0.9 loses a connection when the task awaiting a request is cancelled a second time
while it handles the first cancellation (encode/httpcore#1115): the connection stays ACTIVE with
its socket open, for ever. In the operator that is a query whose deadline fired (asyncio.timeout
is a cancellation) and whose tick is then stopped by Loops.stop, or two stops of one tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from rwscaler.core.observation import UnknownReason
from rwscaler.http_exchange import Exchanges
from rwscaler.kube.client import KubeClient
from rwscaler.kube.config import KubeConfig
from rwscaler.metrics.client import Endpoint, PrometheusClient

pytestmark = pytest.mark.timeout(60)

POOL = 4  # the pool limit of the clients under test
ROUNDS = 3  # rounds of POOL cancelled requests: more than the pool has slots
SETTLE_S = 10.0  # a bound on polling for a settled pool, far above what it takes
ANSWER = b'{"status":"success","data":{"resultType":"vector","result":[]}}'  # Prometheus' and a dict for Kube
TCP_CLOSE_WAIT = "08"  # the state column of /proc/net/tcp


class _Server:
    """An HTTP/1.1 server that answers, holds or stalls each request as the test says."""

    def __init__(self) -> None:
        self.received = 0
        self.closed_by_client = 0  # held connections the client closed before the server did
        self._changed = asyncio.Condition()
        self._mode = "answer"
        self._hang_up = asyncio.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._hang_up.set()
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    def answer(self) -> None:
        """From now on, answer every request at once (and keep the connection)."""
        self._mode = "answer"

    def hold(self, mode: str = "hold") -> asyncio.Event:
        """From now on, hold every request (`hold`: say nothing; `body`: send the headers and a
        part of the body) until the returned event is set, then hang up."""
        self._mode = mode
        self._hang_up = asyncio.Event()
        return self._hang_up

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        async with self._changed:
            await self._changed.wait_for(condition)

    async def _count(self, attribute: str) -> None:
        async with self._changed:
            setattr(self, attribute, getattr(self, attribute) + 1)
            self._changed.notify_all()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                await reader.readexactly(length)
                mode, hang_up = self._mode, self._hang_up
                await self._count("received")
                if mode == "answer":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
                    writer.write(b"Content-Length: %d\r\n\r\n%s" % (len(ANSWER), ANSWER))
                    await writer.drain()
                    continue
                if mode == "body":
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + ANSWER[:10])
                    await writer.drain()
                # Held: until the test lets go, or until the client closes the connection.
                eof = asyncio.ensure_future(reader.read(1))
                released = asyncio.ensure_future(hang_up.wait())
                await asyncio.wait({eof, released}, return_when=asyncio.FIRST_COMPLETED)
                released.cancel()
                if eof.done() and eof.result() == b"":
                    await self._count("closed_by_client")
                eof.cancel()
                return
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()


@pytest.fixture
async def server() -> AsyncIterator[_Server]:
    srv = _Server()
    await srv.start()
    yield srv
    await srv.stop()


def _close_wait_sockets(port: int) -> int:
    """Sockets to `port` on 127.0.0.1 in CLOSE-WAIT: the server hung up, the client never closed."""
    count = 0
    for line in Path("/proc/self/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote, state = fields[2], fields[3]
        if int(remote.split(":")[1], 16) == port and state == TCP_CLOSE_WAIT:
            count += 1
    return count


def _pool(http: httpx.AsyncClient) -> Any:
    return http._transport._pool  # type: ignore[attr-defined]


async def _until(condition: Callable[[], bool], within: float = SETTLE_S) -> bool:
    """Poll `condition` until it holds or `within` seconds have passed; whether it held."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def _assert_settled(http: httpx.AsyncClient, port: int) -> None:
    """Once the server has hung up: no connection still busy, no socket left in CLOSE-WAIT."""
    pool = _pool(http)

    def settled() -> bool:
        busy = [c for c in pool.connections if not c.is_idle()]
        return not busy and _close_wait_sockets(port) == 0

    await _until(settled)
    busy = [c for c in pool.connections if not c.is_idle()]
    close_wait = _close_wait_sockets(port)
    assert not busy and close_wait == 0, (
        f"{len(busy)} connections still busy, {close_wait} sockets in CLOSE-WAIT: {pool!r} {busy}"
    )


async def _cancel_twice(calls: list[asyncio.Task[Any]]) -> None:
    """Cancel each call, and again while it handles the first cancellation (one turn later)."""
    for call in calls:
        call.cancel()
    await asyncio.sleep(0)  # one turn of the event loop, not a wait for time to pass
    for call in calls:
        call.cancel()
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results), results


# ---- through the operator's clients -------------------------------------------------------------


async def test_prometheus_queries_cancelled_twice_leave_no_connection_behind(server: _Server) -> None:
    client = PrometheusClient(
        Endpoint(server.url), asyncio.Semaphore(POOL), limits=httpx.Limits(max_connections=POOL)
    )
    try:
        for _ in range(ROUNDS):
            hang_up = server.hold()
            held = server.received + POOL
            calls = [asyncio.create_task(client.query("up", timeout=60.0)) for _ in range(POOL)]
            await server.wait_for(lambda held=held: server.received >= held)
            await _cancel_twice(calls)
            hang_up.set()
            await _assert_settled(client._http, server.port)
        server.answer()
        answers = await asyncio.gather(*(client.query("up", timeout=60.0) for _ in range(POOL + 1)))
        assert answers == [[]] * (POOL + 1)
    finally:
        await client.aclose()


async def test_kube_requests_cancelled_twice_leave_no_connection_behind(server: _Server) -> None:
    client = KubeClient(KubeConfig(server=server.url))
    try:
        hang_up = server.hold()
        calls = [asyncio.create_task(client.get(f"/api/v1/namespaces/ns{i}")) for i in range(POOL)]
        await server.wait_for(lambda: server.received >= POOL)
        await _cancel_twice(calls)
        hang_up.set()
        await _assert_settled(client._http, server.port)
        server.answer()
        answers = await asyncio.gather(*(client.get("/api/v1/namespaces/x") for _ in range(POOL)))
        assert all(isinstance(a, dict) and a["status"] == "success" for a in answers), answers
    finally:
        await client.close()


async def test_a_hung_prometheus_is_a_timeout_and_its_query_ends_by_itself(server: _Server) -> None:
    """The deadline of a query (asyncio.timeout before the fix) still answers TIMEOUT, and the
    exchange behind it ends on its own while the server still holds it: the client closes it."""
    client = PrometheusClient(
        Endpoint(server.url), asyncio.Semaphore(POOL), limits=httpx.Limits(max_connections=POOL)
    )
    try:
        hang_up = server.hold()
        for i in range(POOL + 1):
            answer = await client.query("up", timeout=0.05)
            assert not isinstance(answer, list)
            assert answer.reason is UnknownReason.TIMEOUT, answer
            assert "within 0.05s" in answer.message
            await server.wait_for(lambda i=i: server.closed_by_client > i)
        hang_up.set()
        await _assert_settled(client._http, server.port)
        server.answer()
        assert await client.query("up", timeout=60.0) == []
    finally:
        await client.aclose()


# ---- the helper itself -----------------------------------------------------------------------------


@pytest.mark.parametrize("stall", ["hold", "body"], ids=["before-the-headers", "in-the-body"])
async def test_an_exchange_that_never_times_out_a_read_is_cut(server: _Server, stall: str) -> None:
    """A server that keeps a read from timing out (a byte now and then) is cut at `cut_after`: the
    read timeout here is far longer than the test, so only the cut can end the exchange."""
    http = httpx.AsyncClient(timeout=httpx.Timeout(600.0))
    exchanges = Exchanges(http, asyncio.Semaphore(POOL))
    try:
        hang_up = server.hold(stall)
        with pytest.raises(httpx.ReadTimeout):
            await exchanges.send(http.build_request("GET", server.url), wait=None, cut_after=0.05)
        await server.wait_for(lambda: server.closed_by_client >= 1)
        assert _pool(http).connections == []
        hang_up.set()
        server.answer()
        response = await exchanges.send(http.build_request("GET", server.url), wait=None, cut_after=60.0)
        assert response.content == ANSWER
    finally:
        await exchanges.aclose()


async def test_an_abandoned_exchange_keeps_its_slot_until_it_ends(server: _Server) -> None:
    """The caller stops waiting at `wait`; the exchange, not cancelled, holds its slot of the
    limit (the requests the server has to serve) until it ends, then gives back its connection."""
    http = httpx.AsyncClient(timeout=httpx.Timeout(600.0))
    limit = asyncio.Semaphore(1)
    exchanges = Exchanges(http, limit)
    try:
        hang_up = server.hold()
        with pytest.raises(TimeoutError):
            await exchanges.send(http.build_request("GET", server.url), wait=0.01, cut_after=None)
        await server.wait_for(lambda: server.received >= 1)
        assert limit.locked()
        hang_up.set()
        assert await _until(lambda: not limit.locked())
        await _assert_settled(http, server.port)
    finally:
        await exchanges.aclose()


async def test_aclose_ends_the_abandoned_exchanges_quietly(server: _Server) -> None:
    """aclose() stops what nobody waits for any more and closes the client; no task is left
    pending and no failure goes unretrieved (the loop would report either)."""
    loop = asyncio.get_running_loop()
    reports: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: reports.append(context))
    http = httpx.AsyncClient(timeout=httpx.Timeout(600.0))
    exchanges = Exchanges(http, asyncio.Semaphore(POOL))
    try:
        server.hold()
        calls = [
            asyncio.create_task(
                exchanges.send(http.build_request("GET", server.url), wait=None, cut_after=None)
            )
            for _ in range(POOL)
        ]
        await server.wait_for(lambda: server.received >= POOL)
        for call in calls:
            call.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
        await exchanges.aclose()
        assert http.is_closed
        await server.wait_for(lambda: server.closed_by_client >= POOL)
        del calls
        gc.collect()
        assert reports == []
    finally:
        loop.set_exception_handler(previous)
        with contextlib.suppress(Exception):
            await exchanges.aclose()
