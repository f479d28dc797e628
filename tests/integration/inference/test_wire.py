"""Byte-level behaviour over raw sockets: transparency, splice fidelity, headers, aborts, disconnects."""

from __future__ import annotations

import gzip
import json
import socket
import time
import zlib

import pytest
from harness import GatewayServer, raw_request, read_response, send_request

from conftest import Mocks

CHAT = "/llm/v1/chat/completions"


def _stream_body(model: str = "fast", **extra: object) -> bytes:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True,
                       **extra}).encode()


@pytest.mark.parametrize("fault", ["", "split", "big_event=1200000", "crlf", "split,piece_bytes=70000"])
def test_relay_is_byte_identical_to_direct(gateway: GatewayServer, mocks: Mocks, fault: str) -> None:
    body = _stream_body("mock-1", stream_options={"include_usage": True})
    hdrs = {"x-mock-fault": fault} if fault else {}
    direct = raw_request(mocks.good.port, "POST", "/v1/chat/completions", body, hdrs)
    via = raw_request(gateway.port, "POST", CHAT, _stream_body(stream_options={"include_usage": True}), hdrs)
    assert direct.complete and via.complete and via.status == 200
    assert via.body == direct.body
    assert via.headers["content-type"].startswith("text/event-stream")
    assert via.headers["x-accel-buffering"] == "no"
    if "big_event" not in fault:
        u = gateway.gateway.last_usage
        assert u is not None and u.output_tokens == 8


def test_model_splice_leaves_every_other_byte(gateway: GatewayServer, mocks: Mocks) -> None:
    raw = (b'{ "messages" : [ {"role":"user","content":"caf\\u00e9 \xe2\x9c\x93", "model": "nested"} ],\n'
           b'  "temperature": 1.50, "n":1e0, "model"  :  "fast" , "meta": {"model": "keep"}, "x": [1.0,-0.0] }')
    before = len(mocks.good.log)
    res = raw_request(gateway.port, "POST", "/llm/v1/chat/completions", raw)
    assert res.status == 200
    sent = mocks.good.log[before].body
    assert sent == raw.replace(b'"fast"', b'"mock-1"')


@pytest.mark.parametrize(("body", "kind"), [
    (b'{"model":"fast","model":"fast"}', "duplicate_model"),
    (b'{"messages":[]}', "missing_model"),
    (b'{"model":null}', "model_not_string"),
    (b'["model","fast"]', "not_object"),
    (b"model=fast", "not_object"),
    (b'{"model":"fast",}', "invalid_json"),
])
def test_bad_bodies_rejected_in_protocol_shape(gateway: GatewayServer, body: bytes, kind: str) -> None:
    res = raw_request(gateway.port, "POST", CHAT, body)
    assert res.status == 400
    assert json.loads(res.body)["error"]["code"] == kind
    res = raw_request(gateway.port, "POST", "/llm/v1/messages", body)
    err = json.loads(res.body)
    assert res.status == 400 and err["type"] == "error" and err["error"]["type"] == "invalid_request_error"


def test_header_hygiene_and_credentials(gateway: GatewayServer, mocks: Mocks) -> None:
    hdrs = {"authorization": "Bearer client-secret", "x-api-key": "client-secret", "cookie": "a=b",
            "openai-organization": "org-1", "x-stainless-lang": "python", "anthropic-beta": "b1"}
    before = len(mocks.good.log)
    res = raw_request(gateway.port, "POST", CHAT, _stream_body("oa"), hdrs)
    assert res.status == 200 and res.complete
    up = mocks.good.log[before].headers
    assert up["authorization"] == "Bearer sk-live-abc123"
    assert "x-api-key" not in up and "cookie" not in up and "x-stainless-lang" not in up
    assert up["openai-organization"] == "org-1" and "anthropic-beta" not in up
    assert len(up["x-request-id"]) == 16
    assert res.headers["x-request-id"] == up["x-request-id"]
    assert "set-cookie" not in res.headers and res.headers["x-ratelimit-remaining-requests"] == "99"
    assert b"sk-live" not in res.body and b"client-secret" not in res.body
    # Anthropic kind: x-api-key injected, default anthropic-version added, beta passed.
    body = json.dumps({"model": "an", "max_tokens": 5, "messages": []}).encode()
    res = raw_request(gateway.port, "POST", "/llm/v1/messages", body, hdrs)
    up = mocks.good.log[-1].headers
    assert res.status == 200
    assert up["x-api-key"] == "sk-ant-live-xyz" and "authorization" not in up
    assert up["anthropic-version"] == "2023-06-01" and up["anthropic-beta"] == "b1"
    assert json.loads(mocks.good.log[-1].body)["model"] == "claude-real"


def test_query_string_and_path_forms(gateway: GatewayServer, mocks: Mocks) -> None:
    body = json.dumps({"model": "fast", "max_tokens": 5, "messages": []}).encode()
    res = raw_request(gateway.port, "POST", "/llm/v1/messages?beta=true", body)
    assert res.status == 200 and mocks.good.log[-1].path == "/v1/messages?beta=true"
    res = raw_request(gateway.port, "POST", "/llm//v1/chat/completions/", _stream_body())
    assert res.status == 200 and mocks.good.log[-1].path == "/v1/chat/completions"
    for bad in ("/llm/v1/chat/../completions", "/llm/v1/embeddings%2Fx", "/llm/v2/chat/completions"):
        res = raw_request(gateway.port, "POST", bad, _stream_body())
        assert res.status == 404 and "error" in json.loads(res.body)
    res = raw_request(gateway.port, "POST", "/llm/v1/messages/batches", body)
    assert res.status == 404 and json.loads(res.body)["type"] == "error"


