"""HTTP/2 to clients through `sluicegate serve` (server/h2): ALPN h2 over TLS and h2c prior knowledge, with real
h2 clients (httpx2 with http2=True, curl --http2, and a raw `h2` client for exact frames) and the real origin.

The streaming guarantees on h2: the response head at the origin's first byte, chunks as they come, an abort after
the commit is a RST_STREAM (never a clean END_STREAM on a truncated body), a client's RST_STREAM cancels the
origin request, many streams on one connection, big bodies both ways, and the worker's drain (GOAWAY)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from h2.events import DataReceived, ResponseReceived, StreamEnded, StreamReset
from h2.settings import SettingCodes
from hpack import NeverIndexedHeaderTuple

from tests.integration.conftest import Origin
from tests.support.configs import publisher_config
from tests.support.h2raw import RawH2, goaway_code, parse_frames, rst_codes
from tests.support.pki import Pki
from tests.support.servers import ProxyProcess

INTERNAL_ERROR, CANCEL, REFUSED_STREAM, PROTOCOL_ERROR, NO_ERROR = 2, 8, 7, 1, 0

CONFIG = """
[server]
host = "127.0.0.1"
port = {{port}}
shutdown_timeout = 5
{tls}

[publisher]
origin_url = "{origin}"
public_hosts = ["localhost:{{port}}", "127.0.0.1:{{port}}"]

[limits]
max_decoded_body_bytes = 67108864

[timeouts]
connect = 2.0
first_byte = 2.0
idle = 2.0
client_header = 2.0

[http2]
max_concurrent_streams = 10
send_timeout = 2.0
idle_timeout = 4.0
stream_buffer_bytes = 65536
connection_buffer_bytes = 262144
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


def start(tmp: Path, origin: Origin, pki: Pki | None, extra: str = "", workers: int = 1) -> ProxyProcess:
    tls = ""
    if pki is not None:
        cert, key = pki.leaf("h2")
        tls = f'[server.tls]\ncert_file = "{cert}"\nkey_file = "{key}"'
    return ProxyProcess(tmp, CONFIG.format(tls=tls, origin=origin.url) + extra, workers=workers).start()


@pytest.fixture(scope="module")
def tls_proxy(origin: Origin, pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    p = start(tmp_path_factory.mktemp("h2tls"), origin, pki)
    yield p
    p.stop()


@pytest.fixture(scope="module")
def plain_proxy(origin: Origin, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    p = start(tmp_path_factory.mktemp("h2c"), origin, None)
    yield p
    p.stop()


def ctx(pki: Pki) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki.ca))


def client(pki: Pki) -> httpx2.Client:
    return httpx2.Client(http2=True, verify=ctx(pki), timeout=10)


def base(p: ProxyProcess) -> str:
    return f"https://localhost:{p.port}"


def test_alpn_h2_page_is_rewritten_and_h1_still_served(tls_proxy: ProxyProcess, pki: Pki) -> None:
    with client(pki) as c:
        r = c.get(f"{base(tls_proxy)}/page")
        assert r.http_version == "HTTP/2" and r.status_code == 200
        assert f"https://localhost:{tls_proxy.port}".encode() in r.content  # rewritten, scheme of the client
        assert r.headers["x-request-id"]
    with httpx2.Client(verify=ctx(pki)) as c:  # a client offering only http/1.1 gets it
        r = c.get(f"{base(tls_proxy)}/page")
        assert r.http_version == "HTTP/1.1" and r.status_code == 200


def test_head_before_body_and_chunks_as_they_come(tls_proxy: ProxyProcess, pki: Pki) -> None:
    with client(pki) as c:
        t0 = time.monotonic()
        with c.stream("GET", f"{base(tls_proxy)}/late-body") as r:  # head now, body 0.5 s later
            head_at = time.monotonic() - t0
            body = r.read()
            body_at = time.monotonic() - t0
        assert r.http_version == "HTTP/2" and body == b"<p>late</p>"
        assert head_at < 0.35 and body_at > 0.45, (head_at, body_at)

        arrivals = []
        with c.stream("GET", f"{base(tls_proxy)}/trickle") as r:  # 1 KB now, then 20 x 1 KB every 50 ms
            t0 = time.monotonic()
            for chunk in r.iter_raw():
                arrivals.append((time.monotonic() - t0, len(chunk)))
        assert sum(n for _, n in arrivals) == 1027 + 20 * 1025
        assert len(arrivals) >= 10 and arrivals[-1][0] - arrivals[0][0] > 0.7, arrivals


