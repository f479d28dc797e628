"""Outbound proxies from the environment: which upstream goes through which proxy, and the CONNECT tunnel.

Owns the reading of ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY`` (and their lower-case forms, which win
when both are set, as for curl and requests), the ``NO_PROXY`` match (``*``, a host or domain suffix with or
without a leading dot, ``host:port``, an IP address or CIDR block; loopback — ``localhost``, ``*.localhost``,
127.0.0.0/8, ``::1`` — always goes direct, as in Go's ``httpproxy``: a local model server is never sent
through a corporate proxy), and opening a tunnel through an
``http://`` proxy with ``CONNECT host:port`` (optional Basic credentials from the proxy URL), after which
TLS to the upstream runs inside the tunnel with the upstream's own name (SNI and certificate check).
Plain-``http`` upstreams go through the proxy in absolute form instead: the caller connects to the proxy
and writes ``GET http://host/path``; ``Proxy.authorization`` is the header it adds.

Must not know about ASGI, providers or retries. Failures raise ``OSError`` subclasses (``ProxyError``), which
the origin client reports as a connect failure. The proxy's answer head is bounded (16 KiB).
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import ssl
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass

_MAX_HEAD = 16 * 1024


class ProxyError(OSError):
    """The proxy refused or broke the tunnel (its status, or a malformed answer)."""


@dataclass(frozen=True, slots=True)
class Proxy:
    """One ``http://[user:pass@]host:port`` proxy."""

    host: str
    port: int
    authorization: str = ""  # "Basic ..." when the URL carries credentials (never logged: repr hides it)

    def __repr__(self) -> str:
        return f"Proxy({self.host}:{self.port}{', with credentials' if self.authorization else ''})"

    @classmethod
    def parse(cls, value: str, name: str) -> Proxy:
        raw = value.strip()
        if "://" not in raw:
            raw = "http://" + raw  # "proxy:3128", as curl reads it
        u = urllib.parse.urlsplit(raw)
        if u.scheme != "http":
            raise ValueError(f"{name}: only http:// proxies are supported (got {u.scheme}://)")
        try:
            port = u.port or 80
        except ValueError:
            raise ValueError(f"{name}: not a valid proxy port") from None
        if not u.hostname:
            raise ValueError(f"{name}: no proxy host")
        auth = ""
        if u.username is not None:
            user = urllib.parse.unquote(u.username)
            password = urllib.parse.unquote(u.password or "")
            auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        return cls(u.hostname, port, auth)


def _env(environ: Mapping[str, str], name: str) -> str:
    low = environ.get(name.lower())
    return (low if low is not None else environ.get(name.upper(), "")).strip()


class ProxyEnv:
    """The proxy settings of a process environment, resolved once (``for_url`` is then a few dict looks)."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        https, http = _env(environ, "https_proxy"), _env(environ, "http_proxy")
        self.https = Proxy.parse(https, "HTTPS_PROXY") if https else None
        self.http = Proxy.parse(http, "HTTP_PROXY") if http else None
        self.bypass_all = False
        self._hosts: list[tuple[str, int | None]] = []  # (host or ".suffix", port or None)
        self._nets: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, int | None]] = []
        for item in _env(environ, "no_proxy").split(","):
            entry = item.strip().lower()
            if not entry:
                continue
            if entry == "*":
                self.bypass_all = True
                continue
            host, port = _split_port(entry)
            try:
                self._nets.append((ipaddress.ip_network(host.strip("[]"), strict=False), port))
                continue
            except ValueError:
                pass
            host = host.lstrip("*")
            self._hosts.append((host, port))

    def for_url(self, scheme: str, host: str, port: int) -> Proxy | None:
        """The proxy an upstream at ``scheme://host:port`` goes through, or None (direct)."""
        proxy = self.https if scheme == "https" else self.http
        if proxy is None or self.bypass(host, port):
            return None
        return proxy

    def bypass(self, host: str, port: int) -> bool:
        if self.bypass_all:
            return True
        name = host.strip("[]").lower().rstrip(".")
        if name == "localhost" or name.endswith(".localhost"):
            return True
        try:
            addr: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(name)
        except ValueError:
            addr = None
        if addr is not None and addr.is_loopback:
            return True
        if addr is not None:
            for net, p in self._nets:
                if (p is None or p == port) and addr.version == net.version and addr in net:
                    return True
        for entry, p in self._hosts:
            if p is not None and p != port:
                continue
            bare = entry.lstrip(".")
            if name == bare or name.endswith("." + bare):
                return True
        return False


def _split_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):  # [v6]:port
        host, _, rest = entry[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        if port.isdigit():
            return host, int(port)
    return entry, None


class _TunnelHead(asyncio.Protocol):
    """Reads the proxy's answer to CONNECT (its head only), then hands the transport over."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.buf = b""
        self.done: asyncio.Future[int] = loop.create_future()

    def data_received(self, data: bytes) -> None:
        if self.done.done():
            return
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > _MAX_HEAD:
                self.done.set_exception(ProxyError(f"proxy answer head exceeds {_MAX_HEAD} bytes"))
            return
        if end + 4 != len(self.buf):
            self.done.set_exception(ProxyError("proxy sent bytes after its CONNECT answer"))
            return
        line = self.buf.split(b"\r\n", 1)[0].split(None, 2)
        if len(line) < 2 or not line[0].startswith(b"HTTP/1.") or not line[1].isdigit():
            self.done.set_exception(ProxyError("proxy answered CONNECT with something that is not HTTP/1.x"))
            return
        self.done.set_result(int(line[1]))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_exception(ProxyError("proxy closed the connection during CONNECT"))


async def open_tunnel(
    proxy: Proxy,
    host: str,
    port: int,
    protocol_factory: Callable[[], asyncio.Protocol],
    ssl_context: ssl.SSLContext | None,
    server_hostname: str | None,
) -> tuple[asyncio.Transport, asyncio.Protocol]:
    """A connection to ``host:port`` through ``proxy`` (CONNECT), TLS inside it when ``ssl_context`` is set.

    The caller bounds the whole by its connect timeout (cancellation closes the socket)."""
    loop = asyncio.get_running_loop()
    transport, head = await loop.create_connection(lambda: _TunnelHead(loop), proxy.host, proxy.port)
    assert isinstance(head, _TunnelHead)
    ok = False
    try:
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        lines = f"CONNECT {authority} HTTP/1.1\r\nhost: {authority}\r\n"
        if proxy.authorization:
            lines += f"proxy-authorization: {proxy.authorization}\r\n"
        transport.write((lines + "\r\n").encode("latin-1"))
        status = await head.done
        if status != 200:
            raise ProxyError(f"proxy refused CONNECT {authority}: status {status}")
        tunnel: asyncio.Transport = transport
        if ssl_context is not None:
            tls = await loop.start_tls(tunnel, head, ssl_context, server_hostname=server_hostname)
            if tls is None:
                raise ProxyError("TLS inside the proxy tunnel could not start")
            tunnel = tls
        proto = protocol_factory()
        tunnel.set_protocol(proto)
        proto.connection_made(tunnel)
        ok = True
        return tunnel, proto
    finally:
        if not ok:
            transport.abort()