def test_caps_and_unknown_model(gateway: GatewayServer) -> None:
    big = json.dumps({"model": "fast", "pad": "x" * 70_000}).encode()
    res = raw_request(gateway.port, "POST", CHAT, big)
    assert res.status == 413 and json.loads(res.body)["error"]["type"] == "invalid_request_error"
    res = raw_request(gateway.port, "POST", CHAT, _stream_body("nope"))
    assert res.status == 404 and json.loads(res.body)["error"]["code"] == "model_not_found"


def _events(body: bytes) -> list[bytes]:
    return [e for e in body.replace(b"\r\n", b"\n").split(b"\n\n") if e.strip()]


def test_midstream_reset_frames_error_on_boundary_and_aborts(gateway: GatewayServer) -> None:
    res = raw_request(gateway.port, "POST", CHAT, _stream_body(), {"x-mock-fault": "reset_after=4"})
    assert res.status == 200 and not res.complete and res.closed  # never a clean terminating chunk
    events = _events(res.body)
    assert len(events) == 5
    assert json.loads(events[-1][len(b"data: "):])["error"]["type"] == "proxy_stream_error"
    assert res.body.endswith(b"\n\n") and b"[DONE]" not in res.body
    body = json.dumps({"model": "fast", "max_tokens": 5, "messages": [], "stream": True}).encode()
    res = raw_request(gateway.port, "POST", "/llm/v1/messages", body, {"x-mock-fault": "reset_after=4,split"})
    last = _events(res.body)[-1].split(b"\n")
    assert last[0] == b"event: error" and json.loads(last[1][6:])["type"] == "error"
    assert not res.complete


def test_response_cap_cuts_on_boundary(gateway: GatewayServer) -> None:
    res = raw_request(gateway.port, "POST", CHAT, _stream_body(), {"x-mock-fault": "piece_bytes=400000"})
    assert not res.complete
    events = _events(res.body)
    assert b"response_cap" in events[-1]
    for ev in events[:-1]:  # everything before the error event is whole, parseable events
        json.loads(ev[len(b"data: "):])


def test_gzip_stream_passes_through_and_is_never_injected(gateway: GatewayServer) -> None:
    hdrs = {"accept-encoding": "gzip", "x-mock-fault": "gzip"}
    res = raw_request(gateway.port, "POST", CHAT, _stream_body(), hdrs)
    assert res.complete and res.headers["content-encoding"] == "gzip"
    text = gzip.decompress(res.body)
    assert text.endswith(b"data: [DONE]\n\n")
    res = raw_request(gateway.port, "POST", CHAT, _stream_body(), {**hdrs, "x-mock-fault": "gzip,reset_after=3"})
    assert not res.complete and res.closed
    assert b"proxy_stream_error" not in res.body  # no plaintext appended to a gzip body
    partial = zlib.decompressobj(31).decompress(res.body)
    assert partial.count(b"data: ") == 3


def test_short_nonstream_body_aborts(gateway: GatewayServer) -> None:
    body = json.dumps({"model": "fast", "messages": []}).encode()
    res = raw_request(gateway.port, "POST", CHAT, body, {"x-mock-fault": "short_body"})
    assert res.status == 200 and not res.complete and res.closed


def test_keep_alive_reuse_after_errors(gateway: GatewayServer) -> None:
    s = socket.create_connection(("127.0.0.1", gateway.port))
    try:
        for path, body, status in [("/llm/v1/nope", b"{}", 404), (CHAT, _stream_body("nope"), 404),
                                   (CHAT, _stream_body(), 200), ("/llm/v1/models", b"", 200),
                                   (CHAT, _stream_body(), 200)]:
            send_request(s, "GET" if path.endswith("models") else "POST", path, body)
            res = read_response(s)
            assert res.status == status and res.complete
    finally:
        s.close()


def _await_close(mock_log: list, before: int, timeout: float = 2.0) -> float:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        recs = mock_log[before:]
        if recs and recs[0].closed_at is not None:
            return float(recs[0].closed_at)
        time.sleep(0.002)
    raise AssertionError("upstream never saw the close")


@pytest.mark.parametrize("fault", ["between_ms=200", "stall_headers", "stall_after=3", "stall_after=3,keepalive"])
def test_client_disconnect_cancels_upstream_within_100ms(gateway: GatewayServer, mocks: Mocks, fault: str) -> None:
    before = len(mocks.good2.log)
    s = socket.create_connection(("127.0.0.1", gateway.port))
    send_request(s, "POST", CHAT, _stream_body("fb-refused"), {"x-mock-fault": fault})
    s.settimeout(5)
    if fault != "stall_headers":
        got = b""
        while got.count(b"data: ") < 2:
            got += s.recv(65536)
    else:
        time.sleep(0.2)
    while len(mocks.good2.log) <= before:
        time.sleep(0.005)
    closed = time.monotonic()
    s.close()
    seen = _await_close(mocks.good2.log, before)
    assert seen - closed < 0.1, f"upstream closed {1000 * (seen - closed):.1f} ms after the client"


def test_nonstream_disconnect_cancels_upstream(gateway: GatewayServer, mocks: Mocks) -> None:
    before = len(mocks.good2.log)
    s = socket.create_connection(("127.0.0.1", gateway.port))
    body = json.dumps({"model": "fb-refused", "messages": []}).encode()
    send_request(s, "POST", CHAT, body, {"x-mock-fault": "first_delay_ms=3000"})
    while len(mocks.good2.log) <= before:
        time.sleep(0.005)
    closed = time.monotonic()
    s.close()
    assert _await_close(mocks.good2.log, before) - closed < 0.1