def test_abort_after_commit_is_a_stream_reset(tls_proxy: ProxyProcess, pki: Pki) -> None:
    with client(pki) as c, pytest.raises(httpx2.HTTPError), c.stream("GET", f"{base(tls_proxy)}/reset-binary") as r:
        r.read()  # 5000 of 100000 bytes, then the origin resets: the client must see a failure

    h = RawH2(tls_proxy.port, ctx(pki))
    try:
        status, body, end = h.get("/reset-binary", f"localhost:{tls_proxy.port}")
        assert status == 200 and len(body) == 5000
        assert end == f"reset:{INTERNAL_ERROR}"  # RST_STREAM(INTERNAL_ERROR), never END_STREAM
        # the connection survives: the next stream is served
        assert h.get("/page", f"localhost:{tls_proxy.port}")[0] == 200
    finally:
        h.close()


def test_client_reset_cancels_the_origin_request(tls_proxy: ProxyProcess, pki: Pki, origin: Origin) -> None:
    h = RawH2(tls_proxy.port, ctx(pki))
    try:
        sid = h.request("/forever?tag=h2-cancel", f"localhost:{tls_proxy.port}")
        h.collect(lambda e: isinstance(e, DataReceived))
        origin.log.closed_at.pop("h2-cancel", None)
        reset_at = time.monotonic()
        h.conn.reset_stream(sid, CANCEL)
        h.flush()
        deadline = time.monotonic() + 3
        while "h2-cancel" not in origin.log.closed_at and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "h2-cancel" in origin.log.closed_at, "the origin request was not cancelled"
        assert origin.log.closed_at["h2-cancel"] - reset_at < 1.0
        assert h.get("/page", f"localhost:{tls_proxy.port}")[0] == 200
    finally:
        h.close()


def test_many_concurrent_streams_on_one_connection(tls_proxy: ProxyProcess, pki: Pki) -> None:
    h = RawH2(tls_proxy.port, ctx(pki))
    try:
        ids = [h.request(f"/trickle?n={i}", f"localhost:{tls_proxy.port}") for i in range(10)]
        bodies = {i: b"" for i in ids}
        ended: set[int] = set()
        deadline = time.monotonic() + 15
        while len(ended) < len(ids) and time.monotonic() < deadline and not h.closed:
            for e in h.read(0.5):
                if isinstance(e, DataReceived):
                    bodies[e.stream_id] += e.data
                    h.conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                elif isinstance(e, StreamEnded):
                    ended.add(e.stream_id)
                elif isinstance(e, StreamReset):
                    raise AssertionError(f"stream {e.stream_id} reset ({e.error_code})")
            h.flush()
        assert ended == set(ids)
        assert all(len(b) == 1027 + 20 * 1025 for b in bodies.values())
    finally:
        h.close()


def test_big_bodies_both_ways(tls_proxy: ProxyProcess, pki: Pki, origin: Origin) -> None:
    up = os.urandom(8 * 1024 * 1024)
    with client(pki) as c:
        r = c.post(f"{base(tls_proxy)}/echo", content=iter([up[i:i + 65536] for i in range(0, len(up), 65536)]))
        assert r.http_version == "HTTP/2" and r.status_code == 200
        info = r.json()
        assert info["body_size"] == len(up) and info["body_sha256"] == hashlib.sha256(up).hexdigest()

        digest = hashlib.sha256()
        size = 0
        with c.stream("GET", f"{base(tls_proxy)}/big?mb=32") as r:
            for chunk in r.iter_raw():
                digest.update(chunk)
                size += len(chunk)
        block = b"<p>" + b"q" * (64 * 1024 - 7) + b"</p>"
        want = hashlib.sha256(block * (32 * 16) + b"q" * (32 * 1024 * 1024 % len(block)))
        assert size == 32 * 1024 * 1024 and digest.hexdigest() == want.hexdigest()


def test_zero_window_client_is_bounded_and_timed_out(tls_proxy: ProxyProcess, pki: Pki) -> None:
    """A client that never opens its window: the server sends the head, nothing it may not, and after
    [http2] send_timeout (2 s here) resets the stream; the worker's memory does not follow the 32 MB body."""
    rss_before = tls_proxy.rss_bytes()
    h = RawH2(tls_proxy.port, ctx(pki), settings={SettingCodes.INITIAL_WINDOW_SIZE: 0})
    try:
        sid = h.request("/big?mb=32", f"localhost:{tls_proxy.port}")
        t0 = time.monotonic()
        evs = h.collect(lambda e: isinstance(e, StreamReset), timeout=8)
        waited = time.monotonic() - t0
        assert any(isinstance(e, ResponseReceived) for e in evs)
        assert not any(isinstance(e, DataReceived) and e.data for e in evs)
        assert rst_codes(parse_frames(h.received)).get(sid) == CANCEL
        assert 1.5 < waited < 6, waited
        assert tls_proxy.rss_bytes() - rss_before < 16 * 1024 * 1024
        assert h.get("/page", f"localhost:{tls_proxy.port}")[0] == 200  # the connection still serves
    finally:
        h.close()


