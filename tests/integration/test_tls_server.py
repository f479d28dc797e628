"""TLS termination on the public port through `sluicegate serve`: a throwaway CA made at test time (openssl),
TLS 1.2+ only, AEAD ciphers, ALPN, one-line start-up errors, and certificates renewed by SIGHUP reload."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from tests.integration.conftest import Origin
from tests.support.pki import Pki
from tests.support.servers import ProxyProcess, free_port

CONFIG = """
[server]
host = "127.0.0.1"
port = {{port}}
workers = 2

[server.tls]
cert_file = "{cert}"
key_file = "{key}"

[publisher]
origin_url = "{origin}"
public_hosts = ["localhost:{{port}}"]

[timeouts]
connect = 2.0
first_byte = 2.0
idle = 2.0
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


def client_ctx(pki: Pki, **kw: object) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki.ca))
    for k, v in kw.items():
        setattr(ctx, k, v)
    return ctx


def handshake(port: int, ctx: ssl.SSLContext) -> ssl.SSLSocket:
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    return ctx.wrap_socket(raw, server_hostname="localhost")


def get(port: int, ctx: ssl.SSLContext, path: str) -> tuple[bytes, str]:
    """A whole HTTP/1.1 exchange over TLS; (response bytes, the certificate's CN)."""
    with handshake(port, ctx) as s:
        cert = s.getpeercert() or {}
        cn = next(v for ((k, v),) in cert.get("subject", ()) if k == "commonName")
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while data := s.recv(65536):
            chunks.append(data)
        return b"".join(chunks), cn


def start(tmp: Path, origin_url: str, cert: Path, key: Path, one_process: bool = False) -> ProxyProcess:
    config = CONFIG.format(cert=cert, key=key, origin=origin_url)
    if one_process:  # [server] supervisor = false (server/single.py): one worker, the serve process itself
        config = config.replace("workers = 2", "workers = 1\nsupervisor = false")
    return ProxyProcess(tmp, config, workers=1 if one_process else 2).start()


def test_https_tls12_plus_aead_alpn(tmp_path: Path, pki: Pki, origin: Origin) -> None:
    cert, key = pki.leaf("first")
    p = start(tmp_path, origin.url, cert, key)
    try:
        body, cn = get(p.port, client_ctx(pki), "/page")
        assert body.startswith(b"HTTP/1.1 200") and cn == "first"
        # the page is rewritten to the public origin with the https scheme the client used
        assert f"https://localhost:{p.port}".encode() in body

        ctx = client_ctx(pki, maximum_version=ssl.TLSVersion.TLSv1_2)
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        with handshake(p.port, ctx) as s:
            assert s.version() == "TLSv1.2"
            name, _, _ = s.cipher()  # type: ignore[misc]
            assert "GCM" in name or "CHACHA20" in name
            assert s.selected_alpn_protocol() == "h2"  # [server] http2 (default): server/h2 speaks it

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.0/1.1 on purpose
            old = client_ctx(pki, minimum_version=ssl.TLSVersion.TLSv1, maximum_version=ssl.TLSVersion.TLSv1_1)
        with pytest.raises((ssl.SSLError, OSError)):
            handshake(p.port, old).close()

        weak = client_ctx(pki, maximum_version=ssl.TLSVersion.TLSv1_2)
        weak.set_ciphers("ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA")  # CBC suites: refused
        with pytest.raises((ssl.SSLError, OSError)):
            handshake(p.port, weak).close()
    finally:
        p.stop()


