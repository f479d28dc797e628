"""The streamed byte relay's callback leg (``inference.pump``) and the provider connection's reuse, over real
sockets: a pooled upstream connection serves stream after stream; a client that reads slowly pushes back
through the pump (the suspended ``send`` is finished by the relay task) and still gets every byte in order."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import pytest
from harness import GatewayServer, raw_request, read_response, send_request, settings_for

from conftest import Mocks

CHAT = "/llm/v1/chat/completions"


def _stream_body(model: str = "fast") -> bytes:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True,
                       "stream_options": {"include_usage": True}}).encode()


def test_provider_connection_is_reused_across_streams(gateway: GatewayServer, mocks: Mocks) -> None:
    # Sequential SSE streams, each on a new client connection: after the first (which may open one) the provider
    # sees no new connection: the one an ended stream left is taken again from the pool.
    raw_request(gateway.port, "POST", CHAT, _stream_body())
    before = mocks.good.connections
    for _ in range(10):
        res = raw_request(gateway.port, "POST", CHAT, _stream_body())
        assert res.status == 200 and res.complete and res.body.endswith(b"data: [DONE]\n\n")
    assert mocks.good.connections == before
    # ... and so do streams on one kept-alive client connection.
    with socket.create_connection(("127.0.0.1", gateway.port)) as s:
        for _ in range(5):
            send_request(s, "POST", CHAT, _stream_body())
            res = read_response(s)
            assert res.status == 200 and res.complete
    assert mocks.good.connections == before


def test_stream_that_fails_is_not_reused(gateway: GatewayServer, mocks: Mocks) -> None:
    raw_request(gateway.port, "POST", CHAT, _stream_body())
    before = mocks.good.connections
    res = raw_request(gateway.port, "POST", CHAT, _stream_body(), {"x-mock-fault": "reset_after=3"})
    assert not res.complete
    res = raw_request(gateway.port, "POST", CHAT, _stream_body())
    assert res.complete
    assert mocks.good.connections == before + 1  # the reset one was dropped; the next stream opened a new one


@pytest.fixture(scope="module")
def big_gateway(mocks: Mocks) -> Iterator[GatewayServer]:
    """Answers up to 32 MiB: more than the kernel's socket buffers (up to 4 MiB each way) can hide."""
    server = GatewayServer(settings_for({
        "path_prefix": "/llm", "max_response_bytes": 32 * 1024 * 1024,
        "providers": [{"name": "good", "kind": "mock", "base_url": mocks.good.url}],
        "models": [{"name": "fast", "targets": [{"provider": "good", "model": "mock-1"}]}],
    })).start()
    yield server
    server.stop()


@pytest.mark.parametrize("fault", ["chunks=160,piece_bytes=60000", "chunks=160,piece_bytes=60000,split"])
def test_slow_client_pushes_back_and_gets_every_byte(big_gateway: GatewayServer, mocks: Mocks, fault: str) -> None:
    before = big_gateway.gateway.relay.pushbacks
    hdrs = {"x-mock-fault": fault}
    direct = raw_request(mocks.good.port, "POST", "/v1/chat/completions", _stream_body("mock-1"), hdrs)
    assert direct.complete and len(direct.body) > 9_000_000
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", big_gateway.port))
        n = len(mocks.good.log)
        send_request(s, "POST", CHAT, _stream_body(), hdrs)
        # Not reading: the socket buffers toward the client fill (~4 MiB), the gateway's transport pauses writing
        # and the relay stops taking the provider's bytes (they wait in the upstream client, then in the kernel's
        # receive buffer, which may hold the whole 9.6 MB). Wait until the mock has not moved for 0.3 s.
        sent, still, deadline = -1, time.monotonic(), time.monotonic() + 10
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = mocks.good.log[n].events_sent if len(mocks.good.log) > n else -1
            if now != sent:
                sent, still = now, time.monotonic()
            elif time.monotonic() - still > 0.3:
                break
        assert sent >= 0
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        via = read_response(s)
    assert via.status == 200 and via.complete
    assert via.body == direct.body
    assert big_gateway.gateway.relay.pushbacks == before + 1, "no pushback: the suspended send was not exercised"
