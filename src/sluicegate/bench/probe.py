"""One timed HTTP/1.1 request on a fresh connection, phase by phase (the engine of ``ttfb`` and ``endpoints``).

A minimal client on asyncio streams so every phase is seen without library buffering in between:
DNS (``getaddrinfo``), TCP connect, TLS handshake (``start_tls``), request sent, complete response
headers, first body byte, last body byte. Times are cumulative from the start, like curl's ``-w``
variables. Failures never raise: they come back as an ``error`` kind (dns, connect, tls, timeout, read,
protocol) with a detail text; non-2xx statuses are measured like any other response.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import sluicegate

DEFAULT_HEADERS = {
    "User-Agent": f"sluicegate-bench/{sluicegate.__version__}",
    "Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "Accept-Encoding": "gzip, deflate, br, zstd",
}

_MAX_HEAD = 256 * 1024


class ProbeError(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclass
class Timing:
    """One request. ``*_ms`` are milliseconds since the start; ``None`` when the phase did not happen."""

    url: str
    method: str = "GET"
    status: int | None = None
    dns_ms: float | None = None
    connect_ms: float | None = None
    tls_ms: float | None = None
    headers_ms: float | None = None
    first_byte_ms: float | None = None
    total_ms: float | None = None
    bytes: int = 0
    header_bytes: int = 0
    remote: str = ""
    error: str | None = None
    error_detail: str = ""
    response_headers: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def status_class(self) -> str:
        return f"{self.status // 100}xx" if self.status else "none"


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # path + query, as sent
    host_header: str

    @classmethod
    def parse(cls, url: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"{url!r}: only http:// and https:// URLs can be measured")
        if not parts.hostname:
            raise ValueError(f"{url!r}: no host")
        default = 443 if parts.scheme == "https" else 80
        try:
            port = parts.port or default
        except ValueError as exc:
            raise ValueError(f"{url!r}: bad port") from exc
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        host = parts.hostname
        shown = f"[{host}]" if ":" in host else host
        host_header = shown if port == default else f"{shown}:{port}"
        return cls(parts.scheme, host, port, path, host_header)


def build_request(
    target: Target, method: str = "GET", headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    merged = {"Host": target.host_header, **DEFAULT_HEADERS}
    for key, value in (headers or {}).items():
        for existing in [k for k in merged if k.lower() == key.lower()]:
            del merged[existing]
        merged[key] = value
    merged["Connection"] = "close"
    if body or method.upper() in ("POST", "PUT", "PATCH"):
        merged["Content-Length"] = str(len(body))
    lines = [f"{method.upper()} {target.path} HTTP/1.1"] + [f"{k}: {v}" for k, v in merged.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    status_line = lines[0].split(" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith("HTTP/") or not status_line[1].isdigit():
        raise ProbeError("protocol", f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ProbeError("protocol", f"bad header line: {line[:80]!r}")
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return int(status_line[1]), headers


class _Clock:
    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def ms(self) -> float:
        return (time.perf_counter() - self.t0) * 1000.0


async def probe(
    url: str,
    *,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    timeout: float = 30.0,
    verify_tls: bool = True,
    keep_headers: bool = False,
) -> Timing:
    """Measure one request to ``url`` on a new connection."""
    timing = Timing(url=url, method=method.upper())
    try:
        target = Target.parse(url)
    except ValueError as exc:
        timing.error, timing.error_detail = "url", str(exc)
        return timing
    clock = _Clock()
    opened: list[asyncio.StreamWriter] = []
    try:
        async with asyncio.timeout(timeout):
            await _run(target, timing, clock, method, headers, body, verify_tls, keep_headers, opened)
    except ProbeError as exc:
        timing.error, timing.error_detail = exc.kind, exc.detail
    except TimeoutError:
        timing.error, timing.error_detail = "timeout", f"no answer within {timeout:g} s ({_phase_of(timing)})"
    except ssl.SSLError as exc:
        timing.error, timing.error_detail = "tls", str(exc)
    except (ConnectionError, OSError, asyncio.IncompleteReadError) as exc:
        kind = "read" if timing.connect_ms is not None else "connect"
        timing.error, timing.error_detail = kind, f"{type(exc).__name__}: {exc}"
    finally:
        for writer in opened:
            writer.close()
    return timing


def _phase_of(timing: Timing) -> str:
    if timing.dns_ms is None:
        return "resolving"
    if timing.connect_ms is None:
        return "connecting"
    if timing.headers_ms is None:
        return "waiting for headers"
    return "reading body"


async def _run(
    target: Target,
    timing: Timing,
    clock: _Clock,
    method: str,
    headers: dict[str, str] | None,
    body: bytes,
    verify_tls: bool,
    keep_headers: bool,
    opened: list[asyncio.StreamWriter],
) -> None:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ProbeError("dns", f"cannot resolve {target.host!r}: {exc}") from exc
    timing.dns_ms = clock.ms()
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    last_exc: OSError | None = None
    for family, _type, proto, _canon, addr in infos:
        try:
            sock = socket.socket(family, socket.SOCK_STREAM, proto)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, addr)
            except BaseException:
                sock.close()
                raise
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            reader, writer = await asyncio.open_connection(sock=sock, limit=_MAX_HEAD)
            opened.append(writer)
            timing.remote = ":".join(str(part) for part in addr[:2])
            break
        except OSError as exc:
            last_exc = exc
    if reader is None or writer is None:
        raise ProbeError("connect", f"cannot connect to {target.host}:{target.port}: {last_exc}")
    timing.connect_ms = clock.ms()
    if target.scheme == "https":
        ctx = ssl.create_default_context()
        if not verify_tls:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["http/1.1"])
        try:
            await writer.start_tls(ctx, server_hostname=target.host)
        except ssl.SSLCertVerificationError as exc:
            raise ProbeError("tls", f"certificate not trusted: {exc.verify_message}") from exc
        except (ssl.SSLError, ConnectionError) as exc:
            raise ProbeError("tls", f"handshake failed: {exc}") from exc
        timing.tls_ms = clock.ms()
    writer.write(build_request(target, method, headers, body))
    await writer.drain()
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError as exc:
        raise ProbeError("protocol", "response headers larger than 256 KiB") from exc
    except asyncio.IncompleteReadError as exc:
        raise ProbeError("read", "connection closed before the response headers") from exc
    timing.headers_ms = clock.ms()
    timing.header_bytes = len(head)
    status, resp_headers = _parse_head(head)
    while 100 <= status < 200 and status != 101:  # interim responses (100 Continue, 103 Early Hints)
        head = await reader.readuntil(b"\r\n\r\n")
        timing.header_bytes += len(head)
        status, resp_headers = _parse_head(head)
        timing.headers_ms = clock.ms()
    timing.status = status
    if keep_headers:
        timing.response_headers = resp_headers
    await _read_body(reader, timing, clock, method, status, resp_headers)
    timing.total_ms = clock.ms()


async def _read_body(
    reader: asyncio.StreamReader,
    timing: Timing,
    clock: _Clock,
    method: str,
    status: int,
    headers: dict[str, str],
) -> None:
    def got(n: int) -> None:
        if n and timing.first_byte_ms is None:
            timing.first_byte_ms = clock.ms()
        timing.bytes += n

    if method.upper() == "HEAD" or status in (204, 304):
        return
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            line = await reader.readline()
            if not line.endswith(b"\n"):
                raise ProbeError("read", "connection closed inside a chunked body")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError as exc:
                raise ProbeError("protocol", f"bad chunk size line {line[:40]!r}") from exc
            if size == 0:
                while (await reader.readline()).strip():  # trailers
                    pass
                return
            remaining = size
            while remaining:
                data = await reader.read(min(remaining, 65536))
                if not data:
                    raise ProbeError("read", "connection closed inside a chunk")
                got(len(data))
                remaining -= len(data)
            await reader.readexactly(2)
    elif "content-length" in headers:
        try:
            remaining = int(headers["content-length"].split(",")[0])
        except ValueError as exc:
            raise ProbeError("protocol", f"bad Content-Length {headers['content-length']!r}") from exc
        while remaining > 0:
            data = await reader.read(min(remaining, 65536))
            if not data:
                raise ProbeError("read", f"connection closed with {remaining} body bytes missing")
            got(len(data))
            remaining -= len(data)
    else:
        while data := await reader.read(65536):
            got(len(data))
