"""The publisher relay (``publisher.relay``): bytes out as they arrive, every route, and any failure after
the commit an abort. Real sockets: a scripted origin and ``PublisherApp`` under uvicorn."""

from __future__ import annotations

import asyncio
import gzip

from tests.unit.publisher.harness import PUBLIC, ScriptedOrigin, counter, publisher, request, settings


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


def head(ctype: str, extra: str = "") -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nTransfer-Encoding: chunked\r\n{extra}\r\n".encode()


async def _held_back(ctype: str, first: bytes, rest: bytes, seen_first: bytes) -> tuple[bytes, bool]:
    """The origin sends ``first`` (``ORIGIN`` in it becomes its authority), then waits until the CLIENT has
    received ``seen_first`` before it sends ``rest``: a relay that held bytes back would never let it (the
    origin's wait times out, the response is cut)."""
    client_saw_first = asyncio.Event()

    async def origin_script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await origin.head(reader)
        writer.write(head(ctype) + chunk(first.replace(b"ORIGIN", f"127.0.0.1:{origin.port}".encode())))
        await writer.drain()
        await asyncio.wait_for(client_saw_first.wait(), 5)
        writer.write(chunk(rest) + b"0\r\n\r\n")
        await writer.drain()

    received = b""

    async def on_chunk(data: bytes) -> None:
        nonlocal received
        received += data
        if seen_first in received:
            client_saw_first.set()

    async with ScriptedOrigin(origin_script) as origin, publisher(settings(origin.port)) as proxy:
        r = await request(proxy.port, "/page", on_chunk=on_chunk, headers={"accept-encoding": "identity"})
        assert r.status == 200
        return r.body, r.complete


async def test_pass_through_bytes_leave_as_they_arrive() -> None:
    body, complete = await _held_back("image/png", b"\x89PNG first", b" rest", b"first")
    assert complete and body == b"\x89PNG first rest"


async def test_rewritten_bytes_leave_as_they_arrive() -> None:
    """The Stream route sends what each read produced: the rewritten link arrives before the origin ends."""
    body, complete = await _held_back(
        "text/html", b'<html><body><a href="http://ORIGIN/x">x</a><p>' + b"padding " * 64,
        b"</p></body></html>", b'href="http://pub.test/x"',
    )
    assert complete and b'href="http://pub.test/x"' in body and body.endswith(b"</html>")


async def test_origin_silent_mid_body_aborts_the_client() -> None:
    async def stalls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await origin.head(reader)
        writer.write(head("image/png") + chunk(b"some bytes"))
        await writer.drain()
        await reader.read()

    async with ScriptedOrigin(stalls) as origin, publisher(settings(origin.port, timeouts={"idle": 0.3})) as proxy:
        before = counter("sluicegate_publisher_errors_total", stage="after_commit", kind="idle_timeout")
        r = await request(proxy.port)
        assert r.status == 200 and r.body == b"some bytes"
        assert not r.complete  # no terminating chunk: the client knows the body is incomplete
        assert counter("sluicegate_publisher_errors_total", stage="after_commit", kind="idle_timeout") == before + 1


async def test_a_short_origin_body_aborts_the_client_on_both_routes() -> None:
    for ctype in ("image/png", "text/css"):
        async def short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ctype: str = ctype) -> None:
            await origin.head(reader)
            writer.write(f"HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: 100\r\n\r\n".encode()
                         + b"body{}" * 3)
            await writer.drain()

        async with ScriptedOrigin(short) as origin, publisher(settings(origin.port)) as proxy:
            r = await request(proxy.port)
            assert r.status == 200 and not r.complete, ctype


async def test_head_of_a_rewritten_type_drops_the_origin_length() -> None:
    async def answers_head(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await origin.head(reader)
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1234\r\nETag: "v1"\r\n\r\n')
        await writer.drain()

    async with ScriptedOrigin(answers_head) as origin, publisher(settings(origin.port)) as proxy:
        r = await request(proxy.port, method="HEAD")
    assert r.status == 200 and r.complete
    assert "content-length" not in r.headers  # GET would rewrite the body: 1234 would be a lie
    assert r.headers.get("etag", "").startswith("W/")  # no longer byte-identical


async def test_a_coding_the_client_refuses_is_decoded_and_nothing_else_changes() -> None:
    raw = b"\x00\x01binary" * 100
    packed = gzip.compress(raw)

    async def gz(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await origin.head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Encoding: gzip\r\n"
                     + f"Content-Length: {len(packed)}\r\n\r\n".encode() + packed)
        await writer.drain()

    async with ScriptedOrigin(gz) as origin, publisher(settings(origin.port)) as proxy:
        refused = await request(proxy.port, headers={"accept-encoding": "identity"})
        accepted = await request(proxy.port, headers={"accept-encoding": "gzip"})
    assert refused.complete and refused.body == raw and "content-encoding" not in refused.headers
    assert accepted.complete and accepted.body == packed and accepted.headers["content-encoding"] == "gzip"


async def test_origin_links_in_headers_and_body_are_public() -> None:
    async def links(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await origin.head(reader)
        own = f"http://127.0.0.1:{origin.port}".encode()
        body = b"a{background:url(" + own + b"/bg.png)}"
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/css\r\nLocation: " + own + b"/moved\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        await writer.drain()

    async with ScriptedOrigin(links) as origin, publisher(settings(origin.port)) as proxy:
        r = await request(proxy.port, headers={"accept-encoding": "identity"})
    assert r.complete and r.body == f"a{{background:url(http://{PUBLIC}/bg.png)}}".encode()
    assert r.headers["location"] == f"http://{PUBLIC}/moved"