def test_h2c_prior_knowledge_on_cleartext(plain_proxy: ProxyProcess) -> None:
    with httpx2.Client(http1=False, http2=True, timeout=10) as c:
        r = c.get(f"http://127.0.0.1:{plain_proxy.port}/page")
        assert r.http_version == "HTTP/2" and r.status_code == 200
        assert f"http://127.0.0.1:{plain_proxy.port}".encode() in r.content
    with httpx2.Client(timeout=10) as c:  # plain HTTP/1.1 on the same port
        r = c.get(f"http://127.0.0.1:{plain_proxy.port}/page")
        assert r.http_version == "HTTP/1.1" and r.status_code == 200


def test_curl_http2_both_ways(tls_proxy: ProxyProcess, plain_proxy: ProxyProcess, pki: Pki) -> None:
    assert shutil.which("curl"), "curl missing: ./run.sh setup installs it (a test never passes by skipping)"
    out = subprocess.run(["curl", "-sS", "--http2", "--cacert", str(pki.ca), "-o", "/dev/null", "-w",
                          "%{http_version} %{http_code}", f"{base(tls_proxy)}/page"],
                         capture_output=True, text=True, timeout=20)
    assert out.stdout == "2 200", out
    out = subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w",
                          "%{http_version} %{http_code}", f"http://127.0.0.1:{plain_proxy.port}/page"],
                         capture_output=True, text=True, timeout=20)
    assert out.stdout == "2 200", out
    out = subprocess.run(["curl", "-sS", "--http2", "--cacert", str(pki.ca), "-o", "/dev/null",
                          f"{base(tls_proxy)}/reset-binary"], capture_output=True, text=True, timeout=20)
    assert out.returncode == 92, out  # curl: "HTTP/2 stream was not closed cleanly" (RST_STREAM)


def test_http2_off_offers_only_http11(tmp_path: Path, origin: Origin, pki: Pki) -> None:
    cert, key = pki.leaf("h1only")
    text = CONFIG.format(tls=f'http2 = false\n[server.tls]\ncert_file = "{cert}"\nkey_file = "{key}"',
                         origin=origin.url)
    p = ProxyProcess(tmp_path, text).start()
    try:
        c = ctx(pki)
        c.set_alpn_protocols(["h2", "http/1.1"])
        with c.wrap_socket(socket.create_connection(("127.0.0.1", p.port), timeout=5),
                           server_hostname="localhost") as s:
            assert s.selected_alpn_protocol() == "http/1.1"
    finally:
        p.stop()


def test_drain_sends_goaway_and_finishes_the_stream(tmp_path: Path, origin: Origin, pki: Pki) -> None:
    p = start(tmp_path, origin, pki)
    h = RawH2(p.port, ctx(pki))
    try:
        sid = h.request("/trickle", f"localhost:{p.port}")
        h.collect(lambda e: isinstance(e, DataReceived))
        assert p.popen is not None
        p.popen.send_signal(signal.SIGTERM)
        h.drain(10)  # the client's h2 stops at the GOAWAY: judge the frames themselves
        assert h.closed  # the server closes once the stream is done
        frames = parse_frames(h.received)
        assert goaway_code(frames) == NO_ERROR
        data = [(flags, payload) for kind, flags, s, payload in frames if kind == 0 and s == sid]
        assert sum(len(p) for _, p in data) == 1027 + 20 * 1025  # the stream in flight completed
        assert data[-1][0] & 1  # with END_STREAM
        assert sid not in rst_codes(frames)
        assert p.popen.wait(10) == 0, p.log()  # drained: exit 0
        assert "aborting" not in p.log()
    finally:
        h.close()
        p.stop()


def test_drain_past_shutdown_timeout_aborts_visibly_exit_3(tmp_path: Path, origin: Origin, pki: Pki) -> None:
    p = start(tmp_path, origin, pki)  # shutdown_timeout = 5
    # windows wide open: after the GOAWAY the client's state machine acknowledges nothing more
    h = RawH2(p.port, ctx(pki), settings={SettingCodes.INITIAL_WINDOW_SIZE: 1 << 24})
    try:
        h.conn.increment_flow_control_window(1 << 24)
        h.flush()
        sid = h.request("/forever?tag=h2-drain", f"localhost:{p.port}")
        h.collect(lambda e: isinstance(e, DataReceived))
        assert p.popen is not None
        t0 = time.monotonic()
        p.popen.send_signal(signal.SIGTERM)
        h.drain(15)
        assert h.closed and 4 < time.monotonic() - t0 < 12
        frames = parse_frames(h.received)
        assert goaway_code(frames) == NO_ERROR
        assert not any(kind == 0 and s == sid and flags & 1 for kind, flags, s, _ in frames)  # never a clean end
        p.popen.wait(10)
        assert "exited with exit code 3 after draining" in p.log()  # the worker's "some were aborted"
    finally:
        h.close()
        p.stop()


