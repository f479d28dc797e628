"""The streamed byte relay's per-read step (``inference.flow``) writing through the native core's
``edge.asgi.BODY_WRITE``, over real sockets: the client gets the provider's bytes byte for byte (events whole,
split across reads, CRLF-delimited, a big event), the chunks really went through the direct write, a client that
leaves mid-stream still cancels the upstream at once, usage is still accounted exactly, and, through
``sluicegate serve``, the access log's ``bytes_out`` counts what the direct write sent."""

from __future__ import annotations

import gc
import json
import socket
import time
from pathlib import Path

import pytest
from harness import GatewayServer, raw_request, read_response, send_request
from tests.integration.ops.helpers import access_lines, wait_for
from tests.support.servers import ProxyProcess

from conftest import Mocks

CHAT = "/llm/v1/chat/completions"


def _body(model: str = "fast") -> bytes:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True,
                       "stream_options": {"include_usage": True}}).encode()


@pytest.mark.parametrize("fault", ["", "split", "crlf", "big_event=9000", "chunks=40,split,big_event=20000"])
def test_direct_writes_relay_byte_for_byte(gateway: GatewayServer, mocks: Mocks, fault: str) -> None:
    hdrs = {"x-mock-fault": fault} if fault else {}
    direct = raw_request(mocks.good.port, "POST", "/v1/chat/completions", _body("mock-1"), hdrs)
    assert direct.complete and direct.body.endswith(b"data: [DONE]\n\n" if "crlf" not in fault
                                                    else b"data: [DONE]\r\n\r\n")
    before = gateway.gateway.relay.direct_chunks
    via = raw_request(gateway.port, "POST", CHAT, _body(), hdrs)
    assert via.status == 200 and via.complete and via.headers["transfer-encoding"] == "chunked"
    assert via.body == direct.body
    # The mock paces its events (2 ms apart): most leave from the data callback through the core's direct write;
    # a server without the hook (uvicorn: SLUICEGATE__SERVER__HTTP_CORE=uvicorn) gets them all through send.
    if gateway.core == "native":
        assert gateway.gateway.relay.direct_chunks > before, "no chunk went through BODY_WRITE"
    else:
        assert gateway.gateway.relay.direct_chunks == before
    usage = gateway.gateway.last_usage
    assert usage is not None and usage.input_tokens == 7 and usage.output_tokens is not None


def test_client_leaving_mid_stream_cancels_upstream(gateway: GatewayServer, mocks: Mocks) -> None:
    # A long stream; the client reads its first events (direct writes), then resets the connection.
    n = len(mocks.good.log)
    s = socket.create_connection(("127.0.0.1", gateway.port))
    send_request(s, "POST", CHAT, _body(), {"x-mock-fault": "chunks=400,between_ms=5"})
    s.settimeout(5)
    got = b""
    while got.count(b"data: ") < 4:
        got += s.recv(65536)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close
    left = time.monotonic()
    s.close()
    rec = wait_for(lambda: len(mocks.good.log) > n and mocks.good.log[n].closed_at is not None and mocks.good.log[n],
                   timeout=5, what="the mock to see the upstream close")
    assert rec.closed_at - left < 0.1  # the upstream connection closed within 100 ms of the client's reset
    assert not rec.completed and rec.events_sent < 400


def test_an_answered_stream_leaves_no_garbage_for_the_cyclic_collector(gateway: GatewayServer) -> None:
    """The flow and the origin connection's watch referred to each other (the watch calls the flow back): that
    cycle kept each stream's whole exchange (the core's cycle, the task, the deadline, the tap) for the cyclic
    collector, ~14-30 objects per stream. Closed at the end of the relay, they die by reference count."""
    with socket.create_connection(("127.0.0.1", gateway.port)) as s:
        for _ in range(3):
            send_request(s, "POST", CHAT, _body())
            assert read_response(s).complete
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.garbage.clear()
        try:
            for _ in range(20):
                send_request(s, "POST", CHAT, _body())
                assert read_response(s).complete
            time.sleep(0.2)  # the server's side of the last exchange ends
            gc.collect()
            left = [type(o).__name__ for o in gc.garbage]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
    assert len(left) < 20, left  # (under one object per stream: nothing per stream; the mock's thread may add a few)


def test_serve_counts_direct_writes_in_bytes_out(tmp_path: Path, mocks: Mocks) -> None:
    conf = f"""
[server]
access_log = "json"

[inference]
path_prefix = "/llm"
providers = [{{ name = "mock", kind = "mock", base_url = "{mocks.good.url}" }}]
models = [{{ name = "fast", targets = [{{ provider = "mock", model = "mock-1" }}] }}]
"""
    p = ProxyProcess(tmp_path, conf).start()
    try:
        with socket.create_connection(("127.0.0.1", p.port)) as s:
            sizes = []
            for fault in ("", "chunks=30,big_event=8192"):
                hdrs = {"x-mock-fault": fault} if fault else {}
                send_request(s, "POST", CHAT, _body(), hdrs)
                res = read_response(s)
                assert res.status == 200 and res.complete and res.body.endswith(b"data: [DONE]\n\n")
                sizes.append(len(res.body))
        lines = wait_for(lambda: len(access_lines(p)) >= 2 and access_lines(p), what="2 access lines")
        assert [x["bytes_out"] for x in lines] == sizes
        assert all(x["face"] == "inference" and x["tokens_in"] == 7 for x in lines)
    finally:
        p.stop()
