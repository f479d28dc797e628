"""The publisher intake (``publisher.app``): own checks, the origin request, failures before the commit,
and the client leaving. Real sockets: a scripted origin and ``PublisherApp`` under uvicorn."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sluicegate.config import load_settings
from sluicegate.config.loader import ConfigError
from sluicegate.edge.asgi import Message
from sluicegate.publisher.app import PublisherApp
from tests.unit.publisher.harness import PUBLIC, ScriptedOrigin, counter, publisher, request, settings

OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"


async def test_own_checks_answer_without_calling_the_origin() -> None:
    async def never(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise AssertionError("the origin must not be called")

    async with ScriptedOrigin(never) as origin, publisher(settings(origin.port)) as proxy:
        no_host = await request(proxy.port, raw=b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n")
        other = await request(proxy.port, headers={"host": "other.test"})
        huge = await request(proxy.port, headers={"x-big": "a" * 70_000})
        assert (no_host.status, other.status, huge.status) == (400, 421, 431)
        assert all(r.headers.get("x-request-id") for r in (no_host, other, huge))
        assert origin.accepted == 0


async def test_connect_is_refused_by_the_app_itself() -> None:
    """uvicorn refuses authority-form CONNECT before any app sees it; another server may not: the app says 405."""
    app = PublisherApp(settings(9))
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "CONNECT", "path": "evil.test:443", "headers": [(b"host", b"evil.test:443")]}
    await app(scope, receive, send)
    assert sent[0]["status"] == 405 and b"reverse proxy" in sent[1]["body"]
    assert app.pool is None  # no origin client was even started


async def test_origin_request_carries_the_raw_target_and_streams_the_body() -> None:
    got: dict[str, bytes] = {}

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await origin.head(reader)
        got["head"] = head
        got["body"] = await reader.readexactly(5)
        writer.write(OK)

    async with ScriptedOrigin(echo) as origin, publisher(settings(origin.port)) as proxy:
        r = await request(proxy.port, "/a%2Fb?q=%7E", method="POST", body=b"hello",
                          headers={"content-type": "application/octet-stream", "connection": "close, x-hop",
                                   "x-hop": "1"})
    assert r.status == 200 and r.body == b"ok" and r.complete
    head = got["head"].decode("latin-1").lower()
    assert head.startswith("post /a%2fb?q=%7e http/1.1\r\n")  # not re-quoted
    assert "x-hop" not in head  # named in Connection: hop-by-hop, stripped
    assert f"host: 127.0.0.1:{origin.port}" in head
    assert got["body"] == b"hello"


async def test_connect_failure_is_a_502_naming_the_request_id_not_the_origin() -> None:
    async def unused(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pass

    async with ScriptedOrigin(unused) as origin:
        port = origin.port
    before = counter("sluicegate_publisher_errors_total", stage="before_commit", kind="connect")
    async with publisher(settings(port)) as proxy:  # nothing listens there any more
        r = await request(proxy.port)
    assert r.status == 502 and r.complete
    assert r.headers["x-request-id"] in r.body.decode()
    assert b"cannot connect to origin" in r.body and b"127.0.0.1" not in r.body
    assert counter("sluicegate_publisher_errors_total", stage="before_commit", kind="connect") == before + 1


async def test_no_head_within_first_byte_is_a_504_and_the_origin_connection_is_closed() -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await origin.head(reader)
        await reader.read()  # until the proxy gives up and closes

    origin = ScriptedOrigin(silent)
    async with origin, publisher(settings(origin.port, timeouts={"first_byte": 0.3})) as proxy:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        r = await request(proxy.port)
        assert r.status == 504 and b"did not answer in time" in r.body
        assert 0.25 <= loop.time() - t0 < 3.0
        await asyncio.wait_for(origin.closed.wait(), 2)


async def test_a_client_that_leaves_cancels_the_origin_request_at_once() -> None:
    waiting = asyncio.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await origin.head(reader)
        waiting.set()
        await reader.read()  # the proxy closing its side ends this

    async with ScriptedOrigin(slow) as origin:
        cfg = settings(origin.port, timeouts={"first_byte": 30.0})
        before = counter("sluicegate_publisher_errors_total", stage="client", kind="disconnect")
        async with publisher(cfg) as proxy:
            _, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(f"GET /slow HTTP/1.1\r\nHost: {PUBLIC}\r\n\r\n".encode())
            await asyncio.wait_for(waiting.wait(), 5)
            writer.close()
            await asyncio.wait_for(origin.closed.wait(), 2)  # long before first_byte (30 s)
            for _ in range(100):
                if counter("sluicegate_publisher_errors_total", stage="client", kind="disconnect") > before:
                    break
                await asyncio.sleep(0.01)
        assert counter("sluicegate_publisher_errors_total", stage="client", kind="disconnect") == before + 1


async def test_a_client_that_leaves_mid_upload_is_a_disconnect_not_an_origin_failure() -> None:
    partial = asyncio.Event()

    async def reads_body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await origin.head(reader)
        await reader.readexactly(4)
        partial.set()
        await reader.read()

    async with ScriptedOrigin(reads_body) as origin, publisher(settings(origin.port)) as proxy:
        bad_before = counter("sluicegate_publisher_errors_total", stage="before_commit", kind="upstream_read")
        gone_before = counter("sluicegate_publisher_errors_total", stage="client", kind="disconnect")
        _, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(f"POST /up HTTP/1.1\r\nHost: {PUBLIC}\r\nContent-Length: 100\r\n\r\npart".encode())
        await asyncio.wait_for(partial.wait(), 5)
        writer.close()
        await asyncio.wait_for(origin.closed.wait(), 2)
        for _ in range(100):
            if counter("sluicegate_publisher_errors_total", stage="client", kind="disconnect") > gone_before:
                break
            await asyncio.sleep(0.01)
        assert counter("sluicegate_publisher_errors_total", stage="client", kind="disconnect") == gone_before + 1
        assert counter("sluicegate_publisher_errors_total", stage="before_commit", kind="upstream_read") == bad_before


def test_buffered_mode_is_refused_with_a_pointer_to_the_benchmark(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text('[publisher]\norigin_url = "http://127.0.0.1:9"\nmode = "buffered"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(str(path))
    text = str(caught.value)
    assert "s.toml:3" in text and "publisher.mode" in text and "sluicegate bench stream-ab" in text
