"""Providers behind outbound proxies: ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` as users of a gateway expect.

The environment's reading (``upstream/proxy.py``) in isolation, then the whole path through a real small
CONNECT proxy started here: https providers through a CONNECT tunnel with TLS (SNI, certificate verified)
inside it, http providers in absolute form, ``NO_PROXY`` going direct, credentials from the proxy URL.
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from sluicegate.config.inference import MockSettings
from sluicegate.config.model import Settings
from sluicegate.dev.mock_provider import MockProvider
from sluicegate.inference.app import InferenceApp
from sluicegate.inference.providers import build
from sluicegate.upstream.proxy import Proxy, ProxyEnv

CHAT = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}).encode()


# ---- the environment ------------------------------------------------------------------------------------

def test_lower_case_wins_and_schemes_pick_their_variable() -> None:
    env = ProxyEnv({"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:2", "HTTP_PROXY": "plain:3"})
    assert env.for_url("https", "api.openai.com", 443) == Proxy("lower", 2)
    assert env.for_url("http", "vllm.internal", 8000) == Proxy("plain", 3)  # scheme-less, as curl reads it
    assert ProxyEnv({}).for_url("https", "api.openai.com", 443) is None
    assert ProxyEnv({"HTTP_PROXY": "http://p:3128"}).for_url("https", "x", 443) is None  # http_proxy is http's


def test_no_proxy_forms() -> None:
    env = ProxyEnv({"https_proxy": "http://p:3128",
                    "no_proxy": " .internal, example.com,*.corp.net, gpu-box:8443, 10.0.0.0/8, fd00::/8, 192.168.1.7"})
    direct = [("a.internal", 443), ("internal", 443), ("example.com", 443), ("api.example.com", 443),
              ("x.corp.net", 443), ("gpu-box", 8443), ("10.2.3.4", 443), ("[fd00::1]", 443), ("192.168.1.7", 443),
              ("EXAMPLE.COM.", 443),
              # loopback always goes direct (a local model server), whatever NO_PROXY says
              ("localhost", 443), ("vllm.localhost", 8000), ("127.0.0.1", 443), ("127.9.9.9", 80), ("[::1]", 443)]
    proxied = [("notexample.com", 443), ("gpu-box", 443), ("11.0.0.1", 443), ("192.168.1.8", 443),
               ("api.openai.com", 443), ("[fe80::1]", 443)]
    for host, port in direct:
        assert env.for_url("https", host, port) is None, host
    for host, port in proxied:
        assert env.for_url("https", host, port) is not None, host
    assert ProxyEnv({"https_proxy": "http://p:1", "NO_PROXY": "*"}).for_url("https", "anything", 443) is None


def test_proxy_urls_are_checked_and_credentials_never_shown() -> None:
    p = Proxy.parse("http://user%40x:s%3Acret@proxy.local:3128", "HTTPS_PROXY")
    assert (p.host, p.port) == ("proxy.local", 3128)
    assert p.authorization == "Basic " + base64.b64encode(b"user@x:s:cret").decode()
    assert "cret" not in repr(p) and "with credentials" in repr(p)
    with pytest.raises(ValueError, match="only http:// proxies"):
        ProxyEnv({"https_proxy": "https://proxy.local:443"})
    with pytest.raises(ValueError, match="HTTPS_PROXY: not a valid proxy port"):
        ProxyEnv({"HTTPS_PROXY": "http://proxy.local:99999"})


def _settings(providers: list[dict[str, Any]]) -> Settings:
    return Settings.model_validate({"inference": {
        "path_prefix": "/llm", "providers": providers,
        "models": [{"name": "m", "targets": [{"provider": providers[0]["name"], "model": "mock-1"}]}]}})


def test_providers_pick_their_proxy() -> None:
    env = {"https_proxy": "http://u:pw@p:3128", "http_proxy": "http://p:3128", "no_proxy": "",
           "OPENAI_KEY": "sk-live-1"}
    s = _settings([{"name": "oa", "kind": "openai", "api_key_env": "OPENAI_KEY"},
                   {"name": "local", "kind": "openai-compatible", "base_url": "http://vllm.lan:8000/v1",
                    "auth": "none"},
                   {"name": "loop", "kind": "mock", "base_url": "http://127.0.0.1:9100/v1"}])
    provs = build(s.inference, env, "x-request-id")
    oa, local, loop = provs["oa"], provs["local"], provs["loop"]
    assert oa.proxy == Proxy.parse("http://u:pw@p:3128", "x") and not oa.absolute  # https: CONNECT tunnel
    assert oa.target("/v1/chat/completions", b"") == "/v1/chat/completions"
    assert ("host", "api.openai.com") in oa.headers([], "r1")
    assert all(k != "proxy-authorization" for k, _ in oa.headers([], "r1"))  # only in CONNECT, never inside TLS
    assert local.absolute and local.target("/v1/chat/completions", b"a=1") == \
        "http://vllm.lan:8000/v1/chat/completions?a=1"
    assert loop.proxy is None and loop.target("/v1/chat/completions", b"") == "/v1/chat/completions"


# ---- a real CONNECT proxy and a TLS provider -------------------------------------------------------------

NAME = "provider.test"  # resolved by the proxy only (loopback names would go direct, never via a proxy)


@dataclass
class SmallProxy:
    """CONNECT tunnels and absolute-form forwarding, recording each request line and credential. It resolves
    ``provider.test`` to 127.0.0.1 itself: the gateway never resolves a name it sends through a proxy."""

    seen: list[str] = field(default_factory=list)
    auth: list[str] = field(default_factory=list)
    port: int = 0
    server: asyncio.AbstractServer | None = None

    async def start(self) -> SmallProxy:
        self.server = await asyncio.start_server(self._conn, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        self.seen.append(lines[0])
        self.auth += [ln.split(":", 1)[1].strip() for ln in lines[1:] if ln.lower().startswith("proxy-authorization")]
        method, target, _ = lines[0].split(" ")
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            up_r, up_w = await asyncio.open_connection(_resolve(host.strip("[]")), int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:  # absolute form: forward in origin form
            rest = target.split("://", 1)[1]
            authority, _, path = rest.partition("/")
            host, _, port = authority.rpartition(":")
            up_r, up_w = await asyncio.open_connection(_resolve(host), int(port))
            kept = [ln for ln in lines[1:] if not ln.lower().startswith("proxy-authorization")]
            up_w.write("\r\n".join([f"{method} /{path} HTTP/1.1", *kept]).encode("latin-1"))
        await asyncio.gather(_pipe(reader, up_w), _pipe(up_r, writer), return_exceptions=True)


def _resolve(host: str) -> str:
    return "127.0.0.1" if host == NAME else host


async def _pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
    try:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
    finally:
        w.close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    d = tmp_path_factory.mktemp("proxy-tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={NAME}",
                    "-addext", f"subjectAltName=DNS:{NAME}", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    yield cert, key


@dataclass
class TlsProvider:
    """The mock provider behind a TLS front for ``provider.test`` (what a real https provider looks like)."""

    mock: MockProvider
    port: int
    sni: list[str | None]
    server: asyncio.AbstractServer


@pytest.fixture
async def tls_provider(certificate: tuple[Path, Path]) -> AsyncIterator[TlsProvider]:
    mock = MockProvider(MockSettings(first_delay_ms=1, between_delay_ms=1, chunks=4))
    await mock.start()
    sni: list[str | None] = []
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(certificate[0]), str(certificate[1]))
    ctx.sni_callback = lambda _sock, name, _ctx: sni.append(name)  # type: ignore[assignment,func-returns-value]

    async def front(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", mock.port)
        await asyncio.gather(_pipe(reader, up_w), _pipe(up_r, writer), return_exceptions=True)

    server = await asyncio.start_server(front, "127.0.0.1", 0, ssl=ctx)
    yield TlsProvider(mock, server.sockets[0].getsockname()[1], sni, server)
    server.close()
    await mock.stop()


async def _chat(app: InferenceApp) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []
    parts = [CHAT]

    async def receive() -> dict[str, Any]:
        if parts:
            return {"type": "http.request", "body": parts.pop(), "more_body": False}
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def send(msg: dict[str, Any]) -> None:
        sent.append(msg)

    await app({"type": "http", "method": "POST", "path": "/llm/v1/chat/completions", "raw_path": b"",
               "query_string": b"", "headers": [(b"content-type", b"application/json")]}, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


async def test_https_provider_through_a_connect_tunnel_with_verified_tls(
        tls_provider: TlsProvider, certificate: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))  # trust the test CA: verification stays on
    proxy = await SmallProxy().start()
    try:
        env = {"HTTPS_PROXY": f"http://gw:pa55@127.0.0.1:{proxy.port}"}
        s = _settings([{"name": "tls", "kind": "mock", "base_url": f"https://{NAME}:{tls_provider.port}/v1"}])
        app = InferenceApp(s, env)
        await app.startup()
        try:
            status, body = await _chat(app)
            assert status == 200 and b"data: [DONE]" in body
            status, _ = await _chat(app)  # the tunnel's connection is pooled and reused
        finally:
            await app.shutdown()
        assert proxy.seen == [f"CONNECT {NAME}:{tls_provider.port} HTTP/1.1"]
        assert proxy.auth == ["Basic " + base64.b64encode(b"gw:pa55").decode()]
        assert tls_provider.sni == [NAME]  # SNI inside the tunnel is the provider's own name
        assert len(tls_provider.mock.log) == 2 and tls_provider.mock.log[0].headers["host"] == \
            f"{NAME}:{tls_provider.port}"
        assert "proxy-authorization" not in tls_provider.mock.log[0].headers
    finally:
        await proxy.stop()


async def test_tls_is_verified_by_default_through_the_tunnel(tls_provider: TlsProvider) -> None:
    # No trust for the self-signed certificate: the tunnel opens, the TLS handshake inside it fails.
    proxy = await SmallProxy().start()
    try:
        s = _settings([{"name": "tls", "kind": "mock", "base_url": f"https://{NAME}:{tls_provider.port}/v1",
                        "timeouts": {"connect": 3}}])
        app = InferenceApp(s, {"https_proxy": f"http://127.0.0.1:{proxy.port}"})
        await app.startup()
        try:
            status, body = await _chat(app)
        finally:
            await app.shutdown()
        assert status == 503 and b"no upstream available" in body
        assert proxy.seen and proxy.seen[0].startswith(f"CONNECT {NAME}:")
        assert not tls_provider.mock.log
    finally:
        await proxy.stop()


async def test_http_provider_in_absolute_form_and_no_proxy_goes_direct() -> None:
    mock = MockProvider(MockSettings(first_delay_ms=1, between_delay_ms=1, chunks=4))
    await mock.start()
    proxy = await SmallProxy().start()
    try:
        s = _settings([{"name": "plain", "kind": "mock", "base_url": f"http://{NAME}:{mock.port}/v1"}])
        app = InferenceApp(s, {"http_proxy": f"http://u:p@127.0.0.1:{proxy.port}"})
        await app.startup()
        try:
            status, body = await _chat(app)
        finally:
            await app.shutdown()
        assert status == 200 and b"data: [DONE]" in body
        assert proxy.seen == [f"POST http://{NAME}:{mock.port}/v1/chat/completions HTTP/1.1"]
        assert proxy.auth == ["Basic " + base64.b64encode(b"u:p").decode()]
        assert mock.log[-1].headers["host"] == f"{NAME}:{mock.port}"
        assert "proxy-authorization" not in mock.log[-1].headers
        # NO_PROXY: straight to the provider (here: unresolvable without the proxy, so the attempt fails
        # without the proxy seeing it), and a loopback provider always goes direct.
        app = InferenceApp(s, {"http_proxy": f"http://127.0.0.1:{proxy.port}", "NO_PROXY": ".test"})
        await app.startup()
        try:
            status, _ = await _chat(app)
        finally:
            await app.shutdown()
        assert status == 503 and len(proxy.seen) == 1
        loop = _settings([{"name": "plain", "kind": "mock", "base_url": f"http://127.0.0.1:{mock.port}/v1"}])
        app = InferenceApp(loop, {"http_proxy": f"http://127.0.0.1:{proxy.port}"})
        await app.startup()
        try:
            status, _ = await _chat(app)
        finally:
            await app.shutdown()
        assert status == 200 and len(proxy.seen) == 1 and len(mock.log) == 2
    finally:
        await proxy.stop()
        await mock.stop()


def test_readiness_probes_the_proxy_a_provider_is_reached_through(monkeypatch: pytest.MonkeyPatch) -> None:
    from sluicegate.observability.probe import backends

    s = _settings([{"name": "oa", "kind": "openai", "api_key": "sk-live-1"},
                   {"name": "loop", "kind": "mock", "base_url": "http://127.0.0.1:9100/v1"}])
    monkeypatch.setenv("HTTPS_PROXY", "http://egress.corp:3128")
    monkeypatch.setenv("NO_PROXY", "")
    monkeypatch.setenv("http_proxy", "")
    got = {b.name: (b.host, b.port) for b in backends(s) if b.name != "origin"}
    assert got == {"provider:oa": ("egress.corp", 3128), "provider:loop": ("127.0.0.1", 9100)}
    monkeypatch.setenv("NO_PROXY", "openai.com")
    assert {b.name: (b.host, b.port) for b in backends(s)}["provider:oa"] == ("api.openai.com", 443)


def test_provider_targets_host_and_credentials() -> None:
    s = _settings([
        {"name": "oa", "kind": "openai", "api_key_env": "K"},
        {"name": "an", "kind": "anthropic", "api_key": "sk-ant-live-2", "headers": {"anthropic-beta": "x"}},
        {"name": "v6", "kind": "openai-compatible", "base_url": "http://[::1]:8000/api/v1", "auth": "none"},
        {"name": "np", "kind": "openai-compatible", "base_url": "https://gw.example:8443/openai", "auth": "none"}])
    provs = build(s.inference, {"K": "sk-live-9"}, "x-req")
    oa, an, v6, np = provs["oa"], provs["an"], provs["v6"], provs["np"]
    assert oa.target("/v1/chat/completions", b"") == "/v1/chat/completions"  # base ".../v1": /v1 not doubled
    assert v6.target("/v1/responses", b"x=1") == "/api/v1/responses?x=1"
    assert np.target("/v1/chat/completions", b"") == "/openai/v1/chat/completions"
    assert (v6.authority, v6.host, v6.port) == ("[::1]:8000", "::1", 8000)
    assert (np.authority, np.scheme, np.port) == ("gw.example:8443", "https", 8443)
    client = [(b"authorization", b"Bearer client-key"), (b"x-api-key", b"client"), (b"cookie", b"a=b"),
              (b"content-type", b"application/json"), (b"openai-beta", b"assistants=v2"),
              (b"anthropic-version", b"2023-01-01")]
    h = dict(oa.headers(client, "r1"))
    assert h == {"host": "api.openai.com", "content-type": "application/json", "openai-beta": "assistants=v2",
                 "x-req": "r1", "authorization": "Bearer sk-live-9"}  # the client's own key never passes
    h = dict(an.headers(client, "r2"))
    assert h["x-api-key"] == "sk-ant-live-2" and "authorization" not in h
    assert h["anthropic-version"] == "2023-01-01" and h["anthropic-beta"] == "x"  # client's wins, defaults fill
    with pytest.raises(ValueError, match="K is empty or unset"):
        build(s.inference, {}, "x-req")
