"""The request-head deadline ([timeouts] client_header) through `sluicegate serve`: slowloris clients and idle
connections that never send a request are closed; requests whose head arrives in time are served."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Origin
from tests.support.configs import publisher_config
from tests.support.servers import ProxyProcess

EXTRA = """
[timeouts]
client_header = 1.0
"""


@pytest.fixture
def proxy(tmp_path: Path, origin: Origin) -> Iterator[ProxyProcess]:
    p = ProxyProcess(tmp_path, publisher_config(origin.url, extra=EXTRA)).start()
    yield p
    p.stop()


def closed_by_server(s: socket.socket, within: float) -> float:
    """Seconds until the server closed ``s`` (recv gives b"" or a reset); fails if it stays open."""
    t0 = time.monotonic()
    s.settimeout(within)
    try:
        while s.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail(f"connection still open after {within}s")
    return time.monotonic() - t0


def test_a_slow_head_is_cut_at_the_deadline(proxy: ProxyProcess) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port)) as s:
        s.sendall(b"GET /page HTTP/1.1\r\nHost: ")
        t0 = time.monotonic()
        for _ in range(3):  # still dribbling, but the head does not complete
            time.sleep(0.3)
            s.sendall(b"1")
        closed_by_server(s, 3.0)
        assert 0.8 < time.monotonic() - t0 < 2.5


def test_a_connection_that_never_sends_is_closed(proxy: ProxyProcess) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port)) as s:
        assert 0.8 < closed_by_server(s, 3.0) < 2.5


def test_heads_in_time_are_served_and_kept_alive_requests_get_a_fresh_deadline(proxy: ProxyProcess) -> None:
    with socket.create_connection(("127.0.0.1", proxy.port)) as s:
        s.settimeout(5)
        for _ in range(3):  # 3 requests over 1.8 s on one connection: each head is quick, all served
            s.sendall(f"GET /page HTTP/1.1\r\nHost: 127.0.0.1:{proxy.port}\r\n\r\n".encode())
            data = b""
            while not data.endswith(b"\r\n0\r\n\r\n"):  # the chunked body's end
                chunk = s.recv(65536)
                assert chunk, data
                data += chunk
            assert data.startswith(b"HTTP/1.1 200")
            time.sleep(0.6)
        s.sendall(b"GET /page HTTP/1.1\r\n")  # then a slow one on the kept-alive connection
        closed_by_server(s, 3.0)