@pytest.mark.parametrize("one_process", [False, True], ids=["supervisor", "one-process"])
def test_sighup_reload_serves_a_renewed_certificate_without_dropping(
    tmp_path: Path, pki: Pki, origin: Origin, one_process: bool
) -> None:
    cert, key = pki.leaf("before")
    served_cert, served_key = tmp_path / "live.pem", tmp_path / "live.key"
    served_cert.write_bytes(cert.read_bytes())
    served_key.write_bytes(key.read_bytes())
    p = start(tmp_path, origin.url, served_cert, served_key, one_process)
    try:
        ctx = client_ctx(pki)
        assert get(p.port, ctx, "/page")[1] == "before"
        slow: dict[str, object] = {}

        def fetch_slow() -> None:
            try:
                slow["body"] = get(p.port, ctx, "/trickle")[0]  # ~1 s of body, in flight across the reload
            except Exception as exc:
                slow["error"] = repr(exc)

        t = threading.Thread(target=fetch_slow)
        t.start()
        time.sleep(0.2)
        new_cert, new_key = pki.leaf("after")
        served_cert.write_bytes(new_cert.read_bytes())
        served_key.write_bytes(new_key.read_bytes())
        assert p.proc is not None
        os.kill(p.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 20
        while get(p.port, ctx, "/page")[1] != "after":
            assert time.monotonic() < deadline, p.log()
            time.sleep(0.1)
        t.join(10)
        body = slow.get("body")
        assert isinstance(body, bytes), slow.get("error")
        assert body.startswith(b"HTTP/1.1 200") and body.count(b"<b>") == 20  # finished on the old worker

        done = "generation 2), native core" if one_process else "reloaded: generation 2"
        while done not in p.log():
            assert time.monotonic() < deadline, p.log()
            time.sleep(0.05)
        # a key that does not match: the reload is refused with one line, the old certificate keeps serving
        served_key.write_bytes(key.read_bytes())
        os.kill(p.proc.pid, signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "reload refused" not in p.log():
            assert time.monotonic() < deadline, p.log()
            time.sleep(0.05)
        assert "is not the key of the certificate" in p.log()
        assert get(p.port, ctx, "/page")[1] == "after"
    finally:
        p.stop()


async def test_websocket_over_tls(tmp_path: Path, pki: Pki) -> None:
    async def echo(ws: ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    port = free_port()
    cert, key = pki.leaf("wss")
    async with serve(echo, "127.0.0.1", port):
        p = await asyncio.to_thread(start, tmp_path, f"http://127.0.0.1:{port}", cert, key)
        try:
            async with connect(f"wss://localhost:{p.port}/", ssl=client_ctx(pki), ping_interval=None) as ws:
                await ws.send("over tls")
                assert await ws.recv() == "over tls"
        finally:
            p.stop()


@pytest.mark.parametrize("problem", ["missing", "mismatch", "not_pem"])
def test_startup_problems_are_one_line(tmp_path: Path, pki: Pki, problem: str) -> None:
    cert, key = pki.leaf("x")
    other_cert, _ = pki.leaf("y")
    if problem == "missing":
        cert = tmp_path / "nope.pem"
        expected = f"server.tls.cert_file: cannot read {cert}: No such file or directory"
    elif problem == "mismatch":
        cert = other_cert
        expected = f"server.tls.key_file: {key} is not the key of the certificate in {cert}"
    else:
        key = tmp_path / "garbage.key"
        key.write_text("hello\n")
        expected = f"server.tls.key_file: {key} is not PEM (no -----BEGIN line)"
    cfg = tmp_path / "c.toml"
    cfg.write_text(CONFIG.format(cert=cert, key=key, origin="http://127.0.0.1:9").replace("{port}", "0"))
    r = subprocess.run([sys.executable, "-m", "sluicegate", "serve", "--config", str(cfg)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], r.stderr


def test_h2_clients_get_h2_and_h1_clients_http11(tmp_path: Path, pki: Pki, origin: Origin) -> None:
    cert, key = pki.leaf("h2")
    p = start(tmp_path, origin.url, cert, key)
    try:
        # curl offers h2 by ALPN; the server picks it ([server] http2, server/h2; tests/integration/test_http2.py)
        r = subprocess.run(["curl", "-s", "--http2", "--cacert", str(pki.ca), "-o", "/dev/null",
                            "-w", "%{http_version} %{http_code}", f"https://localhost:{p.port}/page"],
                           capture_output=True, text=True, timeout=20)
        assert r.stdout == "2 200", r
        assert get(p.port, client_ctx(pki), "/page")[0].startswith(b"HTTP/1.1 200")
    finally:
        p.stop()
