"""WebSocket proxying through the real server (`sluicegate serve`): a real `websockets` origin and client."""

from __future__ import annotations

import asyncio
import os
import signal
import urllib.request
from collections.abc import AsyncIterator
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.http11 import Request, Response

from tests.support.servers import ProxyProcess, free_port, raw_http

CONFIG = """
[server]
host = "127.0.0.1"
port = {{port}}
workers = 1

[publisher]
origin_url = "http://127.0.0.1:{origin_port}"
public_hosts = ["127.0.0.1:{{port}}"]
websocket = {enabled}

[websocket]
max_message_bytes = 65536
idle_timeout = {idle}

[timeouts]
connect = 2.0
first_byte = 2.0
idle = 2.0
"""


class Origin:
    """A websockets server; what each handler saw is recorded for the assertions."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.closes: list[tuple[int | None, str | None]] = []
        self.gate: asyncio.Event = asyncio.Event()
        self.server: Server | None = None
        self.port = 0

    def process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        self.requests.append(request)
        if request.path.startswith("/refuse"):
            return conn.respond(HTTPStatus.FORBIDDEN, "no sockets for you\n")
        return None

    async def handler(self, ws: ServerConnection) -> None:
        path = ws.request.path if ws.request else ""
        try:
            if path.startswith("/echo"):
                async for message in ws:
                    await ws.send(message)
            elif path.startswith("/close"):
                await ws.close(4001, "origin says bye")
            elif path.startswith("/fragments"):
                async def parts() -> AsyncIterator[bytes]:
                    yield b"a" * 1000
                    await asyncio.wait_for(self.gate.wait(), 5)  # the client has the first part already
                    yield b"b" * 1000
                await ws.send(parts())
                await ws.wait_closed()
            elif path.startswith("/big"):
                await ws.send(b"z" * 100_000)
                await ws.wait_closed()
            elif path.startswith("/ping"):
                waiter = await ws.ping(b"from-origin")
                latency = await asyncio.wait_for(waiter, 5)
                await ws.send(f"pong after {latency:.4f}")
                await ws.wait_closed()
            elif path.startswith("/vanish"):
                await ws.send("about to vanish")
                assert ws.transport is not None
                ws.transport.abort()
            else:
                await ws.wait_closed()
        finally:
            self.closes.append((ws.close_code, ws.close_reason))


@pytest.fixture
async def origin() -> AsyncIterator[Origin]:
    o = Origin()
    o.port = free_port()
    async with serve(o.handler, "127.0.0.1", o.port, process_request=o.process_request, max_size=None,
                     compression=None) as server:
        o.server = server
        yield o


def _proxy(tmp: Path, origin: Origin, enabled: bool = True, idle: float = 30.0) -> ProxyProcess:
    cfg = CONFIG.format(origin_port=origin.port, enabled="true" if enabled else "false", idle=idle)
    return ProxyProcess(tmp, cfg).start()


@pytest.fixture
async def proxy(tmp_path: Path, origin: Origin) -> AsyncIterator[ProxyProcess]:
    p = await asyncio.to_thread(_proxy, tmp_path, origin)
    yield p
    p.stop()


def ws_url(p: ProxyProcess, path: str) -> str:
    return f"ws://127.0.0.1:{p.port}{path}"


async def wait_for(pred: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not pred():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_messages_relay_both_ways_with_http_forwarding_rules(proxy: ProxyProcess, origin: Origin) -> None:
    async with connect(ws_url(proxy, "/echo?x=1"), origin=f"http://127.0.0.1:{proxy.port}",  # type: ignore[arg-type]
                       ping_interval=None) as ws:
        assert ws.response is not None
        assert ws.response.headers.get("x-request-id")  # the proxy's request id on the 101
        for message in ("hello", b"\x00\x01binary", "x" * 60_000):
            await ws.send(message)
            assert await ws.recv() == message
    request = origin.requests[0]
    assert request.path == "/echo?x=1"
    assert request.headers["Host"] == f"127.0.0.1:{origin.port}"  # the origin's own authority
    assert request.headers["X-Forwarded-Host"] == f"127.0.0.1:{proxy.port}"
    assert request.headers["X-Forwarded-For"] == "127.0.0.1"
    assert request.headers["X-Forwarded-Proto"] == "http"
    assert request.headers["Origin"] == f"http://127.0.0.1:{origin.port}"  # mapped public -> origin
    assert "1.1 sluicegate" in request.headers["Via"]


async def test_close_codes_pass_both_ways(proxy: ProxyProcess, origin: Origin) -> None:
    async with connect(ws_url(proxy, "/close"), ping_interval=None) as ws:
        with pytest.raises(ConnectionClosed):
            await ws.recv()
        assert ws.close_code == 4001 and ws.close_reason == "origin says bye"
    async with connect(ws_url(proxy, "/echo"), ping_interval=None) as ws:
        await ws.close(4002, "client says bye")
    await wait_for(lambda: len(origin.closes) == 2)
    assert origin.closes[1] == (4002, "client says bye")


async def test_fragments_are_relayed_as_they_come_not_as_whole_messages(proxy: ProxyProcess, origin: Origin) -> None:
    async with connect(ws_url(proxy, "/fragments"), ping_interval=None) as ws:
        parts = ws.recv_streaming()
        first = await asyncio.wait_for(anext(parts), 5)  # arrives while the origin still holds the rest
        assert first == b"a" * 1000
        origin.gate.set()
        rest = [p async for p in parts]
        assert b"".join(rest) == b"b" * 1000


async def test_pings_and_pongs_pass_end_to_end(proxy: ProxyProcess, origin: Origin) -> None:
    async with connect(ws_url(proxy, "/ping"), ping_interval=None) as ws:
        # the origin's ping crossed the proxy and the client's pong came back through it
        assert (await asyncio.wait_for(ws.recv(), 5)).startswith("pong after")
        waiter = await ws.ping(b"from-client")  # and the other way
        await asyncio.wait_for(waiter, 5)


async def test_a_message_over_the_bound_closes_both_sides_with_1009(proxy: ProxyProcess, origin: Origin) -> None:
    async with connect(ws_url(proxy, "/echo"), ping_interval=None, max_size=None) as ws:
        await ws.send(b"q" * 70_000)  # over max_message_bytes = 65536
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1009
    await wait_for(lambda: len(origin.closes) == 1)
    assert origin.closes[0][0] == 1009  # the origin got a close too, and nothing of the big frame
    async with connect(ws_url(proxy, "/big"), ping_interval=None, max_size=None) as ws:  # origin -> client
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1009


async def test_an_origin_that_vanishes_is_a_1014_not_a_clean_close(proxy: ProxyProcess, origin: Origin) -> None:
    async with connect(ws_url(proxy, "/vanish"), ping_interval=None) as ws:
        assert await ws.recv() == "about to vanish"
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1014


async def test_an_origin_refusing_the_upgrade_gives_the_client_its_status(
    proxy: ProxyProcess, origin: Origin
) -> None:
    with pytest.raises(InvalidStatus) as info:
        async with connect(ws_url(proxy, "/refuse"), ping_interval=None):
            pass
    assert info.value.response.status_code == 403
    assert info.value.response.body == b"no sockets for you\n"


async def test_idle_tunnels_are_closed_with_1001(tmp_path: Path, origin: Origin) -> None:
    p = await asyncio.to_thread(_proxy, tmp_path, origin, True, 0.5)
    try:
        async with connect(ws_url(p, "/wait"), ping_interval=None) as ws:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 1001
        await wait_for(lambda: len(origin.closes) == 1)
        assert origin.closes[0][0] == 1001
    finally:
        p.stop()


async def test_switched_off_is_403_before_the_origin(tmp_path: Path, origin: Origin) -> None:
    p = await asyncio.to_thread(_proxy, tmp_path, origin, False)
    try:
        with pytest.raises(InvalidStatus) as info:
            async with connect(ws_url(p, "/echo"), ping_interval=None):
                pass
        assert info.value.response.status_code == 403
        assert origin.requests == []
    finally:
        p.stop()


def handshake(port: int, host: str, extra: str = "") -> bytes:
    request = (
        f"GET /echo HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: Upgrade\r\nUpgrade: websocket\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    return raw_http(port, request.encode())[0]


async def test_foreign_host_is_421_and_tunnels_are_counted(proxy: ProxyProcess, origin: Origin) -> None:
    answer = await asyncio.to_thread(handshake, proxy.port, "evil.test")
    assert answer.startswith(b"HTTP/1.1 421 ")
    answer = await asyncio.to_thread(handshake, proxy.port, f"127.0.0.1:{proxy.port}", "Host: evil.test\r\n")
    assert answer.startswith(b"HTTP/1.1 400 ")  # two Host headers
    assert origin.requests == []
    async with connect(ws_url(proxy, "/echo"), ping_interval=None) as ws:
        await ws.send("counted")
        assert await ws.recv() == "counted"

        def scrape() -> str:
            with urllib.request.urlopen(proxy.admin_url + "/metrics", timeout=5) as r:
                return str(r.read().decode())

        text = await asyncio.to_thread(scrape)
        assert "sluicegate_websocket_connections 1.0" in text
    await asyncio.sleep(0.3)
    text = await asyncio.to_thread(scrape)
    assert 'sluicegate_websocket_upgrades_total{outcome="tunnelled"} 1.0' in text
    assert 'sluicegate_websocket_upgrades_total{outcome="rejected"} 2.0' in text
    assert 'sluicegate_websocket_closed_total{reason="closed"} 1.0' in text
    assert "sluicegate_websocket_connections 0.0" in text


async def test_a_reload_closes_tunnels_with_1001_and_new_ones_work(proxy: ProxyProcess, origin: Origin) -> None:
    async with connect(ws_url(proxy, "/echo"), ping_interval=None) as ws:
        await ws.send("before")
        assert await ws.recv() == "before"
        assert proxy.proc is not None
        os.kill(proxy.proc.pid, signal.SIGHUP)  # new workers start, the old one drains: its tunnels go away
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 15)
        assert ws.close_code == 1001
    await wait_for(lambda: "reloaded: generation 2" in proxy.log(), 15)
    async with connect(ws_url(proxy, "/echo"), ping_interval=None) as ws:
        await ws.send("after")
        assert await ws.recv() == "after"
    assert "websocket" in proxy.log() and "shutdown" in proxy.log()


@pytest.mark.parametrize(
    ("answer", "status"),
    [
        (b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n", 502),  # no Upgrade: websocket
        (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", 502),  # not HTTP
        (b"HTTP/1.1 101 OK\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", 502),  # head over max_origin_head_bytes
        (b"", 502),  # closes at once
        (None, 504),  # never answers (first_byte = 2 s)
    ],
)
async def test_a_broken_origin_handshake_is_a_clean_gateway_error(
    tmp_path: Path, answer: bytes | None, status: int
) -> None:
    async def broken(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        if answer is None:
            await asyncio.sleep(10)
        writer.write(answer or b"")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(broken, "127.0.0.1", 0)
    fake = Origin()
    fake.port = server.sockets[0].getsockname()[1]
    p = await asyncio.to_thread(_proxy, tmp_path, fake)
    try:
        reply = await asyncio.to_thread(handshake, p.port, f"127.0.0.1:{p.port}")
        assert reply.startswith(f"HTTP/1.1 {status} ".encode()), reply[:200]
        assert b"x-request-id:" in reply.lower()
    finally:
        p.stop()
        server.close()


async def test_an_unreachable_origin_is_a_502(tmp_path: Path) -> None:
    fake = Origin()
    fake.port = free_port()  # nothing listens there
    p = await asyncio.to_thread(_proxy, tmp_path, fake)
    try:
        reply = await asyncio.to_thread(handshake, p.port, f"127.0.0.1:{p.port}")
        assert reply.startswith(b"HTTP/1.1 502 ") and b"cannot connect to origin" in reply
    finally:
        p.stop()


async def test_extensions_and_subprotocols_are_negotiated_end_to_end(tmp_path: Path) -> None:
    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    port = free_port()
    async with serve(echo, "127.0.0.1", port, subprotocols=["chat.v2"], compression="deflate"):  # type: ignore[list-item]
        fake = Origin()
        fake.port = port
        p = await asyncio.to_thread(_proxy, tmp_path, fake)
        try:
            async with connect(ws_url(p, "/"), subprotocols=["chat.v1", "chat.v2"],  # type: ignore[list-item]
                               compression="deflate", ping_interval=None) as ws:
                assert ws.subprotocol == "chat.v2"
                assert ws.response is not None
                assert "permessage-deflate" in ws.response.headers.get("Sec-WebSocket-Extensions", "")
                text = "compressible " * 5000  # RSV1-flagged compressed frames cross the tunnel untouched
                await ws.send(text)
                assert await ws.recv() == text
        finally:
            p.stop()


async def test_page_routes_tunnel_to_their_own_backend_asset_routes_refuse(tmp_path: Path, origin: Origin) -> None:
    async def live(ws: ServerConnection) -> None:
        await ws.send(f"live backend, path {ws.request.path if ws.request else ''}")
        await ws.wait_closed()

    port = free_port()
    async with serve(live, "127.0.0.1", port):
        routes = f"""
[[publisher.routes]]
name = "live"
prefix = "/live"
kind = "page"
origin_url = "http://127.0.0.1:{port}"

[[publisher.routes]]
name = "static"
prefix = "/static/"
kind = "asset"
origin_url = "http://127.0.0.1:{port}"
"""
        cfg = CONFIG.format(origin_port=origin.port, enabled="true", idle=30.0)
        cfg = cfg.replace("\n[websocket]", routes + "\n[websocket]")
        p = await asyncio.to_thread(lambda: ProxyProcess(tmp_path, cfg).start())
        try:
            async with connect(ws_url(p, "/live/feed"), ping_interval=None) as ws:
                assert await ws.recv() == "live backend, path /live/feed"
            async with connect(ws_url(p, "/echo"), ping_interval=None) as ws:  # the fallback page route
                await ws.send("default")
                assert await ws.recv() == "default"
            with pytest.raises(InvalidStatus) as info:
                async with connect(ws_url(p, "/static/x"), ping_interval=None):
                    pass
            assert info.value.response.status_code == 403
        finally:
            p.stop()
