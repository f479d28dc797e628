"""Inbound mapping over real sockets: what the origin receives from a browser on the public host."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from yarl import URL

from sluicegate.dev.origin.recording import Received, RecordingOrigin
from tests.integration.conftest import PROXY_CONFIG
from tests.support.servers import ProxyProcess

PUBLIC = "www.pub.test"


def form_echo(origin: RecordingOrigin, rec: Received) -> tuple[int, list[tuple[str, str]], bytes]:
    """A form handler that checks the body as a real CMS does: it only accepts its own URLs back."""
    want = f"redirect_to=http%3A%2F%2F127.0.0.1%3A{origin.port}%2Fwp-admin%2F".encode()
    ok = want in rec.body and PUBLIC.encode() not in rec.body
    return (200 if ok else 403), [("content-type", "application/octet-stream")], rec.body


async def get(proxy: ProxyProcess, target: str, **kw: object) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as s,
        s.request(
            kw.pop("method", "GET"),
            URL(proxy.url + target, encoded=True),
            headers={"Host": PUBLIC, **kw.pop("headers", {})},
            **kw,
        ) as r,
    ):  # type: ignore[arg-type]
        return r.status, await r.read()


async def test_query_referer_origin_cookie(rt_origin: RecordingOrigin, rt_proxy: ProxyProcess) -> None:
    rt_origin.handler = None
    rt_origin.received.clear()
    await get(
        rt_proxy,
        "/embed?url=http%3A%2F%2Fwww.pub.test%2Fhello-world%2F&u=https%3a%2f%2fwww.pub.test%2fx&bad=%zz&n=1",
        headers={
            "Referer": f"http://{PUBLIC}/post?share=http%3A%2F%2F{PUBLIC}%2F",
            "Origin": f"http://{PUBLIC}",
            "Cookie": f"sid=1; back=http%3A%2F%2F{PUBLIC}%2Fcart",
        },
    )
    rec = rt_origin.received[-1]
    o = rt_origin.authority.replace(":", "%3A")
    assert (
        rec.target
        == (
            f"/embed?url=http%3A%2F%2F{o}%2Fhello-world%2F&u=http%3a%2f%2f{o.replace('%3A', '%3a')}%2fx&bad=%zz&n=1"
        ).encode()
    )
    assert rec.header("referer") == f"http://{rt_origin.authority}/post?share=http%3A%2F%2F{o}%2F".encode()
    assert rec.header("origin") == f"http://{rt_origin.authority}".encode()
    assert rec.header("cookie") == f"sid=1; back=http%3A%2F%2F{o}%2Fcart".encode()


async def test_bad_input_passes_untouched(rt_origin: RecordingOrigin, rt_proxy: ProxyProcess) -> None:
    rt_origin.handler = None
    targets = [
        "/p?u=http%3A%2F%2Fwww.pub.test%2Fx%2",
        "/p?u=http%253A%252F%252Fwww.pub.test%252F",
        "/p?u=http%3A%2F%2Fwww.pub.test.evil.example%2F",
        "/p?u=http%3A%2F%2F127.0.0.1%3A1%2F",
        "/www.pub.test/http://www.pub.test/?x",  # the path is never mapped
    ]
    for t in targets:
        status, _ = await get(rt_proxy, t)
        assert status == 200
        assert rt_origin.received[-1].target == t.encode()


async def test_form_body_mapped_with_exact_length(rt_origin: RecordingOrigin, rt_proxy: ProxyProcess) -> None:
    rt_origin.handler = form_echo
    body = (
        b"log=admin&pwd=x&redirect_to=http%3A%2F%2Fwww.pub.test%2Fwp-admin%2F&_wp_http_referer=%2Fwp-login.php&bad=%2"
    )
    status, echoed = await get(
        rt_proxy,
        "/wp-login.php",
        method="POST",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    rec = rt_origin.received[-1]
    assert status == 200, echoed
    assert rec.body == body.replace(b"www.pub.test", f"127.0.0.1%3A{rt_origin.port}".encode())
    assert not rec.chunked and rec.header("content-length") == str(len(rec.body)).encode()


async def test_large_form_body_streamed_chunked(rt_origin: RecordingOrigin, rt_proxy: ProxyProcess) -> None:
    rt_origin.handler = form_echo
    filler = b"comment=" + b"lorem+ipsum+" * 40000  # ~480 KB, over request_map_hold_bytes
    body = filler + b"&redirect_to=http%3A%2F%2Fwww.pub.test%2Fwp-admin%2F"
    status, _ = await get(
        rt_proxy,
        "/wp-comments-post.php",
        method="POST",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    rec = rt_origin.received[-1]
    assert status == 200
    assert rec.chunked and rec.header("content-length") is None
    assert rec.body == body.replace(b"www.pub.test", f"127.0.0.1%3A{rt_origin.port}".encode())


async def test_multipart_and_json_pass_unchanged(rt_origin: RecordingOrigin, rt_proxy: ProxyProcess) -> None:
    rt_origin.handler = None
    for ctype, body in [
        ("application/json", b'{"u": "http://www.pub.test/x"}'),
        (
            "multipart/form-data; boundary=b",
            b"--b\r\nContent-Disposition: form-data; name=u\r\n\r\nhttp://www.pub.test/\r\n--b--\r\n",
        ),
    ]:
        await get(rt_proxy, "/api", method="POST", data=body, headers={"Content-Type": ctype})
        assert rt_origin.received[-1].body == body


def raw_exchange(port: int, request: bytes, half_close: bool) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(request)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except (TimeoutError, ConnectionResetError):
            pass
        return data


async def test_chunked_form_without_length(rt_origin: RecordingOrigin, rt_proxy: ProxyProcess) -> None:
    rt_origin.handler = form_echo
    payload = b"redirect_to=http%3A%2F%2Fwww.pub.test%2Fwp-admin%2F&x=1"
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(payload[i : i + 7]), payload[i : i + 7]) for i in range(0, len(payload), 7)
    )
    req = (
        b"POST /wp-login.php HTTP/1.1\r\nHost: www.pub.test\r\nConnection: close\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"
    )
    data = await asyncio.to_thread(raw_exchange, rt_proxy.port, req, False)
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    assert rt_origin.received[-1].body == payload.replace(b"www.pub.test", f"127.0.0.1%3A{rt_origin.port}".encode())


async def test_lying_content_length_relays_origin_answer(rt_origin: RecordingOrigin, rt_proxy: ProxyProcess) -> None:
    """Content-Length shorter than what is sent: the declared bytes are the body, the origin answers."""
    rt_origin.handler = form_echo
    payload = b"redirect_to=http%3A%2F%2Fwww.pub.test%2Fwp-admin%2F"
    req = (
        (
            b"POST /wp-login.php HTTP/1.1\r\nHost: www.pub.test\r\nConnection: close\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n" % len(payload)
        )
        + payload
        + b"&extra=garbage-after-the-declared-length"
    )
    data = await asyncio.to_thread(raw_exchange, rt_proxy.port, req, False)
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    assert rt_origin.received[-1].body == payload.replace(b"www.pub.test", f"127.0.0.1%3A{rt_origin.port}".encode())


async def test_content_length_longer_than_the_body(rt_origin: RecordingOrigin, rt_proxy: ProxyProcess) -> None:
    """Content-Length promises more than the client sends: a clear 504 when first_byte runs out, no hang,
    and the origin never gets a body that ends early posing as complete."""
    rt_origin.handler = form_echo
    rt_origin.received.clear()
    req = (
        b"POST /wp-login.php HTTP/1.1\r\nHost: www.pub.test\r\nConnection: close\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 500\r\n\r\nredirect_to=x"
    )
    data = await asyncio.to_thread(raw_exchange, rt_proxy.port, req, False)
    assert data.startswith(b"HTTP/1.1 504"), data[:200]
    assert rt_origin.received == []


@pytest.fixture(scope="module")
def proxy_off(rt_origin: RecordingOrigin, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    config = PROXY_CONFIG.format(origin=rt_origin.url, mode="stream")
    env = {"SLUICEGATE__PUBLISHER__MAP_REQUESTS": "false"}
    p = ProxyProcess(Path(tmp_path_factory.mktemp("rt-off")), config, env=env).start()
    yield p
    p.stop()


async def test_map_requests_off(rt_origin: RecordingOrigin, proxy_off: ProxyProcess) -> None:
    rt_origin.handler = None
    t = "/embed?url=http%3A%2F%2Fwww.pub.test%2Fx"
    await get(proxy_off, t, headers={"Referer": f"http://{PUBLIC}/"})
    assert rt_origin.received[-1].target == t.encode()
    assert rt_origin.received[-1].header("referer") == f"http://{PUBLIC}/".encode()


@pytest.fixture(scope="module")
def proxy_small_map(rt_origin: RecordingOrigin, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    config = PROXY_CONFIG.format(origin=rt_origin.url, mode="stream")
    env = {"SLUICEGATE__LIMITS__MAP_REQUEST_BODY_BYTES": "65536", "SLUICEGATE__LIMITS__REQUEST_MAP_HOLD_BYTES": "4096"}
    p = ProxyProcess(Path(tmp_path_factory.mktemp("rt-small")), config, env=env).start()
    yield p
    p.stop()


async def test_body_over_the_mapping_limit_is_relayed_not_refused(
    rt_origin: RecordingOrigin, proxy_small_map: ProxyProcess
) -> None:
    rt_origin.handler = None
    url = b"http%3A%2F%2Fwww.pub.test%2Fx"
    body = b"a=" + url + b"&pad=" + b"z" * 100_000 + b"&b=" + url  # 100 KB: past the 64 KiB mapping limit
    status, _ = await get(
        proxy_small_map,
        "/upload",
        method="POST",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    rec = rt_origin.received[-1]
    assert status == 200 and rec.chunked
    mapped = f"http%3A%2F%2F127.0.0.1%3A{rt_origin.port}%2Fx".encode()
    assert rec.body == b"a=" + mapped + b"&pad=" + b"z" * 100_000 + b"&b=" + url  # the tail passed as sent
