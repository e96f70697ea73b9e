"""KubeClient sends at most 16 requests at once (docs/operator.md "What a tick asks the API server"),
and the others wait their turn instead of failing: a local HTTP server holds every request it
receives until the test lets them go, and counts how many it held at once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rwscaler.kube.client import KubeClient
from rwscaler.kube.config import KubeConfig

DOCUMENTED_LIMIT = 16
REQUESTS = 60


class _Holding(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.current = self.most = 0
        self.reached = threading.Event()  # `current` reached the documented limit
        self.release = threading.Event()


class _Handler(BaseHTTPRequestHandler):
    server: _Holding

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.current += 1
            self.server.most = max(self.server.most, self.server.current)
            if self.server.current >= DOCUMENTED_LIMIT:
                self.server.reached.set()
        self.server.release.wait(timeout=30)
        with self.server.lock:
            self.server.current -= 1
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[_Holding]:
    srv = _Holding()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.release.set()
    srv.shutdown()
    srv.server_close()


def test_at_most_16_requests_in_flight_and_the_rest_wait(server: _Holding) -> None:
    host, port = server.server_address[:2]
    client = KubeClient(KubeConfig(server=f"http://{host}:{port}"))

    async def scenario() -> list[object]:
        try:
            calls = [asyncio.create_task(client.get(f"/api/{i}")) for i in range(REQUESTS)]
            await asyncio.to_thread(server.reached.wait, 30)
            # What must not happen: a 17th request arriving while 16 are held.
            await asyncio.sleep(0.5)
            held_at_most = server.most
            server.release.set()
            answers = await asyncio.gather(*calls)
            assert held_at_most == DOCUMENTED_LIMIT
            return list(answers)
        finally:
            await client.close()

    answers = asyncio.run(scenario())
    assert answers == [{}] * REQUESTS  # every request answered: waiting is not failing
    assert server.most == DOCUMENTED_LIMIT
