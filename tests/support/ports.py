"""Free TCP ports on 127.0.0.1 for the processes the integration tests start.

Used by :mod:`tests.support.prometheus`, :mod:`tests.support.exporter` and
:mod:`tests.support.pgenv`. A port is found by binding to port 0 and closing the socket;
ports handed out once are never handed out again by this process, so two servers
started by the same test session cannot be given the same port.
"""

from __future__ import annotations

import socket
import threading
import time

LOOPBACK = "127.0.0.1"

_lock = threading.Lock()
_handed_out: set[int] = set()


def free_port(avoid: frozenset[int] = frozenset()) -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with _lock:
        for _ in range(200):
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind((LOOPBACK, 0))
                port: int = sock.getsockname()[1]
            if port not in _handed_out and port not in avoid:
                _handed_out.add(port)
                return port
    raise RuntimeError("no free TCP port found on 127.0.0.1")


def is_listening(port: int, host: str = LOOPBACK, timeout: float = 0.2) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_listening(port: int, timeout: float, host: str = LOOPBACK) -> bool:
    """Wait until host:port accepts connections; False when the timeout passed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_listening(port, host):
            return True
        time.sleep(0.05)
    return False