def post_all(h: RawH2, authority: str, path: str, body: bytes, timeout: float = 10) -> tuple[int, bytes, str]:
    """One POST on ``h``, its body sent as the windows allow; (status, response body, how it ended)."""
    sid = h.request(path, authority, method="POST", end=False)
    status, got, end, sent = 0, b"", "", 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not end:
        while sent < len(body) and not end:
            n = min(h.conn.local_flow_control_window(sid), h.conn.max_outbound_frame_size, len(body) - sent)
            if n <= 0:
                break
            h.conn.send_data(sid, body[sent:sent + n], end_stream=sent + n == len(body))
            sent += n
        h.flush()
        for e in h.read(0.2):
            if isinstance(e, ResponseReceived) and e.stream_id == sid:
                status = int(dict(e.headers)[b":status"])
            elif isinstance(e, DataReceived) and e.stream_id == sid:
                got += e.data
                h.conn.acknowledge_received_data(e.flow_controlled_length, sid)
            elif isinstance(e, StreamEnded) and e.stream_id == sid:
                end = "end"
            elif isinstance(e, StreamReset) and e.stream_id == sid and not status:
                end = f"reset:{int(e.error_code)}"
        h.flush()
    return status, got, end or "timeout"


def test_refused_uploads_leave_the_connection_usable(tls_proxy: ProxyProcess, pki: Pki) -> None:
    """6 x 60 KB bodies answered 421 (wrong host, never forwarded) are more than this config's 256 KiB
    connection window: the window comes back and a 300 KB upload on the same connection is relayed whole (the
    in-process rule for bodies an app never reads: tests/unit/server/test_h2_protocol.py)."""
    h = RawH2(tls_proxy.port, ctx(pki))
    try:
        for _ in range(6):
            status, _, end = post_all(h, "evil.test", "/echo", b"u" * 60_000)
            assert status == 421 and end == "end"
        up = os.urandom(300_000)
        status, got, end = post_all(h, f"localhost:{tls_proxy.port}", "/echo", up)
        assert status == 200 and end == "end", (status, end)
        assert json.loads(got)["body_sha256"] == hashlib.sha256(up).hexdigest()
    finally:
        h.close()


def test_idle_connection_gets_goaway_and_closes(tls_proxy: ProxyProcess, pki: Pki) -> None:
    h = RawH2(tls_proxy.port, ctx(pki))
    try:
        assert h.get("/page", f"localhost:{tls_proxy.port}")[0] == 200
        t0 = time.monotonic()
        h.drain(10)  # [http2] idle_timeout = 4 here
        assert h.closed and 3.5 < time.monotonic() - t0 < 8
        assert goaway_code(parse_frames(h.received)) == NO_ERROR
    finally:
        h.close()


def test_hpack_never_indexes_the_configured_request_id_header_and_secrets(tmp_path: Path, origin: Origin) -> None:
    """The request-id header under its configured name (not x-request-id) and set-cookie go out as literals never
    indexed (RFC 7541 §6.2.3), as the client's HPACK decoder sees them; stable fields stay indexable."""
    p = ProxyProcess(tmp_path, publisher_config(origin.url, server='request_id_header = "x-correlation-id"\n')).start()
    c = RawH2(p.port)
    try:
        authority = f"127.0.0.1:{p.port}".encode()
        heads = []
        for _ in range(2):  # the second response too: nothing of the first went into the dynamic table
            sid = c.request("", "", headers=[(b":method", b"GET"), (b":scheme", b"http"), (b":authority", authority),
                                             (b":path", b"/redirect")])
            evs = c.collect(lambda e, sid=sid: isinstance(e, StreamEnded) and e.stream_id == sid)
            heads += [e.headers for e in evs if isinstance(e, ResponseReceived) and e.stream_id == sid]
        assert len(heads) == 2
        for head in heads:
            never = {bytes(h[0]) for h in head if isinstance(h, NeverIndexedHeaderTuple)}
            names = {bytes(h[0]) for h in head}
            assert {b"x-correlation-id", b"set-cookie", b"date", b"location"} <= never
            assert b"x-request-id" not in names
            assert b"link" in names and b"link" not in never and b":status" not in never
        assert heads[0][[bytes(h[0]) for h in heads[0]].index(b"x-correlation-id")][1] != \
            heads[1][[bytes(h[0]) for h in heads[1]].index(b"x-correlation-id")][1]
    finally:
        c.close()
        p.stop()
